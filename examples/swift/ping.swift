// Shows: ping a connected peer, list peers, and the app lifecycle (suspend/resume).
// Run: on a Mac, as main.swift of an executable target depending on the Netchan package, `swift run`.
// Prints: the bound address, round-trip times before and after suspend/resume; exits 0.
import Netchan

@main
struct Ping {
    static func main() async throws {
        let server = try Endpoint(name: "swift-pong")
        let client = try Endpoint(name: "swift-ping")
        let bound = try await server.listen(addr: "tcp://127.0.0.1:0")
        print("listening on \(bound)")
        _ = try await client.connect(addr: bound)
        for _ in 0..<3 {
            let rtt = try await client.ping(peer: "swift-pong")
            print("rtt to swift-pong: \(Int(rtt * 1_000_000)) us")
        }
        // What an app does in applicationDidEnterBackground / WillEnterForeground:
        try await client.suspend()
        try await client.resume()
        let rtt = try await client.ping(peer: "swift-pong")
        print("after resume: \(Int(rtt * 1_000_000)) us; peers: \(client.peers().map(\.name))")
        await client.close()
        await server.close()
    }
}
