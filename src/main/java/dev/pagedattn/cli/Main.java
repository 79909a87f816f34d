package dev.pagedattn.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point. Exit codes: 0 ok, 1 a check failed, 2 bad input. */
@Command(name = "pa", mixinStandardHelpOptions = true, version = "paged-attention 0.1.0",
        description = "Paged decode attention for the JVM (vLLM-style KV block cache, TornadoVM GPU kernels).",
        subcommands = {DemoCommand.class, CheckCommand.class, PrefixCommand.class, BenchCommand.class, BenchCpuCommand.class, ReportCommand.class,
                CommandLine.HelpCommand.class})
public final class Main {
    public static final int EXIT_CHECK_FAILED = 1;
    public static final int EXIT_BAD_INPUT = 2;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (tests drive it directly). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setParameterExceptionHandler((ex, args) -> {
            ex.getCommandLine().getErr().println("error: " + ex.getMessage());
            return EXIT_BAD_INPUT;
        });
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            if (ex instanceof IllegalArgumentException) {
                commandLine.getErr().println("error: " + ex.getMessage());
                return EXIT_BAD_INPUT;
            }
            throw ex;
        });
        return cl;
    }
}
