package dev.netchan

import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withContext
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.net.BindException
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import kotlin.time.Duration.Companion.milliseconds

/**
 * Events the core reports reach Kotlin with every field, over real sockets.
 * (Every kind with every field set is checked in Rust, by
 * `every_core_event_reaches_the_binding_with_all_its_fields`.)
 */
class EventsTest {
    /** Something that is not a netchan peer talks to a listener. */
    @Test
    fun connectionErrorCarriesTheRemoteAddressCodeAndDetail() = watchdog {
        Endpoint("kt-ev-listener").use { server ->
            val port = server.listen("tcp://127.0.0.1:0").substringAfterLast(':').toInt()
            val error = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.ConnectionError } }
            withContext(Dispatchers.IO) {
                Socket("127.0.0.1", port).use { s ->
                    s.getOutputStream().apply { write("GET / HTTP/1.1\r\n\r\n".encodeToByteArray()); flush() }
                    val e = error.await() as Event.ConnectionError
                    assertEquals("tcp://127.0.0.1:${s.localPort}", e.addr)
                    assertEquals("PROTOCOL_ERROR", e.code)
                    assertTrue(e.detail, e.detail.isNotEmpty())
                }
            }
        }
    }

    /**
     * A dialled peer goes away and something that is not netchan takes its
     * port: the redial is reported (attempt, delay), then abandoned for good
     * (address, code, detail).
     */
    @Test
    fun reconnectingAndReconnectAbandonedCarryEveryField() = watchdog {
        val config = EndpointConfig(name = "kt-ev-app", reconnectMinDelayMs = 50uL, reconnectMaxDelayMs = 50uL)
        Endpoint.withConfig(config).use { app ->
            val first = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.Reconnecting } }
            val abandoned = async(start = CoroutineStart.UNDISPATCHED) { app.eventFlow().first { it is Event.ReconnectAbandoned } }
            // The peer goes away (use {} closes it).
            val addr = Endpoint("kt-ev-server").use { server ->
                server.listen("tcp://127.0.0.1:0").also { app.connect(it) }
            }
            val port = addr.substringAfterLast(':').toInt()
            val r = first.await() as Event.Reconnecting
            assertEquals(addr, r.addr)
            assertEquals(1u, r.attempt)
            // 50 ms with the core's jitter of at most ±20 %.
            assertTrue("${r.delay}", r.delay.toMillis() in 40L..60L)
            // The port is taken by a listener that answers with garbage.
            var bound: ServerSocket? = null
            while (bound == null) {
                bound = try {
                    ServerSocket(port, 1, InetAddress.getByName("127.0.0.1"))
                } catch (_: BindException) {
                    delay(5.milliseconds) // the closed listener lets go of the port
                    null
                }
            }
            val impostor: ServerSocket = bound
            try {
                val answering = async(Dispatchers.IO) {
                    impostor.accept().use { c -> c.getOutputStream().apply { write(ByteArray(64) { 0x7f }); flush() } }
                }
                val a = abandoned.await() as Event.ReconnectAbandoned
                assertEquals(addr, a.addr)
                assertTrue(a.code, a.code in setOf("PROTOCOL_ERROR", "UNSUPPORTED_VERSION"))
                assertTrue(a.detail, a.detail.isNotEmpty())
                answering.await()
            } finally {
                impostor.close()
            }
        }
    }
}
