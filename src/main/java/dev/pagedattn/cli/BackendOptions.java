package dev.pagedattn.cli;

import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.VSums;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import picocli.CommandLine.Option;

/**
 * The backend flags shared by {@code demo} and {@code check}, and the checks of the TornadoVM
 * device and variant names that {@code bench} uses too. Commands call {@link #validate()} before
 * they print anything, whichever backend runs (the jvm backend ignores a device, but a misspelt
 * one is still a mistake worth naming).
 */
final class BackendOptions {
    static final List<String> BACKENDS = List.of("jvm", "tornado");
    static final List<String> VARIANTS = List.of("auto", "fused", "splitk", "parallel");
    /** TornadoVM's backend index : device index; a few digits each, so that parsing cannot overflow. */
    private static final Pattern DEVICE = Pattern.compile("\\d{1,4}:\\d{1,4}");

    @Option(names = "--backend", description = "jvm or tornado (default: ${DEFAULT-VALUE}).", defaultValue = "jvm")
    String backend;

    @Option(names = "--device", description = "TornadoVM device as B:D (backend index:device index), tornado backend only.")
    String device;

    void validate() {
        if (!BACKENDS.contains(backend)) {
            throw new IllegalArgumentException("--backend=" + backend + " is not one of " + String.join(", ", BACKENDS));
        }
        requireDevice(device);
    }

    /** {@code device} is null (TornadoVM's default) or B:D. */
    static void requireDevice(String device) {
        if (device != null && !DEVICE.matcher(device).matches()) {
            throw new IllegalArgumentException("--device=" + device + " is not B:D (TornadoVM backend index:device index, e.g. 0:0)");
        }
    }

    /** {@code kernel} names one of the tornado backend's attention kernels ({@code DecodeGrid.Kernel}). */
    static void requireKernel(String kernel) {
        try {
            DecodeGrid.Kernel.parse(kernel);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--kernel=" + kernel + " is not one of " + Arrays.stream(DecodeGrid.Kernel.values())
                    .map(k -> k.name().toLowerCase(Locale.ROOT)).collect(Collectors.joining(", ")));
        }
    }

    /** The precision of the stream kernel's V sums that {@code vSums} names ({@code VSums}), or the flag's one-line error. */
    static VSums requireVSums(String vSums) {
        try {
            return VSums.parse(vSums);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--" + e.getMessage());
        }
    }

    static void requireVariant(String flag, String variant) {
        if (!VARIANTS.contains(variant)) {
            throw new IllegalArgumentException(flag + "=" + variant + " is not one of " + String.join(", ", VARIANTS));
        }
    }
}
