package dev.pagedattn.bench;

import dev.pagedattn.cache.Checks;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import org.openjdk.jmh.infra.BenchmarkParams;

/** What every benchmark's setup shares: the checked-mode guard and the bookkeeping cache shape. */
final class Bench {
    /** Tokens per block of the bookkeeping benchmarks (the library default). */
    static final int BLOCK_SIZE = KvCacheConfig.DEFAULT_BLOCK_SIZE;

    private Bench() {
    }

    /**
     * Fails the benchmark when the cache verifies its invariants after every operation: those
     * numbers would measure the checks. Says so in the output either way.
     */
    static void requireCheckedOff() {
        if (Checks.CHECKED) {
            throw new IllegalStateException("checked mode: ON (Checks.CHECKED=true, -Dpagedattn.checked=true):"
                    + " every cache operation re-verifies all invariants, so timings are meaningless; run without it");
        }
        System.out.println("checked mode: off (Checks.CHECKED=false)");
    }

    /**
     * The JVM-backend benchmarks' common setup: checked mode off, the fork's {@code JvmDecodeAttention.VECTOR} the
     * one the benchmark claims to measure ({@code expectedVector}), and {@code threads} ({@code all} or a number)
     * passed on as {@code -Dpagedattn.jvm.threads}, read when the backend is made.
     */
    static void jvmBackendSetup(boolean expectedVector, String threads) {
        requireCheckedOff();
        if (dev.pagedattn.attention.JvmDecodeAttention.VECTOR != expectedVector) {
            throw new IllegalStateException("JvmDecodeAttention.VECTOR=" + dev.pagedattn.attention.JvmDecodeAttention.VECTOR
                    + " but this benchmark measures vector=" + expectedVector + " (check -Dpagedattn.jvm.vector in -jvmArgsAppend)");
        }
        if (threads.equals("all")) {
            System.clearProperty("pagedattn.jvm.threads");
        } else {
            System.setProperty("pagedattn.jvm.threads", Integer.toString(Integer.parseInt(threads)));
        }
    }

    /**
     * One decode of {@code w} by {@code attention} into {@code out}, checked against the fp64 reference: fails the setup
     * above a relative L2 error of 1e-4 (so a number is never reported for a wrong result); returns the error.
     */
    static double checkedDecode(dev.pagedattn.attention.JvmDecodeAttention attention, dev.pagedattn.attention.DecodeWorkload w,
                                uk.ac.manchester.tornado.api.types.arrays.FloatArray out, long seed) {
        attention.decode(w.batch(), 0, w.q(), out);
        double error = dev.pagedattn.attention.ReferenceAttention.relativeL2(out, w.reference());
        if (!(error <= 1e-4)) {
            throw new IllegalStateException("decode is wrong: relative L2 error " + error + " vs the fp64 reference (seed=" + seed + ")");
        }
        return error;
    }

    /**
     * A cache shape for bookkeeping benchmarks: one KV head of 8 dims, so that pools of many blocks
     * stay small. Append, fork, free and lookups never touch K/V, so the head shape does not
     * change what they cost.
     */
    static KvCacheConfig bookkeepingConfig(int numBlocks) {
        return KvCacheConfig.of(numBlocks, BLOCK_SIZE, 1, 8, KvDtype.FP16);
    }

    /**
     * Calls per iteration of a single-shot batch benchmark. JMH divides a shot's time by
     * {@code @OperationsPerInvocation}, not by the batch size, so the two must agree.
     */
    static int callsPerIteration(BenchmarkParams params) {
        int calls = params.getOpsPerInvocation();
        if (params.getWarmup().getBatchSize() != calls || params.getMeasurement().getBatchSize() != calls) {
            throw new IllegalArgumentException("batch sizes warmup=" + params.getWarmup().getBatchSize() + " measurement="
                    + params.getMeasurement().getBatchSize() + " must equal @OperationsPerInvocation=" + calls
                    + " or ns/op is mis-scaled: do not pass -bs/-wbs to " + params.getBenchmark());
        }
        return calls;
    }
}
