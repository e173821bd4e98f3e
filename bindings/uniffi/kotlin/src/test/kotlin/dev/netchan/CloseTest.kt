package dev.netchan

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.toList
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import java.lang.ref.WeakReference
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** close() releases everything: pending requests, links, listeners, subscriptions, and at last every thread. */
class CloseTest {
    /**
     * A request pending at a server whose handler never answers: only
     * closing the client can end it before its timeout (20 s, below the
     * watchdog's 60 s, so a close that does nothing shows up as TIMEOUT).
     */
    private suspend fun failsPendingRequestWithClosed(closeClient: suspend (Endpoint) -> Unit) {
        Endpoint("kt-close-server").use { server ->
            val held = HoldingHandler()
            server.serve("hold", held)
            val client = Endpoint("kt-close-client")
            try {
                client.connect(server.listen("tcp://127.0.0.1:0"))
                val pending = kotlinx.coroutines.coroutineScope {
                    val call = async(start = CoroutineStart.UNDISPATCHED) {
                        runCatching { client.request("hold", timeout = 20.seconds) }
                    }
                    held.received.await()
                    closeClient(client)
                    call.await()
                }
                expectError<NetchanException.Closed> { pending.getOrThrow() }
                // The server saw its caller go: the handler was cancelled.
                held.cancelled.await()
            } finally {
                client.close()
            }
        }
    }

    @Test
    fun closeFailsPendingRequestsWithClosed() = watchdog(60_000) {
        // AutoCloseable's close() frees the foreign handle while the request
        // still holds its own reference; the endpoint closes all the same.
        failsPendingRequestWithClosed { it.close() }
    }

    @Test
    fun shutdownFailsPendingRequestsWithClosed() = watchdog(60_000) {
        failsPendingRequestWithClosed { client ->
            client.shutdown()
            assertTrue(client.isClosed())
        }
    }

    @Test
    fun closeCompletesFlowsAndCallsOnClose() = watchdog {
        val ep = Endpoint("kt-close-flows")
        val onClose = CompletableDeferred<Unit>()
        val sub = ep.subscribe("y/**", object : MessageHandler {
            override fun onMessage(message: Message) {}
            override fun onClose() {
                onClose.complete(Unit)
            }
        })
        val events = async(start = CoroutineStart.UNDISPATCHED) { ep.eventFlow().toList() }
        val inbox = Channel<String>(Channel.UNLIMITED)
        val flow = async { ep.messages("x/**").collect { inbox.send(it.text) }; "completed" }
        assertTrue(ep.waitForSubscribers("x/1", 5.seconds))
        ep.publish("x/1", "one")
        assertEquals("one", inbox.receive())
        assertFalse(sub.isClosed())
        ep.close() // AutoCloseable: closes, then frees
        assertEquals("completed", flow.await())
        events.await() // the event flow ended too
        onClose.await()
        assertTrue(sub.isClosed())
        sub.close()
    }

    /** Registers handlers whose handles it frees at once; returns weak references to them. */
    private fun registerHandlers(ep: Endpoint): List<WeakReference<Any>> {
        val onMessage = object : MessageHandler {
            override fun onMessage(message: Message) {}
            override fun onClose() {}
        }
        val onRequest = object : RequestHandler {
            override fun handle(request: Request): ByteArray = ByteArray(0)
        }
        ep.subscribe("h/**", onMessage).close()
        ep.serve("h/svc", onRequest).close()
        return listOf(WeakReference(onMessage), WeakReference(onRequest))
    }

    @Test
    fun closeLetsGoOfEveryHandler() = watchdog {
        val ep = Endpoint("kt-close-handlers")
        val refs = registerHandlers(ep)
        // Only netchan holds them now, and it does while the endpoint is open.
        System.gc()
        assertTrue(refs.all { it.get() != null })
        ep.close()
        eventually {
            System.gc()
            refs.all { it.get() == null }
        }
    }

    @Test
    fun closeFreesTheAddressAndShutdownRuntimeEndsEveryThread() = watchdog {
        val server = Endpoint("kt-close-listener")
        val addr = server.listen("tcp://127.0.0.1:0")
        Endpoint("kt-close-dialer").use { client -> client.connect(addr) }
        server.close()
        // The address is free again. The core's close() returns before its
        // accept loop has dropped the listener (a task of its own), so a
        // listen at once may still meet ADDRESS_IN_USE for a moment.
        Endpoint().use { again ->
            var bound: String? = null
            while (bound == null) {
                bound = try {
                    again.listen(addr)
                } catch (_: NetchanException.AddressInUse) {
                    delay(5.milliseconds)
                    null
                }
            }
            assertEquals(addr, bound)
        }
        // No netchan thread is left once the runtime is stopped.
        assertTrue(netchanThreads().isNotEmpty())
        assertTrue(shutdownRuntime(java.time.Duration.ofSeconds(5)))
        assertEquals(emptyList<String>(), netchanThreads())
        // A new endpoint starts a fresh runtime.
        Endpoint().use { fresh -> assertTrue(fresh.listen("tcp://127.0.0.1:0").startsWith("tcp://")) }
    }
}
