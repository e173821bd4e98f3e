package dev.netchan

import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import java.util.concurrent.CountDownLatch
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import kotlin.time.Duration.Companion.seconds

/** suspend()/resume()/networkChanged() keep subscriptions and services. */
@RunWith(Parameterized::class)
class LifecycleTest(private val kind: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun kinds() = Addrs.both
    }

    @Test
    fun suspendResumeRestoresSubscriptionAndService() = watchdog {
        Endpoint("kt-app-server-$kind").use { server ->
            Endpoint("kt-app-$kind").use { app ->
                val addr = server.listen(Addrs.of(kind))
                server.serve("srv/echo") { req -> req.payload }
                app.connect(addr)
                app.serve("app/status") { "ok".encodeToByteArray() }
                val feed = app.declarePublisher("app/feed/**")
                eventually { server.publishers("app/feed/x") == listOf("kt-app-$kind") }
                val inbox = Channel<Message>(Channel.UNLIMITED)
                val collector = launch { app.messages("news/**").collect { inbox.send(it) } }
                assertTrue(server.waitForSubscribers("news/a", 5.seconds))
                server.publish("news/a", "before")
                assertEquals("before", inbox.receive().text)
                assertEquals("ok", server.requestText("app/status", ""))

                // UNDISPATCHED: both event streams exist when async returns.
                val down = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerDown } }
                val suspended = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.Suspended } }
                app.suspend()
                assertTrue(app.isSuspended())
                suspended.await()
                // An orderly close: the server is told, the link is not "lost".
                val d = down.await() as Event.PeerDown
                assertEquals("kt-app-$kind" to "CLOSED", d.peer to d.code)
                assertTrue(app.peers().isEmpty())
                assertFalse(server.hasSubscribers("news/a"))
                assertEquals(emptyList<String>(), server.publishers("app/feed/x"))
                expectError<NetchanException.NoResponders> { server.request("app/status") }
                expectError<NetchanException.NoResponders> { app.request("srv/echo") }
                // A request that waits for a responder gets one after resume().
                val waiting = async(start = CoroutineStart.UNDISPATCHED) {
                    app.requestWith("srv/echo", "waited".encodeToByteArray(), RequestOptions(java.time.Duration.ofSeconds(20), waitForResponder = true))
                }
                // Local delivery goes on while suspended.
                app.publish("news/local", "local")
                assertEquals("local", inbox.receive().text)
                assertFalse(waiting.isCompleted)

                val resumed = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.Resumed } }
                app.resume()
                assertFalse(app.isSuspended())
                // Dialled at once: connected by the time resume() returns.
                assertEquals(listOf("kt-app-server-$kind"), app.peers().map { it.name })
                resumed.await()
                assertTrue(server.waitForSubscribers("news/a", 5.seconds))
                server.publish("news/a", "after")
                assertEquals("after", inbox.receive().text)
                assertTrue(server.waitForServers("app/status", 5.seconds))
                assertEquals("ok", server.requestText("app/status", ""))
                eventually { server.publishers("app/feed/x") == listOf("kt-app-$kind") }
                assertEquals("waited", waiting.await().decodeToString())
                feed.cancel()
                collector.cancel()
            }
        }
    }

    @Test
    fun networkChangedRedialsAndRestores() = watchdog {
        Endpoint("kt-net-server-$kind").use { server ->
            Endpoint("kt-net-app-$kind").use { app ->
                app.connect(server.listen(Addrs.of(kind)))
                app.serve("net/svc") { "app".encodeToByteArray() }
                val inbox = Channel<Message>(Channel.UNLIMITED)
                val collector = launch { app.messages("t/*").collect { inbox.send(it) } }
                assertTrue(server.waitForSubscribers("t/1", 5.seconds))
                // The app drops its link (PeerDown), a new one reaches the
                // server (PeerUp), and the old one goes (one peer left).
                val lost = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.PeerDown } }
                val newLink = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerUp } }
                app.networkChanged()
                assertFalse(app.isSuspended())
                assertEquals("kt-net-server-$kind", (lost.await() as Event.PeerDown).peer)
                assertEquals("kt-net-app-$kind", (newLink.await() as Event.PeerUp).peer)
                eventually { server.peers().size == 1 }
                eventually { app.peers().map { it.name } == listOf("kt-net-server-$kind") }
                assertTrue(server.waitForSubscribers("t/1", 5.seconds))
                server.publish("t/1", "x")
                assertEquals("x", inbox.receive().text)
                assertTrue(server.waitForServers("net/svc", 5.seconds))
                assertEquals("app", server.requestText("net/svc", ""))
                collector.cancel()
            }
        }
    }

    @Test
    fun resumeKeepsRedialingAnAddressThatFailsAtFirst() = watchdog {
        Endpoint("kt-redial-server-$kind").use { server ->
            Endpoint.withConfig(EndpointConfig(name = "kt-redial-app-$kind", reconnectMinDelayMs = 20uL, reconnectMaxDelayMs = 100uL)).use { app ->
                server.listen(Addrs.of(kind)).let { app.connect(it) }
                server.serve("svc") { "here".encodeToByteArray() }
                assertTrue(app.waitForServers("svc", 5.seconds))
                // Both go to the background; the app comes back first and
                // finds nobody listening: resume() returns after that attempt.
                app.suspend()
                server.suspend()
                app.resume()
                assertTrue(app.peers().isEmpty())
                // The server comes back on the same address; the app's redial finds it.
                server.resume()
                assertTrue(app.waitForServers("svc", 20.seconds))
                assertEquals("here", app.requestText("svc", ""))
            }
        }
    }

    @Test
    fun reconnectNowSkipsTheBackoff() = watchdog {
        Endpoint("kt-now-server-$kind").use { server ->
            // A backoff far beyond the watchdog: only reconnectNow() redials in time.
            Endpoint.withConfig(EndpointConfig(name = "kt-now-app-$kind", reconnectMinDelayMs = 600_000uL, reconnectMaxDelayMs = 600_000uL)).use { app ->
                app.connect(server.listen(Addrs.of(kind)))
                server.serve("svc") { "here".encodeToByteArray() }
                assertTrue(app.waitForServers("svc", 5.seconds))
                val waiting = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.Reconnecting } }
                server.suspend()
                // The app lost the link and waits out its backoff.
                assertEquals(1u, (waiting.await() as Event.Reconnecting).attempt)
                server.resume()
                app.reconnectNow()
                assertTrue(app.waitForServers("svc", 20.seconds))
                assertEquals("here", app.requestText("svc", ""))
            }
        }
    }

    @Test
    fun listenerComesBackOnResume() = watchdog {
        Endpoint("kt-listen-app-$kind").use { app ->
            Endpoint.withConfig(EndpointConfig(name = "kt-listen-peer-$kind", reconnectMinDelayMs = 20uL, reconnectMaxDelayMs = 100uL)).use { peer ->
                val addr = app.listen(Addrs.of(kind))
                app.serve("svc") { "here".encodeToByteArray() }
                peer.connect(addr)
                assertEquals("here", peer.requestText("svc", ""))
                val down = async(start = CoroutineStart.UNDISPATCHED) { peer.eventFlow().first { it is Event.PeerDown } }
                app.suspend()
                app.suspend() // idempotent
                // The peer has seen the old link go: its waitForServers below
                // cannot answer from it.
                down.await()
                app.resume()
                // The peer redials the same address on its own.
                assertTrue(peer.waitForServers("svc", 10.seconds))
                assertEquals("here", peer.requestText("svc", ""))
            }
        }
    }

    @Test
    fun messagesForADialledPeerPublishedWhileSuspendedArriveAfterResume() = watchdog {
        Endpoint("kt-held-server-$kind").use { server ->
            Endpoint("kt-held-app-$kind").use { app ->
                app.connect(server.listen(Addrs.of(kind)))
                val inbox = Channel<Message>(Channel.UNLIMITED)
                val collector = launch { server.messages("up/**").collect { inbox.send(it) } }
                assertTrue(app.waitForSubscribers("up/1", 5.seconds))
                app.suspend()
                assertTrue(app.peers().isEmpty())
                // The server is a dialled peer that is away: its messages are
                // held (the offline buffer) and go first once it is back.
                for (i in 1..3) app.publish("up/$i", "held $i")
                app.resume()
                val got = List(3) { inbox.receive() }
                assertEquals(listOf("up/1", "up/2", "up/3"), got.map { it.path })
                assertEquals(listOf("held 1", "held 2", "held 3"), got.map { it.text })
                collector.cancel()
            }
        }
    }

    @Test
    fun countersAndDropCountsSurviveASuspension() = watchdog {
        val config = EndpointConfig(name = "kt-count-app-$kind", subscribeCapacity = 2uL)
        Endpoint("kt-count-server-$kind").use { server ->
            Endpoint.withConfig(config).use { app ->
                server.serve("svc") { it.payload }
                // connect() returns once the server's services are known.
                app.connect(server.listen(Addrs.of(kind)))
                assertEquals("x", app.requestText("svc", "x"))
                // A local subscription whose handler holds the first message:
                // its queue fills, and the next tryPublish finds no room.
                val release = CountDownLatch(1)
                val sub = app.subscribe("full", object : MessageHandler {
                    override fun onMessage(message: Message) {
                        release.await()
                    }
                    override fun onClose() {}
                })
                val dropped = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.Dropped } }
                var sent = 0
                while (true) {
                    try {
                        app.tryPublish("full", "$sent".encodeToByteArray())
                        sent++
                    } catch (_: NetchanException.BufferFull) {
                        break
                    }
                    check(sent < 100) { "the queue never filled" }
                }
                val d = dropped.await() as Event.Dropped
                assertEquals(Triple("full", "BUFFER_FULL", 1uL), Triple(d.site, d.code, d.count))
                assertEquals(1uL, sub.dropped())
                val before = app.stats().total
                assertEquals(1uL, before.requestsOut)
                assertEquals(1uL, before.droppedQueueFull)

                app.suspend()
                assertEquals(before, app.stats().total)
                assertEquals(1uL, sub.dropped())
                app.resume()
                assertEquals(before, app.stats().total)
                assertTrue(app.waitForServers("svc", 10.seconds))
                assertEquals("y", app.requestText("svc", "y"))
                assertEquals(2uL, app.stats().total.requestsOut)
                release.countDown()
            }
        }
    }

    @Test
    fun networkChangedRedialsAtOnceAndReportsTheOldLinkLost() = watchdog {
        Endpoint("kt-nc-server-$kind").use { server ->
            // A backoff far beyond the watchdog: only an immediate redial reconnects in time.
            val config = EndpointConfig(name = "kt-nc-app-$kind", reconnectMinDelayMs = 600_000uL, reconnectMaxDelayMs = 600_000uL)
            Endpoint.withConfig(config).use { app ->
                app.connect(server.listen(Addrs.of(kind)))
                server.serve("svc") { "here".encodeToByteArray() }
                assertTrue(app.waitForServers("svc", 5.seconds))
                val lost = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.PeerDown } }
                val again = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerUp } }
                app.networkChanged()
                val d = lost.await() as Event.PeerDown
                assertEquals("kt-nc-server-$kind" to "PEER_LOST", d.peer to d.code)
                // Redialled now, not after the backoff.
                assertEquals("kt-nc-app-$kind", (again.await() as Event.PeerUp).peer)
                eventually { app.peers().map { it.name } == listOf("kt-nc-server-$kind") }
                assertTrue(app.waitForServers("svc", 5.seconds))
                assertEquals("here", app.requestText("svc", ""))
            }
        }
    }
}
