package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/** The staging scatter, run by the emulator: live rows land at their slots, nothing else changes, any grid size works. */
class ScatterKernelsTest {
    private static final int HEADS = 2;
    private static final int DIM = 8;
    private static final int BLOCK = 4;
    private static final int BLOCKS = 6;
    private static final int POOL = BLOCKS * HEADS * BLOCK * DIM;
    private static final int STAGED = 5;   // staging rows; the first LIVE are live
    private static final int LIVE = 3;

    @ParameterizedTest(name = "global size {0}")
    @ValueSource(ints = {32, 64, 256})
    void liveRowsLandAtTheirSlotsAndNothingElseChanges(int globalSize) {
        long seed = TestSeeds.fresh("ScatterKernelsTest global size " + globalSize);
        SplittableRandom rnd = new SplittableRandom(seed);
        int width = HEADS * DIM;
        FloatArray stageK = new FloatArray(STAGED * width);
        FloatArray stageV = new FloatArray(STAGED * width);
        HalfFloatArray stageKh = new HalfFloatArray(STAGED * width);
        HalfFloatArray stageVh = new HalfFloatArray(STAGED * width);
        for (int i = 0; i < STAGED * width; i++) {
            float k = (float) rnd.nextDouble(-2, 2);
            float v = (float) rnd.nextDouble(-2, 2);
            stageK.set(i, k);
            stageV.set(i, v);
            stageKh.set(i, new HalfFloat(k));
            stageVh.set(i, new HalfFloat(v));
        }
        IntArray slotOffsets = new IntArray(STAGED);
        int[] blocks = {4, 0, 4, 2, 5};
        int[] slots = {3, 0, 1, 2, 2};
        for (int r = 0; r < STAGED; r++) {
            slotOffsets.set(r, KvLayout.offset(0, HEADS * BLOCK * DIM, BLOCK * DIM, DIM, blocks[r], 0, slots[r], 0));
        }
        IntArray params = new IntArray(DecodeParams.SIZE);
        params.set(DecodeParams.NUM_NEW_SLOTS, LIVE);
        FloatArray k = new FloatArray(POOL);
        FloatArray v = new FloatArray(POOL);
        k.init(-7f);
        v.init(-9f);
        HalfFloatArray kh = new HalfFloatArray(POOL);
        HalfFloatArray vh = new HalfFloatArray(POOL);
        kh.init(new HalfFloat(-7f));
        vh.init(new HalfFloat(-9f));
        KernelEmulator.launch(globalSize, 32, KernelEmulator.Schedule.REVERSE,
                ctx -> ScatterKernels.scatterF32(ctx, k, v, stageK, stageV, slotOffsets, params, HEADS, DIM, BLOCK));
        KernelEmulator.launch(globalSize, 32, KernelEmulator.Schedule.FORWARD,
                ctx -> ScatterKernels.scatterF16(ctx, kh, vh, stageKh, stageVh, slotOffsets, params, HEADS, DIM, BLOCK));

        float[] wantK = new float[POOL];
        float[] wantV = new float[POOL];
        java.util.Arrays.fill(wantK, -7f);
        java.util.Arrays.fill(wantV, -9f);
        for (int r = 0; r < LIVE; r++) {
            for (int h = 0; h < HEADS; h++) {
                for (int d = 0; d < DIM; d++) {
                    int at = KvLayout.offset(0, HEADS * BLOCK * DIM, BLOCK * DIM, DIM, blocks[r], h, slots[r], d);
                    wantK[at] = stageK.get(r * width + h * DIM + d);
                    wantV[at] = stageV.get(r * width + h * DIM + d);
                }
            }
        }
        for (int i = 0; i < POOL; i++) {
            assertEquals(wantK[i], k.get(i), "fp32 K element " + i);
            assertEquals(wantV[i], v.get(i), "fp32 V element " + i);
            assertEquals(new HalfFloat(wantK[i]).getFloat32(), kh.get(i).getFloat32(), "fp16 K element " + i);
            assertEquals(new HalfFloat(wantV[i]).getFloat32(), vh.get(i).getFloat32(), "fp16 V element " + i);
        }
    }

