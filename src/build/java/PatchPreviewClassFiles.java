import java.io.IOException;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.ClassTransform;
import java.lang.constant.ClassDesc;
import java.lang.constant.ConstantDescs;
import java.lang.constant.MethodTypeDesc;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Build step (run by Maven as a single-file program): the TornadoVM API classes bundled in
 * io.github.beehive-lab:gpu-llama3 were compiled as Java 21 *preview* class files (minor version
 * 0xFFFF), which neither javac nor the JVM of release 25 accepts. The preview feature they used,
 * the foreign-memory API, is final since Java 22, so marking them as plain Java 21 class files
 * (minor 0) makes them load. Copies {@code from} into every {@code to}, patching on the way.
 *
 * <p>Second patch: that API predates the warp-level operations of {@code KernelContext}
 * ({@code simdSum}, {@code simdShuffleDown}, {@code simdBroadcastFirst}) that TornadoVM 5.2.0-jdk25
 * has and lowers to {@code shfl.sync} on PTX. Where {@code KernelContext} lacks them, they are added
 * with the same signatures so kernels compile against them; their bodies throw, because on the
 * plain JVM only a test emulator (which overrides them) may run such a kernel. At run time under
 * TornadoVM the SDK's own {@code KernelContext} is loaded (the library jar contains no TornadoVM
 * classes), so these bodies never reach a GPU run.
 *
 * Silent when it works (it runs in every build, including the one {@code bin/pa} starts on first use).
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
                    }
                    if (p.endsWith(Path.of("uk/ac/manchester/tornado/api/KernelContext.class"))) {
                        bytes = addWarpOperations(bytes);
                    }
                }
                Files.write(target, bytes);
            }
        }
    }

    /** name, descriptor of each warp-level operation of TornadoVM 5.2's KernelContext. */
    private static final List<String[]> WARP_OPERATIONS = List.of(
            new String[] {"simdSum", "(F)F"},
            new String[] {"simdShuffleDown", "(FI)F"},
            new String[] {"simdBroadcastFirst", "(F)F"});

    private static byte[] addWarpOperations(byte[] bytes) {
        ClassFile cf = ClassFile.of();
        ClassModel model = cf.parse(bytes);
        Set<String> present = model.methods().stream()
                .map(m -> m.methodName().stringValue() + m.methodType().stringValue())
                .collect(Collectors.toSet());
        List<String[]> missing = WARP_OPERATIONS.stream().filter(op -> !present.contains(op[0] + op[1])).toList();
        if (missing.isEmpty()) {
            return bytes;
        }
        ClassDesc uoe = ClassDesc.of("java.lang.UnsupportedOperationException");
        byte[] out = cf.transformClass(model, ClassTransform.endHandler(cb -> {
            for (String[] op : missing) {
                String message = "KernelContext." + op[0] + " is a warp operation: it runs under TornadoVM (PTX) "
                        + "or in a KernelContext emulator that implements it, not on a plain KernelContext";
                cb.withMethodBody(op[0], MethodTypeDesc.ofDescriptor(op[1]), ClassFile.ACC_PUBLIC, code -> code
                        .new_(uoe)
                        .dup()
                        .ldc(message)
                        .invokespecial(uoe, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, ConstantDescs.CD_String))
                        .athrow());
            }
        }));
        return out;
    }
}
