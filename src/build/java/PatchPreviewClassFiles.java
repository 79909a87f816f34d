import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * Build step (run by Maven as a single-file program): the TornadoVM API classes bundled in
 * io.github.beehive-lab:gpu-llama3 were compiled as Java 21 *preview* class files (minor version
 * 0xFFFF), which neither javac nor the JVM of release 25 accepts. The preview feature they used,
 * the foreign-memory API, is final since Java 22, so marking them as plain Java 21 class files
 * (minor 0) makes them load. Copies {@code from} into every {@code to}, patching on the way.
 *
 * usage: java PatchPreviewClassFiles.java FROM_DIR TO_DIR...
 */
public class PatchPreviewClassFiles {
    public static void main(String[] args) throws IOException {
        Path from = Path.of(args[0]);
        for (int i = 1; i < args.length; i++) {
            copyPatched(from, Path.of(args[i]));
        }
    }

    private static void copyPatched(Path from, Path to) throws IOException {
        int[] patched = {0};
        try (Stream<Path> files = Files.walk(from)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                    continue;
                }
                byte[] bytes = Files.readAllBytes(p);
                if (p.toString().endsWith(".class") && bytes.length > 8) {
                    ByteBuffer b = ByteBuffer.wrap(bytes);
                    if (b.getInt(0) == 0xCAFEBABE && (b.getShort(4) & 0xFFFF) == 0xFFFF) {
                        b.putShort(4, (short) 0);
                        patched[0]++;
                    }
                }
                Files.write(target, bytes);
            }
        }
        System.out.println("[tornado-api] " + patched[0] + " preview class files marked as plain class files in " + to);
    }
}
