package dev.netchan

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.withContext
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import java.util.concurrent.CountDownLatch
import kotlin.concurrent.thread
import kotlin.time.Duration.Companion.seconds
import kotlin.time.toJavaDuration

/**
 * The blocking calls, for plain threads (Java callers, Swift code outside a
 * task): they wait through the core's one way in from plain threads.
 */
@RunWith(Parameterized::class)
class BlockingTest(private val kind: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun kinds() = Addrs.both
    }

    /** Runs [block] on a new plain thread (no coroutine, no netchan runtime) and waits for it. */
    private suspend fun <T> onPlainThread(block: () -> T): T {
        val done = CompletableDeferred<T>()
        thread(name = "plain") {
            try {
                done.complete(block())
            } catch (e: Throwable) {
                done.completeExceptionally(e)
            }
        }
        return done.await()
    }

    @Test
    fun blockingCallsFromAPlainThreadPublishRequestAndReceive() = watchdog {
        Endpoint("kt-block-server-$kind").use { server ->
            Endpoint.withConfig(EndpointConfig(name = "kt-block-client-$kind", busyPollUs = 50uL)).use { client ->
                server.serve("echo") { it.payload }
                client.connect(server.listen(Addrs.of(kind)))
                val sub = server.subscribe("b/*")
                assertTrue(client.waitForSubscribers("b/x", 5.seconds))
                val reply = onPlainThread {
                    for (i in 0 until 5) client.publishBlocking("b/$i", "$i".encodeToByteArray())
                    client.requestBlocking("echo", "ping".encodeToByteArray(), 5.seconds.toJavaDuration())
                }
                assertEquals("ping", reply.decodeToString())
                val got = onPlainThread { List(5) { sub.recvBlocking(5.seconds.toJavaDuration())!! } }
                assertEquals((0 until 5).map { "b/$it" }, got.map { it.path })
                assertEquals((0 until 5).map { "$it" }, got.map { it.text })
                // Nothing queued: null after the timeout.
                assertNull(onPlainThread { sub.recvBlocking(java.time.Duration.ofMillis(20)) })
                // Errors keep their codes.
                onPlainThread {
                    expectError<NetchanException.NoResponders> {
                        client.requestBlocking("nobody", ByteArray(0), 5.seconds.toJavaDuration())
                    }
                }
                // Closed and drained: CLOSED, after what was queued.
                server.publish("b/last", "last")
                sub.cancel()
                assertEquals("last", onPlainThread { sub.recvBlocking(null) }?.text)
                onPlainThread { expectError<NetchanException.Closed> { sub.recvBlocking(null) } }
                sub.close()
            }
        }
    }

    /** A blocked receiver wakes for a message published later, from another endpoint. */
    @Test
    fun recvBlockingWaitsForTheNextMessage() = watchdog {
        Endpoint("kt-wait-server-$kind").use { server ->
            Endpoint("kt-wait-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                server.subscribe("w").use { sub ->
                    assertTrue(client.waitForSubscribers("w", 5.seconds))
                    val started = CountDownLatch(1)
                    val got = async(Dispatchers.IO) {
                        onPlainThread {
                            started.countDown()
                            sub.recvBlocking(null)
                        }
                    }
                    withContext(Dispatchers.IO) { started.await() }
                    client.publish("w", "late")
                    assertEquals("late", got.await()?.text)
                    sub.cancel()
                }
            }
        }
    }

    /**
     * Handlers run on netchan threads, where a blocking call could wait on
     * the thread that must make progress: the core refuses it with
     * WOULD_DEADLOCK instead of hanging, and the non-blocking calls work.
     */
    @Test
    fun blockingCallsFromAHandlerFailWithWouldDeadlock() = watchdog {
        Endpoint().use { ep ->
            val seen = CompletableDeferred<List<String>>()
            val pulled = ep.subscribe("pulled")
            val sub = ep.subscribe("in", object : MessageHandler {
                override fun onMessage(message: Message) {
                    val codes = listOf(
                        runCatching { ep.publishBlocking("out", ByteArray(0)) },
                        runCatching { ep.requestBlocking("svc", ByteArray(0), 1.seconds.toJavaDuration()) },
                        runCatching { pulled.recvBlocking(null) },
                    ).map { (it.exceptionOrNull() as? NetchanException)?.code ?: "no error" }
                    ep.tryPublish("pulled", "fine".encodeToByteArray())
                    seen.complete(codes)
                }
                override fun onClose() {}
            })
            ep.publish("in", "go")
            assertEquals(List(3) { "WOULD_DEADLOCK" }, seen.await())
            assertEquals("fine", pulled.recv()?.text)
            sub.cancel()
            pulled.cancel()
            pulled.close()
        }
    }

    /**
     * A blocking request pending at a server whose handler never answers
     * ends with CLOSED when another thread shuts the endpoint down, long
     * before its timeout (20 s, below the watchdog's 60 s), and the server
     * sees its caller go.
     */
    @Test
    fun shutdownFailsAPendingBlockingRequestWithClosed() = watchdog(60_000) {
        Endpoint("kt-bclose-server-$kind").use { server ->
            val held = HoldingHandler()
            server.serve("hold", held)
            Endpoint("kt-bclose-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val pending = async {
                    onPlainThread {
                        runCatching { client.requestBlocking("hold", ByteArray(0), 20.seconds.toJavaDuration()) }
                    }
                }
                held.received.await()
                client.shutdown()
                expectError<NetchanException.Closed> { pending.await().getOrThrow() }
                held.cancelled.await()
            }
        }
    }

    @Test
    fun busyPollIsTheCoresSettingWithItsLimit() = watchdog {
        // The core's limit is one second.
        Endpoint.withConfig(EndpointConfig(busyPollUs = 1_000_000uL)).close()
        expectError<NetchanException.InvalidArgument> {
            Endpoint.withConfig(EndpointConfig(busyPollUs = 1_000_001uL))
        }
    }
}
