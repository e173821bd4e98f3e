package dev.netchan

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import kotlin.time.Duration.Companion.milliseconds

/** Bidirectional streams over TCP and over Unix sockets. */
@RunWith(Parameterized::class)
class StreamTest(private val kind: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun kinds() = Addrs.both
    }

    /** Client and server connected, with a stream service on [pattern]. */
    private suspend fun <T> connected(
        pattern: String,
        options: ServeOptions = ServeOptions(),
        handler: suspend (StreamRequest, Stream) -> Unit,
        body: suspend (Endpoint) -> T,
    ): T = Endpoint("kt-stream-server-$kind").use { server ->
        Endpoint("kt-stream-client-$kind").use { client ->
            server.serveStream(pattern, options, handler)
            client.connect(server.listen(Addrs.of(kind)))
            eventually { client.streamServers(pattern).isNotEmpty() }
            body(client)
        }
    }

    @Test
    fun aPulledStreamServiceHandsOutStreamsTheTakerOwns() = watchdog {
        Endpoint("kt-spull-server-$kind").use { server ->
            Endpoint("kt-spull-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val queue = server.serveStreamPull("pull/*")
                assertEquals("pull/*", queue.pattern())
                eventually { client.streamServers("pull/**").isNotEmpty() }
                assertNull(queue.tryRecv())
                val opening = async { client.openStream("pull/a", "hello".encodeToByteArray()) }
                val taken = queue.recv()!!
                assertEquals("pull/a", taken.request.path)
                assertEquals("hello", taken.request.payload.decodeToString())
                assertEquals("kt-spull-client-$kind", taken.request.sender)
                opening.await().use { s ->
                    s.send("ping".encodeToByteArray())
                    assertEquals("ping", taken.stream.recv()!!.decodeToString())
                    taken.stream.send("pong".encodeToByteArray())
                    assertEquals("pong", s.recv()!!.decodeToString())
                    s.finish()
                    assertNull(taken.stream.recv()) // the opener's direction ended
                    taken.stream.finish()
                    assertNull(s.recv())
                }
                taken.stream.close()
                queue.cancel()
                assertNull(queue.recv())
                expectError<NetchanException.Closed> { queue.tryRecv() }
                queue.close()
            }
        }
    }

    @Test
    fun aStreamEchoesBothWaysAsAFlowAndHalfCloses() = watchdog {
        connected("echo/*", handler = { req, s ->
            s.send(req.payload)
            while (true) s.send(s.recv() ?: break)
        }) { client ->
            client.openStream("echo/x", "first".encodeToByteArray()).use { s ->
                assertEquals("echo/x", s.path())
                assertEquals("kt-stream-server-$kind", s.peer())
                val got = async { s.incoming().toList() }
                val sent = (0 until 300).map { i -> ByteArray(i * 7 % 2000) { (i + it).toByte() } }
                for (m in sent) s.send(m)
                s.finish()
                val all = got.await()
                assertEquals("first", all[0].decodeToString())
                assertEquals(sent.size, all.size - 1)
                sent.forEachIndexed { i, m -> assertArrayEquals(m, all[i + 1]) }
                // Sending after finishing is refused; receiving stays ended.
                expectError<NetchanException.InvalidArgument> { kotlinx.coroutines.runBlocking { s.send("late") } }
                assertNull(s.recv())
            }
        }
    }

    @Test
    fun aBlockingHandlerServesWithRecvBlockingAndSendBlocking() = watchdog {
        Endpoint().use { server ->
            Endpoint().use { client ->
                server.serveStream("upper", ServeOptions(), object : StreamHandler {
                    override fun handle(request: StreamRequest, stream: Stream) {
                        stream.use {
                            while (true) {
                                val m = it.recvBlocking(null) ?: break
                                it.sendBlocking(m.decodeToString().uppercase().encodeToByteArray(), null)
                            }
                        }
                    }
                })
                client.connect(server.listen(Addrs.of(kind)))
                eventually { client.streamServers("upper").isNotEmpty() }
                client.openStream("upper").use { s ->
                    s.send("hello")
                    s.send("stream")
                    s.finish()
                    assertEquals(listOf("HELLO", "STREAM"), s.incoming().toList().map { it.decodeToString() })
                }
            }
        }
    }

    @Test
    fun cancelFromEitherSideIsSeenByTheOther() = watchdog {
        val serverSaw = CompletableDeferred<String>()
        connected("c/*", handler = { req, s ->
            if (req.path == "c/server-cancels") {
                s.send("before")
                s.cancel()
            } else {
                try {
                    while (s.recv() != null) Unit
                    serverSaw.complete("ended")
                } catch (e: NetchanException) {
                    serverSaw.complete(e.code)
                }
            }
        }) { client ->
            client.openStream("c/client-cancels").use { s ->
                s.send("one")
                s.cancel()
                expectError<NetchanException.Cancelled> { kotlinx.coroutines.runBlocking { s.recv() } }
            }
            assertEquals("CANCELLED", serverSaw.await())
            client.openStream("c/server-cancels").use { s ->
                assertEquals("before", s.recv()!!.decodeToString())
                expectError<NetchanException.Cancelled> { kotlinx.coroutines.runBlocking { s.recv() } }
                expectError<NetchanException.Cancelled> { kotlinx.coroutines.runBlocking { s.send("x") } }
            }
        }
    }

    @Test
    fun deadlineNoServerAndAWindowThatHoldsOnlyItsOwnSender() = watchdog {
        val release = CompletableDeferred<Unit>()
        Endpoint().use { server ->
            Endpoint().use { client ->
                server.serveStream("slow") { _, s ->
                    try {
                        s.recv()
                    } catch (e: NetchanException.Timeout) {
                        Unit // the deadline, as the opener sees it too
                    }
                }
                server.serveStream("held", ServeOptions(window = 1024u)) { _, _ -> release.await() }
                server.serve("rr") { it.payload }
                client.connect(server.listen(Addrs.of(kind)))
                eventually { client.streamServers("held").isNotEmpty() && client.hasServers("rr") }

                client.openStream("slow", timeout = 300.milliseconds).use { s ->
                    val e = expectError<NetchanException.Timeout> { kotlinx.coroutines.runBlocking { s.recv() } }
                    assertTrue(e.detail, e.detail.contains("deadline"))
                }
                expectError<NetchanException.NoResponders> {
                    kotlinx.coroutines.runBlocking { client.openStream("nobody") }
                }
                // A handler that does not read holds back only this
                // stream's sender, at the server's 1 KiB window: requests
                // on the same link are still answered.
                client.openStream("held").use { held ->
                    var sent = 0
                    val pump = launch {
                        try {
                            while (true) {
                                held.send(ByteArray(100))
                                sent += 100
                            }
                        } catch (e: NetchanException.Cancelled) {
                            Unit
                        }
                    }
                    eventually { sent >= 1024 }
                    kotlinx.coroutines.delay(100.milliseconds)
                    assertTrue("sent $sent into a 1 KiB window", sent in 1024 until 1124)
                    assertFalse(pump.isCompleted)
                    assertEquals("ok", client.requestText("rr", "ok"))
                    held.cancel()
                    pump.join()
                }
                release.complete(Unit)
            }
        }
    }
}
