package dev.pagedattn.kernels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The rule that turns the warp kernel's fp16 body into its 8-bit twin ({@code attentionQ8}), so
 * that {@link KernelSourceTest} can check the twin is exactly that and nothing else. The 8-bit
 * pools are int arrays of packed codes (four per word, dims 4w .. 4w+3 in word w), so a lane owns
 * dims {@code 4*lane .. 4*lane+3} and {@code 4*(lane+L) .. 4*(lane+L)+3} instead of
 * {@code lane + j*L}: the rule rewrites the loads (two words per row, each code looked up in the
 * local table), the query and slot-merge offsets (the dim map), the row offsets (words, not
 * elements), folds the K scale into q and the V scale into the merge weights, and adds the table
 * set-up after the local arrays. Also a generator: {@code java PackedTwin.java <kernel source>}
 * prints the twin.
 */
final class PackedTwin {
    private static final Pattern LOAD = Pattern.compile(
            "( *)(float )?([kvcw])(\\d) = ([kv])Pool\\.get\\((row[AB]?)(?: \\+ (?:(\\d) \\* )?lanes)?\\)\\.getFloat32\\(\\);");
    private static final String[] DIM_OFFSET = {"", " + 1", " + 2", " + 3", " + 4 * lanes", " + 4 * lanes + 1",
            " + 4 * lanes + 2", " + 4 * lanes + 3"};
    private static final String[] STRIDE = {"", " + lanes", " + 2 * lanes", " + 3 * lanes", " + 4 * lanes", " + 5 * lanes",
            " + 6 * lanes", " + 7 * lanes"};
    /** Byte j of a word, the index into the table: {@code (word >> 8j) & 0xFF} ({@code >>}, never {@code >>>}). */
    private static final String[] CODE = {"%s & 0xFF", "(%s >> 8) & 0xFF", "(%s >> 16) & 0xFF", "(%s >> 24) & 0xFF"};

    private PackedTwin() {
    }

    /** The 8-bit twin of the warp kernel's {@code attentionF16} method text: {@link #packed}, then {@link #pipelined}. */
    static String fromF16(String f16) {
        // the softmax scale rides in dequant's K scales, so that the soft cap takes its argument (tasks take 15)
        return pipelined(packed(f16)).replace("float scale, float softCap) {", "float softCap) {")
                .replace("? scale * kScale : 0f;", "? kScale : 0f;");
    }

    /**
     * The fp16 body (of the warp or the quad kernel) with packed loads and table lookups in place of
     * the 16-bit loads, the packed dim map in the query loads and the accumulator writes; the quad
     * kernel's 8-bit twin is exactly this.
     */
    static String packed(String f16) {
        String s = f16.replace("attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,",
                "attentionQ8(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,");
        StringBuilder out = new StringBuilder();
        for (String line : s.split("\n", -1)) {
            Matcher m = LOAD.matcher(line);
            if (m.matches()) {
                String indent = m.group(1);
                String var = m.group(3);
                int j = Integer.parseInt(m.group(4));
                String word = var + "w" + (j / 4);
                if (j % 4 == 0) {
                    out.append(indent).append("int ").append(word).append(" = ").append(m.group(5)).append("Pool.get(")
                            .append(m.group(6)).append(j == 0 ? "" : " + lanes").append(");\n");
                }
                out.append(indent).append(m.group(2) == null ? "" : "float ").append(var).append(j).append(" = lut[")
                        .append(String.format(CODE[j % 4], word)).append("];\n");
                continue;
            }
            boolean accumulatorWrite = line.trim().startsWith("red[") && line.matches(".*\\* w[abcd];$");
            if (line.contains("q.get(") || accumulatorWrite) {
                for (int j = 7; j >= 1; j--) {
                    line = line.replace(STRIDE[j] + ")", DIM_OFFSET[j] + ")").replace(STRIDE[j] + "]", DIM_OFFSET[j] + "]");
                }
            }
            if (accumulatorWrite) {
                line = line.replaceAll("\\* w([abcd]);$", "* wv$1;");
            }
            line = line.replace("* headDim + lane;", "* headDim + 4 * lane;").replace("* headDim + dl;", "* headDim + 4 * dl;")
                    .replace("? scale : 0f;", "? scale * kScale : 0f;")
                    .replace("KvLayout.offset(layerBase, blockStride, headStride, headDim,",
                            "KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2,");
            out.append(line).append('\n');
            if (line.contains("float[] slotSum = ctx.allocateFloatLocalArray(")) {
                out.append("""
                                float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE); // [code]: the format's values
                                for (int t = tid; t < DequantTable.SIZE; t += local) {
                                    lut[t] = dequant.get(t);
                                }
                                ctx.localBarrier();                                          // the table is complete
                                float kScale = dequant.get(DequantTable.SIZE + kvHead);      // folded into q
                                float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead); // folded into the merge weights
                        """);
            }
            if (line.trim().startsWith("float wd = ")) {
                out.append("""
                                float wva = wa * vScale;
                                float wvb = wb * vScale;
                                float wvc = wc * vScale;
                                float wvd = wd * vScale;
                        """);
            }
        }
        out.setLength(out.length() - 1);
        return out.toString();
    }

