package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bin/pa-tornado refuses a TornadoVM SDK that is not there, or whose default backend is not the one asked for, the way the
 * CLI refuses bad input: one line, exit 2.
 */
class LauncherScriptTest {
    @Test
    void aTornadoHomeWithoutTheLauncherIsNamedInOneLine() throws IOException, InterruptedException {
        String output = refused("/nonexistent", "check", "--batch", "1");
        assertTrue(output.startsWith("error: TORNADOVM_HOME=/nonexistent "), output);
    }

    /** An SDK whose default backend is PTX (listed first, no priority for CUDA) would run `cuda` under PTX. */
    @Test
    void aCudaRunOnAnSdkWhoseDefaultIsPtxIsNamedInOneLine(@TempDir Path sdk) throws IOException, InterruptedException {
        Files.createDirectories(sdk.resolve("bin"));
        Files.createDirectories(sdk.resolve("etc"));
        Path launcher = Files.writeString(sdk.resolve("bin/tornado"), "#!/bin/sh\necho launched\n");
        assertTrue(launcher.toFile().setExecutable(true));
        Files.writeString(sdk.resolve("etc/tornado.backend"), "tornado.backends=ptx-backend,cuda-backend\n");
        Files.writeString(sdk.resolve("etc/tornado.properties"), "tornado.ptx.priority=100\n");
        String output = refused(sdk.toString(), "cuda", "check", "--batch", "1");
        assertTrue(output.startsWith("error: bin/pa-tornado cuda needs TornadoVM's cuda backend as the SDK's default")
                && output.contains("tornado.backends=ptx-backend,cuda-backend"), output);
        Files.writeString(sdk.resolve("etc/tornado.backend"), "tornado.backends=opencl-backend\n");
        output = refused(sdk.toString(), "ptx", "check", "--batch", "1");
        assertTrue(output.startsWith("error: bin/pa-tornado ptx needs TornadoVM's ptx backend") && output.contains("=opencl-backend"), output);
    }

    private static String refused(String tornadoHome, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("bash", Path.of("bin/pa-tornado").toString()));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().put("TORNADOVM_HOME", tornadoHome);
        pb.environment().put("JAVA_HOME", System.getProperty("java.home")); // the JDK running the tests
        pb.redirectErrorStream(true);
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "bin/pa-tornado did not stop");
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertEquals(Main.EXIT_BAD_INPUT, p.exitValue(), output);
        assertFalse(output.contains("\n"), "more than one line:\n" + output);
        return output;
    }
}
