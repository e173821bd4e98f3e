// The idiomatic Swift layer over the generated bindings (Netchan.swift, never edited by hand):
// subscriptions as AsyncStream, async request handlers, text payloads, error codes.
import Foundation

/// Pulls a subscription's messages for `AsyncStream(unfolding:)`: the next batch is taken from
/// the subscription's queue only once the consumer has taken the previous one, so that queue is
/// the only one (a slow consumer fills it and its overflow policy applies).
private final class MessagePuller: @unchecked Sendable {
    // `AsyncStream(unfolding:)` calls `next()` one call at a time.
    let subscription: Subscription
    private var batch: [Message] = []
    private var index = 0

    init(_ subscription: Subscription) {
        self.subscription = subscription
    }

    func next() async -> Message? {
        if index == batch.count {
            // An empty batch (or an error) means the subscription ended.
            batch = (try? await subscription.recvMany(max: 64)) ?? []
            index = 0
            if batch.isEmpty { return nil }
        }
        let m = batch[index]
        index += 1
        return m
    }
}

/// Runs an async handler from netchan's (blocking-allowed) handler thread, in a task that is
/// cancelled when the caller stops waiting (`request.cancel`).
private final class AsyncRequestHandler: RequestHandler, @unchecked Sendable {
    let body: @Sendable (Request) async throws -> Data

    init(_ body: @escaping @Sendable (Request) async throws -> Data) {
        self.body = body
    }

    func handle(request: Request) throws -> Data {
        let done = DispatchSemaphore(value: 0)
        var result: Result<Data, Error> = .failure(NetchanError.Internal(detail: "handler did not run"))
        let body = self.body
        let work = Task {
            do {
                result = .success(try await body(request))
            } catch {
                result = .failure(error)
            }
            done.signal()
        }
        let watch = Task {
            await request.cancel.cancelled()
            work.cancel()
        }
        done.wait()
        // uniffi's Swift futures ignore task cancellation, so `watch` ends only when the token
        // fires: fire it now. The token is this request's own and netchan no longer reads it.
        request.cancel.cancel()
        _ = watch
        return try result.get()
    }
}

extension Endpoint {
    /// The messages matching `pattern`, as an AsyncStream that ends when the endpoint closes;
    /// cancelling the iterating task, or letting go of the stream, unsubscribes. Survives
    /// `suspend()`/`resume()`. It pulls from the subscription's own queue, at most 64 messages
    /// ahead of the consumer.
    public func messages(_ pattern: String) throws -> AsyncStream<Message> {
        let puller = MessagePuller(try subscribe(pattern: pattern, handler: nil))
        return AsyncStream(unfolding: { await puller.next() }, onCancel: { puller.subscription.close() })
    }

    /// Serves `pattern` with an async handler: return the reply, or throw a `NetchanError` whose
    /// code reaches the caller (any other error reaches it as `HANDLER_ERROR`).
    @discardableResult
    public func serve(
        _ pattern: String,
        _ handler: @escaping @Sendable (Request) async throws -> Data
    ) throws -> Service {
        try serve(pattern: pattern, handler: AsyncRequestHandler(handler))
    }

    /// `request` with a text payload and reply.
    public func request(_ path: String, text: String, timeout: TimeInterval = 5) async throws -> String {
        let reply = try await request(path: path, payload: Data(text.utf8), timeout: timeout)
        return String(decoding: reply, as: UTF8.self)
    }

    /// `publish` with a text payload.
    public func publish(_ path: String, text: String) async throws {
        try await publish(path: path, payload: Data(text.utf8))
    }
}

extension Message {
    /// The payload decoded as UTF-8.
    public var text: String { String(decoding: payload, as: UTF8.self) }
}

extension Request {
    /// The payload decoded as UTF-8.
    public var text: String { String(decoding: payload, as: UTF8.self) }
}

extension NetchanError {
    /// The symbolic code, the same on every surface: `TIMEOUT`, `NO_RESPONDERS`, ...
    public var code: String {
        let name = String(describing: self).prefix { $0 != "(" }
        var out = ""
        for ch in name {
            if ch.isUppercase && !out.isEmpty { out.append("_") }
            out.append(ch.uppercased())
        }
        return out
    }
}
