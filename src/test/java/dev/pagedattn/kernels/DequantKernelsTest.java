package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.quant.DequantTable;
import dev.pagedattn.quant.QuantFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

class DequantKernelsTest {

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void theKernelDequantizesLikeTheCodecInBothSchedules(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("dequantKernel " + format));
        int rowLength = 8 << random.nextInt(5);               // a head's row: 8..128
        int numRows = 1 + random.nextInt(12);
        int n = numRows * rowLength;
        float[] values = new float[n];
        float[] scales = new float[numRows];
        for (int row = 0; row < numRows; row++) {
            scales[row] = (float) Math.exp(random.nextDouble(-8, 8));
            for (int d = 0; d < rowLength; d++) {
                values[row * rowLength + d] = (float) (random.nextGaussian() * scales[row] * format.maxFinite() / 4);
            }
        }
        ByteArray codes = new ByteArray(n);
        for (int row = 0; row < numRows; row++) {
            format.quantize(values, row * rowLength, rowLength, scales[row], codes, row * rowLength);
        }
        float[] expected = new float[n];
        for (int row = 0; row < numRows; row++) {
            format.dequantize(codes, row * rowLength, rowLength, scales[row], expected, row * rowLength);
        }
        FloatArray table = DequantTable.nativeOf(format);
        FloatArray scaleArray = FloatArray.fromArray(scales);
        int localSize = 32 << random.nextInt(3);              // 32..128: fewer work-items than table entries
        int global = (n + localSize - 1) / localSize * localSize;
        IntArray words = new IntArray(n / 4);                 // the same codes, four per word, via its bytes
        for (int row = 0; row < numRows; row++) {
            format.quantize(values, row * rowLength, rowLength, scales[row], words.getSegment(), (long) row * rowLength);
        }
        int packedGlobal = (n / 4 + localSize - 1) / localSize * localSize;
        for (KernelEmulator.Schedule schedule : KernelEmulator.Schedule.values()) {
            FloatArray out = new FloatArray(n);
            out.init(Float.NaN);
            KernelEmulator.launch(global, localSize, schedule,
                    ctx -> DequantKernels.dequantize(ctx, codes, table, scaleArray, out, n, rowLength));
            FloatArray outPacked = new FloatArray(n);
            outPacked.init(Float.NaN);
            KernelEmulator.launch(packedGlobal, localSize, schedule,
                    ctx -> DequantKernels.dequantizePacked(ctx, words, table, scaleArray, outPacked, n, rowLength));
            for (int i = 0; i < n; i++) {
                assertEquals(expected[i], out.get(i), format + " " + schedule + " element " + i);
                assertEquals(expected[i], outPacked.get(i), format + " " + schedule + " packed element " + i);
            }
        }
    }

    @Test
    void kernelsAvoidTheTwoTornadoMiscompilations() throws IOException {
        // TornadoVM 5.2 (OpenCL, seen on PoCL) indexes a local array passed to a helper as a heap
        // array, and emits Java's >>> on int as a signed >>; see DequantTable.
        for (String file : new String[] {"kernels/DequantKernels.java", "quant/DequantTable.java"}) {
            String src = Files.readString(Path.of("src/main/java/dev/pagedattn/" + file));
            String code = src.replaceAll("(?s)/\\*.*?\\*/", "").replaceAll("//[^\n]*", "");
            assertFalse(code.contains(">>>"), file + " uses >>>");
            assertFalse(code.matches("(?s).*[(,]\\s*lut\\b(?!\\s*\\[).*"), file + " passes the local table to a method");
        }
    }
}
