package dev.pagedattn.bench;

import org.openjdk.jmh.annotations.Fork;

/**
 * {@link PrefillBenchmark} with the Vector API switched off ({@code JvmDecodeAttention.VECTOR} is a static
 * final, so it takes its own fork): the same points, so the two results show what the vector paths buy.
 */
@Fork(value = 1, jvmArgsAppend = "-Dpagedattn.jvm.vector=false")
public class ScalarPrefillBenchmark extends PrefillBenchmark {
    @Override
    protected boolean expectedVector() {
        return false;
    }
}
