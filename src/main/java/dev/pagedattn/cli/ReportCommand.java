package dev.pagedattn.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Turns the sweep CSVs (ours, and the PyTorch peer's) into a results page and a chart. By default
 * both go to target/report/ (untracked); benchmarks/gpu-sweep.sh names the tracked
 * benchmarks/RESULTS.md and chart explicitly, so that a trial run never overwrites published results.
 */
@Command(name = "report", mixinStandardHelpOptions = true,
        description = "Merge bench CSVs (ours and the PyTorch peer) into a markdown results page and a PNG chart.")
final class ReportCommand implements Callable<Integer> {
    private static final String NO_PEER = "none";
    /** The heading of the page's last generated table; {@link #laterSections} keeps what follows it. */
    private static final String EVERY_VARIANT = "## Every variant";
    private static final String[] PEERS = {"sdpa-cudnn", "sdpa-flash", "paged-gather-sdpa", "flex-paged"};

    @Option(names = "--ours", split = ",", defaultValue = "benchmarks/results/ours-ptx.csv,benchmarks/results/ours-cuda.csv",
            description = "Our sweep CSVs, one per backend (default: ${DEFAULT-VALUE}).")
    List<Path> ours;

    @Option(names = "--peer", defaultValue = "benchmarks/results/peer.csv",
            description = "Peer CSV, or " + NO_PEER + " for none (default: ${DEFAULT-VALUE}).")
    String peer;

    @Option(names = "--md", defaultValue = "target/report/RESULTS.md", description = "Markdown page to write (default: ${DEFAULT-VALUE}).")
    Path md;

    @Option(names = "--chart", defaultValue = "target/report/decode-bandwidth.png", description = "PNG chart (default: ${DEFAULT-VALUE}).")
    Path chart;

    @Option(names = "--card", defaultValue = "unknown card", description = "The GPU, as nvidia-smi names it.")
    String card;

    @Option(names = "--commands", defaultValue = "", description = "The command lines that produced the CSVs (printed on the page).")
    String commands;

    @Override
    public Integer call() throws IOException {
        List<BenchRow> ourRows = BenchRow.readAll(ours, "--ours");
        if (!peer.equals(NO_PEER) && !Files.isRegularFile(Path.of(peer))) {
            throw new IllegalArgumentException("--peer=" + peer + " does not exist (--peer " + NO_PEER + " reports ours alone)");
        }
        List<BenchRow> peerRows = peer.equals(NO_PEER) ? List.of() : BenchRow.parseAll(Files.readAllLines(Path.of(peer)));
        // the ceiling is the best read probe of any backend in the run
        double ceiling = ourRows.stream().filter(r -> r.variant().equals("probe-read")).mapToDouble(BenchRow::gbs).max()
                .orElseThrow(() -> new IllegalArgumentException("--ours=" + ours + " has no probe-read row"));
        StringBuilder probes = new StringBuilder();
        ourRows.stream().filter(r -> r.variant().startsWith("probe-")).forEach(r -> probes.append(
                String.format(Locale.ROOT, "%s %.0f GB/s; ", r.note(), r.gbs())));
        Map<String, List<BenchRow>> cells = new LinkedHashMap<>();
        ourRows.stream().filter(r -> r.batch() > 0).forEach(r -> cells.computeIfAbsent(r.cell(), k -> new ArrayList<>()).add(r));

        List<BenchRow> bestOurs = new ArrayList<>();
        List<BenchRow> bestPeer = new ArrayList<>();
        StringBuilder table = new StringBuilder();
        table.append("| cell (B x L) | tokens | ours: best variant | min / median / max (us) | GB/s | % of read ceiling | rel L2 |"
                + " wall per call, min / median (us) |");
        for (String p : PEERS) {
            table.append(' ').append(p).append(" GB/s | ours / ").append(p).append(" |");
        }
        table.append('\n').append("|---".repeat(8 + 2 * PEERS.length)).append("|\n");
        for (Map.Entry<String, List<BenchRow>> e : cells.entrySet()) {
            Optional<BenchRow> best = e.getValue().stream().filter(BenchRow::ok).max(Comparator.comparingDouble(BenchRow::gbs));
            BenchRow any = e.getValue().get(0);
            best.ifPresent(bestOurs::add);
            table.append(String.format(Locale.ROOT, "| %d x %s | %d | ", any.batch(), any.context(), any.tokens()));
            if (best.isPresent()) {
                BenchRow b = best.get();
                table.append(String.format(Locale.ROOT, "%s | %.1f / %.1f / %.1f | %.0f | %.1f | %.1e | %.0f / %.0f |", b.variant(),
                        b.minUs(), b.medianUs(), b.maxUs(), b.gbs(), 100 * b.gbs() / ceiling, b.relL2(), b.wallMinUs(),
                        b.wallMedianUs()).replace("NaN", "-"));
            } else {
                table.append(any.status()).append(" | | | | | |");
            }
            double bestPeerGbs = 0;
            BenchRow bestPeerRow = null;
            for (String p : PEERS) {
                Optional<BenchRow> pr = peerRows.stream().filter(r -> r.variant().equals(p) && r.cell().equals(e.getKey())).findFirst();
                if (pr.isPresent() && pr.get().ok()) {
                    String ratio = best.map(b -> String.format(Locale.ROOT, "%.2f", b.gbs() / pr.get().gbs())).orElse("-");
                    table.append(String.format(Locale.ROOT, " %.0f | %s |", pr.get().gbs(), ratio));
                    if (pr.get().gbs() > bestPeerGbs) {
                        bestPeerGbs = pr.get().gbs();
                        bestPeerRow = pr.get();
                    }
                } else {
                    table.append(' ').append(pr.map(BenchRow::status).orElse("-")).append(" | |");
                }
            }
            if (bestPeerRow != null) {
                bestPeer.add(bestPeerRow);
            }
            table.append('\n');
        }
        if (chart.getParent() != null) {
            Files.createDirectories(chart.getParent());
        }
        String chartNote = "";
        try {
            BandwidthChart.write(chart, "Paged decode attention, " + card + " (solid: ours, dashed: best PyTorch peer)", bestOurs,
                    bestPeer, "torch", ceiling);
        } catch (RuntimeException | Error e) {
            // Headless machines without fonts (fontconfig) cannot render text; the tables still matter.
            chartNote = "(chart not drawn on this machine: " + e.getMessage() + "; rerun `bin/pa report` where fonts exist)\n\n";
            System.err.println("warning: chart not drawn: " + e);
        }

        StringBuilder all = new StringBuilder("| cell | variant | status | min / median / max (us) | GB/s | % ceiling | rel L2 "
                + "| wall min / median (us) | grid / note |\n|---|---|---|---|---|---|---|---|---|\n");
        for (BenchRow r : ourRows) {
            if (r.batch() > 0) {
                all.append(String.format(Locale.ROOT, "| %d x %s | %s | %s | %.1f / %.1f / %.1f | %.0f | %.1f | %.1e | %.0f / %.0f | %s |%n",
                        r.batch(), r.context(), r.variant(), r.status(), r.minUs(), r.medianUs(), r.maxUs(), r.gbs(),
                        100 * r.gbs() / ceiling, r.relL2(), r.wallMinUs(), r.wallMedianUs(), r.note()).replace("NaN", "-"));
            }
        }
        String page = "# Results: paged decode attention on " + card + "\n\n"
                + "Generated by `bin/pa report` on " + LocalDate.now() + " from `" + ours + "`"
                + (peerRows.isEmpty() ? "" : " and `" + peer + "`") + ".\n\n"
                + (commands.isBlank() ? "" : "Commands:\n\n```\n" + commands.replace("; ", "\n") + "\n```\n\n")
                + "Ceilings measured in the same run with TornadoVM kernels: " + probes
                + String.format(Locale.ROOT, "the best read probe (%.0f GB/s) is the denominator of %% of read ceiling.%n%n", ceiling)
                + "Effective bandwidth = minimum bytes (benchmarks/README.md) / minimum kernel time. Our times are TornadoVM profiler"
                + " device kernel times of one decode step (scatter no-op + attention + merge launches); the peer's are CUDA events"
                + " around its call. Wall per call: `decode` called to output in the caller's array, on the plan as the library"
                + " builds it by default (CUDA graphs on PTX/CUDA), the rows copied between the caller's arrays and the plan's"
                + " (a variant ending in `+steprows`: through the plan's own rows, `stepRows`, no copies). A variant is"
                + " `backend:variant[/kernel]`."
                + " Cells whose K/V fit in the 50 MB L2 (B x L <= 12k tokens) read partly from L2 on our side.\n\n"
                + chartNote + "![bandwidth](" + md.toAbsolutePath().getParent().relativize(chart.toAbsolutePath()) + ")\n\n"
                + "## Best of ours per cell, next to the PyTorch peer\n\n" + table
                + "\n" + EVERY_VARIANT + "\n\n" + all;
        String kept = laterSections(md);
        if (md.getParent() != null) {
            Files.createDirectories(md.getParent());
        }
        Files.writeString(md, kept.isEmpty() ? page : page + "\n" + kept);
        long sections = kept.lines().filter(l -> l.startsWith("## ")).count();
        System.out.println("wrote " + md + " and " + chart + (sections == 0 ? "" : " (kept the page's " + sections
                + " sections after \"" + EVERY_VARIANT + "\")"));
        return 0;
    }

    /**
     * What an existing page holds after its generated part: every section from the first {@code ## } heading that
     * follows {@link #EVERY_VARIANT} (the measurements written next to a sweep's tables), so that regenerating the
     * tables keeps them; empty for a new page or one without that heading.
     */
    private static String laterSections(Path md) throws IOException {
        if (!Files.isRegularFile(md)) {
            return "";
        }
        String old = Files.readString(md);
        int every = old.indexOf("\n" + EVERY_VARIANT + "\n");
        if (every < 0) {
            return "";
        }
        int next = old.indexOf("\n## ", every + EVERY_VARIANT.length() + 2);
        return next < 0 ? "" : old.substring(next + 1);
    }
}
