// The idiomatic Kotlin layer over the generated bindings (netchan.kt, which is
// never edited by hand): subscriptions as Flow, suspend handlers, Kotlin
// durations, text payloads, error codes.
package dev.netchan

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlin.time.toJavaDuration

/**
 * The messages matching [pattern], as a cold [Flow]: each collection
 * subscribes, and cancelling the collection unsubscribes. The flow completes
 * when the endpoint closes. It survives [Endpoint.suspend]/[Endpoint.resume].
 *
 * Back-pressure: up to [capacity] messages wait for the collector; beyond
 * that the netchan thread delivering them waits, then the subscription's own
 * queue fills and its overflow policy applies (by default the link slows
 * down; nothing is lost).
 */
fun Endpoint.messages(pattern: String, capacity: Int = Channel.BUFFERED): Flow<Message> =
    callbackFlow {
        val sub = subscribe(pattern, object : MessageHandler {
            override fun onMessage(message: Message) {
                // Runs on a netchan blocking-pool thread, which may wait here.
                trySendBlocking(message)
            }

            override fun onClose() {
                channel.close()
            }
        })
        awaitClose {
            sub.cancel()
            sub.close()
        }
    }.buffer(capacity)

/**
 * Serves [pattern] with a suspending handler: return the reply payload, or
 * throw a [NetchanException] whose code reaches the caller (any other
 * exception reaches it as `HANDLER_ERROR`). Each request runs in its own
 * coroutine on a netchan thread, and that coroutine is cancelled when the
 * caller stops waiting ([Request.cancel]: its timeout, a cancelled call, a
 * lost link, a closed endpoint).
 */
fun Endpoint.serve(pattern: String, handler: suspend (Request) -> ByteArray): Service =
    serve(pattern, object : RequestHandler {
        override fun handle(request: Request): ByteArray = runBlocking {
            val work = async { handler(request) }
            val watch = launch {
                request.cancel.cancelled()
                work.cancel(CancellationException("the caller stopped waiting for ${request.path}"))
            }
            try {
                work.await()
            } finally {
                watch.cancel()
            }
        }
    })

/** [Endpoint.request] with a Kotlin [Duration] (default 5 s). */
suspend fun Endpoint.request(
    path: String,
    payload: ByteArray = ByteArray(0),
    timeout: Duration = 5.seconds,
): ByteArray = request(path, payload, timeout.toJavaDuration())

/** [Endpoint.request] with a UTF-8 text payload and reply. */
suspend fun Endpoint.requestText(path: String, text: String, timeout: Duration = 5.seconds): String =
    request(path, text.encodeToByteArray(), timeout.toJavaDuration()).decodeToString()

/** [Endpoint.publish] with a UTF-8 text payload. */
suspend fun Endpoint.publish(path: String, text: String) = publish(path, text.encodeToByteArray())

/** [Endpoint.waitForSubscribers] with a Kotlin [Duration]. */
suspend fun Endpoint.waitForSubscribers(path: String, timeout: Duration): Boolean =
    waitForSubscribers(path, timeout.toJavaDuration())

/** [Endpoint.waitForServers] with a Kotlin [Duration]. */
suspend fun Endpoint.waitForServers(path: String, timeout: Duration): Boolean =
    waitForServers(path, timeout.toJavaDuration())

/** The endpoint's events as a [Flow], ending when the endpoint closes. */
fun Endpoint.eventFlow(): Flow<Event> = flow {
    events().use { stream ->
        while (true) {
            emit(stream.next() ?: break)
        }
    }
}

/** The payload decoded as UTF-8. */
val Message.text: String get() = payload.decodeToString()

/** The payload decoded as UTF-8. */
val Request.text: String get() = payload.decodeToString()

/**
 * The symbolic code, the same on every surface: `TIMEOUT`, `NO_RESPONDERS`,
 * `PEER_LOST`, ... (see [errorCodes] for the list and their numbers).
 */
val NetchanException.code: String
    get() = javaClass.simpleName
        .removeSuffix("Exception").let { if (it == javaClass.simpleName) it else it + "Error" }
        .replace(Regex("([a-z0-9])([A-Z])"), "$1_$2")
        .uppercase()

/** What went wrong, in words (without the code). */
val NetchanException.detail: String
    get() = javaClass.getMethod("getDetail").invoke(this) as String

/** A [NetchanException] with this code and detail (for request handlers). */
fun netchanError(code: String, detail: String): NetchanException {
    val name = code.lowercase().split('_').joinToString("") { it.replaceFirstChar(Char::uppercase) }
        .let { if (it.endsWith("Error")) it.removeSuffix("Error") + "Exception" else it }
    val cls = NetchanException::class.java.declaredClasses.firstOrNull { it.simpleName == name }
        ?: throw IllegalArgumentException("unknown netchan error code $code")
    return cls.getConstructor(String::class.java).newInstance(detail) as NetchanException
}
