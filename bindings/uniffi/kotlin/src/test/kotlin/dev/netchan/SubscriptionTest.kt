package dev.netchan

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import kotlin.time.Duration.Companion.seconds

/** Subscriptions are thin pumps over the core's queue: pulled, as a Flow, or feeding a handler. */
@RunWith(Parameterized::class)
class SubscriptionTest(private val kind: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun kinds() = Addrs.both
    }

    @Test
    fun eachSubscriptionHasItsOwnCapacityAndOverflowPolicy() = watchdog {
        Endpoint("kt-policy-server-$kind").use { server ->
            Endpoint.withConfig(EndpointConfig(name = "kt-policy-client-$kind", sendTimeoutMs = 200uL)).use { client ->
                // Two subscriptions on one link, neither read yet: one drops
                // what does not fit (counted here), the other holds the
                // publisher back through its credit (counted there).
                val newest = server.subscribeWith("p/newest", SubscribeOptions(capacity = 2u, overflow = Overflow.DROP_NEWEST))
                val blocking = server.subscribeWith("p/block", SubscribeOptions(capacity = 2u, overflow = Overflow.BLOCK))
                client.connect(server.listen(Addrs.of(kind)))
                assertTrue(client.waitForSubscribers("p/newest", 5.seconds))
                assertTrue(client.waitForSubscribers("p/block", 5.seconds))
                for (i in 1..5) client.publish("p/newest", "$i")
                var refused = 0
                for (i in 1..5) {
                    try {
                        client.publish("p/block", "$i")
                    } catch (e: NetchanException.BufferFull) {
                        refused++
                    }
                }
                // The blocking one takes its queue (2) and its credit window
                // (2 more, waiting on the link): the fifth is refused and
                // counted at the publisher, after its send timeout.
                assertEquals(1, refused)
                assertEquals(1uL, client.stats().total.droppedSendFull)
                eventually { newest.dropped() == 3uL }
                assertEquals(listOf("1", "2"), newest.tryRecvMany(10u).map { it.text })
                val got = ArrayList<String>()
                while (got.size < 4) got += blocking.recvMany(10u).map { it.text }
                assertEquals(listOf("1", "2", "3", "4"), got)
                assertEquals(0uL, blocking.dropped())
            }
        }
    }

    @Test
    fun aPulledSubscriptionGivesMessagesInOrderAndItsQueueAfterClose() = watchdog {
        Endpoint("kt-pull-server-$kind").use { server ->
            Endpoint("kt-pull-client-$kind").use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val sub = client.subscribe("pull/*")
                assertTrue(server.waitForSubscribers("pull/x", 5.seconds))
                for (i in 0 until 10) server.publish("pull/$i", "$i")
                val got = arrayListOf(sub.recv()!!)
                while (got.size < 10) {
                    val batch = sub.recvMany(3u)
                    assertTrue("${batch.size}", batch.size in 1..3)
                    got.addAll(batch)
                }
                assertEquals((0 until 10).map { "pull/$it" }, got.map { it.path })
                assertEquals(setOf("kt-pull-server-$kind"), got.map { it.sender }.toSet())
                assertEquals(emptyList<Message>(), sub.tryRecvMany(10u))
                server.publish("pull/a", "a")
                server.publish("pull/b", "b")
                eventually { client.stats().subscriptions.single().queued == 2uL }
                assertEquals(listOf("a", "b"), sub.tryRecvMany(10u).map { it.text })
                // Closing unsubscribes; what is already queued can still be taken.
                client.publish("pull/c", "c")
                sub.cancel()
                assertTrue(sub.isClosed())
                assertEquals("c", sub.recv()?.text)
                assertNull(sub.recv())
                assertEquals(emptyList<Message>(), sub.recvMany(10u))
                expectError<NetchanException.Closed> { sub.tryRecvMany(1u) }
                eventually { !server.hasSubscribers("pull/x") }
                sub.close()
            }
        }
    }

    @Test
    fun aSubscriptionWithAHandlerCannotBePulled() = watchdog {
        Endpoint().use { ep ->
            val sub = ep.subscribe("h", object : MessageHandler {
                override fun onMessage(message: Message) {}
                override fun onClose() {}
            })
            expectError<NetchanException.InvalidArgument> { sub.recv() }
            expectError<NetchanException.InvalidArgument> { sub.tryRecvMany(1u) }
            sub.cancel()
            sub.close()
        }
    }

    /** The core keeps one waiter per queue: receivers must take turns, or one never wakes. */
    @Test
    fun twoReceiversWaitingOnOneSubscriptionEachGetAMessage() = watchdog {
        Endpoint().use { ep ->
            ep.subscribe("two").use { sub ->
                // UNDISPATCHED: both wait in netchan when async returns.
                val a = async(start = CoroutineStart.UNDISPATCHED) { sub.recv()?.text }
                val b = async(start = CoroutineStart.UNDISPATCHED) { sub.recv()?.text }
                ep.publish("two", "1")
                ep.publish("two", "2")
                assertEquals(setOf("1", "2"), setOf(a.await(), b.await()))
                sub.cancel()
            }
        }
    }

    @Test
    fun tryRecvManyWhileAReceiverWaitsLeavesItsWakeupAlone() = watchdog {
        Endpoint().use { ep ->
            ep.subscribe("t").use { sub ->
                val waiting = async(start = CoroutineStart.UNDISPATCHED) { sub.recv()?.text }
                assertEquals(emptyList<Message>(), sub.tryRecvMany(10u))
                ep.publish("t", "x")
                assertEquals("x", waiting.await())
                sub.cancel()
            }
        }
    }

    /**
     * A collector that stops taking messages holds up the flow, which takes
     * no more from the subscription's queue: the queue fills (and, under the
     * default Block policy, holds back the publisher through credit),
     * nothing is lost, order is kept.
     */
    @Test
    fun aSlowFlowCollectorLeavesTheMessagesInTheSubscriptionsQueue() = watchdog(60_000) {
        val capacity = 4uL
        Endpoint.withConfig(EndpointConfig(name = "kt-slow-$kind", subscribeCapacity = capacity)).use { server ->
            Endpoint().use { client ->
                client.connect(server.listen(Addrs.of(kind)))
                val release = CompletableDeferred<Unit>()
                val n = 300
                val got = async {
                    server.messages("flow").take(n)
                        .onEach { if (it.text == "0") release.await() }
                        .map { it.text.toInt() }
                        .toList()
                }
                assertTrue(client.waitForSubscribers("flow", 5.seconds))
                val sending = launch { for (i in 0 until n) client.publish("flow", "$i") }
                eventually { server.stats().subscriptions.single { it.pattern == "flow" }.queued >= capacity }
                // Out of the queue: only the batch the collector holds.
                val taken = server.stats().subscriptions.single { it.pattern == "flow" }.delivered
                assertTrue("$taken", taken in 1uL..MESSAGES_BATCH.toULong())
                release.complete(Unit)
                assertEquals((0 until n).toList(), got.await())
                sending.join()
                assertEquals(0uL, server.stats().total.droppedQueueFull)
            }
        }
    }

    @Test
    fun aFullPulledSubscriptionCountsWhatItDrops() = watchdog {
        Endpoint.withConfig(EndpointConfig(name = "kt-drop-$kind", subscribeCapacity = 2uL)).use { ep ->
            ep.subscribe("d").use { sub ->
                ep.tryPublish("d", "1".encodeToByteArray())
                ep.tryPublish("d", "2".encodeToByteArray())
                expectError<NetchanException.BufferFull> { ep.tryPublish("d", "3".encodeToByteArray()) }
                assertEquals(1uL, sub.dropped())
                assertEquals(1uL, ep.stats().total.droppedQueueFull)
                assertEquals(listOf("1", "2"), sub.tryRecvMany(10u).map { it.text })
                ep.tryPublish("d", "4".encodeToByteArray())
                assertEquals("4", sub.recv()?.text)
                sub.cancel()
            }
        }
    }
}
