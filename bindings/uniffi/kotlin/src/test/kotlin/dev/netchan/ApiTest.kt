package dev.netchan

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.CompletableDeferred
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import java.util.Collections
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Every API over TCP and over Unix sockets. */
@RunWith(Parameterized::class)
class ApiTest(private val kind: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun kinds() = Addrs.both
    }

    @Test
    fun pubsubAsFlow() = watchdog {
        Endpoint("kt-server-$kind").use { server ->
            Endpoint("kt-client-$kind").use { client ->
                val addr = server.listen(Addrs.of(kind))
                assertTrue(addr.startsWith(kind))
                val peer = client.connect(addr)
                assertEquals("kt-server-$kind", peer.name)
                assertFalse(peer.inbound)
                val got = async { client.messages("sensors/*/temp").take(3).toList() }
                assertTrue(server.waitForSubscribers("sensors/a/temp", 5.seconds))
                for (i in 1..3) server.publish("sensors/r$i/temp", "$i")
                server.publish("sensors/r1/humidity", "ignored")
                val msgs = got.await()
                assertEquals(listOf("sensors/r1/temp", "sensors/r2/temp", "sensors/r3/temp"), msgs.map { it.path })
                assertEquals(listOf("1", "2", "3"), msgs.map { it.text })
                assertEquals(setOf("kt-server-$kind"), msgs.map { it.sender }.toSet())
                // Cancelling the collection unsubscribed.
                val deadline = System.nanoTime() + 5_000_000_000
                while (server.hasSubscribers("sensors/a/temp") && System.nanoTime() < deadline) delay(10)
                assertFalse(server.hasSubscribers("sensors/a/temp"))
            }
        }
    }

    @Test
    fun callbacksComeFromNetchanThreadsInOrder() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val n = 2000
                val seen = Collections.synchronizedList(ArrayList<Int>())
                val threads = Collections.synchronizedSet(HashSet<Long>())
                val done = CountDownLatch(1)
                val closed = CountDownLatch(1)
                val sub = client.subscribe("seq/**", object : MessageHandler {
                    override fun onMessage(message: Message) {
                        threads.add(Thread.currentThread().id)
                        seen.add(message.text.toInt())
                        if (seen.size == n) done.countDown()
                    }
                    override fun onClose() = closed.countDown()
                })
                assertEquals("seq/**", sub.pattern())
                assertTrue(server.waitForSubscribers("seq/x", 5.seconds))
                for (i in 0 until n) server.publish("seq/x", "$i")
                withContext(Dispatchers.IO) { assertTrue(done.await(20, TimeUnit.SECONDS)) }
                assertEquals((0 until n).toList(), seen.toList())
                assertFalse(threads.contains(Thread.currentThread().id))
                assertEquals(0uL, sub.dropped())
                sub.cancel()
                withContext(Dispatchers.IO) { assertTrue(closed.await(5, TimeUnit.SECONDS)) }
                assertTrue(sub.isClosed())
                sub.close()
            }
        }
    }

    @Test
    fun requestReplyAndHandlerErrors() = watchdog {
        Endpoint("kt-rr-server-$kind").use { server ->
            Endpoint("kt-rr-client-$kind").use { client ->
                server.serve("greet/*") { req -> "hello, ${req.path.substringAfter('/')} from ${req.sender}: ${req.text}".encodeToByteArray() }
                server.serve("fail/typed") { throw netchanError("INVALID_ARGUMENT", "no such thing") }
                server.serve("fail/untyped") { throw IllegalStateException("boom") }
                client.connect(server.listen(Addrs.of(kind)))
                assertEquals(
                    "hello, ana from kt-rr-client-$kind: hi",
                    client.requestText("greet/ana", "hi"),
                )
                val typed = expectError<NetchanException.InvalidArgument> { client.request("fail/typed") }
                assertEquals("INVALID_ARGUMENT", typed.code)
                assertTrue(typed.detail, typed.detail.contains("no such thing"))
                val untyped = expectError<NetchanException.HandlerException> { client.request("fail/untyped") }
                assertEquals("HANDLER_ERROR", untyped.code)
                assertTrue(untyped.detail, untyped.detail.contains("boom"))
                assertTrue(client.hasServers("greet/bob"))
                assertEquals(listOf("kt-rr-server-$kind"), client.servers("greet/*"))
            }
        }
    }

    @Test
    fun manyConcurrentRequests() = watchdog(60_000) {
        Endpoint().use { server ->
            Endpoint().use { client ->
                server.serve("echo", object : RequestHandler {
                    override fun handle(request: Request): ByteArray = request.payload
                })
                client.connect(server.listen(Addrs.of(kind)))
                val replies = withContext(Dispatchers.Default) {
                    (0 until 500).map { i ->
                        async { client.request("echo", "req-$i".encodeToByteArray(), 10.seconds).decodeToString() }
                    }.awaitAll()
                }
                assertEquals((0 until 500).map { "req-$it" }, replies)
                assertEquals(500uL, client.stats().total.requestsOut)
            }
        }
    }

    @Test
    fun timeoutsAndCancellation() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                val started = CompletableDeferred<Unit>()
                server.serve("slow") { started.complete(Unit); delay(3_000); "late".encodeToByteArray() }
                client.connect(server.listen(Addrs.of(kind)))
                expectError<NetchanException.Timeout> { client.request("slow", timeout = 100.milliseconds) }
                // An explicit cancel token.
                val token = CancelToken()
                val pending = async {
                    runCatching {
                        client.requestWith("slow", ByteArray(0), RequestOptions(java.time.Duration.ofSeconds(10)).let {
                            RequestOptions(it.timeout, false, token)
                        })
                    }
                }
                delay(50)
                token.cancel()
                assertTrue(token.isCancelled())
                val e = pending.await().exceptionOrNull()
                assertTrue("$e", e is NetchanException.Cancelled)
                // Cancelling the coroutine drops the request.
                try {
                    withTimeout(100) { client.request("slow", timeout = 10.seconds) }
                    throw AssertionError("not cancelled")
                } catch (_: TimeoutCancellationException) {
                }
                // wait_for_responder: the request waits for a server to appear.
                val late = async {
                    client.requestWith("late/svc", "x".encodeToByteArray(), RequestOptions(java.time.Duration.ofSeconds(10), true, null))
                }
                delay(50)
                server.serve("late/*") { "found".encodeToByteArray() }
                assertEquals("found", late.await().decodeToString())
            }
        }
    }

    @Test
    fun pingPeersStatsDiscoveryEvents() = watchdog {
        Endpoint("kt-p-server-$kind").use { server ->
            Endpoint("kt-p-client-$kind").use { client ->
                val events = async { server.eventFlow().first { it is Event.PeerUp } }
                yield()
                val addr = server.listen(Addrs.of(kind))
                client.connect(addr)
                val up = events.await() as Event.PeerUp
                assertEquals("kt-p-client-$kind", up.peer)
                val rtt = client.ping("kt-p-server-$kind")
                assertTrue(rtt > java.time.Duration.ZERO)
                assertEquals(listOf("kt-p-server-$kind"), client.peers().map { it.name })
                assertTrue(server.peers().single().inbound)
                val pubDecl = server.declarePublisher("news/**")
                assertEquals("news/**", pubDecl.pattern())
                val deadline = System.nanoTime() + 5_000_000_000
                while (client.publishers("news/x").isEmpty() && System.nanoTime() < deadline) delay(10)
                assertEquals(listOf("kt-p-server-$kind"), client.publishers("news/x"))
                pubDecl.cancel()
                client.messages("news/**").let { flow ->
                    val got = async { flow.first() }
                    assertTrue(server.waitForSubscribers("news/today", 5.seconds))
                    assertEquals(listOf("kt-p-client-$kind"), server.subscribers("news/**"))
                    server.publish("news/today", "sun")
                    assertEquals("sun", got.await().text)
                }
                val stats = server.stats()
                assertEquals("kt-p-server-$kind", stats.name)
                assertEquals(1, stats.peers.size)
                assertTrue(stats.total.msgsOut >= 1uL)
                val down = async { server.eventFlow().first { it is Event.PeerDown } }
                yield() // the collector subscribes before the peer goes
                client.shutdown()
                val d = down.await() as Event.PeerDown
                assertEquals("CLOSED", d.code)
            }
        }
    }

    @Test
    fun tryPublishAndLocalDelivery() = watchdog {
        Endpoint().use { ep ->
            val got = async { ep.messages("local/*").take(2).toList() }
            while (!ep.hasSubscribers("local/a")) delay(5)
            ep.tryPublish("local/a", "1".encodeToByteArray())
            ep.publish("local/b", "2")
            assertEquals(listOf("1", "2"), got.await().map { it.text })
        }
    }
}
