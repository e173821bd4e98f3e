// Shows: request/reply with a suspending handler, a handler error, and many requests at once.
// Run: bash examples/kotlin/run.sh reqrep [tcp://127.0.0.1:0 | unix:///tmp/reqrep.sock]
// Prints: the bound address, a reply, the error code of a failed request, a count; exits 0.
package examples.reqrep

import dev.netchan.Endpoint
import dev.netchan.NetchanException
import dev.netchan.code
import dev.netchan.netchanError
import dev.netchan.request
import dev.netchan.requestText
import dev.netchan.serve
import dev.netchan.text
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val addr = args.firstOrNull() ?: "tcp://127.0.0.1:0"
    Endpoint("kt-server").use { server ->
        Endpoint("kt-client").use { client ->
            server.serve("greet/*") { req -> "hello, ${req.path.removePrefix("greet/")}".encodeToByteArray() }
            server.serve("divide") { req ->
                val (a, b) = req.text.split(' ').map { it.toInt() }
                if (b == 0) throw netchanError("INVALID_ARGUMENT", "division by zero")
                "${a / b}".encodeToByteArray()
            }
            val bound = server.listen(addr)
            println("listening on $bound")
            client.connect(bound)
            println(client.requestText("greet/ana", ""))
            try {
                client.requestText("divide", "1 0")
                error("expected an error")
            } catch (e: NetchanException) {
                println("divide 1 0 failed: ${e.code}")
                check(e.code == "INVALID_ARGUMENT")
            }
            val replies = (1..100).map { i -> async { client.requestText("divide", "${i * 2} 2") } }.awaitAll()
            check(replies == (1..100).map { "$it" }) { "wrong replies" }
            println("${replies.size} concurrent requests answered")
            check(client.request("greet/bob").decodeToString() == "hello, bob")
        }
    }
}
