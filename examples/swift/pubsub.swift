// Shows: publish/subscribe between two endpoints, the subscription as an AsyncStream.
// Run: on a Mac, add it as main.swift of an executable target depending on the Netchan package
//      (bindings/uniffi/swift), then `swift run`; pass an address (tcp://127.0.0.1:0 or unix:///tmp/p.sock).
// Prints: the bound address, then each received message as PATH<TAB>PAYLOAD; exits 0.
import Netchan

@main
struct PubSub {
    static func main() async throws {
        let addr = CommandLine.arguments.dropFirst().first ?? "tcp://127.0.0.1:0"
        let subscriber = try Endpoint(name: "swift-subscriber")
        let publisher = try Endpoint(name: "swift-publisher")
        let bound = try await subscriber.listen(addr: addr)
        print("listening on \(bound)")
        _ = try await publisher.connect(addr: bound)
        let messages = try subscriber.messages("sensors/*/temp")
        guard try await publisher.waitForSubscribers(path: "sensors/kitchen/temp", timeout: 5) else {
            fatalError("no subscriber")
        }
        for (room, t) in [("kitchen", "21.5"), ("hall", "19.0"), ("attic", "24.25")] {
            try await publisher.publish("sensors/\(room)/temp", text: t)
        }
        var received = 0
        for await m in messages {
            print("\(m.path)\t\(m.text)")
            received += 1
            if received == 3 { break }
        }
        await publisher.close()
        await subscriber.close()
    }
}
