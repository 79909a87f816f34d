package dev.pagedattn.cli;

import java.util.function.LongConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/** A progress bar on stderr for work that may take more than a few seconds; silent for small work. */
final class Progress implements AutoCloseable {
    private static final long SHOW_ABOVE = 2_000_000; // units (tokens x heads) below which nothing is shown
    private final ProgressBar bar;

    Progress(String task, long total, long weight) {
        this.bar = total * weight >= SHOW_ABOVE
                ? new ProgressBarBuilder().setTaskName(task).setInitialMax(total).setStyle(ProgressBarStyle.ASCII)
                        .setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(System.err)).build()
                : null;
    }

    LongConsumer consumer() {
        return done -> {
            if (bar != null) {
                bar.stepTo(done);
            }
        };
    }

    @Override
    public void close() {
        if (bar != null) {
            bar.close();
        }
    }
}
