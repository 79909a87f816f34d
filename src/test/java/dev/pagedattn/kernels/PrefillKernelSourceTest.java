package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The fp32, bf16 and 8-bit prefill kernels are the fp16 one with other pools, the tensor kernel for PTX is the CUDA
 * one with plain copies, and its bf16 and 8-bit twins are the PTX one with other staging, so a fix to one cannot miss the
 * others.
 */
class PrefillKernelSourceTest {

    @Test
    void fp32PrefillIsTheFp16PrefillWithFloatPools() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/PrefillKernels.java"));
        String expected = method(src, "prefillF16(").replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                "prefillF32(KernelContext ctx, FloatArray kPool, FloatArray vPool").replace(".getFloat32()", "");
        assertEquals(expected, method(src, "prefillF32("), "fp16 and fp32 prefill bodies diverged");
    }

    @Test
    void eightBitPrefillIsTheFp16PrefillUnderThePackedRule() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/PrefillKernels.java"));
        String q8 = method(src, "prefillQ8(");
        assertEquals(KernelSourceTest.tokens(PackedTwin.prefillFromF16(method(src, "prefillF16("))), KernelSourceTest.tokens(q8),
                "PrefillKernels: the 8-bit body is not the fp16 body under PackedTwin's rule");
        assertEquals(2, q8.split("PackedCodes.value\\(", -1).length - 1, "one packed read for K and one for V");
        assertTrue(!q8.contains("getFloat32"), "16-bit loads left in the 8-bit body");
    }

    @Test
    void bf16PrefillIsTheFp16PrefillReadingWords() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/PrefillKernels.java"));
        String bf16 = method(src, "prefillBf16(");
        String expected = method(src, "prefillF16(").replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                "prefillBf16(KernelContext ctx, IntArray kPool, IntArray vPool")
                .replaceAll("(kPool|vPool)\\.get\\((KvLayout\\.offset\\([^()]*\\))\\)\\.getFloat32\\(\\)", "Bf16Words.value($1, $2)");
        assertEquals(KernelSourceTest.tokens(expected), KernelSourceTest.tokens(bf16), "fp16 and bf16 prefill bodies diverged");
        assertEquals(2, bf16.split("Bf16Words\\.value\\(", -1).length - 1, "one word read for K and one for V");
    }

    @Test
    void tensorPrefillForPtxIsTheCudaOneWithPlainCopies() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/TensorPrefillKernels.java"));
        String async = method(src, "prefillF16Async(");
        assertEquals(24, async.split("asyncCopyToLocal\\(", -1).length - 1, "three loops (K, V, next K) of eight copies a round");
        assertEquals(KernelSourceTest.tokens(plainCopies(async.replace("prefillF16Async(", "prefillF16("))),
                KernelSourceTest.tokens(method(src, "prefillF16(")), "TensorPrefillKernels: the PTX body is not the CUDA body with plain copies");
    }

    /**
     * The tensor kernels count a partition's chunks only where it sees any context: TornadoVM 5.2's PTX backend divides a
     * negative int by 32 with logical shifts (about 134M chunks for a partition that ends before a window's start: a hang on
     * an H100, then CUDA error 700). The twins are kept equal above, so the CUDA body stands for all three.
     */
    @Test
    void tensorPrefillCountsChunksOnlyOfANonEmptyRange() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/TensorPrefillKernels.java"));
        String body = KernelSourceTest.tokens(method(src, "prefillF16Async("));
        assertTrue(body.contains(KernelSourceTest.tokens("int chunks = hi > lo ? (hi - lo + CHUNK - 1) / CHUNK : 0;")),
                "the chunk count divides hi - lo unguarded");
    }

    @Test
    void tensorPrefillOverCodesIsThePtxBodyWithCodesLookedUp() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/TensorPrefillKernels.java"));
        String q8 = method(src, "prefillQ8Tensor(");
        assertEquals(KernelSourceTest.tokens(codesLookedUp(method(src, "prefillF16("))), KernelSourceTest.tokens(q8),
                "TensorPrefillKernels: the 8-bit body is not the PTX body with its pairs looked up from code words");
        assertEquals(48, q8.split("lut\\[\\(w", -1).length - 1, "two codes looked up per staged pair: K, V and the next K, eight a round");
        assertTrue(!q8.contains("pairBits("), "fp16 loads left in the 8-bit body");
    }

    /**
     * The bf16 twin's rule: the PTX body with words staged as they are, bf16 products, the scores' loop over dims
     * unrolled, each V fragment loaded once for the probabilities' two parts, and lines ending in {@code // lo part}
     * that add the low parts of the queries and probabilities (16 held q fragments, 16 more score products, the low
     * probabilities written and loaded); nothing else differs.
     */
    @Test
    void bf16TensorPrefillIsThePtxBodyOnBf16TensorCoresInTwoParts() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/TensorPrefillKernels.java"));
        String bf16 = method(src, "prefillBf16Tensor(");
        String withoutLow = bf16.lines().filter(l -> !l.endsWith("// lo part")).collect(Collectors.joining("\n"));
        String expected = method(src, "prefillF16(")
                .replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool", "prefillBf16Tensor(KernelContext ctx, IntArray kPool, IntArray vPool")
                .replaceAll("pairBits\\(([kv]Pool), ([^;]*?)\\);", "$1.get(($2) >> 1);")
                .replace("halfBits(", "bf16Bits(")
                .replace("ctx.mma(", "ctx.mmaBF16(");
        Matcher loop = Pattern.compile("for \\(int ks = 0; ks < 8; ks\\+\\+\\) \\{(.*?)\\n\\s*}\\n", Pattern.DOTALL).matcher(expected);
        assertTrue(loop.find(), "no loop over dims in the fp16 body");
        StringBuilder unrolled = new StringBuilder();
        for (int ks = 0; ks < 8; ks++) {
            String step = ks == 0 ? loop.group(1) : loop.group(1).replace("HalfFloat[] a =", "a =");
            unrolled.append(step.replaceAll("\\bks\\b", Integer.toString(ks))).append('\n');
        }
        expected = expected.substring(0, loop.start()) + unrolled + expected.substring(loop.end());
        Matcher pv = Pattern.compile("(o\\d+) = ctx\\.mmaBF16\\((a[01]), (ctx\\.mmaLoadB\\([^;]*?\\)), \\1, MMAShape\\.M16N8K16\\);").matcher(expected);
        StringBuilder twoParts = new StringBuilder();
        int products = 0;
        while (pv.find()) {
            pv.appendReplacement(twoParts, Matcher.quoteReplacement((products++ == 0 ? "HalfFloat[] v = " : "v = ") + pv.group(3) + ";\n"
                    + pv.group(1) + " = ctx.mmaBF16(" + pv.group(2) + "lo, v, ctx.mmaBF16(" + pv.group(2) + ", v, " + pv.group(1)
                    + ", MMAShape.M16N8K16), MMAShape.M16N8K16);"));
        }
        pv.appendTail(twoParts);
        assertEquals(32, products, "the fp16 body's P V products");
        assertEquals(KernelSourceTest.tokens(twoParts.toString()), KernelSourceTest.tokens(withoutLow),
                "TensorPrefillKernels: the bf16 body is not the PTX body with words staged as they are, bf16 products and low parts");
        assertEquals(8 * 2 * 2 + 32 * 2, bf16.split("ctx\\.mmaBF16\\(", -1).length - 1, "every product on bf16 tensor cores, twice");
        long low = bf16.lines().filter(l -> l.endsWith("// lo part")).count();
        assertEquals(3 + 1 + 1 + 16 + 16 + 1 + 2, low, "the low parts' lines");
        assertTrue(!bf16.contains("halfBits(") && !bf16.contains("pairBits(") && !bf16.contains("ctx.mma("), "fp16 left in the bf16 body");
        // TornadoVM 5.2's CUDA backend keeps int operations on bf16FromFloat's short in short variables (the bits' high
        // halves were lost on an H100); a widening to long first is printed as a cast, and what follows is int
        String bits = src.substring(src.indexOf("static int bf16Bits("), src.indexOf("}", src.indexOf("static int bf16Bits(")));
        assertTrue(bits.contains("long bits = BFloat16.bf16FromFloat(x);") && bits.contains("(int) (bits & 0xFFFFL)"), bits);
    }

    /**
     * The 8-bit twin's rule: code words in, the softmax x K scale and the V scale from {@code dequant} (PackedCodes), a
     * local table of the codes' fp16 bits, each staged pair the two codes of its word looked up, the V scale on the output.
     */
    private static String codesLookedUp(String body) {
        String s = body.replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,",
                        "prefillQ8Tensor(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,")
                .replace("int blockSize, float scale) {", "int blockSize) {")
                .replace("out.set(qRow * headDim + e, acc / sum);", "out.set(qRow * headDim + e, acc * vScale / sum);")
                .replace("partials.set(at + e, acc);", "partials.set(at + e, acc * vScale);");
        s = s.replaceAll("(int\\[\\] rowAt = ctx\\.allocateIntLocalArray\\(ROW_SLOTS \\* CHUNK\\);[^\\n]*\\n)",
                "$1int[] lut = ctx.allocateIntLocalArray(DequantTable.SIZE);\n"
                        + "float scale = dequant.get(DequantTable.SIZE + kvHead);\n"
                        + "float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead);\n"
                        + "for (int t = tid; t < DequantTable.SIZE; t += local) {\nlut[t] = halfBits(dequant.get(t));\n}\n");
        s = s.replaceAll("(int dSrc = dPair % headDim;[^\\n]*\\n)", "$1int dWord = dSrc >> 2;\nint sh = (dSrc & 3) << 3;\nint sh8 = sh + 8;\n");
        s = s.replaceAll("pairBits\\(([kv]Pool), rowAt\\[([^\\]]*)\\] \\+ dSrc\\)", "$1.get((rowAt[$2] >> 2) + dWord)");
        return s.replaceAll("(tile\\[[^\\n]*\\]) = (w[0-7]);", "$1 = lut[($2 >> sh) & 0xFF] | (lut[($2 >> sh8) & 0xFF] << 16);");
    }

    /**
     * The PTX twin's rule: a run of consecutive {@code ctx.asyncCopyToLocal(tile, A, pool, B);} lines becomes the
     * run's loads ({@code int wJ = pairBits(pool, B);}) then its stores ({@code tile[A] = wJ;}); commits and
     * waits go.
     */
    private static String plainCopies(String body) {
        Pattern copy = Pattern.compile("^(\\s*)ctx\\.asyncCopyToLocal\\(tile, (.*), ([kv]Pool), (.*)\\);$");
        List<String> out = new ArrayList<>();
        List<Matcher> run = new ArrayList<>();
        for (String line : (body + "\n").split("\n", -1)) {
            Matcher m = copy.matcher(line);
            if (m.matches()) {
                run.add(m);
                continue;
            }
            for (int j = 0; j < run.size(); j++) {
                out.add(run.get(j).group(1) + "int w" + j + " = pairBits(" + run.get(j).group(3) + ", " + run.get(j).group(4) + ");");
            }
            for (int j = 0; j < run.size(); j++) {
                out.add(run.get(j).group(1) + "tile[" + run.get(j).group(2) + "] = w" + j + ";");
            }
            run.clear();
            if (!line.trim().matches("ctx\\.asyncCopy(Commit|WaitGroup)\\(\\d*\\);(\\s*//.*)?")) {
                out.add(line);
            }
        }
        return String.join("\n", out);
    }

    private static String method(String src, String signature) {
        int start = src.indexOf("public static void " + signature);
        assertTrue(start >= 0, "no method " + signature);
        return src.substring(start, src.indexOf("\n    }\n", start));
    }
}
