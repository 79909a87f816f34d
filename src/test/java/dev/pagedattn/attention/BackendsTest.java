package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import org.junit.jupiter.api.Test;

/** How a reflectively created backend's failure reaches the caller. */
class BackendsTest {

    @Test
    void aConstructorsFailureArrivesAsItWasThrown() {
        IllegalArgumentException bad = new IllegalArgumentException("groupSize=16");
        assertSame(bad, Backends.thrownBy(new InvocationTargetException(bad)));
        // a property refused while a class loads: the error itself, so that the CLI can name the property
        ExceptionInInitializerError init = new ExceptionInInitializerError(new IllegalArgumentException("pagedattn.tornado.kernel=warps"));
        assertSame(init, assertThrows(ExceptionInInitializerError.class, () -> Backends.thrownBy(new InvocationTargetException(init))));
        IOException checked = new IOException("disk");
        RuntimeException wrapped = Backends.thrownBy(new InvocationTargetException(checked));
        assertInstanceOf(IllegalStateException.class, wrapped);
        assertSame(checked, wrapped.getCause());
    }
}
