package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The speed bars read off one call's CSVs: each verdict from the fastest verified rows, at and around its threshold. */
class BarsCommandTest {
    @TempDir
    Path dir;

    private static String ours(String variant, String dtype, int batch, int context, double minUs, double wallMedianUs, double relL2) {
        return new BenchRow("ours", variant, dtype, batch, Integer.toString(context), (long) batch * context, BenchRow.status(relL2),
                minUs, minUs, minUs, 0, Double.NaN, Double.NaN, relL2, "grid", wallMedianUs, wallMedianUs).toCsv();
    }

    private static String peer(String variant, int batch, int context, double minUs) {
        return new BenchRow("torch", variant, "fp16", batch, Integer.toString(context), (long) batch * context, "ok", minUs, minUs, minUs,
                0, Double.NaN, Double.NaN, 3e-4, "dense").toCsv();
    }

    private CliRun bars(List<String> oursLines, List<String> peerLines) throws IOException {
        Path o = Files.write(dir.resolve("ours.csv"), prepend(oursLines));
        if (peerLines == null) {
            return CliRun.of("bars", "--ours", o.toString());
        }
        Path p = Files.write(dir.resolve("peer.csv"), prepend(peerLines));
        return CliRun.of("bars", "--ours", o.toString(), "--peer", p.toString());
    }

    private static List<String> prepend(List<String> lines) {
        return java.util.stream.Stream.concat(java.util.stream.Stream.of(BenchRow.HEADER), lines.stream()).toList();
    }

    private static String line(CliRun run, String bar) {
        return run.out().lines().filter(l -> l.contains(bar)).findFirst().orElseThrow(() -> new AssertionError("no line for " + bar
                + ":\n" + run.out()));
    }

    @Test
    void eachBarPassesAtItsThresholdAndMissesJustBeyondIt() throws IOException {
        CliRun run = bars(List.of(
                        // 8 x 32k: the faster backend counts (cuda 400 us: cuDNN 320 / 400 = 0.80x, on the bar)
                        ours("ptx:auto", "fp16", 8, 32768, 500, 600, 4e-7), ours("cuda:auto", "fp16", 8, 32768, 400, 480, 6e-7),
                        ours("cuda:auto", "fp8", 8, 32768, 240, 300, 6e-7),   // 0.60x fp16: on the bar
                        ours("cuda:auto", "fp16", 64, 8192, 700, 800, 6e-7),  // cuDNN 555: 0.79x, a miss
                        ours("cuda:auto", "fp8", 64, 8192, 427, 500, 6e-7),   // 0.61x: a miss
                        ours("cuda:auto", "fp16", 8, 8192, 100, 150, 3e-7),   // cuDNN 65: 0.65x, on the bar
                        ours("cuda:auto", "fp16", 1, 1024, 40, 60, 2e-7)),    // both limits met exactly
                List.of(peer("sdpa-cudnn", 8, 32768, 320), peer("sdpa-cudnn", 64, 8192, 555), peer("sdpa-cudnn", 8, 8192, 65),
                        peer("flex-paged", 8, 32768, 400), peer("flex-paged", 64, 8192, 690)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(line(run, "every row verified").startsWith("PASS"), run.out());
        assertEquals("MISS  cells of >= 262k tokens: ours >= 0.8x cuDNN SDPA (1 of 2 cells miss: 64x8192 0.79x)",
                line(run, "0.8x cuDNN"));
        assertEquals("PASS  1 x 32k and 8 x 8k: ours >= 0.65x cuDNN SDPA (1 cells; closest 8x8192 0.65x)", line(run, "0.65x cuDNN"));
        assertTrue(line(run, "1 x 1k").startsWith("PASS"), run.out());
        assertEquals("MISS  every cell: ours >= 1.0x FlexAttention paged (1 of 2 cells miss: 64x8192 0.99x)", line(run, "FlexAttention paged ("));
        assertEquals("MISS  cells of >= 262k tokens: FP8 step <= 0.6x the fp16 step (1 of 2 cells miss: 64x8192 0.61x)",
                line(run, "FP8 step"));
        assertTrue(run.out().contains("| 8 x 32768 | 262144 | 400.0 | 320.0 | 0.80x | 400.0 | 1.00x | 240.0 | 0.60x | - | - |"),
                run.out());
    }

    @Test
    void aWrongRowIsAMissAndNeverTheStepTimed() throws IOException {
        CliRun run = bars(List.of(ours("ptx:auto", "fp16", 8, 32768, 100, 150, 0.5), ours("cuda:auto", "fp16", 8, 32768, 400, 480, 6e-7),
                ours("cuda:auto", "fp16", 1, 1024, 38, 61, 2e-7)), List.of(peer("sdpa-cudnn", 8, 32768, 380)));
        assertEquals("MISS  every row verified: ptx:auto fp16 8x32768 (wrong)", line(run, "every row verified"));
        assertTrue(line(run, "0.8x cuDNN").contains("closest 8x32768 0.95x"), "the wrong 100 us row is not our step: " + run.out());
        assertTrue(line(run, "1 x 1k").startsWith("MISS"), "61 us of wall time misses 60: " + run.out());
    }

    @Test
    void anErrorIsAMissAndACellThatDoesNotFitIsNot() throws IOException {
        String error = new BenchRow("ours", "cuda:auto", "fp16", 8, "8192", 65536, "error", Double.NaN, Double.NaN, Double.NaN, 0,
                Double.NaN, Double.NaN, Double.NaN, "CUDA_ERROR_LAUNCH_FAILED").toCsv();
        String tooBig = new BenchRow("ours", "cuda:auto", "fp16", 256, "65536", 16777216, "does-not-fit", Double.NaN, Double.NaN,
                Double.NaN, 0, Double.NaN, Double.NaN, Double.NaN, "pool over 2^31 elements").toCsv();
        assertEquals("MISS  every row verified: cuda:auto fp16 8x8192 (error)",
                line(bars(List.of(error, tooBig, ours("cuda:auto", "fp16", 8, 32768, 400, 480, 6e-7)), null), "every row verified"));
        assertEquals("PASS  every row verified (2 rows)",
                line(bars(List.of(tooBig, ours("cuda:auto", "fp16", 8, 32768, 400, 480, 6e-7)), null), "every row verified"));
    }

    @Test
    void withoutThePeerOnlyOurOwnBarsAreRead() throws IOException {
        CliRun run = bars(List.of(ours("cuda:auto", "fp16", 8, 32768, 400, 480, 6e-7), ours("cuda:auto", "int8", 8, 32768, 230, 300, 6e-7)),
                null);
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(line(run, "0.8x cuDNN").startsWith("not measured"), run.out());
        assertTrue(line(run, "FP8 step").startsWith("not measured"), "INT8 is not FP8: " + run.out());
        assertTrue(run.out().contains("| 230.0 | 0.58x |"), run.out());
    }

    @Test
    void aMissingCsvIsRefusedByName() {
        CliRun.of("bars", "--ours", dir.resolve("nope.csv").toString()).assertRefused("--ours=", "nope.csv");
    }
}
