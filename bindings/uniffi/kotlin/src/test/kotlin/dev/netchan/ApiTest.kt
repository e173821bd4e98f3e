package dev.netchan

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.awaitCancellation
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.CyclicBarrier
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource

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
                // take(3) ended the collection, which unsubscribed: the
                // server learns that the client no longer wants the path.
                eventually { !server.hasSubscribers("sensors/a/temp") }
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
    fun aBoundedServiceHandlesAtMostMaxConcurrentAndRefusesPastItsQueue() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                val running = java.util.concurrent.atomic.AtomicInteger()
                val peak = java.util.concurrent.atomic.AtomicInteger()
                val gate = CountDownLatch(1)
                expectError<NetchanException.InvalidArgument> {
                    server.serveBounded("x", ServeOptions(maxConcurrent = 0u), HoldingHandler())
                }
                server.serveBounded("work", ServeOptions(maxConcurrent = 2u, queue = 3u), object : RequestHandler {
                    override fun handle(request: Request): ByteArray {
                        peak.accumulateAndGet(running.incrementAndGet()) { a, b -> maxOf(a, b) }
                        gate.await(30, TimeUnit.SECONDS)
                        running.decrementAndGet()
                        return request.payload
                    }
                })
                client.connect(server.listen(Addrs.of(kind)))
                val ask = { i: Int -> async { runCatching { client.request("work", "$i".encodeToByteArray(), 20.seconds) } } }
                val first = (0 until 2).map(ask)
                while (running.get() < 2) kotlinx.coroutines.delay(5)
                val rest = (2 until 10).map(ask)
                // Three wait, five are refused at once (which five depends on
                // the order the calls reach the wire).
                while (server.stats().total.requestsRefused < 5uL) kotlinx.coroutines.delay(5)
                assertEquals(2, running.get())
                gate.countDown()
                assertEquals(listOf("0", "1"), first.map { it.await().getOrThrow().decodeToString() })
                val done = rest.map { it.await() }
                assertEquals(3, done.count { it.isSuccess })
                val refused = done.mapNotNull { it.exceptionOrNull() }
                assertEquals(5, refused.size)
                assertTrue(refused.all { it is NetchanException.BufferFull })
                assertEquals(2, peak.get())
                assertEquals(5uL, server.stats().total.requestsRefused)
            }
        }
    }

    @Test
    fun requestTimeoutFailsWithTimeoutAndCancelsTheHandler() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                val held = HoldingHandler()
                server.serve("hold", held)
                client.connect(server.listen(Addrs.of(kind)))
                // Long enough for the request to reach the handler first.
                val timeout = 2.seconds
                val started = TimeSource.Monotonic.markNow()
                val call = async(start = CoroutineStart.UNDISPATCHED) {
                    runCatching { client.request("hold", timeout = timeout) }
                }
                held.received.await()
                expectError<NetchanException.Timeout> { call.await().getOrThrow() }
                assertTrue("${started.elapsedNow()}", started.elapsedNow() >= timeout)
                held.cancelled.await()
            }
        }
    }

    @Test
    fun cancelTokenFailsTheRequestWithCancelledAndCancelsTheHandler() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                val held = HoldingHandler()
                server.serve("hold", held)
                client.connect(server.listen(Addrs.of(kind)))
                val token = CancelToken()
                val options = RequestOptions(java.time.Duration.ofSeconds(20), cancel = token)
                val call = async(start = CoroutineStart.UNDISPATCHED) {
                    runCatching { client.requestWith("hold", ByteArray(0), options) }
                }
                held.received.await()
                assertFalse(token.isCancelled())
                token.cancel()
                assertTrue(token.isCancelled())
                expectError<NetchanException.Cancelled> { call.await().getOrThrow() }
                held.cancelled.await()
            }
        }
    }

    @Test
    fun cancellingTheCoroutineCancelsTheRequestAtTheServer() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                val received = CompletableDeferred<Unit>()
                val handlerCancelled = CompletableDeferred<Unit>()
                // The suspending handler of Extensions.kt: its coroutine is the
                // one netchan cancels.
                server.serve("hold") {
                    received.complete(Unit)
                    try {
                        awaitCancellation()
                    } finally {
                        handlerCancelled.complete(Unit)
                    }
                }
                client.connect(server.listen(Addrs.of(kind)))
                val call = launch { client.request("hold", timeout = 20.seconds) }
                received.await()
                call.cancelAndJoin()
                assertTrue(call.isCancelled)
                handlerCancelled.await()
            }
        }
    }

    @Test
    fun waitForResponderWaitsForAServerToAppear() = watchdog {
        Endpoint("kt-wfr-server-$kind").use { server ->
            Endpoint("kt-wfr-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val options = RequestOptions(java.time.Duration.ofSeconds(20), waitForResponder = true)
                // UNDISPATCHED: the request is in netchan's hands when async returns.
                val late = async(start = CoroutineStart.UNDISPATCHED) {
                    client.requestWith("late/svc", "x".encodeToByteArray(), options).decodeToString()
                }
                // Nobody serves the path yet: a request that does not wait
                // fails at once, while the waiting one is still pending.
                assertFalse(client.hasServers("late/svc"))
                expectError<NetchanException.NoResponders> { client.request("late/svc") }
                assertFalse(late.isCompleted)
                server.serve("late/*") { req -> "found ${req.text}".encodeToByteArray() }
                assertEquals("found x", late.await())
            }
        }
    }

    @Test
    fun aDeclaredPublisherPublishesOnItsPatternAndPublishManySendsABatch() = watchdog {
        Endpoint("kt-dp-server-$kind").use { server ->
            Endpoint("kt-dp-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val sub = server.subscribe("p/**")
                assertTrue(client.waitForSubscribers("p/a", 5.seconds))
                val decl = client.declarePublisher("p/*")
                decl.publish("p/a", "one".encodeToByteArray())
                decl.tryPublish("p/b", "two".encodeToByteArray())
                withContext(Dispatchers.IO) { decl.publishBlocking("p/c", "three".encodeToByteArray()) }
                expectError<NetchanException.InvalidPath> { decl.publish("q/a", ByteArray(0)) }
                val batch = List(100) { "$it".encodeToByteArray() }
                assertEquals(100u, client.publishMany("p/many", batch))
                assertEquals(0u, client.publishMany("p/many", emptyList()))
                expectError<NetchanException.InvalidPath> { client.publishMany("p//bad", batch) }
                val got = mutableListOf<Message>()
                while (got.size < 103) got += sub.recvMany(64u)
                assertEquals(listOf("one", "two", "three"), got.take(3).map { it.text })
                assertEquals((0 until 100).map { "$it" }, got.drop(3).map { it.text })
                decl.cancel()
                expectError<NetchanException.Closed> { decl.publish("p/a", ByteArray(0)) }
                expectError<NetchanException.Closed> { decl.tryPublish("p/a", ByteArray(0)) }
                eventually { server.publishers("p/**").isEmpty() }
                sub.close()
            }
        }
    }

    @Test
    fun aPulledServiceHandsOutItsRequestsToAnswerOnce() = watchdog {
        Endpoint("kt-pull-server-$kind").use { server ->
            Endpoint("kt-pull-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val queue = server.servePull("pull/*")
                assertEquals("pull/*", queue.pattern())
                assertTrue(client.waitForServers("pull/a", 5.seconds))
                assertEquals(null, queue.tryRecv())
                val a = async { client.request("pull/a", "x".encodeToByteArray()).decodeToString() }
                val b = async { runCatching { client.request("pull/b", "y".encodeToByteArray()) } }
                val first = queue.recv()!!
                val second = queue.recv()!!
                val byPath = listOf(first, second).associateBy { it.path() }
                assertEquals("x", byPath.getValue("pull/a").payload().decodeToString())
                assertEquals("kt-pull-client-$kind", byPath.getValue("pull/a").sender())
                assertFalse(byPath.getValue("pull/a").isCancelled())
                byPath.getValue("pull/a").reply("X".encodeToByteArray())
                expectError<NetchanException.Closed> { byPath.getValue("pull/a").reply(ByteArray(0)) }
                expectError<NetchanException.InvalidArgument> { byPath.getValue("pull/b").fail("bad", "NOT_A_CODE") }
                byPath.getValue("pull/b").fail("no such thing", "UNKNOWN_PEER")
                assertEquals("X", a.await())
                assertTrue(b.await().exceptionOrNull() is NetchanException.UnknownPeer)
                queue.cancel()
                assertEquals(null, queue.recv())
                expectError<NetchanException.Closed> { queue.tryRecv() }
                queue.close()
            }
        }
    }

    @Test
    fun pingPeersStatsDiscoveryEvents() = watchdog {
        Endpoint("kt-p-server-$kind").use { server ->
            Endpoint("kt-p-client-$kind").use { client ->
                // UNDISPATCHED: the event stream exists when async returns.
                val events = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerUp } }
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
                eventually { client.publishers("news/x").isNotEmpty() }
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
                assertEquals(1uL, stats.total.msgsOut)
                val down = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerDown } }
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
            assertTrue(ep.waitForSubscribers("local/a", 5.seconds))
            ep.tryPublish("local/a", "1".encodeToByteArray())
            ep.publish("local/b", "2")
            assertEquals(listOf("1", "2"), got.await().map { it.text })
        }
    }

    @Test
    fun requestHandlersRunConcurrently() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                // Each call waits for the other: they can only finish together.
                val both = CyclicBarrier(2)
                server.serve("meet", object : RequestHandler {
                    override fun handle(request: Request): ByteArray {
                        both.await(20, TimeUnit.SECONDS)
                        return request.payload
                    }
                })
                client.connect(server.listen(Addrs.of(kind)))
                val replies = listOf("a", "b").map { async { client.requestText("meet", it, timeout = 20.seconds) } }.awaitAll()
                assertEquals(listOf("a", "b"), replies)
            }
        }
    }

    @Test
    fun aBlockedHandlerHoldsUpOnlyItsOwnSubscription() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val release = CountDownLatch(1)
                // More blocked handlers than netchan has I/O threads (2 to 4):
                // were handlers run on those, nothing below could get through.
                val slow = (1..5).map { i ->
                    val got = Channel<String>(Channel.UNLIMITED)
                    server.subscribe("slow/$i", object : MessageHandler {
                        override fun onMessage(message: Message) {
                            got.trySend("blocked")
                            release.await()
                            got.trySend(message.text)
                        }
                        override fun onClose() {}
                    })
                    got
                }
                val fast = Channel<String>(Channel.UNLIMITED)
                server.subscribe("fast", object : MessageHandler {
                    override fun onMessage(message: Message) {
                        fast.trySend(message.text)
                    }
                    override fun onClose() {}
                })
                server.serve("svc") { "answered".encodeToByteArray() }
                assertTrue(client.waitForSubscribers("fast", 5.seconds))
                for (i in 1..5) {
                    assertTrue(client.waitForSubscribers("slow/$i", 5.seconds))
                    client.publish("slow/$i", "m$i")
                }
                for (got in slow) assertEquals("blocked", got.receive())
                client.publish("fast", "through")
                assertEquals("through", fast.receive())
                assertEquals("answered", client.requestText("svc", ""))
                release.countDown()
                assertEquals((1..5).map { "m$it" }, slow.map { it.receive() })
            }
        }
    }

    @Test
    fun aFullSubscriptionQueueHoldsBackThePublisherAndLosesNothing() = watchdog(60_000) {
        val capacity = 4uL
        Endpoint.withConfig(EndpointConfig(name = "kt-full-$kind", subscribeCapacity = capacity)).use { server ->
            Endpoint().use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val release = CountDownLatch(1)
                val got = Collections.synchronizedList(ArrayList<Int>())
                val all = CompletableDeferred<Unit>()
                val n = 200
                val sub = server.subscribe("flow", object : MessageHandler {
                    override fun onMessage(message: Message) {
                        release.await()
                        got.add(message.text.toInt())
                        if (got.size == n) all.complete(Unit)
                    }
                    override fun onClose() {}
                })
                assertTrue(client.waitForSubscribers("flow", 5.seconds))
                val sending = launch { for (i in 0 until n) client.publish("flow", "$i") }
                // The handler holds the first message; the queue behind it fills up
                // (and the credit window's worth waits on the link: counted as queued).
                eventually { server.stats().subscriptions.single { it.pattern == "flow" }.queued >= capacity }
                release.countDown()
                all.await()
                sending.join()
                assertEquals((0 until n).toList(), got.toList())
                assertEquals(0uL, sub.dropped())
            }
        }
    }

    @Test
    fun handlesLastUntilCancelledNotUntilFreed() = watchdog {
        Endpoint("kt-h-server-$kind").use { server ->
            Endpoint("kt-h-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val inbox = Channel<String>(Channel.UNLIMITED)
                val handler = object : MessageHandler {
                    override fun onMessage(message: Message) {
                        inbox.trySend(message.path)
                    }
                    override fun onClose() {}
                }
                // close() frees a Kotlin handle (the garbage collector's cleaner
                // makes the same call); what it stands for goes on.
                server.subscribe("kept/msg", handler).close()
                server.serve("kept/svc") { "served".encodeToByteArray() }.close()
                server.declarePublisher("kept/feed").close()
                assertTrue(client.waitForSubscribers("kept/msg", 5.seconds))
                client.publish("kept/msg", "x")
                assertEquals("kept/msg", inbox.receive())
                assertEquals("served", client.requestText("kept/svc", ""))
                eventually { client.publishers("kept/feed") == listOf("kt-h-server-$kind") }
                // cancel() ends them.
                val sub = server.subscribe("ended/msg", handler)
                val svc = server.serve("ended/svc") { "served".encodeToByteArray() }
                val decl = server.declarePublisher("ended/feed")
                assertTrue(client.waitForSubscribers("ended/msg", 5.seconds))
                assertTrue(client.waitForServers("ended/svc", 5.seconds))
                eventually { client.publishers("ended/feed").isNotEmpty() }
                sub.cancel()
                svc.cancel()
                decl.cancel()
                eventually {
                    !client.hasSubscribers("ended/msg") && !client.hasServers("ended/svc") &&
                        client.publishers("ended/feed").isEmpty()
                }
                expectError<NetchanException.NoResponders> { client.request("ended/svc") }
            }
        }
    }
}
