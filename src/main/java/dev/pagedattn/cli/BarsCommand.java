package dev.pagedattn.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.function.Predicate;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Reads the decode bars of the project's speed issues off the CSVs of one device call: ours (any backends and dtypes,
 * from {@code bench}) and the PyTorch peer's (benchmarks/peer_torch.py). Prints a per-cell table and one verdict line
 * per bar, PASS, MISS or "not measured" where the call has no row for it. Times are the rows' min kernel times; our
 * step per cell and dtype is the fastest verified row of any backend. The bars, as the issues state them:
 * <ul>
 *   <li>every row verified (relative L2 against fp64 below {@link BenchRow#WRONG_L2}; a row that errs is a miss, one that
 *       does not fit the card or was skipped is not);</li>
 *   <li>cells of at least {@link #BIG_TOKENS} tokens: our fp16 step at least {@link #BIG_VS_CUDNN} of cuDNN SDPA's speed;</li>
 *   <li>1 x 32k and 8 x 8k: at least {@link #MID_VS_CUDNN} of cuDNN's speed;</li>
 *   <li>a 1 x 1k step at most {@link #SMALL_DEVICE_US} us of device time (min) and {@link #SMALL_WALL_US} us of wall time
 *       per call (median);</li>
 *   <li>at least FlexAttention paged's speed on every cell it ran;</li>
 *   <li>cells of at least {@link #BIG_TOKENS} tokens: the FP8 (E4M3) step at most {@link #FP8_VS_FP16} of the fp16 step's
 *       time.</li>
 * </ul>
 */
@Command(name = "bars", mixinStandardHelpOptions = true,
        description = "Print the decode speed bars (ours against cuDNN SDPA and FlexAttention, FP8 against fp16) read off bench and"
                + " peer CSVs of one device call.")
final class BarsCommand implements Callable<Integer> {
    static final long BIG_TOKENS = 262_144;
    static final double BIG_VS_CUDNN = 0.80;
    static final double MID_VS_CUDNN = 0.65;
    static final List<String> MID_CELLS = List.of("1x32768", "8x8192");
    static final String SMALL_CELL = "1x1024";
    static final double SMALL_DEVICE_US = 40;
    static final double SMALL_WALL_US = 60;
    static final double FP8_VS_FP16 = 0.60;
    private static final String CUDNN = "sdpa-cudnn";
    private static final String FLEX = "flex-paged";

    @Option(names = "--ours", split = ",", required = true, description = "Our bench CSVs (any backends and dtypes).")
    List<Path> ours;

    @Option(names = "--peer", description = "The peer's CSV (cuDNN SDPA and FlexAttention rows); without it only our own bars.")
    Path peer;

    @Override
    public Integer call() throws IOException {
        List<BenchRow> rows = BenchRow.readAll(ours, "--ours");
        List<BenchRow> peerRows = peer == null ? List.of() : BenchRow.readAll(List.of(peer), "--peer");
        System.out.print(report(rows.stream().filter(r -> r.batch() > 0).toList(), peerRows));
        return 0;
    }

    /** The table and the verdicts for our rows (cells only) next to the peer's. */
    static String report(List<BenchRow> ours, List<BenchRow> peer) {
        List<String> cells = ours.stream().sorted(Comparator.comparingInt(BenchRow::batch).thenComparingLong(BenchRow::tokens))
                .map(BenchRow::cell).distinct().toList();
        StringBuilder out = new StringBuilder("| cell | tokens | ours fp16 (us) | cuDNN (us) | ours / cuDNN | Flex paged (us) | ours / Flex"
                + " | FP8 (us) | FP8 / fp16 | INT8 (us) | INT8 / fp16 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        // a row that does not fit the card or was skipped by choice is no failure; a wrong output or an error is
        List<String> failed = ours.stream().filter(r -> r.status().equals(BenchRow.WRONG) || r.status().equals("error"))
                .map(r -> r.variant() + " " + r.dtype() + " " + r.cell() + " (" + r.status() + ")").toList();
        Verdict big = new Verdict("cells of >= 262k tokens: ours >= " + BIG_VS_CUDNN + "x cuDNN SDPA", BIG_VS_CUDNN, true);
        Verdict mid = new Verdict("1 x 32k and 8 x 8k: ours >= " + MID_VS_CUDNN + "x cuDNN SDPA", MID_VS_CUDNN, true);
        Verdict flex = new Verdict("every cell: ours >= 1.0x FlexAttention paged", 1.0, true);
        Verdict fp8 = new Verdict("cells of >= 262k tokens: FP8 step <= " + FP8_VS_FP16 + "x the fp16 step", FP8_VS_FP16, false);
        for (String cell : cells) {
            Optional<BenchRow> f16 = fastest(ours, cell, "fp16");
            Optional<BenchRow> e4m3 = fastest(ours, cell, "fp8");
            Optional<BenchRow> i8 = fastest(ours, cell, "int8");
            Optional<BenchRow> cudnn = fastest(peer, cell, r -> r.variant().equals(CUDNN));
            Optional<BenchRow> fl = fastest(peer, cell, r -> r.variant().equals(FLEX));
            long tokens = ours.stream().filter(r -> r.cell().equals(cell)).findFirst().orElseThrow().tokens();
            Double vsCudnn = share(cudnn, f16);  // our speed over cuDNN's: its time over ours
            Double vsFlex = share(fl, f16);
            Double fp8Share = share(e4m3, f16);
            if (tokens >= BIG_TOKENS) {
                big.add(cell, vsCudnn);
                fp8.add(cell, fp8Share);
            }
            if (MID_CELLS.contains(cell)) {
                mid.add(cell, vsCudnn);
            }
            flex.add(cell, vsFlex);
            out.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |%n", cell.replace("x", " x "),
                    tokens, us(f16), us(cudnn), ratio(vsCudnn), us(fl), ratio(vsFlex), us(e4m3), ratio(fp8Share),
                    us(i8), ratio(share(i8, f16))));
        }
        out.append('\n');
        out.append(failed.isEmpty() ? "PASS  every row verified (" + ours.size() + " rows)\n"
                : "MISS  every row verified: " + String.join(", ", failed) + "\n");
        out.append(big).append(mid);
        Optional<BenchRow> small = fastest(ours, SMALL_CELL, "fp16");
        if (small.isEmpty()) {
            out.append("not measured  1 x 1k: <= ").append(fmt(SMALL_DEVICE_US)).append(" us device, <= ").append(fmt(SMALL_WALL_US))
                    .append(" us wall per call\n");
        } else {
            BenchRow s = small.get();
            boolean pass = s.minUs() <= SMALL_DEVICE_US && s.wallMedianUs() <= SMALL_WALL_US;  // (no wall time: NaN, a miss)
            out.append(String.format(Locale.ROOT, "%s  1 x 1k: <= %s us device, <= %s us wall per call (%s: %.1f us device min, %s us wall"
                            + " median)%n", pass ? "PASS" : "MISS", fmt(SMALL_DEVICE_US), fmt(SMALL_WALL_US), s.variant(), s.minUs(),
                    Double.isNaN(s.wallMedianUs()) ? "no" : String.format(Locale.ROOT, "%.1f", s.wallMedianUs())));
        }
        out.append(flex).append(fp8);
        return out.toString();
    }

    /**
     * One bar over the cells it applies to, a ratio at least (or at most) a threshold: PASS when every cell with a number
     * passes and at least one has one; the closest cell is the one with the least margin.
     */
    private static final class Verdict {
        private final String name;
        private final double threshold;
        private final boolean atLeast;
        private final List<String> misses = new ArrayList<>();
        private int measured;
        private double closest = Double.NaN;
        private String closestCell = "";

        Verdict(String name, double threshold, boolean atLeast) {
            this.name = name;
            this.threshold = threshold;
            this.atLeast = atLeast;
        }

        void add(String cell, Double value) {
            if (value == null) {
                return;
            }
            measured++;
            if (atLeast ? value < threshold : value > threshold) {
                misses.add(cell + " " + ratio(value));
            }
            if (Double.isNaN(closest) || (atLeast ? value < closest : value > closest)) {
                closest = value;
                closestCell = cell;
            }
        }

        @Override
        public String toString() {
            if (measured == 0) {
                return "not measured  " + name + "\n";
            }
            return misses.isEmpty()
                    ? String.format(Locale.ROOT, "PASS  %s (%d cells; closest %s %s)%n", name, measured, closestCell, ratio(closest))
                    : String.format(Locale.ROOT, "MISS  %s (%d of %d cells miss: %s)%n", name, misses.size(), measured,
                            String.join(", ", misses));
        }
    }

    private static Optional<BenchRow> fastest(List<BenchRow> rows, String cell, String dtype) {
        return fastest(rows, cell, r -> r.dtype().equals(dtype));
    }

    private static Optional<BenchRow> fastest(List<BenchRow> rows, String cell, Predicate<BenchRow> which) {
        return rows.stream().filter(r -> r.cell().equals(cell) && r.ok() && !Double.isNaN(r.minUs()) && which.test(r))
                .min(Comparator.comparingDouble(BenchRow::minUs));
    }

    /** The first row's time as a share of the second's, or null when either is missing. */
    private static Double share(Optional<BenchRow> a, Optional<BenchRow> b) {
        return a.isPresent() && b.isPresent() ? a.get().minUs() / b.get().minUs() : null;
    }

    private static String us(Optional<BenchRow> r) {
        return r.map(x -> String.format(Locale.ROOT, "%.1f", x.minUs())).orElse("-");
    }

    private static String ratio(Double v) {
        return v == null ? "-" : String.format(Locale.ROOT, "%.2fx", v);
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.0f", v);
    }
}
