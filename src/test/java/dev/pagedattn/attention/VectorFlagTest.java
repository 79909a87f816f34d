package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Both code paths of the JVM backend: {@code -Dpagedattn.jvm.vector} is read once into a static
 * final, so each value gets a JVM of its own running {@link VectorFlagCheck}.
 */
class VectorFlagTest {

    @ParameterizedTest(name = "pagedattn.jvm.vector={0}")
    @ValueSource(booleans = {true, false})
    void backendMatchesReferenceWithVectorFlag(boolean vector) throws Exception {
        long seed = TestSeeds.fresh("backendMatchesReferenceWithVectorFlag vector=" + vector);
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        List<String> command = List.of(java, "-ea", "-Dpagedattn.checked=true", "--add-modules", "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-Dpagedattn.jvm.vector=" + vector, "-Dpagedattn.test.seed=" + seed,
                "-cp", System.getProperty("java.class.path"), VectorFlagCheck.class.getName(), Boolean.toString(vector));
        Process child = new ProcessBuilder(command).redirectErrorStream(true).start();
        child.getOutputStream().close();
        byte[] output = child.getInputStream().readAllBytes();
        assertTrue(child.waitFor(60, TimeUnit.SECONDS), "child JVM did not finish");
        String text = new String(output, StandardCharsets.UTF_8); // in the failure message only: the seed is printed above
        assertEquals(0, child.exitValue(), "child JVM with pagedattn.jvm.vector=" + vector + " failed:\n" + text);
    }
}
