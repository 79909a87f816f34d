package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import org.junit.jupiter.api.Test;

/** What the TornadoVM backend checks before it touches the TornadoVM runtime (none in this JVM). */
class TornadoDecodeAttentionTest {

    @Test
    void aGroupOfAHybridCacheOnASharedPoolIsRefusedByName() {
        HybridKvCache hybrid = HybridKvCache.sharedPool(new int[] {64, dev.pagedattn.cache.DecodeBatch.NO_WINDOW}, 8, 16, 2, 64,
                KvDtype.FP16);
        KvCache group = hybrid.group(1);
        AttentionSpec spec = AttentionSpec.of(group.config(), 4);
        for (org.junit.jupiter.api.function.Executable make : java.util.List.<org.junit.jupiter.api.function.Executable>of(
                () -> new TornadoDecodeAttention(group, spec, null, "auto", "auto"),
                () -> new TornadoPrefillAttention(group, spec, null))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, make);
            assertTrue(e.getMessage().contains("HybridKvCache.sharedPool") && e.getMessage().contains("backend=jvm"), e.getMessage());
        }
    }

    @Test
    void groupsAboveEightHeadsAreRefusedWithTheirShapeWhenAKernelOtherThanStreamIsNamed() {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 64, KvDtype.FP16));
        int seq = cache.createSequence();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new TornadoDecodeAttention(cache, AttentionSpec.of(cache.config(), 32), null, "auto", "warp"));
        assertTrue(e.getMessage().startsWith("groupSize=16 (q-heads 32 / kv-heads 2) is above 8 for kernel=warp")
                && e.getMessage().contains("--backend jvm"), e.getMessage());
        assertEquals(0, cache.length(seq), "nothing in the cache changed");
        new TornadoDecodeAttention(cache, AttentionSpec.of(cache.config(), 16), null, "auto", "warp").close(); // groups of 8 are fine
        // the stream kernels tile any group by work-group, and AUTO takes them where they run: a group of 16 is
        // accepted here (the device's backend and head dim are checked when the plan resolves the kernel:
        // DecodeGridTest.groupsAboveEightHeadsGetTheStreamKernelsOrANamedRefusal)
        new TornadoDecodeAttention(cache, AttentionSpec.of(cache.config(), 32), null, "auto", DecodeGrid.Kernel.STREAM, false).close();
        new TornadoDecodeAttention(cache, AttentionSpec.of(cache.config(), 32), null, "auto", DecodeGrid.Kernel.AUTO, false).close();
    }

    @Test
    void tornadoPropertiesLeftUnsetGetTheLibrarysDefaultsWhenTheClassLoads() throws Exception {
        // surefire sets neither: loading the class (before any TornadoVM call of it) set both
        Class.forName(TornadoPrefillAttention.class.getName());
        assertEquals("256", System.getProperty("tornado.max.events"));
        assertEquals("65536", System.getProperty("tornado.tvm.maxbytecodesize"));
        // the launcher's configurations pass the same values, for processes that start TornadoVM before the library
        for (String config : new String[] {"cuda", "ptx", "opencl"}) {
            String args = java.nio.file.Files.readString(java.nio.file.Path.of("tornado-config", config + ".args"));
            assertTrue(args.contains("\n-Dtornado.max.events=256\n") && args.contains("\n-Dtornado.tvm.maxbytecodesize=65536\n"), config);
        }
    }

    @Test
    void theMergeIsChosenPerBackendAndABadSwitchIsNamed() {
        // unset (this JVM), the switch is auto: the row merge where it measured faster, the CUDA backend
        assertTrue(TornadoDecodeAttention.mergeRows(Backend.CUDA));
        assertFalse(TornadoDecodeAttention.mergeRows(Backend.PTX));
        assertFalse(TornadoDecodeAttention.mergeRows(Backend.OPENCL));
        assertNull(TornadoDecodeAttention.parseAuto("pagedattn.tornado.mergeRows", "Auto"));
        assertEquals(Boolean.TRUE, TornadoDecodeAttention.parseAuto("pagedattn.tornado.mergeRows", "true"));
        assertEquals(Boolean.FALSE, TornadoDecodeAttention.parseAuto("pagedattn.tornado.mergeRows", "FALSE"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TornadoDecodeAttention.parseAuto("pagedattn.tornado.mergeRows", "yes"));
        assertEquals("pagedattn.tornado.mergeRows=yes is not one of auto, true, false", e.getMessage());
    }

    @Test
    void cudaGraphsStayOffWhereTornadoVmsCudaBackendPinsHostMemory() {
        // the crash: a graph captured with pinned copies, replayed after another plan's free unpinned them
        assertFalse(TornadoDecodeAttention.graphsOn(true, null, Backend.CUDA, true));
        assertTrue(TornadoDecodeAttention.graphsOn(true, null, Backend.CUDA, false));
        assertTrue(TornadoDecodeAttention.graphsOn(true, Boolean.TRUE, Backend.CUDA, true)); // asked for regardless
        assertTrue(TornadoDecodeAttention.graphsOn(true, null, Backend.PTX, true));            // PTX keeps its pins
        assertFalse(TornadoDecodeAttention.graphsOn(true, Boolean.TRUE, Backend.OPENCL, false)); // OpenCL has no graphs
        assertFalse(TornadoDecodeAttention.graphsOn(false, Boolean.FALSE, Backend.PTX, false));
        assertFalse(TornadoDecodeAttention.graphsOn(false, Boolean.FALSE, Backend.CUDA, false));
        // unset in this JVM, TornadoVM pins (its default), and the setting is auto
        assertTrue(TornadoDecodeAttention.cudaHostPinning());
        assertNull(TornadoDecodeAttention.CUDA_GRAPH_SETTING);
        assertTrue(TornadoDecodeAttention.CUDA_GRAPH);
    }

    @Test
    void theCudaConfigTurnsHostPinningOffSoThatStepsReplayAsGraphs() throws java.io.IOException {
        java.util.List<String> flags = java.nio.file.Files.readAllLines(java.nio.file.Path.of("tornado-config", "cuda.args")).stream()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        assertTrue(flags.contains("-Dtornado.cuda.host.pinning=false"), flags.toString());
    }

    @Test
    void aSwitchTakesTrueOrFalseAndNamesAnythingElse() {
        assertTrue(TornadoDecodeAttention.parseSwitch("pagedattn.tornado.packedInputs", "TRUE"));
        assertFalse(TornadoDecodeAttention.parseSwitch("pagedattn.tornado.packedInputs", "false"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TornadoDecodeAttention.parseSwitch("pagedattn.tornado.packedInputs", "yes"));
        assertEquals("pagedattn.tornado.packedInputs=yes is not one of true, false", e.getMessage());
        assertTrue(TornadoDecodeAttention.PACKED_INPUTS, "on unless switched off");
    }

    @Test
    void aClosedBackendRefusesDecodeAndItsRowsWithAMessage() {
        KvCache cache = new KvCache(KvCacheConfig.of(64, 16, 2, 64, KvDtype.FP16));
        TornadoDecodeAttention attention = new TornadoDecodeAttention(cache, AttentionSpec.of(cache.config(), 8), null, "auto");
        attention.close();
        for (org.junit.jupiter.api.function.Executable call : new org.junit.jupiter.api.function.Executable[] {
                () -> attention.decode(null, 0, null, null), () -> attention.stepRows(null, 0)}) {
            IllegalStateException e = assertThrows(IllegalStateException.class, call);
            assertEquals("decode after close(): the device plans are released; create a new backend", e.getMessage());
        }
    }

    @Test
    void aReservationIsCheckedAndNamesItsBadValue() {
        KvCache cache = new KvCache(KvCacheConfig.of(64, 16, 2, 64, KvDtype.FP16));
        try (TornadoDecodeAttention attention = new TornadoDecodeAttention(cache, AttentionSpec.of(cache.config(), 8), null, "auto")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(0, 100));
            assertEquals("maxSeqs=0 must be >= 1", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(4, 0));
            assertEquals("maxTokensPerSeq=0 must be >= 1", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(4, 64 * 16 + 1));
            assertEquals("maxTokensPerSeq=1025 exceeds the pool's 1024 token slots", e.getMessage());
            attention.reserve(4, 1024); // the whole pool for one sequence is fine
            assertEquals(0, attention.planBuilds(), "a reservation builds nothing until a decode");
        }
        // the JVM backend holds nothing per batch, but checks the same values
        try (var jvm = dev.pagedattn.attention.Backends.create("jvm", cache, AttentionSpec.of(cache.config(), 8), null, "auto")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> jvm.reserve(-1, 10));
            assertEquals("maxSeqs=-1 must be >= 1", e.getMessage());
            jvm.reserve(8, 4096);
        }
    }

    @Test
    void badVariantAndDeviceAreNamed() {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 64, KvDtype.FP16));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new TornadoDecodeAttention(cache, spec, null, "warp"));
        assertTrue(e.getMessage().contains("variant=warp"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TornadoDecodeAttention(cache, spec, "gpu0", "auto"));
        assertTrue(e.getMessage().contains("device=gpu0"), e.getMessage());
    }

    /** The @Parallel variant has no sinks, soft cap or ALiBi: each refused by name, before any plan. */
    @Test
    void theParallelVariantRefusesSinksASoftCapAndAlibi() {
        KvCache fp16 = new KvCache(KvCacheConfig.of(4, 16, 2, 128, KvDtype.FP16));
        AttentionSpec spec = AttentionSpec.of(fp16.config(), 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new TornadoDecodeAttention(fp16, spec.withSoftCap(50f), null, "parallel"));
        assertEquals("variant=parallel does not soft-cap scores (softCap=50.0): use auto, fused or splitk", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TornadoDecodeAttention(fp16,
                spec.withSinks(dev.pagedattn.attention.AttentionSinks.of(new float[][] {new float[8]})), null, "parallel"));
        assertTrue(e.getMessage().startsWith("variant=parallel does not add attention sinks"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TornadoDecodeAttention(fp16,
                spec.withAlibi(dev.pagedattn.attention.AlibiSlopes.standard(8)), null, "parallel"));
        assertEquals("variant=parallel does not add ALiBi biases (alibi(8 heads)): use auto, fused or splitk", e.getMessage());
        new TornadoDecodeAttention(fp16, spec.withSoftCap(50f), null, "auto").close();
    }

    /**
     * A bf16 cache builds a backend (its kernel is resolved on the device: the CUDA backend's stream bodies); the
     * @Parallel variant, fp16 V sums and a bf16 latent cache are refused by name before any plan.
     */
    @Test
    void bf16CachesAreTakenAndWhatCannotReadThemIsRefusedByName() {
        KvCache bf16 = new KvCache(KvCacheConfig.of(4, 16, 2, 128, KvDtype.BF16));
        AttentionSpec spec = AttentionSpec.of(bf16.config(), 8);
        new TornadoDecodeAttention(bf16, spec, null, "auto").close();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new TornadoDecodeAttention(bf16, spec, null, "parallel"));
        assertEquals("variant=parallel does not read bf16 K/V pools (dtype=BF16): use auto, fused or splitk", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new TornadoDecodeAttention(bf16, spec, null, "auto", DecodeGrid.Kernel.AUTO, false, VSums.FP16));
        assertTrue(e.getMessage().startsWith("v-sums=fp16 needs fp16 K/V (dtype=BF16)"), e.getMessage());
        KvCache latent = new KvCache(KvCacheConfig.latent(4, 16, 512, 64, KvDtype.BF16, 1));
        e = assertThrows(IllegalArgumentException.class,
                () -> new TornadoDecodeAttention(latent, AttentionSpec.of(latent.config(), 16), null, "auto"));
        assertTrue(e.getMessage().startsWith("dtype=BF16: the latent (MLA) kernel reads fp16, fp32 and 8-bit caches"), e.getMessage());
    }

    @Test
    void fp16VSumsAreRefusedWhereNoKernelHasThem() {
        KvCache fp8 = new KvCache(KvCacheConfig.of(4, 16, 2, 128, KvDtype.FP8_E4M3));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new TornadoDecodeAttention(fp8,
                AttentionSpec.of(fp8.config(), 8), null, "auto", DecodeGrid.Kernel.AUTO, false, VSums.FP16));
        assertTrue(e.getMessage().startsWith("v-sums=fp16 needs fp16 K/V (dtype=FP8_E4M3)"), e.getMessage());
        KvCache fp16 = new KvCache(KvCacheConfig.of(4, 16, 2, 128, KvDtype.FP16));
        AttentionSpec spec = AttentionSpec.of(fp16.config(), 8);
        e = assertThrows(IllegalArgumentException.class,
                () -> new TornadoDecodeAttention(fp16, spec, null, "parallel", DecodeGrid.Kernel.AUTO, false, VSums.FP16));
        assertTrue(e.getMessage().contains("variant=parallel"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TornadoDecodeAttention(fp16, spec, null, "auto", "stream", "half"));
        assertTrue(e.getMessage().equals("v-sums=half is not one of fp32, fp16"), e.getMessage());
        new TornadoDecodeAttention(fp16, spec, null, "auto", "stream", "FP16").close();
        new TornadoDecodeAttention(fp8, AttentionSpec.of(fp8.config(), 8), null, "auto", null, "fp32").close();
    }

    @Test
    void eachExecutionRunsTheGraphOfExactlyTheTasksItNeeds() {
        for (boolean merges : new boolean[] {true, false}) {
            for (boolean bulk : new boolean[] {true, false}) {
                eachExecutionRunsTheGraphOfExactlyTheTasksItNeeds(merges, bulk);
            }
        }
        int[] one = TornadoDecodeAttention.taskSets(false, true, false);
        assertEquals(1, one.length, "taskSets=false: one graph of every task");
        assertEquals(0, TornadoDecodeAttention.graphOf(one, false, true, true, false, false));
    }

    /**
     * {@code bulkGraph}: the plan has a graph whose scatter reads a stage of its own, the last, run by the executions
     * that stage through it and by no other: a step that stages through the steps' stage must never run it, nor a bulk
     * execution another graph (2026-12-04: that stage was the first graph's, and a split step that wrote ran the first
     * graph: its new token never reached the device, relative L2 0.03-0.09 on an H200 and PoCL).
     */
    private static void eachExecutionRunsTheGraphOfExactlyTheTasksItNeeds(boolean merges, boolean bulkGraph) {
        int[] sets = TornadoDecodeAttention.taskSets(true, merges, bulkGraph);
        int all = sets[0];
        assertEquals(TornadoDecodeAttention.SCATTER | TornadoDecodeAttention.ATTENTION | (merges ? TornadoDecodeAttention.MERGE : 0), all);
        assertEquals(merges ? 4 : 2, sets.length - (bulkGraph ? 1 : 0), "one graph per task set, and the bulk graph");
        if (bulkGraph) {
            assertEquals(all, sets[sets.length - 1], "the bulk graph holds every task");
        }
        for (boolean bulk : bulkGraph ? new boolean[] {true, false} : new boolean[] {false}) {
            for (boolean uploaded : new boolean[] {true, false}) {
                for (boolean last : new boolean[] {true, false}) {
                    for (boolean staged : new boolean[] {true, false}) {
                        for (boolean merging : new boolean[] {true, false}) {
                            int g = TornadoDecodeAttention.graphOf(sets, bulk, uploaded, last, staged, merging);
                            String c = "merges=" + merges + " bulkGraph=" + bulkGraph + " bulk=" + bulk + " uploaded=" + uploaded
                                    + " last=" + last + " staged=" + staged + " merging=" + merging;
                            if (bulk) {
                                assertEquals(sets.length - 1, g, c + ": a bulk execution runs the bulk graph");
                                continue;
                            }
                            if (bulkGraph) {
                                assertTrue(g < sets.length - 1, c + ": not the bulk graph, whose scatter reads the bulk stage");
                            }
                            if (!uploaded || !last) {
                                assertEquals(0, g, c + ": the first graph uploads the pools and runs a write's earlier executions");
                                continue;
                            }
                            int needed = ((staged ? TornadoDecodeAttention.SCATTER : 0) | TornadoDecodeAttention.ATTENTION
                                    | (merging ? TornadoDecodeAttention.MERGE : 0)) & all;
                            assertEquals(needed, sets[g], c + ": every task it needs and no idle one");
                        }
                    }
                }
            }
        }
    }
}