    /** 8-bit codes (four per word, {@code perWordShift} 2) and bf16 elements (two per word, 1). */
    @ParameterizedTest(name = "global size {0}, elements per word 1 << {1}")
    @CsvSource({"8, 2", "64, 2", "8, 1", "64, 1"})
    void packedWordsLandWholeAtTheirSlots(int globalSize, int perWordShift) {
        long seed = TestSeeds.fresh("ScatterKernelsTest words global size " + globalSize + " shift " + perWordShift);
        SplittableRandom rnd = new SplittableRandom(seed);
        int perWord = 1 << perWordShift;
        int headWords = DIM / perWord;
        int width = HEADS * headWords;               // words per staged row
        IntArray stageK = new IntArray(STAGED * width);
        IntArray stageV = new IntArray(STAGED * width);
        for (int i = 0; i < STAGED * width; i++) {
            stageK.set(i, rnd.nextInt());
            stageV.set(i, rnd.nextInt());
        }
        IntArray slotOffsets = new IntArray(STAGED); // element (= byte) offsets, as for the other pools
        int[] blocks = {1, 5, 1, 0, 3};
        int[] slots = {2, 3, 0, 1, 1};
        for (int r = 0; r < STAGED; r++) {
            slotOffsets.set(r, KvLayout.offset(0, HEADS * BLOCK * DIM, BLOCK * DIM, DIM, blocks[r], 0, slots[r], 0));
        }
        IntArray params = new IntArray(DecodeParams.SIZE);
        params.set(DecodeParams.NUM_NEW_SLOTS, LIVE);
        IntArray[] kv = scatterWords(globalSize, KernelEmulator.Schedule.REVERSE, stageK, stageV, slotOffsets, params, perWordShift);
        int[] wantK = new int[POOL / perWord];
        int[] wantV = new int[POOL / perWord];
        java.util.Arrays.fill(wantK, -7);
        java.util.Arrays.fill(wantV, -9);
        for (int r = 0; r < LIVE; r++) {
            for (int h = 0; h < HEADS; h++) {
                for (int w = 0; w < headWords; w++) {
                    int at = KvLayout.offset(0, HEADS * BLOCK * DIM, BLOCK * DIM, DIM, blocks[r], h, slots[r], perWord * w) / perWord;
                    wantK[at] = stageK.get(r * width + h * headWords + w);
                    wantV[at] = stageV.get(r * width + h * headWords + w);
                }
            }
        }
        for (int i = 0; i < POOL / perWord; i++) {
            assertEquals(wantK[i], kv[0].get(i), "K word " + i);
            assertEquals(wantV[i], kv[1].get(i), "V word " + i);
        }
        // a packed plan's layout: the slots' offsets inside params, the V words after the K words of one stage array
        int slotBase = DecodeParams.SIZE + 2;
        IntArray packed = new IntArray(slotBase + STAGED);
        packed.set(DecodeParams.NUM_NEW_SLOTS, LIVE);
        packed.set(DecodeParams.SLOTS, slotBase);
        packed.set(DecodeParams.STAGE_V, STAGED * width);
        IntArray stage = new IntArray(2 * STAGED * width);
        for (int i = 0; i < STAGED * width; i++) {
            stage.set(i, stageK.get(i));
            stage.set(STAGED * width + i, stageV.get(i));
        }
        for (int r = 0; r < STAGED; r++) {
            packed.set(slotBase + r, slotOffsets.get(r));
        }
        IntArray[] packedKv = scatterWords(globalSize, KernelEmulator.Schedule.FORWARD, stage, stage, packed, packed, perWordShift);
        for (int i = 0; i < POOL / perWord; i++) {
            assertEquals(wantK[i], packedKv[0].get(i), "packed: K word " + i);
            assertEquals(wantV[i], packedKv[1].get(i), "packed: V word " + i);
        }
    }

    /** Packed K and V pools filled with -7 and -9, after the word scatter of the staged rows. */
    private static IntArray[] scatterWords(int globalSize, KernelEmulator.Schedule schedule, IntArray stageK, IntArray stageV,
                                           IntArray slotOffsets, IntArray params, int perWordShift) {
        IntArray k = new IntArray(POOL >> perWordShift);
        IntArray v = new IntArray(POOL >> perWordShift);
        k.init(-7);
        v.init(-9);
        KernelEmulator.launch(globalSize, 8, schedule,
                ctx -> ScatterKernels.scatterWords(ctx, k, v, stageK, stageV, slotOffsets, params, HEADS, DIM, BLOCK, perWordShift));
        return new IntArray[] {k, v};
    }
}
