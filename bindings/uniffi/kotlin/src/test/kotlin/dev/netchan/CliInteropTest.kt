package dev.netchan

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runInterruptible
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.seconds

/** Kotlin and the `netchan` CLI (cargo build -p netchan-cli) talk to each other. */
class CliInteropTest {
    private val cli = File(System.getProperty("netchan.cli", "../../../target/debug/netchan"))

    /**
     * Runs the CLI and returns its output once it exited 0. The process is
     * killed when this returns or fails (the watchdog cancelling included).
     */
    private suspend fun run(vararg args: String): String = coroutineScope {
        val what = "netchan ${args.joinToString(" ")}"
        val p = ProcessBuilder(cli.path, *args).redirectError(ProcessBuilder.Redirect.INHERIT).start()
        try {
            // Read while waiting, so a full pipe never blocks the process.
            val out = async(Dispatchers.IO) { p.inputStream.bufferedReader().readText() }
            assertTrue("$what did not exit", runInterruptible(Dispatchers.IO) { p.waitFor(20, TimeUnit.SECONDS) })
            val text = out.await()
            assertEquals("$what: $text", 0, p.exitValue())
            text
        } finally {
            // Ends the reader above too (its pipe closes).
            p.destroyForcibly()
        }
    }

    @Test
    fun cliPublishesAndRequestsToKotlin() = watchdog {
        assumeTrue("the netchan CLI is built", cli.canExecute())
        Endpoint("kt-interop").use { ep ->
            val addr = ep.listen("tcp://127.0.0.1:0")
            ep.serve("kt/echo") { req -> "kotlin got ${req.text}".encodeToByteArray() }
            val got = async { ep.messages("cli/**").first() }
            // The collection has subscribed before the CLI publishes.
            assertTrue(ep.waitForSubscribers("cli/hello", 10.seconds))
            run("pub", "cli/hello", "from the cli", "--connect", addr)
            val m = got.await()
            assertEquals("cli/hello", m.path)
            assertEquals("from the cli", m.text)
            assertEquals("kotlin got ping\n", run("req", "kt/echo", "ping", "--connect", addr))
        }
    }

    @Test
    fun kotlinPublishesToCliSubscriber() = watchdog {
        assumeTrue("the netchan CLI is built", cli.canExecute())
        Endpoint("kt-interop-pub").use { ep ->
            val addr = ep.listen("tcp://127.0.0.1:0")
            val out = async { run("sub", "kt/**", "--connect", addr, "--count", "1") }
            assertTrue(ep.waitForSubscribers("kt/news", 10.seconds))
            ep.publish("kt/news", "hello cli")
            assertEquals("kt/news\thello cli\n", out.await())
        }
    }
}
