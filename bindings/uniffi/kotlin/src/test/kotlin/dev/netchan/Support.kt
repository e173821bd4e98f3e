package dev.netchan

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import java.nio.file.Files

/** Runs a test body under runBlocking with a watchdog (a deadlock fails, never hangs). */
fun watchdog(ms: Long = 30_000, block: suspend CoroutineScope.() -> Unit) =
    runBlocking { withTimeout(ms) { block() } }

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
