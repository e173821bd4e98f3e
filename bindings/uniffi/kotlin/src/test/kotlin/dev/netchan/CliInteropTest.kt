package dev.netchan

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withContext
import kotlinx.coroutines.yield
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File
import java.util.concurrent.TimeUnit

/** Kotlin and the `netchan` CLI (cargo build -p netchan-cli) talk to each other. */
class CliInteropTest {
    private val cli = File(System.getProperty("netchan.cli", "../../../target/debug/netchan"))

    private suspend fun run(vararg args: String): String = withContext(Dispatchers.IO) {
        val p = ProcessBuilder(cli.path, *args).redirectError(ProcessBuilder.Redirect.INHERIT).start()
        val out = p.inputStream.bufferedReader().readText()
        assertTrue("netchan ${args.joinToString(" ")} did not exit", p.waitFor(20, TimeUnit.SECONDS))
        assertEquals("netchan ${args.joinToString(" ")}: $out", 0, p.exitValue())
        out
    }

    @Test
    fun cliPublishesAndRequestsToKotlin() = watchdog {
        assumeTrue("the netchan CLI is built", cli.canExecute())
        Endpoint("kt-interop").use { ep ->
            val addr = ep.listen("tcp://127.0.0.1:0")
            ep.serve("kt/echo") { req -> "kotlin got ${req.text}".encodeToByteArray() }
            val got = async { ep.messages("cli/**").first() }
            yield()
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
            assertTrue(ep.waitForSubscribers("kt/news", kotlin.time.Duration.parse("10s")))
            ep.publish("kt/news", "hello cli")
            assertEquals("kt/news\thello cli\n", out.await())
        }
    }
}