    /**
     * Software pipelining of the packed body's word loads: the eight words of round {@code rd + 1}
     * are loaded during round {@code rd} (the first round's before the loop), so two rounds of codes
     * are in flight per lane, for 8 more registers. The block walk moves from the end of the round to
     * just after its token numbers (the next round's rows need it); past the last round the loads
     * read the partition's first token, like every token past the end.
     */
    static String pipelined(String packed) {
        String[] lines = packed.split("\n", -1);
        StringBuilder rowA = new StringBuilder();
        StringBuilder rowB = new StringBuilder();
        StringBuilder advance = new StringBuilder();
        java.util.List<String[]> words = new java.util.ArrayList<>(); // {name, pool, row expression}
        Matcher m;
        Pattern word = Pattern.compile(" *int (\\w+) = ([kv]Pool)\\.get\\((row[AB](?: \\+ lanes)?)\\);");
        for (int i = 0; i < lines.length; i++) {
            if (lines[i].trim().startsWith("int rowA = ")) {
                rowA.append(lines[i].trim()).append("\n@@").append(lines[i + 1].trim());
            } else if (lines[i].trim().startsWith("int rowB = ")) {
                rowB.append(lines[i].trim()).append("\n@@").append(lines[i + 1].trim());
            } else if ((m = word.matcher(lines[i])).matches()) {
                words.add(new String[] {m.group(1), m.group(2), m.group(3)});
            }
        }
        StringBuilder out = new StringBuilder();
        boolean inAdvance = false;
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            String t = line.trim();
            if (t.startsWith("int rowA = ") || t.startsWith("int rowB = ")) {
                i++;                                   // and its continuation line
                continue;
            }
            if (word.matcher(line).matches()) {
                continue;
            }
            if (t.equals("offA = offA + stepSlots;")) {
                inAdvance = true;
            }
            if (inAdvance) {
                advance.append(line).append('\n');
                if (t.equals("}") && advance.toString().contains("blockB = blockB + 1;")) {
                    inAdvance = false;
                    for (String[] w : words) {
                        out.append("            ").append(w[0]).append(" = n").append(w[0]).append(";\n");
                    }
                }
                continue;
            }
            if (t.equals("for (int rd = 0; rd < rounds; rd++) {")) {
                out.append("        // software pipeline: a round's code words are loaded during the round before (8 registers)\n");
                out.append("        int firstA = start + slot;\n");
                out.append("        int firstB = firstA + slots;\n");
                out.append("        ").append(rowA.toString().replace("tokenA", "firstA").replace("@@", "                ")).append('\n');
                out.append("        ").append(rowB.toString().replace("tokenB", "firstB").replace("@@", "                ")).append('\n');
                for (String[] w : words) {
                    out.append("        int ").append(w[0]).append(" = ").append(w[1]).append(".get(").append(w[2]).append(");\n");
                }
            }
            out.append(line).append('\n');
            if (t.startsWith("float biasB = ")) {
                out.append("@ADVANCE@");
                out.append("            int nextA = tokenA + perRound;            // the next round's tokens\n");
                out.append("            int nextB = tokenB + perRound;\n");
                out.append("            ").append(rowA.toString().replace("int rowA", "int nRowA").replace("tokenA", "nextA")
                        .replace("@@", "                    ")).append('\n');
                out.append("            ").append(rowB.toString().replace("int rowB", "int nRowB").replace("tokenB", "nextB")
                        .replace("@@", "                    ")).append('\n');
                for (String[] w : words) {
                    out.append("            int n").append(w[0]).append(" = ").append(w[1]).append(".get(n")
                            .append(w[2].substring(0, 1).toUpperCase()).append(w[2].substring(1)).append(");\n");
                }
            }
        }
        out.setLength(out.length() - 1);
        return out.toString().replace("@ADVANCE@", advance.toString());
    }

    /**
     * The 8-bit twin of the prefill kernel's {@code prefillF16} method text ({@code prefillQ8}): each
     * staged K/V element is read through {@link PackedCodes#value} (the V scale applied there), the
     * softmax scale times the head's K scale comes from {@code dequant} instead of the {@code scale}
     * parameter (TornadoVM tasks take at most 15 parameters), and the rest is the fp16 body.
     */
    static String prefillFromF16(String f16) {
        String s = f16.replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,",
                        "prefillQ8(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,")
                .replace("int blockSize, float scale) {", "int blockSize) {");
        s = s.replaceAll("(?s)kPool\\.get\\((KvLayout\\.offset\\(.*?\\))\\)\\.getFloat32\\(\\)", "PackedCodes.value(kPool, dequant, $1)")
                .replaceAll("(?s)vPool\\.get\\((KvLayout\\.offset\\(.*?\\))\\)\\.getFloat32\\(\\)", "PackedCodes.value(vPool, dequant, $1) * vScale");
        String anchor = "float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);";
        int at = s.indexOf('\n', s.indexOf(anchor)) + 1;
        return s.substring(0, at)
                + "        float scale = dequant.get(DequantTable.SIZE + kvHead);                // softmax scale x this head's K scale\n"
                + "        float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead);\n"
                + s.substring(at);
    }

    /**
     * Prints a twin: {@code java PackedTwin.java <kernel source> [warp|packed|prefill]}: the warp
     * kernel's (default), the packed rule alone (the quad kernel's) or the prefill kernel's.
     */
    public static void main(String[] args) throws IOException {
        String src = Files.readString(Path.of(args[0]));
        String rule = args.length > 1 ? args[1] : "warp";
        int start = src.indexOf(rule.equals("prefill") ? "public static void prefillF16(" : "public static void attentionF16(");
        int end = src.indexOf("\n    }\n", start);
        String body = src.substring(start, end);
        String twin = switch (rule) {
            case "prefill" -> prefillFromF16(body);
            case "packed" -> packed(body);
            default -> fromF16(body);
        };
        System.out.println("    " + twin + "\n    }");
    }
}
