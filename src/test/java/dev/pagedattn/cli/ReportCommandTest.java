package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The sweep CSV format and the results page built from ours and the peer's CSVs. */
class ReportCommandTest {
    @TempDir
    Path dir;

    @Test
    void csvRowsSurviveARoundTrip() {
        BenchRow row = new BenchRow("ours", "auto", "fp16", 64, "8192", 524288, "ok", 2122.5, 2126.0, 2147.0, 2148663552L,
                1012.5, 47.0, 3.26e-7, "grid; with; semicolons");
        BenchRow back = BenchRow.parse(row.toCsv());
        assertEquals(row.variant(), back.variant());
        assertEquals(row.minBytes(), back.minBytes());
        assertEquals(row.gbs(), back.gbs(), 0.05);
        assertEquals(row.relL2(), back.relL2(), 1e-9);
        assertEquals("64x8192", back.cell());
        assertTrue(Double.isNaN(BenchRow.parse("x,y,fp16,1,1024,1024,error,,,,0,,,,boom").gbs()));
    }

    @Test
    void aRowIsWrongFromOnePercentOfRelativeErrorOrWithoutOne() {
        assertEquals("ok", BenchRow.status(9.99e-3));
        assertEquals("", BenchRow.wrongMark(3e-7));
        assertEquals(BenchRow.WRONG, BenchRow.status(1e-2));
        assertEquals(BenchRow.WRONG, BenchRow.status(67.3)); // the stream twins' INT8 output on PTX
        assertEquals(BenchRow.WRONG, BenchRow.status(Double.NaN));
        assertEquals(" WRONG", BenchRow.wrongMark(Double.NaN));
    }

    @Test
    void reportPutsOursNextToThePeerWithRatios() throws IOException {
        Path ours = dir.resolve("ours.csv");
        Path peer = dir.resolve("peer.csv");
        Files.write(ours, List.of(BenchRow.HEADER,
                "ours,probe-read,fp32,0,0,0,ok,,,,2147483648,2000.0,100.0,,read",
                "ours,auto,fp16,64,8192,524288,ok,2000.00,2010.00,2020.00,2148663552,1000.0,50.0,3.000e-07,grid",
                "ours,fused,fp16,64,8192,524288,ok,2100.00,2110.00,2120.00,2148663552,950.0,47.5,3.000e-07,grid",
                "ours,all,fp16,64,32768,2097152,does-not-fit,,,,0,,,,pool over 2^31 elements"));
        Files.write(peer, List.of(BenchRow.HEADER,
                "torch-2.11,sdpa-cudnn,fp16,64,8192,524288,ok,700.00,700.00,710.00,2148663552,3000.0,,2.9e-04,dense"));
        Path md = dir.resolve("RESULTS.md");
        Path png = dir.resolve("chart.png");
        CliRun run = CliRun.of("report", "--ours", ours.toString(), "--peer", peer.toString(), "--md", md.toString(),
                "--chart", png.toString(), "--card", "Test GPU");
        assertEquals(0, run.exitCode(), run.toString());
        String page = Files.readString(md);
        assertTrue(page.contains("| 64 x 8192 | 524288 | auto | 2000.0 / 2010.0 / 2020.0 | 1000 | 50.0 |"), page);
        assertTrue(page.contains(" 3000 | 0.33 |"), "ours / cuDNN ratio: " + page);
        assertTrue(page.contains("does-not-fit"), page);
        assertTrue(page.contains("Test GPU"));
        assertTrue(Files.size(png) > 1000, "chart written");
    }

    /** A sweep regenerates the tables of benchmarks/RESULTS.md and keeps the sections written after them. */
    @Test
    void reportKeepsTheSectionsAfterItsTables() throws IOException {
        Path ours = writeOurs();
        Path md = dir.resolve("RESULTS.md");
        Path png = dir.resolve("chart.png");
        assertEquals(0, CliRun.of("report", "--ours", ours.toString(), "--peer", "none", "--md", md.toString(),
                "--chart", png.toString(), "--card", "First GPU").exitCode());
        String later = "## A measurement of another session\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## And one more\n\ntext\n";
        Files.writeString(md, Files.readString(md) + "\n" + later);
        Files.write(ours, List.of(BenchRow.HEADER,
                "ours,probe-read,fp32,0,0,0,ok,,,,2147483648,2000.0,100.0,,read",
                "ours,auto,fp16,64,8192,524288,ok,1500.00,1510.00,1520.00,2148663552,1400.0,70.0,3.000e-07,grid"));
        CliRun run = CliRun.of("report", "--ours", ours.toString(), "--peer", "none", "--md", md.toString(),
                "--chart", png.toString(), "--card", "Second GPU");
        assertEquals(0, run.exitCode(), run.toString());
        String page = Files.readString(md);
        assertTrue(page.contains("1500.0 / 1510.0 / 1520.0") && !page.contains("2000.0 / 2010.0 / 2020.0"), page);
        assertTrue(page.contains("Second GPU") && !page.contains("First GPU"), page);
        assertTrue(page.endsWith(later), "the later sections, unchanged, after the tables: " + page);
        assertEquals(page.indexOf("## A measurement of another session"), page.lastIndexOf("## A measurement of another session"));
        assertTrue(page.indexOf("## Every variant") < page.indexOf(later), page);
        assertTrue(run.out().contains("kept the page's 2 sections"), run.toString());
    }

    @Test
    void reportWithoutOurCsvNamesIt() {
        CliRun run = CliRun.of("report", "--ours", dir.resolve("nope.csv").toString());
        assertEquals(Main.EXIT_BAD_INPUT, run.exitCode(), run.toString());
        assertTrue(run.err().contains("--ours="), run.toString());
    }

    @Test
    void reportWithAMissingPeerCsvNamesItAndWritesNothing() throws IOException {
        Path ours = writeOurs();
        Path md = dir.resolve("RESULTS.md");
        CliRun run = CliRun.of("report", "--ours", ours.toString(), "--peer", "/nonexistent.csv", "--md", md.toString(),
                "--chart", dir.resolve("chart.png").toString());
        assertEquals(Main.EXIT_BAD_INPUT, run.exitCode(), run.toString());
        assertTrue(run.err().strip().startsWith("error: --peer=/nonexistent.csv does not exist"), run.toString());
        assertFalse(Files.exists(md), "wrote the page despite the missing input");
    }

    /** Without --md and --chart the page goes under target/, never over the tracked benchmarks/RESULTS.md. */
    @Test
    void reportByDefaultWritesUnderTargetAndLeavesTheTrackedResultsAlone() throws IOException {
        Path tracked = Path.of("benchmarks/RESULTS.md");
        String before = Files.readString(tracked);
        Path page = Path.of("target/report/RESULTS.md");
        Files.deleteIfExists(page);
        CliRun run = CliRun.of("report", "--ours", writeOurs().toString(), "--peer", "none", "--card", "Default Paths GPU");
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(Files.readString(page).contains("Default Paths GPU"), "the page under target/report");
        assertEquals(before, Files.readString(tracked), "benchmarks/RESULTS.md was rewritten");
    }

    private Path writeOurs() throws IOException {
        Path ours = dir.resolve("ours.csv");
        Files.write(ours, List.of(BenchRow.HEADER,
                "ours,probe-read,fp32,0,0,0,ok,,,,2147483648,2000.0,100.0,,read",
                "ours,auto,fp16,64,8192,524288,ok,2000.00,2010.00,2020.00,2148663552,1000.0,50.0,3.000e-07,grid"));
        return ours;
    }
}
