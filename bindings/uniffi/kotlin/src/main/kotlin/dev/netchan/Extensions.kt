// The idiomatic Kotlin layer over the generated bindings (netchan.kt, which is
// never edited by hand): subscriptions and streams as Flow, suspend
// handlers, Kotlin durations, text payloads, error codes.
package dev.netchan

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.Flow
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
 * The flow pulls from the subscription's own queue (`subscribeCapacity`
 * messages), a batch of at most [MESSAGES_BATCH] at a time and only once
 * the collector has taken the previous batch: there is no other queue. A
 * slow collector fills that queue and its overflow policy applies (by
 * default the links it comes from slow down; nothing is lost). Add
 * `.buffer(n)` to let the collector fall further behind.
 */
fun Endpoint.messages(pattern: String): Flow<Message> = flow {
    val sub = subscribe(pattern)
    try {
        while (true) {
            val batch = sub.recvMany(MESSAGES_BATCH)
            if (batch.isEmpty()) break // closed
            for (m in batch) emit(m)
        }
    } finally {
        sub.cancel()
        sub.close()
    }
}

/** The most messages [messages] takes from the subscription's queue at once. */
const val MESSAGES_BATCH: UInt = 64u

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

/**
 * The messages of this stream, as a [Flow] that completes when the other
 * side finishes its direction (after everything it sent) and throws the
 * stream's error if it ended otherwise. The flow receives only as the
 * collector takes messages: a slow collector holds back the sender (the
 * stream's credit), never the connection.
 */
fun Stream.incoming(): Flow<ByteArray> = flow {
    while (true) {
        emit(recv() ?: break)
    }
}

/** [Stream.send] with a UTF-8 text payload. */
suspend fun Stream.send(text: String) = send(text.encodeToByteArray())

/**
 * Opens a stream on [path] with a first payload, an optional deadline
 * (the whole stream ends with `TIMEOUT` after it, on both sides) and
 * receive window in bytes; returns once a server takes it.
 */
suspend fun Endpoint.openStream(
    path: String,
    first: ByteArray = ByteArray(0),
    timeout: Duration? = null,
    window: Long? = null,
): Stream = openStream(
    path,
    first,
    StreamOptions(timeout = timeout?.toJavaDuration(), window = window?.toULong()),
)

/**
 * Serves streams on [pattern] with a suspending handler, each in its own
 * coroutine on a thread of its own (at most [ServeOptions.maxConcurrent]
 * at once). When the handler returns, this side's direction is finished
 * and the stream object is freed: a stream whose other direction is still
 * open is then cancelled. A thrown [NetchanException] ends the stream with
 * its code (any other exception: `HANDLER_ERROR`).
 */
fun Endpoint.serveStream(
    pattern: String,
    options: ServeOptions = ServeOptions(),
    handler: suspend (StreamRequest, Stream) -> Unit,
): Service = serveStream(pattern, options, object : StreamHandler {
    override fun handle(request: StreamRequest, stream: Stream) = runBlocking {
        stream.use { handler(request, it) }
    }
})

/** This endpoint's name, the one its peers know it by (`ep.name`; the same as `ep.name()`). */
val Endpoint.name: String get() = name()

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
