package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * TornadoVM kernels cannot be generic over the pool type, so each attention kernel exists for fp16
 * and fp32 pools (and the chunk kernel also for packed fp16 pair loads). This keeps the bodies
 * identical apart from the pool types and the loads, so a fix to one cannot silently miss the
 * other. Bodies are compared as token streams: comments and layout do not count.
 */
class KernelSourceTest {

    @ParameterizedTest
    @ValueSource(strings = {"WarpQuadDecodeKernels", "HeadQuadDecodeKernels", "HeadPairDecodeKernels"})
    void fp32BodyIsTheFp16BodyWithFloatPools(String kernelClass) throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java"));
        String f16 = method(src, "attentionF16(");
        String f32 = method(src, "attentionF32(");
        String expected = f16.replace("attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                "attentionF32(KernelContext ctx, FloatArray kPool, FloatArray vPool").replace(".getFloat32()", "");
        assertEquals(tokens(expected), tokens(f32), kernelClass + ": fp16 and fp32 attention bodies diverged");
    }

    @Test
    void eightBitWarpBodyIsTheFp16BodyUnderThePackedRule() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/WarpQuadDecodeKernels.java"));
        assertEquals(tokens(PackedTwin.fromF16(method(src, "attentionF16("))), tokens(method(src, "attentionQ8(")),
                "WarpQuadDecodeKernels: the 8-bit body is not the fp16 body under PackedTwin's rule");
        // the rule itself: 8 words per round (2 per row, K and V of two tokens), loaded a round ahead
        // (the first round's before the loop), and 32 table lookups
        String q8 = method(src, "attentionQ8(");
        assertEquals(16, count(q8, "Pool.get("), "32-bit code loads");
        assertEquals(32, count(q8, "= lut["), "table lookups");
        assertEquals(0, count(q8, "getFloat32"), "16-bit loads left in the 8-bit body");
    }

