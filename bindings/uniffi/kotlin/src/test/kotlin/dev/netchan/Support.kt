package dev.netchan

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import java.nio.file.Files
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Runs a test body under runBlocking with a watchdog (a deadlock fails, never hangs). */
fun watchdog(ms: Long = 30_000, block: suspend CoroutineScope.() -> Unit) =
    runBlocking { withTimeout(ms) { block() } }

/**
 * Waits until [condition] holds, for a state that no event announces (a
 * subscriber gone, a declaration arrived). It re-checks every few
 * milliseconds; the test's watchdog bounds the wait.
 */
suspend fun eventually(condition: () -> Boolean) {
    while (!condition()) delay(5.milliseconds)
}

/** A fresh address of each kind: TCP on port 0, and a Unix socket in a temp dir. */
object Addrs {
    fun tcp() = "tcp://127.0.0.1:0"
    fun unix(): String {
        val dir = Files.createTempDirectory("netchan-kt")
        dir.toFile().deleteOnExit()
        return "unix://" + dir.resolve("ep.sock").toString()
    }
    val both: List<Array<Any>> get() = listOf(arrayOf<Any>("tcp"), arrayOf<Any>("unix"))
    fun of(kind: String) = if (kind == "tcp") tcp() else unix()
}

/** Names of this process's threads that netchan's runtime started (Linux). */
fun netchanThreads(): List<String> =
    java.io.File("/proc/self/task").listFiles().orEmpty()
        .mapNotNull { runCatching { java.io.File(it, "comm").readText().trim() }.getOrNull() }
        .filter { it.startsWith("netchan") }

inline fun <reified E : NetchanException> expectError(block: () -> Unit): E {
    try {
        block()
    } catch (e: NetchanException) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got ${e.code}: ${e.detail}", e)
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

/**
 * A request handler that never answers: it reports the request it got
 * ([received]) and then, once netchan cancels it, that it saw the
 * cancellation ([cancelled]). Either endpoint closing cancels it too, so it
 * never outlives a test; a minute is its own last resort.
 */
class HoldingHandler : RequestHandler {
    val received = CompletableDeferred<Request>()
    val cancelled = CompletableDeferred<Unit>()

    override fun handle(request: Request): ByteArray {
        received.complete(request)
        runBlocking {
            if (withTimeoutOrNull(60.seconds) { request.cancel.cancelled() } != null) {
                cancelled.complete(Unit)
            }
        }
        throw netchanError("CANCELLED", "held until the caller stopped waiting")
    }
}
