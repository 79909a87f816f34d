package dev.pagedattn.attention;

import dev.pagedattn.cache.KvCache;
import java.lang.reflect.InvocationTargetException;

/**
 * Chooses a decode backend by name: {@code jvm} (default, always available) or {@code tornado}
 * (needs the TornadoVM runtime, i.e. a program started by TornadoVM's {@code tornado} launcher).
 */
public final class Backends {
    private static final String TORNADO_CLASS = "dev.pagedattn.tornado.TornadoDecodeAttention";

    private Backends() {
    }

    /** True when TornadoVM's runtime (not only its API) is on the module or class path. */
    public static boolean tornadoRuntimePresent() {
        try {
            Class.forName("uk.ac.manchester.tornado.runtime.TornadoCoreRuntime", false, Backends.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    /**
     * Creates {@code backend} for {@code cache}.
     *
     * @param device  TornadoVM device as {@code B:D} (backend index : device index), or null for the default
     * @param variant TornadoVM kernel variant: auto, fused, splitk or parallel (ignored by jvm)
     */
    public static DecodeAttention create(String backend, KvCache cache, AttentionSpec spec, String device, String variant) {
        return create(backend, cache, spec, device, variant, null);
    }

    /**
     * As {@link #create(String, KvCache, AttentionSpec, String, String)}, with the tornado backend's attention
     * kernel ({@code auto}, {@code stream}, {@code chunk}, {@code warp}, {@code quads}, {@code pairs}; null for the
     * {@code pagedattn.tornado.kernel} system property's, auto by default).
     */
    public static DecodeAttention create(String backend, KvCache cache, AttentionSpec spec, String device, String variant,
                                         String kernel) {
        return create(backend, cache, spec, device, variant, kernel, null);
    }

    /**
     * As {@link #create(String, KvCache, AttentionSpec, String, String, String)}, with the precision of the tornado
     * stream kernel's V sums ({@code fp32} or {@code fp16}, see {@code dev.pagedattn.tornado.VSums}; null for the
     * {@code pagedattn.tornado.vSums} system property's, fp32 by default). The jvm backend always sums in fp32.
     */
    public static DecodeAttention create(String backend, KvCache cache, AttentionSpec spec, String device, String variant,
                                         String kernel, String vSums) {
        switch (backend) {
            case "jvm":
                return new JvmDecodeAttention(cache, spec);
            case "tornado":
                if (!tornadoRuntimePresent()) {
                    throw new IllegalArgumentException("backend=tornado needs the TornadoVM runtime: start the program with"
                            + " TornadoVM's tornado launcher (see README, 'Running on a GPU with TornadoVM')");
                }
                try {
                    return (DecodeAttention) Class.forName(TORNADO_CLASS)
                            .getConstructor(KvCache.class, AttentionSpec.class, String.class, String.class, String.class, String.class)
                            .newInstance(cache, spec, device, variant, kernel, vSums);
                } catch (InvocationTargetException e) {
                    throw thrownBy(e);
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException("cannot create the TornadoVM backend", e);
                }
            default:
                throw new IllegalArgumentException("backend=" + backend + " is not one of jvm, tornado");
        }
    }

    /**
     * What a backend's constructor, called by reflection, threw: unchecked exceptions and errors as they are (a
     * system property refused while a class loads arrives as an ExceptionInInitializerError, which the CLI reports
     * as bad input), checked ones wrapped.
     */
    static RuntimeException thrownBy(InvocationTargetException e) {
        if (e.getCause() instanceof Error error) {
            throw error;
        }
        return e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
    }
}
