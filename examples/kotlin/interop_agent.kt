// Shows: the cross-language interop agent contract (tests/interop/README.md), in Kotlin.
// Run: NETCHAN_KOTLIN_AGENT is set by bindings/uniffi/run-tests.sh; by hand: java -cp ... examples.interop.Interop_agentKt sub tcp://127.0.0.1:0 'x/**' 1
// Prints: READY <addr>, then MSG/OK/ERR/SMSG/SAW lines as the contract says; exits 0.
package examples.interop

import dev.netchan.Endpoint
import dev.netchan.EndpointConfig
import dev.netchan.NetchanException
import dev.netchan.code
import dev.netchan.detail
import dev.netchan.messages
import dev.netchan.netchanError
import dev.netchan.openStream
import dev.netchan.send
import dev.netchan.serveStream
import dev.netchan.request
import dev.netchan.serve
import dev.netchan.waitForSubscribers
import kotlinx.coroutines.awaitCancellation
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.runBlocking
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.seconds

private fun fnv1a64(data: ByteArray): String {
    var h = -0x340d631b7bdddcdbL // 0xcbf29ce484222325
    for (b in data) {
        h = h xor (b.toLong() and 0xff)
        h *= 0x100000001b3L
    }
    return java.lang.Long.toUnsignedString(h, 16).padStart(16, '0')
}

private fun payload(spec: String): ByteArray = when {
    spec.startsWith("hex:") -> spec.substring(4).chunked(2).map { it.toInt(16).toByte() }.toByteArray()
    spec.startsWith("gen:") -> ByteArray(spec.substring(4).toInt()) { (it % 251).toByte() }
    else -> error("bad payload spec $spec")
}

private fun say(line: String) {
    println(line)
    System.out.flush()
}

fun main(args: Array<String>) {
    runBlocking { run(args) }
    exitProcess(0)
}

private suspend fun run(args: Array<String>) {
    val (cmd, addr) = args[0] to args[1]
    // Settings by name from NETCHAN_SETTINGS (`KEY=VALUE` lines): the
    // matrix's TLS cells pass certificates this way to every language.
    val settings = (System.getenv("NETCHAN_SETTINGS") ?: "").lines()
        .filter { '=' in it }
        .associate { it.substringBefore('=') to it.substringAfter('=') }
    val config = EndpointConfig(name = "kt-agent-${ProcessHandle.current().pid()}", settings = settings)
    Endpoint.withConfig(config).use { ep ->
        when (cmd) {
            "sub" -> {
                val count = args[3].toInt()
                val flow = ep.messages(args[2])
                say("READY ${ep.listen(addr)}")
                flow.take(count).collect { m -> say("MSG ${m.path} ${m.payload.size} ${fnv1a64(m.payload)}") }
            }
            "pub" -> {
                val path = args[2]
                ep.connect(addr)
                if (!ep.waitForSubscribers(path, 10.seconds)) {
                    say("ERR TIMEOUT no subscriber")
                    exitProcess(1)
                }
                for (spec in args.drop(3)) ep.publish(path, payload(spec))
                say("DONE")
            }
            "serve" -> {
                ep.serve("echo") { req -> req.payload }
                ep.serve("fail") { _ -> throw netchanError("HANDLER_ERROR", "boom") }
                say("READY ${ep.listen(addr)}")
                awaitCancellation()
            }
            "req" -> {
                try {
                    // A refused connection is an answer too (the TLS refusal cells).
                    ep.connect(addr)
                    val r = ep.request(args[2], payload(args[3]), 10.seconds)
                    say("OK ${r.size} ${fnv1a64(r)}")
                } catch (e: NetchanException) {
                    say("ERR ${e.code} ${e.detail}")
                }
            }
            "sserve" -> {
                ep.serveStream("secho") { req, s ->
                    if (req.payload.isNotEmpty()) s.send(req.payload)
                    while (true) s.send(s.recv() ?: break)
                }
                ep.serveStream("scancel") { _, s ->
                    s.send("hello")
                    s.cancel()
                }
                ep.serveStream("swatch") { _, s ->
                    var n = 0
                    val end = try {
                        while (s.recv() != null) n++
                        "END"
                    } catch (e: NetchanException) {
                        e.code
                    }
                    say("SAW $end $n")
                }
                say("READY ${ep.listen(addr)}")
                awaitCancellation()
            }
            "sopen" -> {
                ep.connect(addr)
                val cancel = args.getOrNull(3) == "--cancel"
                val specs = args.drop(if (cancel) 4 else 3)
                try {
                    ep.openStream(args[2]).use { s ->
                        for (spec in specs) s.send(payload(spec))
                        if (cancel) {
                            s.cancel()
                            say("CANCELLED")
                        } else {
                            s.finish()
                            while (true) {
                                val m = s.recv() ?: break
                                say("SMSG ${m.size} ${fnv1a64(m)}")
                            }
                            say("SEND")
                        }
                    }
                } catch (e: NetchanException) {
                    say("ERR ${e.code} ${e.detail}")
                }
            }
            else -> exitProcess(2)
        }
    }
}
