import java.io.IOException;
import java.lang.classfile.ClassBuilder;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.ClassTransform;
import java.lang.classfile.CodeBuilder;
import java.lang.constant.ClassDesc;
import java.lang.constant.ConstantDescs;
import java.lang.constant.MethodTypeDesc;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Build step (run by Maven as a single-file program): the TornadoVM API classes bundled in
 * io.github.beehive-lab:gpu-llama3 were compiled as Java 21 *preview* class files (minor version
 * 0xFFFF), which neither javac nor the JVM of release 25 accepts. The preview feature they used,
 * the foreign-memory API, is final since Java 22, so marking them as plain Java 21 class files
 * (minor 0) makes them load. Copies {@code from} into every {@code to}, patching on the way.
 *
 * <p>Second patch: that API predates parts of TornadoVM 5.2.0-jdk25 that the kernels and plans use.
 * Where a class lacks them, they are added with the same signatures so that the project compiles
 * against them:
 * <ul>
 *   <li>the warp-level operations of {@code KernelContext} ({@code simdSum}, {@code simdShuffleDown},
 *       {@code simdBroadcastFirst}; {@code shfl.sync} on PTX, {@code __shfl_*_sync} on CUDA): their
 *       bodies throw, because on the plain JVM only a test emulator (which overrides them) may run
 *       such a kernel;</li>
 *   <li>packed fp16 pairs, {@code HalfFloatArray.getHalf2(int)}, {@code Half2.lowFloat/highFloat},
 *       {@code Half2.fma} and {@code Half2.fromFloats} (one 32-bit load, {@code __hfma2},
 *       {@code __floats2half2_rn} on the CUDA backend) and {@code KernelContext.allocateHalf2LocalArray}:
 *       their bodies do what 5.2's do on the JVM (fma: one rounding to float, then to half), so the
 *       emulator runs kernels that use them;</li>
 *   <li>{@code TornadoExecutionPlan.withCUDAGraph()}: its body returns the plan unchanged;</li>
 *   <li>the tensor-core operations of {@code KernelContext} ({@code mmaFragment}, {@code mmaLoadA},
 *       {@code mmaLoadB} with a byte offset, {@code mma}, {@code mmaStore}; {@code ldmatrix} and
 *       {@code mma.sync.m16n8k16} on PTX and CUDA; {@code mmaBF16}, its bf16 form, on CUDA) and the
 *       {@code enums.MMAShape} class they take:
 *       warp-collective like the warp operations, so their bodies throw too;</li>
 *   <li>the asynchronous copies of {@code KernelContext} ({@code asyncCopyToLocal} of an fp16 pair,
 *       {@code asyncCopyCommit}, {@code asyncCopyWaitGroup}; {@code cp.async} on CUDA, a plain copy
 *       elsewhere): their bodies throw, so that only the test emulator, which defers each copy to
 *       the wait that completes it, runs a kernel that uses them on the plain JVM;</li>
 *   <li>{@code types.FP8} with its decoders {@code e4m3ToFloat} and {@code e5m2ToFloat} (see
 *       {@link #addFp8});</li>
 *   <li>{@code types.BFloat16} with its decoder {@code bf16ToFloat} and encoder {@code bf16FromFloat} (see {@link #addBf16}).</li>
 * </ul>
 * At run time under TornadoVM the SDK's own classes are loaded (the library jar contains no
 * TornadoVM classes), so these bodies never reach a GPU run.
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
            addMmaShape(Path.of(args[i]));
            addFp8(Path.of(args[i]));
            addBf16(Path.of(args[i]));
        }
    }

    /**
     * {@code types.FP8} where the API lacks it, with 5.2's two decoders {@code e4m3ToFloat(byte)} and
     * {@code e5m2ToFloat(byte)} (on the CUDA backend one hardware conversion each, {@code cuda_fp8.h}).
     * Their bodies here return {@code QuantFormat.FP8_E4M3/FP8_E5M2.decode(code)}: the library's own exact
     * decoder, so the emulator runs kernels that call them (this class is only ever on the plain JVM's
     * class path, next to the library).
     */
    private static void addFp8(Path to) throws IOException {
        ClassDesc format = ClassDesc.of("dev.pagedattn.quant.QuantFormat");
        MethodTypeDesc decoder = MethodTypeDesc.of(ConstantDescs.CD_float, ConstantDescs.CD_byte);
        addClass(to, FP8, cb -> {
            for (String[] m : new String[][] {{"e4m3ToFloat", "FP8_E4M3"}, {"e5m2ToFloat", "FP8_E5M2"}}) {
                cb.withMethodBody(m[0], decoder, ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC, code -> code
                        .getstatic(format, m[1], format)
                        .iload(0)
                        .invokevirtual(format, "decode", MethodTypeDesc.of(ConstantDescs.CD_float, ConstantDescs.CD_int))
                        .freturn());
            }
        });
    }

    /**
     * {@code types.BFloat16} where the API lacks it, with 5.2's decoder {@code bf16ToFloat(short)} (on the CUDA backend
     * {@code __int_as_float(bits << 16)}) and encoder {@code bf16FromFloat(float)} (there {@code __float2bfloat16}, round
     * to nearest even). Their bodies here are {@code Float.intBitsToFloat(bits << 16)}, exact for every bf16 value (5.2's
     * own body gives the same floats, NaN payloads aside), and {@code Bf16.fromFloat}, the library's round to nearest
     * even, so the emulator runs kernels that call them.
     */
    private static void addBf16(Path to) throws IOException {
        ClassDesc boxed = ClassDesc.of("java.lang.Float");
        addClass(to, BF16, cb -> {
            cb.withMethodBody("bf16ToFloat", MethodTypeDesc.of(ConstantDescs.CD_float, ConstantDescs.CD_short),
                    ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC, code -> code
                            .iload(0)
                            .bipush(16)
                            .ishl()
                            .invokestatic(boxed, "intBitsToFloat", MethodTypeDesc.of(ConstantDescs.CD_float, ConstantDescs.CD_int))
                            .freturn());
            cb.withMethodBody("bf16FromFloat", MethodTypeDesc.of(ConstantDescs.CD_short, ConstantDescs.CD_float),
                    ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC, code -> code
                            .fload(0)
                            .invokestatic(ClassDesc.of("dev.pagedattn.cache.Bf16"), "fromFloat",
                                    MethodTypeDesc.of(ConstantDescs.CD_short, ConstantDescs.CD_float))
                            .ireturn());
        });
    }

    /**
     * {@code enums.MMAShape} where the API lacks it: a class with 5.2's constants as static final
     * fields (what a kernel's {@code getstatic} names; under TornadoVM 5.2 its own enum is loaded).
     */
    private static void addMmaShape(Path to) throws IOException {
        ClassDesc shape = ClassDesc.ofInternalName(MMA_SHAPE);
        List<String> constants = List.of("M16N8K16", "M16N8K32");
        addClass(to, MMA_SHAPE, cb -> {
            for (String c : constants) {
                cb.withField(c, shape, ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC | ClassFile.ACC_FINAL);
            }
            cb.withMethodBody(ConstantDescs.CLASS_INIT_NAME, ConstantDescs.MTD_void, ClassFile.ACC_STATIC, code -> {
                for (String c : constants) {
                    code.new_(shape).dup().invokespecial(shape, ConstantDescs.INIT_NAME, ConstantDescs.MTD_void).putstatic(shape, c, shape);
                }
                code.return_();
            });
        });
    }

    /**
     * Writes {@code internalName}'s class under {@code to} where the API lacks it: public, final, a private constructor, and
     * what {@code members} adds.
     */
    private static void addClass(Path to, String internalName, Consumer<ClassBuilder> members) throws IOException {
        Path file = to.resolve(internalName + ".class");
        if (Files.exists(file)) {
            return;
        }
        byte[] bytes = ClassFile.of().build(ClassDesc.ofInternalName(internalName), cb -> {
            cb.withFlags(ClassFile.ACC_PUBLIC | ClassFile.ACC_FINAL | ClassFile.ACC_SUPER);
            cb.withMethodBody(ConstantDescs.INIT_NAME, ConstantDescs.MTD_void, ClassFile.ACC_PRIVATE,
                    code -> code.aload(0).invokespecial(ConstantDescs.CD_Object, ConstantDescs.INIT_NAME, ConstantDescs.MTD_void).return_());
            members.accept(cb);
        });
        Files.createDirectories(file.getParent());
        Files.write(file, bytes);
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
                    bytes = addMissingMethods(p, bytes);
                }
                Files.write(target, bytes);
            }
        }
    }

    private static final String API = "uk/ac/manchester/tornado/api/";
    private static final ClassDesc HALF = ClassDesc.ofInternalName(API + "types/HalfFloat");
    private static final ClassDesc HALF2 = ClassDesc.ofInternalName(API + "types/vectors/Half2");
    private static final ClassDesc HALF_ARRAY = ClassDesc.ofInternalName(API + "types/arrays/HalfFloatArray");
    private static final String MMA_SHAPE = API + "enums/MMAShape";
    private static final String FP8 = API + "types/FP8";
    private static final String BF16 = API + "types/BFloat16";
    private static final String HALVES = "[L" + API + "types/HalfFloat;";

    /** A method of TornadoVM 5.2's API: its class file, name, descriptor, flags and body. */
    private record Added(String classFile, String name, String descriptor, int flags, Consumer<CodeBuilder> body) {
    }

    private static final List<Added> ADDED = List.of(
            warpOperation("simdSum", "(F)F"),
            warpOperation("simdShuffleDown", "(FI)F"),
            warpOperation("simdBroadcastFirst", "(F)F"),
            // new Half2(get(i), get(i + 1))
            new Added("types/arrays/HalfFloatArray.class", "getHalf2", "(I)L" + API + "types/vectors/Half2;", ClassFile.ACC_PUBLIC,
                    code -> code.new_(HALF2).dup()
                            .aload(0).iload(1).invokevirtual(HALF_ARRAY, "get", MethodTypeDesc.of(HALF, ConstantDescs.CD_int))
                            .aload(0).iload(1).iconst_1().iadd().invokevirtual(HALF_ARRAY, "get", MethodTypeDesc.of(HALF, ConstantDescs.CD_int))
                            .invokespecial(HALF2, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, HALF, HALF))
                            .areturn()),
            halfOfPair("lowFloat", "getX"),
            halfOfPair("highFloat", "getY"),
            // new Half2(new HalfFloat(a.x * b.x + c.x), new HalfFloat(a.y * b.y + c.y)): the product of two
            // halves is exact in a float, so one rounding to float, then one to half
            new Added("types/vectors/Half2.class", "fma", "(L" + API + "types/vectors/Half2;L" + API + "types/vectors/Half2;L"
                    + API + "types/vectors/Half2;)L" + API + "types/vectors/Half2;", ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC,
                    code -> {
                        code.new_(HALF2).dup();
                        for (String getter : new String[] {"getX", "getY"}) {
                            code.new_(HALF).dup();
                            for (int arg = 0; arg < 3; arg++) {
                                code.aload(arg).invokevirtual(HALF2, getter, MethodTypeDesc.of(HALF))
                                        .invokevirtual(HALF, "getFloat32", MethodTypeDesc.of(ConstantDescs.CD_float));
                                if (arg == 1) {
                                    code.fmul();
                                } else if (arg == 2) {
                                    code.fadd();
                                }
                            }
                            code.invokespecial(HALF, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, ConstantDescs.CD_float));
                        }
                        code.invokespecial(HALF2, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, HALF, HALF)).areturn();
                    }),
            // new Half2(new HalfFloat(x), new HalfFloat(y))
            new Added("types/vectors/Half2.class", "fromFloats", "(FF)L" + API + "types/vectors/Half2;",
                    ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC, code -> code.new_(HALF2).dup()
                            .new_(HALF).dup().fload(0).invokespecial(HALF, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, ConstantDescs.CD_float))
                            .new_(HALF).dup().fload(1).invokespecial(HALF, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, ConstantDescs.CD_float))
                            .invokespecial(HALF2, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, HALF, HALF))
                            .areturn()),
            // new Half2[size] (the test emulator overrides it with one array per work-group)
            new Added("KernelContext.class", "allocateHalf2LocalArray", "(I)[L" + API + "types/vectors/Half2;", ClassFile.ACC_PUBLIC,
                    code -> code.iload(1).anewarray(HALF2).areturn()),
            new Added("TornadoExecutionPlan.class", "withCUDAGraph", "()L" + API + "TornadoExecutionPlan;", ClassFile.ACC_PUBLIC,
                    code -> code.aload(0).areturn()),
            warpOperation("mmaFragment", "(F)[F"),
            warpOperation("mmaLoadA", "([III)" + HALVES),
            warpOperation("mmaLoadB", "([III)" + HALVES),
            warpOperation("mma", "(" + HALVES + HALVES + "[FL" + MMA_SHAPE + ";)[F"),
            warpOperation("mmaBF16", "(" + HALVES + HALVES + "[FL" + MMA_SHAPE + ";)[F"),
            warpOperation("mmaStore", "([FL" + API + "types/arrays/FloatArray;III)V"),
            warpOperation("asyncCopyToLocal", "([IIL" + API + "types/arrays/HalfFloatArray;I)V"),
            warpOperation("asyncCopyCommit", "()V"),
            warpOperation("asyncCopyWaitGroup", "(I)V"));

    private static Added warpOperation(String name, String descriptor) {
        String message = "KernelContext." + name + " runs under TornadoVM (PTX, CUDA) "
                + "or in a KernelContext emulator that implements it, not on a plain KernelContext";
        ClassDesc uoe = ClassDesc.of("java.lang.UnsupportedOperationException");
        return new Added("KernelContext.class", name, descriptor, ClassFile.ACC_PUBLIC, code -> code
                .new_(uoe)
                .dup()
                .ldc(message)
                .invokespecial(uoe, ConstantDescs.INIT_NAME, MethodTypeDesc.of(ConstantDescs.CD_void, ConstantDescs.CD_String))
                .athrow());
    }

    /** {@code static float name(Half2 h)}: {@code h.getter().getFloat32()}. */
    private static Added halfOfPair(String name, String getter) {
        return new Added("types/vectors/Half2.class", name, "(L" + API + "types/vectors/Half2;)F",
                ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC, code -> code
                .aload(0).invokevirtual(HALF2, getter, MethodTypeDesc.of(HALF))
                .invokevirtual(HALF, "getFloat32", MethodTypeDesc.of(ConstantDescs.CD_float))
                .freturn());
    }

    private static byte[] addMissingMethods(Path file, byte[] bytes) {
        List<Added> mine = ADDED.stream().filter(a -> file.endsWith(Path.of(API + a.classFile()))).toList();
        if (mine.isEmpty()) {
            return bytes;
        }
        ClassFile cf = ClassFile.of();
        ClassModel model = cf.parse(bytes);
        Set<String> present = model.methods().stream()
                .map(m -> m.methodName().stringValue() + m.methodType().stringValue())
                .collect(Collectors.toSet());
        List<Added> missing = mine.stream().filter(a -> !present.contains(a.name() + a.descriptor())).toList();
        if (missing.isEmpty()) {
            return bytes;
        }
        byte[] out = cf.transformClass(model, ClassTransform.endHandler(cb -> {
            for (Added a : missing) {
                cb.withMethodBody(a.name(), MethodTypeDesc.ofDescriptor(a.descriptor()), a.flags(), a.body());
            }
        }));
        return out;
    }
}
