package dev.pagedattn.cli;

import java.util.Locale;

/** Byte counts on the command line: {@code 100GB}, {@code 512MiB}, {@code 1.5TB}, {@code 4096}. */
final class ByteSize {
    private ByteSize() {
    }

    /** Parses {@code text} (decimal KB/MB/GB/TB, binary KiB/MiB/GiB/TiB, or plain bytes); the message names {@code flag}. */
    static long parse(String flag, String text) {
        String t = text.trim().toUpperCase(Locale.ROOT);
        long unit = 1;
        String[][] units = {{"KIB", "1024"}, {"MIB", "1048576"}, {"GIB", "1073741824"}, {"TIB", "1099511627776"},
                {"KB", "1000"}, {"MB", "1000000"}, {"GB", "1000000000"}, {"TB", "1000000000000"}, {"B", "1"}};
        for (String[] u : units) {
            if (t.endsWith(u[0])) {
                unit = Long.parseLong(u[1]);
                t = t.substring(0, t.length() - u[0].length()).trim();
                break;
            }
        }
        try {
            double value = Double.parseDouble(t);
            double bytes = value * unit;
            if (!(bytes >= 1) || bytes >= Long.MAX_VALUE) {
                throw new IllegalArgumentException(flag + "=" + text + " must be a positive byte count (such as 100GB or 512MiB)");
            }
            return (long) bytes;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + "=" + text + " is not a byte count (such as 100GB, 512MiB or 4096)");
        }
    }

    /** {@code 12.3 GB} (decimal), for messages. */
    static String format(long bytes) {
        if (bytes >= 1_000_000_000L) {
            return String.format(Locale.ROOT, "%.1f GB", bytes / 1e9);
        }
        if (bytes >= 1_000_000L) {
            return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
        }
        return bytes + " bytes";
    }
}
