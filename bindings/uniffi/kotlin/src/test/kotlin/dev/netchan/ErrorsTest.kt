package dev.netchan

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.net.ServerSocket
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource
import kotlin.time.toJavaDuration

/** Errors reach Kotlin as sealed NetchanException subclasses with the core's codes. */
class ErrorsTest {
    @Test
    fun everyCoreCodeHasItsSubclass() {
        val codes = errorCodes()
        // A sealed class (the JVM records its permitted subclasses), with one
        // subclass per core code and no other.
        assertTrue(NetchanException::class.java.isSealed)
        val subclasses = NetchanException::class.java.declaredClasses.filter { NetchanException::class.java.isAssignableFrom(it) }
        assertEquals(codes.size, subclasses.size)
        assertEquals(
            codes.map { it.name }.toSet(),
            subclasses.map { (it.getConstructor(String::class.java).newInstance("") as NetchanException).code }.toSet(),
        )
        for (c in codes) {
            val e = netchanError(c.name, "detail of ${c.name}")
            assertEquals(c.name, e.code)
            assertEquals("detail of ${c.name}", e.detail)
            // The message, and so a stack trace's first line, says the code.
            assertEquals("${c.name}: detail of ${c.name}", e.message)
            assertTrue(e.toString(), e.toString().endsWith("\$${e.javaClass.simpleName}: ${c.name}: detail of ${c.name}"))
        }
        assertEquals(300, codes.single { it.name == "TIMEOUT" }.number.toInt())
        assertEquals(301, codes.single { it.name == "NO_RESPONDERS" }.number.toInt())
    }

    @Test
    fun errorsOfEachKind() = watchdog {
        Endpoint("kt-errors").use { ep ->
            val none = expectError<NetchanException.NoResponders> { ep.request("nobody/home") }
            assertTrue(none.message, none.message!!.startsWith("NO_RESPONDERS: "))
            val trace = java.io.StringWriter().also { none.printStackTrace(java.io.PrintWriter(it)) }.toString()
            assertTrue(trace, trace.startsWith("dev.netchan.NetchanException\$NoResponders: NO_RESPONDERS: "))
            assertEquals("kt-errors", ep.name)
            expectError<NetchanException.InvalidPath> { ep.publish("bad//path", "x") }
            expectError<NetchanException.InvalidPath> { ep.subscribe("a//b", object : MessageHandler {
                override fun onMessage(message: Message) {}
                override fun onClose() {}
            }) }
            expectError<NetchanException.InvalidAddress> { ep.listen("carrier-pigeon://roof") }
            expectError<NetchanException.UnknownPeer> { ep.ping("nobody") }
            expectError<NetchanException.InvalidArgument> { ep.request("x", ByteArray(0), java.time.Duration.ZERO) }
            val freePort = ServerSocket(0).use { it.localPort }
            expectError<NetchanException.ConnectRefused> { ep.connect("tcp://127.0.0.1:$freePort") }
            val addr = ep.listen("tcp://127.0.0.1:0")
            Endpoint().use { other ->
                expectError<NetchanException.AddressInUse> { other.listen(addr) }
            }
        }
        expectError<NetchanException.InvalidArgument> { Endpoint.withConfig(EndpointConfig(sendTimeoutMs = 0uL)) }
        expectError<NetchanException.InvalidArgument> { Endpoint("") }
    }

    @Test
    fun waitForResponderGivesUpWithNoRespondersAfterItsTimeout() = watchdog {
        Endpoint().use { ep ->
            val timeout = 300.milliseconds
            val started = TimeSource.Monotonic.markNow()
            val e = expectError<NetchanException.NoResponders> {
                ep.requestWith("nobody/home", ByteArray(0), RequestOptions(timeout.toJavaDuration(), waitForResponder = true))
            }
            assertTrue("${started.elapsedNow()}", started.elapsedNow() >= timeout)
            assertTrue(e.detail, e.detail.contains("appeared within"))
        }
    }

    @Test
    fun closedEndpointSaysClosed() = watchdog {
        val ep = Endpoint()
        ep.shutdown()
        assertTrue(ep.isClosed())
        expectError<NetchanException.Closed> { ep.publish("a", "b") }
        expectError<NetchanException.Closed> { ep.listen("tcp://127.0.0.1:0") }
        expectError<NetchanException.Closed> { ep.request("a", timeout = 1.seconds) }
        expectError<NetchanException.Closed> { ep.requestWith("a", ByteArray(0), RequestOptions(java.time.Duration.ofSeconds(1), waitForResponder = true)) }
        expectError<NetchanException.Closed> { ep.connect("tcp://127.0.0.1:9") }
        expectError<NetchanException.Closed> { ep.ping("somebody") }
        expectError<NetchanException.Closed> { ep.serve("a") { ByteArray(0) } }
        expectError<NetchanException.Closed> { ep.declarePublisher("a") }
        expectError<NetchanException.Closed> { ep.subscribe("a", object : MessageHandler {
            override fun onMessage(message: Message) {}
            override fun onClose() {}
        }) }
        expectError<NetchanException.Closed> { ep.suspend() }
        ep.shutdown() // idempotent
        ep.close()
    }
}
