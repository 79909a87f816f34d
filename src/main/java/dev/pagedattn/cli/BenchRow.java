package dev.pagedattn.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One line of a benchmark CSV, shared by our GPU sweep ({@code bench}), the PyTorch peer script
 * (benchmarks/peer_torch.py) and the report. Times in microseconds; empty numbers are NaN.
 */
record BenchRow(String impl, String variant, String dtype, int batch, String context, long tokens, String status,
                double minUs, double medianUs, double maxUs, long minBytes, double gbs, double pctCeiling,
                double relL2, String note, double wallMinUs, double wallMedianUs) {
    static final String HEADER = "impl,variant,dtype,batch,context,tokens,status,min_us,median_us,max_us,min_bytes,gbs,pct_ceiling,rel_l2,note,"
            + "wall_min_us,wall_median_us";
    /** The relative L2 error against fp64 from which a timed row is wrong (fp16 outputs are good to about 1e-3). */
    static final double WRONG_L2 = 1e-2;
    /** The status of a row whose output is wrong; {@code bench} exits 1 when it wrote one. */
    static final String WRONG = "wrong";

    /** {@code "ok"}, or {@link #WRONG} for an error of {@link #WRONG_L2} or more (or NaN). */
    static String status(double relL2) {
        return relL2 < WRONG_L2 ? "ok" : WRONG;
    }

    /** What a console line adds after a wrong row's error, so that no reader takes its time for a result. */
    static String wrongMark(double relL2) {
        return relL2 < WRONG_L2 ? "" : " WRONG";
    }

    /** A row without wall-clock times (device time only, as the peer script writes). */
    BenchRow(String impl, String variant, String dtype, int batch, String context, long tokens, String status, double minUs,
             double medianUs, double maxUs, long minBytes, double gbs, double pctCeiling, double relL2, String note) {
        this(impl, variant, dtype, batch, context, tokens, status, minUs, medianUs, maxUs, minBytes, gbs, pctCeiling, relL2, note,
                Double.NaN, Double.NaN);
    }

    String toCsv() {
        return String.join(",", impl, variant, dtype, Integer.toString(batch), context, Long.toString(tokens), status,
                num(minUs, "%.2f"), num(medianUs, "%.2f"), num(maxUs, "%.2f"), Long.toString(minBytes), num(gbs, "%.1f"),
                num(pctCeiling, "%.1f"), num(relL2, "%.3e"), note.replace(',', ';'), num(wallMinUs, "%.2f"), num(wallMedianUs, "%.2f"));
    }

    static BenchRow parse(String line) {
        String[] f = line.split(",", -1);
        if (f.length < 15) {
            throw new IllegalArgumentException("csv line has " + f.length + " fields, expected 15: " + line);
        }
        return new BenchRow(f[0], f[1], f[2], Integer.parseInt(f[3].trim()), f[4], parseLong(f[5]), f[6], number(f[7]),
                number(f[8]), number(f[9]), parseLong(f[10]), number(f[11]), number(f[12]), number(f[13]), f[14],
                f.length > 15 ? number(f[15]) : Double.NaN, f.length > 16 ? number(f[16]) : Double.NaN);
    }

    static List<BenchRow> parseAll(List<String> lines) {
        List<BenchRow> rows = new ArrayList<>();
        for (String l : lines) {
            if (!l.isBlank() && !l.startsWith("impl,")) {
                rows.add(parse(l));
            }
        }
        return rows;
    }

    /** The rows of each CSV in {@code files}, refusing a missing one by {@code option}'s name. */
    static List<BenchRow> readAll(List<Path> files, String option) throws IOException {
        List<BenchRow> rows = new ArrayList<>();
        for (Path f : files) {
            if (!Files.isRegularFile(f)) {
                throw new IllegalArgumentException(option + "=" + f + " does not exist");
            }
            rows.addAll(parseAll(Files.readAllLines(f)));
        }
        return rows;
    }

    boolean ok() {
        return status.equals("ok");
    }

    /** The cell this row belongs to, e.g. "64x8192". */
    String cell() {
        return batch + "x" + context;
    }

    BenchRow withCeiling(double readGBs) {
        return new BenchRow(impl, variant, dtype, batch, context, tokens, status, minUs, medianUs, maxUs, minBytes, gbs,
                Double.isNaN(gbs) ? Double.NaN : 100 * gbs / readGBs, relL2, note, wallMinUs, wallMedianUs);
    }

    private static String num(double v, String fmt) {
        return Double.isNaN(v) ? "" : String.format(Locale.ROOT, fmt, v);
    }

    private static double number(String s) {
        s = s.trim();
        return s.isEmpty() || s.equalsIgnoreCase("nan") ? Double.NaN : Double.parseDouble(s);
    }

    private static long parseLong(String s) {
        s = s.trim();
        return s.isEmpty() ? 0 : (long) Double.parseDouble(s);
    }
}
