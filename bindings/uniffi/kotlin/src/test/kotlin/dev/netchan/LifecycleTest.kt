package dev.netchan

import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
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
                val lifecycle = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.Resumed } }
                // A new link from the app reaches the server (PeerUp), and the
                // old one goes (one peer left).
                val newLink = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerUp } }
                app.networkChanged()
                lifecycle.await()
                assertEquals("kt-net-app-$kind", (newLink.await() as Event.PeerUp).peer)
                eventually { server.peers().size == 1 }
                assertEquals(listOf("kt-net-server-$kind"), app.peers().map { it.name })
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
                app.suspend()
                app.suspend() // idempotent
                app.resume()
                // The peer redials the same address on its own.
                assertTrue(peer.waitForServers("svc", 10.seconds))
                assertEquals("here", peer.requestText("svc", ""))
            }
        }
    }
}
