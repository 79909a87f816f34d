package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Run by {@link VectorFlagTest} in a JVM started with {@code -Dpagedattn.jvm.vector=<expected>}
 * (the flag is a static final, so each value needs its own JVM). Exits 0 when the backend took
 * the expected path and every check passed, 1 otherwise.
 */
final class VectorFlagCheck {
    private VectorFlagCheck() {
    }

    public static void main(String[] args) {
        boolean expected = Boolean.parseBoolean(args[0]);
        try {
            assertEquals(expected, JvmDecodeAttention.VECTOR, "JvmDecodeAttention.VECTOR");
            long seed = TestSeeds.fresh("VectorFlagCheck VECTOR=" + expected);
            DotProductTest.checkDot(seed);
            Shape[] shapes = {
                Shape.of(new int[] {1, 16, 17, 45}, 8, 2, 80, 16, KvDtype.FP16),
                Shape.of(new int[] {9, 3}, 4, 4, 64, 1, KvDtype.FP32),
                Shape.of(new int[] {33}, 8, 1, 8, 8, KvDtype.FP16),
                Shape.of(new int[] {20, 7}, 4, 2, 256, 16, KvDtype.FP32).withLayers(2, 1).withScale(0.3f),
            };
            for (Shape shape : shapes) {
                DecodeProblem p = DecodeProblem.random(shape, seed);
                try (JvmDecodeAttention a = new JvmDecodeAttention(p.cache(), p.spec())) {
                    assertEquals(expected ? "jvm" : "jvm-scalar", a.name(), "backend name");
                }
                Accuracy.Errors e = Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe());
                System.out.println("  " + shape + " " + e);
            }
            // soft-capping: the scalar path caps score by score, the vector path in whole vectors (raw scores beyond the cap)
            Shape capped = Shape.of(new int[] {70, 300, 5}, 8, 2, 64, 16, KvDtype.FP16).withScale(SoftCapProperties.scaleFor(30f, 64));
            DecodeProblem p = DecodeProblem.random(capped, seed).windowed(40).withSoftCap(30f);
            System.out.println("  " + p.describe() + " " + Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe()));
            // prefill: its softmax has a vector path (whole vectors, decode's exp) and a scalar one
            for (PrefillCase c : PrefillCase.issueShapes().toList()) {
                PrefillWorkload w = c.workload(seed);
                FloatArray out = w.poisonedOutput();
                try (JvmPrefillAttention a = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
                    assertEquals(expected ? "jvm" : "jvm-scalar", a.name(), "prefill backend name");
                    a.prefill(w.batch(), 0, w.q(), out);
                }
                Accuracy.Errors e = Accuracy.assertClose(out, w.reference(), c + " seed=" + seed);
                System.out.println("  prefill " + c.name() + " " + e);
            }
            PrefillCase c = PrefillCase.issueShapes().filter(s -> s.name().equals("window across blocks")).findFirst().orElseThrow();
            PrefillWorkload w = c.workload(seed).withSoftCap(20f);
            SoftCapProperties.louder(w.q(), 20f);
            FloatArray out = w.poisonedOutput();
            try (JvmPrefillAttention a = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
                a.prefill(w.batch(), 0, w.q(), out);
            }
            System.out.println("  prefill " + c.name() + " softCap=20 " + Accuracy.assertClose(out, w.reference(), c + " softCap=20 seed=" + seed));
        } catch (AssertionError e) {
            e.printStackTrace(System.out);
            System.exit(1);
        }
        System.exit(0);
    }
}
