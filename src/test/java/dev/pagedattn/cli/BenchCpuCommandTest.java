package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code bench-cpu}: timed cells checked against fp64 in a CSV, and one-line errors for bad flags. */
class BenchCpuCommandTest {

    @Test
    void writesOneCheckedRowPerCellAndDtypeAndTheProbe(@TempDir Path dir) throws Exception {
        Path csv = dir.resolve("cpu.csv");
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x40,1x300", "--dtypes", "fp32,fp16", "--q-heads", "4", "--kv-heads", "2",
                "--head-dim", "32", "--steps", "3", "--warmup-seconds", "0", "--probe-mib", "1", "--out", csv.toString());
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.err().contains("float lanes") && run.err().contains("prefetch="), "the backend's settings on stderr: " + run.err());
        List<String> lines = Files.readAllLines(csv);
        assertEquals(BenchCpuCommand.HEADER, lines.get(0));
        assertEquals(1 + 1 + 4, lines.size(), "header, probe, 2 cells x 2 dtypes: " + lines);
        assertTrue(lines.get(1).startsWith("jvm-read-probe,1MiB,"), lines.get(1));
        String[] expected = {"jvm,2x40,fp32,2,40,", "jvm,2x40,fp16,2,40,", "jvm,1x300,fp32,1,300,", "jvm,1x300,fp16,1,300,"};
        for (int i = 0; i < expected.length; i++) {
            String[] f = lines.get(2 + i).split(",");
            assertTrue(lines.get(2 + i).startsWith(expected[i]), lines.get(2 + i));
            double min = Double.parseDouble(f[7]);
            double median = Double.parseDouble(f[8]);
            double max = Double.parseDouble(f[9]);
            assertTrue(min > 0 && min <= median && median <= max, "min <= median <= max: " + lines.get(2 + i));
            assertTrue(Double.parseDouble(f[11]) <= 1e-5, "relative L2 vs fp64: " + lines.get(2 + i));
            assertEquals("ok", f[12]);
        }
    }

    /** --window: each cell windowed, then the window's length without one, the ratio of the two on stderr. */
    @Test
    void aWindowTimesEachCellNextToTheWindowsLength() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--window", "50", "--dtypes", "fp32", "--q-heads", "4", "--kv-heads",
                "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/w50,fp32,2,300,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x50,fp32,2,50,") && rows.get(1).endsWith(",ok"), rows.get(1));
        assertTrue(run.err().matches("(?s).*# 2x300 fp32: window 50 / no window over 50 tokens: [0-9.]+x the time.*"), run.err());
    }

    /** --chunk: each cell through chunks of C, then its last chunk's tokens without a window (300 tokens: 256..299, 44). */
    @Test
    void chunksTimeEachCellNextToItsLastChunksLength() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--chunk", "64", "--dtypes", "fp32", "--q-heads", "4", "--kv-heads",
                "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/c64,fp32,2,300,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x44,fp32,2,44,") && rows.get(1).endsWith(",ok"), rows.get(1));
        assertTrue(run.err().matches("(?s).*# 2x300 fp32: chunks of 64 / no window over 44 tokens: [0-9.]+x the time.*"), run.err());
        CliRun.of("bench-cpu", "--cells", "2x300", "--chunk", "64", "--window", "50").assertRefused("--chunk=64", "--window=50");
    }

    /** --sinks: each cell with sinks, then without, both checked against fp64, the ratio of the two on stderr. */
    @Test
    void sinksTimeEachCellNextToItselfWithout() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--sinks", "--dtypes", "fp16", "--q-heads", "4", "--kv-heads",
                "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/sinks,fp16,2,300,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x300,fp16,2,300,") && rows.get(1).endsWith(",ok"), rows.get(1));
        assertTrue(run.err().matches("(?s).*# 2x300 fp16: with sinks / without: [0-9.]+x the time.*"), run.err());
    }

    /**
     * --rope: after each cell's decode row (and after its pairing's), a rope-neox row timing the rotation of the step's
     * new query and key rows, checked against the fp64 rotation, and its time against the step's on stderr.
     */
    @Test
    void ropeTimesTheStepsRotationNextToTheStep() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300,3x40", "--rope", "--sinks", "--dtypes", "fp16", "--q-heads", "4",
                "--kv-heads", "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,") || l.startsWith("rope-")).toList();
        assertEquals(6, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/sinks,fp16,2,300,") && rows.get(1).startsWith("jvm,2x300,fp16,"), run.out());
        assertTrue(rows.get(2).startsWith("rope-neox,2x300,fp32,2,300,1,2,") && rows.get(2).endsWith(",ok"), rows.get(2));
        assertTrue(rows.get(5).startsWith("rope-neox,3x40,fp32,3,40,1,2,") && rows.get(5).endsWith(",ok"), rows.get(5));
        double relL2 = Double.parseDouble(rows.get(2).split(",")[11]);
        assertTrue(relL2 > 0 && relL2 <= 1e-6, "checked against fp64: " + rows.get(2));
        assertTrue(run.err().matches("(?s).*# 2x300 fp16: rotary embedding of the step's new rows / the decode step: [0-9.]+x the"
                + " time.*# 3x40 fp16: rotary.*"), run.err());
    }

    /** --alibi: each cell with ALiBi, then without (both with the given cap), both checked against fp64, the ratio on stderr. */
    @Test
    void alibiTimesEachCellNextToItselfWithout() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--alibi", "--soft-cap", "0.5", "--dtypes", "fp16", "--q-heads", "4",
                "--kv-heads", "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/cap0.5/alibi,fp16,2,300,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x300/cap0.5,fp16,2,300,") && rows.get(1).endsWith(",ok"), rows.get(1));
        assertTrue(run.err().matches("(?s).*# 2x300 fp16: alibi / no alibi: [0-9.]+x the time.*"), run.err());
    }

    /** --soft-cap: each cell capped, then without, both checked against fp64 (the capped one against the capped fp64). */
    @Test
    void aSoftCapTimesEachCellNextToItselfWithout() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--soft-cap", "0.5", "--window", "100", "--dtypes", "fp32", "--q-heads",
                "4", "--kv-heads", "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/w100/cap0.5,fp32,2,300,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x300/w100,fp32,2,300,") && rows.get(1).endsWith(",ok"), rows.get(1));
        for (String row : rows) {
            assertTrue(Double.parseDouble(row.split(",")[11]) <= 1e-5, "relative L2 vs fp64: " + row);
        }
        assertTrue(run.err().matches("(?s).*# 2x300 fp32: soft cap 0.5 / no cap: [0-9.]+x the time.*"), run.err());
    }

    /** --latent-dim: each cell over a latent cache, then over K and V pools of the same shape, both checked, the ratio on stderr. */
    @Test
    void aLatentCacheTimesEachCellNextToKAndVPools() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--latent-dim", "48", "--dtypes", "fp16", "--q-heads", "8",
                "--kv-heads", "1", "--head-dim", "64", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/latent48,fp16,2,300,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x300,fp16,2,300,") && rows.get(1).endsWith(",ok"), rows.get(1));
        assertTrue(run.err().matches("(?s).*# 2x300 fp16: latent \\(one 64-element vector per token, values its first 48\\) / K and V"
                + " pools: [0-9.]+x the time.*"), run.err());
        CliRun bad = CliRun.of("bench-cpu", "--cells", "2x300", "--latent-dim", "48", "--kv-heads", "2", "--head-dim", "64",
                "--probe-mib", "0");
        assertEquals(2, bad.exitCode(), bad.err());
        assertTrue(bad.err().strip().startsWith("error: --latent-dim=48 must be in [1, --head-dim=64] with --kv-heads 1"), bad.err());
    }

    /** --select-blocks: each cell over selected blocks, then over every block, both checked, the ratio on stderr. */
    @Test
    void selectedBlocksTimeEachCellNextToEveryBlock() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "2x300", "--select-blocks", "4", "--dtypes", "fp16", "--q-heads", "4",
                "--kv-heads", "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(2, rows.size(), run.out());
        assertTrue(rows.get(0).startsWith("jvm,2x300/select4,fp16,2,") && rows.get(0).endsWith(",ok"), rows.get(0));
        assertTrue(rows.get(1).startsWith("jvm,2x300,fp16,2,300,") && rows.get(1).endsWith(",ok"), rows.get(1));
        assertTrue(run.err().matches("(?s).*# 2x300 fp16: 4 selected blocks of each sequence \\(\\d+ of 600 tokens\\) / every block:"
                + " [0-9.]+x the time.*"), run.err());
    }

    /** --shared-prefix: each cell of forks timed with cascade and without on one backend, both checked, the ratio on stderr. */
    @Test
    void aSharedPrefixTimesCascadeNextToThePlainStep() {
        CliRun run = CliRun.of("bench-cpu", "--cells", "8x300", "--shared-prefix", "256", "--sharers", "4", "--dtypes", "fp16,int8",
                "--q-heads", "4", "--kv-heads", "2", "--head-dim", "32", "--steps", "2", "--warmup-seconds", "0", "--probe-mib", "0",
                "--threads", "1");
        assertEquals(0, run.exitCode(), run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("jvm,")).toList();
        assertEquals(4, rows.size(), run.out());
        for (String dtype : new String[] {"fp16", "int8"}) {
            int i = dtype.equals("fp16") ? 0 : 2;
            assertTrue(rows.get(i).startsWith("jvm,8x300/shared256," + dtype + ",8,300,") && rows.get(i).endsWith(",ok"), rows.get(i));
            assertTrue(rows.get(i + 1).startsWith("jvm,8x300/shared256/plain," + dtype + ",8,300,") && rows.get(i + 1).endsWith(",ok"),
                    rows.get(i + 1));
            assertTrue(run.err().matches("(?s).*# 8x300 " + dtype + ": runs of 4 sharing 256 tokens: cascade / plain: [0-9.]+x the time.*"),
                    run.err());
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "--shared-prefix|0|--shared-prefix=0",
        "--shared-prefix|400|--shared-prefix=400",
        "--sharers|0|--sharers=0",
        "--soft-cap|0|--soft-cap=0.0",
        "--soft-cap|-1|--soft-cap=-1.0",
        "--soft-cap|NaN|--soft-cap=NaN",
        "--soft-cap|Infinity|--soft-cap=Infinity",
        "--window|0|--window=0",
        "--cells|8x|cell=8x",
        "--cells|0x100|cell=0x100",
        "--steps|0|--steps=0",
        "--threads|0|--threads=0",
        "--probe-mib|-1|--probe-mib=-1",
        "--dtypes|fp9|fp9",
        "--select-blocks|0|--select-blocks=0",
    })
    void badFlagsExitWith2AndOneLineNamingTheValue(String flag, String value, String fragment) {
        CliRun run = flag.equals("--probe-mib")
                ? CliRun.of("bench-cpu", "--warmup-seconds", "0", flag, value)
                : flag.equals("--sharers")
                ? CliRun.of("bench-cpu", "--warmup-seconds", "0", "--probe-mib", "0", "--cells", "2x300", "--shared-prefix", "8", flag, value)
                : CliRun.of("bench-cpu", "--warmup-seconds", "0", "--probe-mib", "0", "--cells", "2x300", flag, value);
        assertEquals(2, run.exitCode(), run.out() + run.err());
        String err = run.err().strip();
        assertTrue(err.startsWith("error: ") && err.contains(fragment) && !err.contains("\n"), "one line naming " + fragment + ": " + err);
    }
}
