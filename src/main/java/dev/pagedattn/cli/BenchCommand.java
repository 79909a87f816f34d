package dev.pagedattn.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder replaced by the GPU sweep. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "GPU decode sweep over the standard workload (needs TornadoVM).")
final class BenchCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        throw new IllegalArgumentException("bench needs the TornadoVM backend, which this build does not have yet");
    }
}
