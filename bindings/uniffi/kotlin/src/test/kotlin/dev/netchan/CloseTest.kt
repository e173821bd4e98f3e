package dev.netchan

import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.yield
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import kotlin.time.Duration.Companion.seconds

/** close() releases everything: links, listeners, subscriptions, and at last every thread. */
class CloseTest {
    @Test
    fun closeEndsFlowsFreesAddressesAndThreads() = watchdog {
        val server = Endpoint("kt-close-server")
        val addr = server.listen("tcp://127.0.0.1:0")
        val client = Endpoint("kt-close-client")
        client.connect(addr)
        val inbox = Channel<String>(Channel.UNLIMITED)
        val flow = async { server.messages("x/**").collect { inbox.send(it.text) }; "completed" }
        assertTrue(client.waitForSubscribers("x/1", 5.seconds))
        client.publish("x/1", "one")
        assertEquals("one", inbox.receive())
        val pending = async { runCatching { client.request("never", timeout = 10.seconds) } }
        yield()
        server.close() // AutoCloseable: closes, then frees
        // The flow completed.
        assertEquals("completed", flow.await())
        client.shutdown()
        assertTrue(pending.await().exceptionOrNull() is NetchanException)
        client.close()
        // The address is free again.
        Endpoint().use { again -> assertEquals(addr, again.listen(addr)) }
        // No netchan thread is left once the runtime is stopped.
        assertTrue(shutdownRuntime(java.time.Duration.ofSeconds(5)))
        assertEquals(emptyList<String>(), netchanThreads())
        // A new endpoint starts a fresh runtime.
        Endpoint().use { fresh -> assertTrue(fresh.listen("tcp://127.0.0.1:0").startsWith("tcp://")) }
    }
}