    @Test
    void eightBitQuadBodyIsTheFp16BodyUnderThePackedRule() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/HeadQuadDecodeKernels.java"));
        String q8 = method(src, "attentionQ8(");
        assertEquals(tokens(PackedTwin.packed(method(src, "attentionF16("))), tokens(q8),
                "HeadQuadDecodeKernels: the 8-bit body is not the fp16 body under PackedTwin's packed rule");
        assertEquals(8, count(q8, "Pool.get("), "32-bit code loads");
        assertEquals(32, count(q8, "= lut["), "table lookups");
    }

    @Test
    void chunkKernelTwinsDifferOnlyInTheirLoads() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/ChunkDecodeKernels.java"));
        String x2 = withoutLoads(method(src, "attentionF16x2(").replace("attentionF16x2(", "attentionF16("));
        String f16 = withoutLoads(method(src, "attentionF16("));
        String f32 = withoutLoads(method(src, "attentionF32(").replace("attentionF32(KernelContext ctx, FloatArray kPool, FloatArray vPool",
                "attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool"));
        assertEquals(f16, x2, "ChunkDecodeKernels: the getHalf2 and 16-bit-load fp16 bodies diverged outside their loads");
        assertEquals(f16, f32, "ChunkDecodeKernels: the fp16 and fp32 bodies diverged outside their loads");
        // and the loads themselves: 4 pairs of dims per row, two rows of K then of V: one getHalf2 or two element loads per pair
        assertEquals(16, count(method(src, "attentionF16x2("), ".getHalf2("), "getHalf2 loads");
        assertEquals(32, count(method(src, "attentionF16("), ".getFloat32()"), "16-bit loads");
        assertEquals(32, count(method(src, "attentionF32("), "Pool.get("), "fp32 loads");
    }

    @Test
    void latentKernelTwinsDifferOnlyInTheirPoolType() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/LatentDecodeKernels.java"));
        String f16 = method(src, "latentF16(");
        String expected = f16.replace("latentF16(KernelContext ctx, HalfFloatArray pool", "latentF32(KernelContext ctx, FloatArray pool")
                .replace(".getFloat32()", "");
        assertEquals(tokens(expected), tokens(method(src, "latentF32(")), "LatentDecodeKernels: fp16 and fp32 bodies diverged");
        String q8 = f16.replace("latentF16(KernelContext ctx, HalfFloatArray pool", "latentQ8(KernelContext ctx, IntArray pool,"
                        + " FloatArray dequant").replaceAll("pool\\.get\\(([^()]*)\\)\\.getFloat32\\(\\)", "PackedCodes.value(pool, dequant, $1) * kScale")
                .replace("float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));",
                        "float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));"
                                + " float kScale = dequant.get(DequantTable.SIZE);");
        assertEquals(tokens(q8), tokens(method(src, "latentQ8(")), "LatentDecodeKernels: fp16 and 8-bit bodies diverged");
        assertEquals(LatentDecodeKernels.CHUNK * 5, count(f16, "pool.get("), "pool loads (a work-item's five dims of each of a chunk's rows)");
        assertTrue(!f16.contains("= new float["), "LatentDecodeKernels allocates a private array");
    }

    /**
     * TornadoVM 5.2's CUDA backend prints {@code Float.NEGATIVE_INFINITY} as {@code -1.0F / 0.0F}, a division NVRTC
     * does not fold, whose slow path is a call that waits for every load in flight: in the stream kernels' tile loop it
     * held 25% of the fp16 kernel's stall samples (benchmarks/NOTES.md, forty-ninth session, part two). The CUDA
     * backend's step kernels mask with the finite {@link PagedDecodeKernels#MASKED} instead.
     */
    @ParameterizedTest
    @ValueSource(strings = {"StreamDecodeKernels", "ChunkDecodeKernels", "LatentDecodeKernels"})
    void cudaStepKernelsHoldNoInfinityLiteral(String kernelClass) throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java"));
        assertEquals(0, count(src, "NEGATIVE_INFINITY"), kernelClass + ": an infinity literal (a division on the CUDA backend)");
        assertTrue(count(src, "= PagedDecodeKernels.MASKED;") > 0, kernelClass + ": no masked score left to check");
    }

    @Test
    void maskedScoresHaveZeroProbability() {
        assertTrue(PagedDecodeKernels.MASKED > Float.NEGATIVE_INFINITY, "MASKED must be finite");
        for (float max : new float[] {-1e30f, -80f, 0f, 3.5f, 1e30f}) {
            assertEquals(0f, (float) Math.exp(PagedDecodeKernels.MASKED - max), "exp(MASKED - " + max + ")");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"attentionF16x2", "attentionF16x2D256"})
    void boundedStreamTwinIsTheFp16BodyUnderItsOwnName(String body) throws IOException {
        // the twin exists only so that tornado-config/nvrtc can bound it by name: any other difference is a defect
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java"));
        assertSameTokens(method(src, body + "(").replace(body + "(", body + "Bounded("), method(src, body + "Bounded("),
                "the stream kernel's bounded twin diverged from " + body);
    }

    /** Fails where {@code actual}'s tokens first differ from {@code expected}'s, quoting a dozen tokens either side. */
    private static void assertSameTokens(String expected, String actual, String what) {
        String[] want = tokens(expected).split(" ");
        String[] got = tokens(actual).split(" ");
        int i = 0;
        while (i < Math.min(want.length, got.length) && want[i].equals(got[i])) {
            i++;
        }
        int from = Math.max(0, i - 12);
        assertTrue(i == want.length && i == got.length, what + " at token " + i
                + ": expected '" + String.join(" ", java.util.Arrays.copyOfRange(want, from, Math.min(want.length, i + 12)))
                + "', found '" + String.join(" ", java.util.Arrays.copyOfRange(got, from, Math.min(got.length, i + 12))) + "'");
    }

    /**
     * The stream kernel's bf16 bodies are its fp16 bodies (fp32 V sums) with each 32-bit load of an fp16 pair made the
     * load of the same word of an {@code IntArray} (element offsets halved) and each half widened by
     * {@code BFloat16.bf16ToFloat} instead of {@code Half2.lowFloat}/{@code highFloat}: any other difference is a defect.
     */
    @ParameterizedTest
    @ValueSource(strings = {"", "G8", "D64", "D80", "D96", "D112", "D256"})
    void bf16StreamBodiesAreTheFp16BodiesReadingWords(String walk) throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java"));
        String f16 = method(src, "attentionF16x2" + walk + "(");
        String expected = f16
                .replace("attentionF16x2" + walk + "(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                        "attentionBf16" + walk + "(KernelContext ctx, IntArray kPool, IntArray vPool")
                .replaceAll("Half2 (kw\\d+) = kPool\\.getHalf2\\(", "int $1 = kPool.getHalf2(")
                .replaceAll("kPool\\.getHalf2\\((kRow\\d+) \\+ (\\d+)\\)", "kPool.get(($1 >> 1) + HALF$2)")
                .replaceAll("Half2 (vw\\d+) = vPool\\.getHalf2\\((vRow\\d+)\\);", "int $1 = vPool.get($2 >> 1);")
                .replaceAll("Half2 (vw\\d+) = vPool\\.getHalf2\\((vRow\\d+) \\+ vSecond\\);", "int $1 = vPool.get(($2 + vSecond) >> 1);")
                .replaceAll("Half2 (vw\\d+) = vPool\\.getHalf2\\((vRow\\d+) \\+ (\\d+)\\);", "int $1 = vPool.get(($2 >> 1) + HALF$3);")
                .replaceAll("Half2\\.lowFloat\\((\\w+)\\)", "BFloat16.bf16ToFloat((short) $1)")
                .replaceAll("Half2\\.highFloat\\((\\w+)\\)", "BFloat16.bf16ToFloat((short) ($1 >>> 16))");
        // the halved constant offsets (HALFn: n / 2, words instead of elements)
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("HALF(\\d+)").matcher(expected);
        StringBuilder halved = new StringBuilder();
        while (m.find()) {
            m.appendReplacement(halved, Integer.toString(Integer.parseInt(m.group(1)) / 2));
        }
        m.appendTail(halved);
        String bf16 = method(src, "attentionBf16" + walk + "(");
        assertSameTokens(halved.toString(), bf16, "attentionBf16" + walk + " diverged from attentionF16x2" + walk);
        assertTrue(!bf16.contains("Half2") && !bf16.contains("getHalf2"), "fp16 pairs left in attentionBf16" + walk);
    }

    /** The body as tokens, with every statement that loads from a pool or unpacks a Half2 removed. */
    private static String withoutLoads(String body) {
        StringBuilder kept = new StringBuilder();
        for (String statement : tokens(body).split(";")) {
            if (!statement.contains("Pool . get") && !statement.contains("Half2 .")) {
                kept.append(statement).append(';');
            }
        }
        return kept.toString();
    }

    /** Java source as space-separated tokens: comments dropped, layout ignored. */
    static String tokens(String src) {
        String noComments = src.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\\n]*", " ");
        return noComments.replaceAll("([^A-Za-z0-9_$.])", " $1 ").replaceAll("\\.", " . ").trim().replaceAll("\\s+", " ");
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }

    @ParameterizedTest
    @ValueSource(strings = {"ParallelDecodeKernels.decode", "ScatterKernels.scatter", "ScatterKernels.scatterLatent"})
    void otherFp32KernelsAreTheirFp16TwinWithFloatArrays(String kernel) throws IOException {
        String kernelClass = kernel.substring(0, kernel.indexOf('.'));
        String name = kernel.substring(kernel.indexOf('.') + 1);
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java"));
        String expected = method(src, name + "F16(").replace(name + "F16(", name + "F32(")
                .replace("HalfFloatArray", "FloatArray").replace(".getFloat32()", "");
        assertEquals(tokens(expected), tokens(method(src, name + "F32(")), kernel + ": fp16 and fp32 bodies diverged");
    }

    @ParameterizedTest
    @ValueSource(strings = {"WarpQuadDecodeKernels", "HeadQuadDecodeKernels", "HeadPairDecodeKernels"})
    void registerKernelsUseNoPrivateArrays(String kernelClass) throws IOException {
        // TornadoVM puts private arrays in local (stack) memory: these kernels keep state in scalars.
        String body = method(Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java")),
                "attentionF16(");
        assertTrue(!body.contains("= new float["), kernelClass + " allocates a private array");
    }

    @ParameterizedTest
    @ValueSource(strings = {"attentionInt8(", "attentionInt8D64(", "attentionInt8D80(", "attentionInt8D96(", "attentionInt8D112(",
            "attentionInt8D256(", "attentionInt8G8("})
    void int8StreamTwinsSignExtendByACastNotByAShift(String twin) throws IOException {
        // TornadoVM 5.2's PTX backend makes >> a logical shift (package-info): a code sign-extended by (w << 8k) >> 24
        // comes out of PTX as 0..255, while (byte) (w >>> 8k) is right on every backend and nvcc compiles both alike
        String body = method(Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java")), twin);
        assertEquals(0, java.util.regex.Pattern.compile("(?<!>)>>(?!>)\\s*24\\b|<<\\s*\\d+\\)\\s*>>(?!>)").matcher(body).results().count(),
                twin + " sign-extends a code with >>");
        long codes = java.util.regex.Pattern.compile("float \\w+ = \\(byte\\) ").matcher(body).results().count();
        assertTrue(codes >= 64, twin + ": " + codes + " codes converted through (byte)");
    }

    private static String method(String src, String signature) {
        int start = src.indexOf("public static void " + signature);
        assertTrue(start >= 0, "no method " + signature);
        int end = src.indexOf("\n    }\n", start);
        return src.substring(start, end);
    }
}
