// Shows: request/reply with an async handler and a typed error.
// Run: on a Mac, as main.swift of an executable target depending on the Netchan package, `swift run`.
// Prints: the bound address, a reply, the code of a failed request; exits 0.
import Foundation
import Netchan

@main
struct ReqRep {
    static func main() async throws {
        let server = try Endpoint(name: "swift-server")
        let client = try Endpoint(name: "swift-client")
        try server.serve("greet/*") { req in
            Data("hello, \(req.path.dropFirst("greet/".count))".utf8)
        }
        try server.serve("divide") { req in
            let parts = req.text.split(separator: " ").compactMap { Int($0) }
            guard parts.count == 2, parts[1] != 0 else {
                throw NetchanError.InvalidArgument(detail: "division by zero")
            }
            return Data("\(parts[0] / parts[1])".utf8)
        }
        let bound = try await server.listen(addr: "tcp://127.0.0.1:0")
        print("listening on \(bound)")
        _ = try await client.connect(addr: bound)
        print(try await client.request("greet/ana", text: ""))
        do {
            _ = try await client.request("divide", text: "1 0")
            fatalError("expected an error")
        } catch let e as NetchanError {
            print("divide 1 0 failed: \(e.code)")
        }
        await client.close()
        await server.close()
    }
}
