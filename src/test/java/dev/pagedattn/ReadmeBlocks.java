package dev.pagedattn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;

/** Keeps a README code block and the test code that runs it the same text. */
final class ReadmeBlocks {
    private ReadmeBlocks() {
    }

    /**
     * Asserts that the first {@code java} block of README.md after {@code anchor} is the code of {@code testFile} between
     * the lines {@code begin} and {@code end} (marker comments), less the test's eight spaces of method indentation.
     */
    static void assertSame(String anchor, String testFile, String begin, String end) throws IOException {
        String readme = Files.readString(Path.of("README.md"));
        int at = readme.indexOf(anchor);
        assertTrue(at >= 0, "README has no '" + anchor.strip() + "'");
        int open = readme.indexOf("```java\n", at) + "```java\n".length();
        String block = readme.substring(open, readme.indexOf("```", open));
        String source = Files.readString(Path.of(testFile));
        int from = source.indexOf(begin + "\n") + begin.length() + 1;
        String body = source.substring(from, source.indexOf("        " + end, from));
        String code = body.lines().map(l -> l.startsWith("        ") ? l.substring(8) : l.strip()).collect(Collectors.joining("\n", "", "\n"));
        assertEquals(block, code, "README.md's block after '" + anchor.strip() + "' and " + testFile + " differ");
    }
}
