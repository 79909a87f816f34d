package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** bin/pa-tornado refuses a TornadoVM SDK that is not there the way the CLI refuses bad input: one line, exit 2. */
class LauncherScriptTest {
    @Test
    void aTornadoHomeWithoutTheLauncherIsNamedInOneLine() throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("bash", Path.of("bin/pa-tornado").toString(), "check", "--batch", "1");
        pb.environment().put("TORNADOVM_HOME", "/nonexistent");
        pb.environment().put("JAVA_HOME", System.getProperty("java.home")); // the JDK running the tests
        pb.redirectErrorStream(true);
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "bin/pa-tornado did not stop");
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertEquals(Main.EXIT_BAD_INPUT, p.exitValue(), output);
        assertTrue(output.startsWith("error: TORNADOVM_HOME=/nonexistent "), output);
        assertFalse(output.contains("\n"), "more than one line:\n" + output);
    }
}
