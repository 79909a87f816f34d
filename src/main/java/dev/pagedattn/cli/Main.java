package dev.pagedattn.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point. Exit codes: 0 ok, 1 a check failed, 2 bad input. */
@Command(name = "pa", mixinStandardHelpOptions = true, version = "paged-attention 0.1.0",
        description = "Paged decode attention for the JVM (vLLM-style KV block cache, TornadoVM GPU kernels).",
        subcommands = {DemoCommand.class, CheckCommand.class, PrefixCommand.class, CapacityCommand.class, BenchCommand.class,
                BenchCpuCommand.class, ReportCommand.class, BarsCommand.class,
                CommandLine.HelpCommand.class})
public final class Main {
    public static final int EXIT_CHECK_FAILED = 1;
    public static final int EXIT_BAD_INPUT = 2;

    public static void main(String[] args) {
        System.exit(run(commandLine(), args));
    }

    /**
     * Runs {@code args} on {@code cl}. A system property the library reads into a constant (for example
     * {@code -Dpagedattn.tornado.kernel}) is checked when its class loads, inside a command: the JVM wraps that
     * refusal in an ExceptionInInitializerError, which picocli does not hand to its exception handler, so it is
     * reported here as the bad input it is, on one line.
     */
    static int run(CommandLine cl, String[] args) {
        try {
            return cl.execute(args);
        } catch (ExceptionInInitializerError e) {
            if (!(e.getCause() instanceof IllegalArgumentException bad)) {
                throw e;
            }
            cl.getErr().println("error: " + bad.getMessage());
            cl.getErr().flush();
            return EXIT_BAD_INPUT;
        }
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
