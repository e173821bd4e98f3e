package dev.netchan

import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.yield
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
                app.connect(addr)
                app.serve("app/status") { "ok".encodeToByteArray() }
                val inbox = Channel<Message>(Channel.UNLIMITED)
                val collector = launch { app.messages("news/**").collect { inbox.send(it) } }
                assertTrue(server.waitForSubscribers("news/a", 5.seconds))
                server.publish("news/a", "before")
                assertEquals("before", inbox.receive().text)
                assertEquals("ok", server.requestText("app/status", ""))

                val down = async { server.eventFlow().first { it is Event.PeerDown } }
                yield()
                app.suspend()
                assertTrue(app.isSuspended())
                down.await()
                assertTrue(app.peers().isEmpty())
                assertFalse(server.hasSubscribers("news/a"))
                expectError<NetchanException.NoResponders> { server.request("app/status") }
                // Local delivery goes on while suspended.
                app.publish("news/local", "local")
                assertEquals("local", inbox.receive().text)

                app.resume()
                assertFalse(app.isSuspended())
                assertTrue(server.waitForSubscribers("news/a", 5.seconds))
                server.publish("news/a", "after")
                assertEquals("after", inbox.receive().text)
                assertTrue(server.waitForServers("app/status", 5.seconds))
                assertEquals("ok", server.requestText("app/status", ""))
                collector.cancel()
            }
        }
    }

    @Test
    fun networkChangedRedialsAndRestores() = watchdog {
        Endpoint("kt-net-server-$kind").use { server ->
            Endpoint("kt-net-app-$kind").use { app ->
                app.connect(server.listen(Addrs.of(kind)))
                val inbox = Channel<Message>(Channel.UNLIMITED)
                val collector = launch { app.messages("t/*").collect { inbox.send(it) } }
                assertTrue(server.waitForSubscribers("t/1", 5.seconds))
                val lifecycle = async { app.eventFlow().first { it is Event.Resumed } }
                yield()
                app.networkChanged()
                lifecycle.await()
                assertEquals(1, app.peers().size)
                assertTrue(server.waitForSubscribers("t/1", 5.seconds))
                server.publish("t/1", "x")
                assertEquals("x", inbox.receive().text)
                collector.cancel()
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
