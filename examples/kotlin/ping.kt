// Shows: ping a connected peer and read the endpoint's stats and events.
// Run: bash examples/kotlin/run.sh ping [tcp://127.0.0.1:0 | unix:///tmp/ping.sock]
// Prints: the bound address, three round-trip times, the peer list; exits 0.
package examples.ping

import dev.netchan.Endpoint
import dev.netchan.Event
import dev.netchan.eventFlow
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val addr = args.firstOrNull() ?: "tcp://127.0.0.1:0"
    Endpoint("kt-pong").use { server ->
        Endpoint("kt-ping").use { client ->
            val bound = server.listen(addr)
            println("listening on $bound")
            // UNDISPATCHED: the event stream exists before the client connects.
            val up = async(start = CoroutineStart.UNDISPATCHED) { server.eventFlow().first { it is Event.PeerUp } as Event.PeerUp }
            client.connect(bound)
            println("peer up: ${up.await().peer}")
            repeat(3) {
                val rtt = client.ping("kt-pong")
                println("rtt to kt-pong: ${rtt.toNanos() / 1000} us")
            }
            println("peers: ${client.peers().joinToString { it.name }}")
            check(client.stats().peers.single().rtt != null) { "no rtt recorded" }
        }
    }
}
