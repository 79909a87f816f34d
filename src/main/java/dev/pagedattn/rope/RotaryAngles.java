package dev.pagedattn.rope;

/**
 * The cos and sin of {@code position * inverseFrequency(i)} for every pair of a {@link RopeFrequencies}, exact in fp64
 * at any position from 0 to 2^31 - 1, without a table of every position (vLLM's {@code cos_sin_cache}: 64 MB at 131072
 * positions and rotary dim 128) and without an fp32 angle (whose error grows with the position: 0.004 rad at 100,000).
 *
 * <pre>
 *  position = top << 22 | mid << 11 | lo                  top < 512, mid and lo < 2048
 *  tables [3][entries][rotaryDim / 2]  fp64               cos and sin of (entry << (11 x level)) x inverseFrequency(i)
 *  angle(position) = angle(lo) + angle(mid << 11) + angle(top << 22), combined by the angle-addition rule in fp64
 * </pre>
 *
 * About 4.7 MB at rotary dim 128, built once; immutable.
 */
final class RotaryAngles {
    private static final int LEVEL_BITS = 11;
    private static final int LEVEL_SIZE = 1 << LEVEL_BITS;
    private static final int TOP_SIZE = 1 << (31 - 2 * LEVEL_BITS);

    private final int half;                 // rotaryDim / 2
    private final double attentionFactor;
    private final double[][] cosTables;     // [3][entry * half + i]
    private final double[][] sinTables;     // the same for sin

    RotaryAngles(RopeFrequencies frequencies) {
        this.half = frequencies.rotaryDim() / 2;
        this.attentionFactor = frequencies.attentionFactor();
        this.cosTables = new double[3][];
        this.sinTables = new double[3][];
        for (int level = 0; level < 3; level++) {
            int entries = level < 2 ? LEVEL_SIZE : TOP_SIZE;
            cosTables[level] = new double[entries * half];
            sinTables[level] = new double[entries * half];
            for (int e = 0; e < entries; e++) {
                double steps = (double) ((long) e << (level * LEVEL_BITS));
                for (int i = 0; i < half; i++) {
                    double angle = steps * frequencies.inverseFrequency(i);
                    cosTables[level][e * half + i] = Math.cos(angle);
                    sinTables[level][e * half + i] = Math.sin(angle);
                }
            }
        }
    }

    /** {@code cos[i]}, {@code sin[i]} ([rotaryDim / 2]): the attention factor times pair i's cos and sin, rounded to fp32. */
    void of(int position, float[] cos, float[] sin) {
        int lo = position & (LEVEL_SIZE - 1);
        int mid = (position >>> LEVEL_BITS) & (LEVEL_SIZE - 1);
        int top = position >>> (2 * LEVEL_BITS);
        for (int i = 0; i < half; i++) {
            double c0 = cosTables[0][lo * half + i];
            double s0 = sinTables[0][lo * half + i];
            double c1 = cosTables[1][mid * half + i];
            double s1 = sinTables[1][mid * half + i];
            double c = c0 * c1 - s0 * s1;
            double s = s0 * c1 + c0 * s1;
            if (top != 0) {
                double c2 = cosTables[2][top * half + i];
                double s2 = sinTables[2][top * half + i];
                double t = c * c2 - s * s2;
                s = s * c2 + c * s2;
                c = t;
            }
            cos[i] = (float) (attentionFactor * c);
            sin[i] = (float) (attentionFactor * s);
        }
    }
}
