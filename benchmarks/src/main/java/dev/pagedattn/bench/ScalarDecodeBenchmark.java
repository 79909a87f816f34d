package dev.pagedattn.bench;

import org.openjdk.jmh.annotations.Fork;

/**
 * {@link DecodeBenchmark} with the Vector API switched off ({@code JvmDecodeAttention.VECTOR} is a
 * static final, so it takes its own fork): same shapes and parameters, so the two results show
 * whether the Vector API pays on this machine.
 */
@Fork(value = 1, jvmArgsAppend = "-Dpagedattn.jvm.vector=false")
public class ScalarDecodeBenchmark extends DecodeBenchmark {
    @Override
    protected boolean expectedVector() {
        return false;
    }
}
