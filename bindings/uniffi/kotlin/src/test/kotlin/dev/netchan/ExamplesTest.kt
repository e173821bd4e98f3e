package dev.netchan

import org.junit.Test

/** The examples in examples/kotlin run and succeed (they throw on failure). */
class ExamplesTest {
    @Test fun pubsubTcp() = examples.pubsub.main(arrayOf())
    @Test fun pubsubUnix() = examples.pubsub.main(arrayOf(Addrs.unix()))
    @Test fun reqrep() = examples.reqrep.main(arrayOf())
    @Test fun ping() = examples.ping.main(arrayOf())
}
