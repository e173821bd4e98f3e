// Shows: publish/subscribe between two endpoints, the subscription as a Kotlin Flow.
// Run: bash examples/kotlin/run.sh pubsub [tcp://127.0.0.1:0 | unix:///tmp/pubsub.sock]
// Prints: the bound address, then each received message as PATH<TAB>PAYLOAD; exits 0.
package examples.pubsub

import dev.netchan.Endpoint
import dev.netchan.messages
import dev.netchan.publish
import dev.netchan.text
import dev.netchan.waitForSubscribers
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlin.time.Duration.Companion.seconds

fun main(args: Array<String>) = runBlocking {
    val addr = args.firstOrNull() ?: "tcp://127.0.0.1:0"
    Endpoint("kt-subscriber").use { subscriber ->
        Endpoint("kt-publisher").use { publisher ->
            val bound = subscriber.listen(addr)
            println("listening on $bound")
            publisher.connect(bound)
            val received = async { subscriber.messages("sensors/*/temp").take(3).toList() }
            check(publisher.waitForSubscribers("sensors/kitchen/temp", 5.seconds)) { "no subscriber" }
            for ((room, t) in listOf("kitchen" to "21.5", "hall" to "19.0", "attic" to "24.25")) {
                publisher.publish("sensors/$room/temp", t)
            }
            val msgs = received.await()
            for (m in msgs) println("${m.path}\t${m.text}")
            check(msgs.size == 3) { "expected 3 messages" }
        }
    }
}
