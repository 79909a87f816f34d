package dev.pagedattn.cli;

import java.util.function.LongConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/** A progress bar on stderr for work that may take more than a few seconds; silent for small work. */
final class Progress implements AutoCloseable {
    private final ProgressBar bar;

    /** {@code work} estimates the effort in elementary operations; below ~1e9 nothing is shown. */
    Progress(String task, long total, double work) {
        this.bar = work >= 1e9
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
