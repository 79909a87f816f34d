package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine;

/**
 * One run of the CLI in this JVM: the exit code and what went to stdout and stderr. Commands
 * print results to {@code System.out} and picocli prints errors to its own writer, so both are
 * captured; nothing reaches the test log (assertion messages quote the run, see {@link #toString()}).
 */
record CliRun(int exitCode, String out, String err) {

    static synchronized CliRun of(String... args) {
        PrintStream realOut = System.out;
        PrintStream realErr = System.err;
        ByteArrayOutputStream outBytes = new ByteArrayOutputStream();
        ByteArrayOutputStream errBytes = new ByteArrayOutputStream();
        StringWriter picoOut = new StringWriter();
        StringWriter picoErr = new StringWriter();
        int code;
        try (PrintStream out = new PrintStream(outBytes, true, StandardCharsets.UTF_8);
             PrintStream err = new PrintStream(errBytes, true, StandardCharsets.UTF_8)) {
            System.setOut(out);
            System.setErr(err);
            CommandLine cl = Main.commandLine();
            cl.setOut(new PrintWriter(picoOut, true));
            cl.setErr(new PrintWriter(picoErr, true));
            code = Main.run(cl, args);
        } finally {
            System.setOut(realOut);
            System.setErr(realErr);
        }
        return new CliRun(code, outBytes.toString(StandardCharsets.UTF_8) + picoOut,
                errBytes.toString(StandardCharsets.UTF_8) + picoErr);
    }

    /**
     * Asserts the run refused bad input the way every command must: exit 2, one line on stderr
     * starting {@code error: } and naming every fragment, no stack trace.
     */
    CliRun assertRefused(String... fragments) {
        assertEquals(Main.EXIT_BAD_INPUT, exitCode, "exit code; stderr: " + err);
        String line = err.strip();
        assertFalse(line.contains("\n"), "message is more than one line:\n" + line);
        assertTrue(line.startsWith("error: "), "message: " + line);
        for (String f : fragments) {
            assertTrue(line.contains(f), "message '" + line + "' does not name " + f);
        }
        assertFalse((out + err).contains("\tat "), "stack trace printed");
        return this;
    }

    /** The run as a person would have seen it, for assertion messages. */
    @Override
    public String toString() {
        return "exit " + exitCode + "\nstdout:\n" + out.indent(4) + "stderr:\n" + err.indent(4);
    }
}
