// The example service (examples/openapi: generated code over
// VigilTransport) over loopback: each operation, and /slow cancelled by a
// client leaving with FIN and with RST; then the built executable itself.
import Foundation
import HTTPTypes
import OpenAPIExampleService
import OpenAPIRuntime
import Vigil
import VigilOpenAPI
import VigilTesting
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class ExampleServiceTests: XCTestCase {
    /// Tells when an operation started (after the runtime decoded its input).
    struct StartSignal: ServerMiddleware {
        let started: Mailbox<String>
        func intercept(
            _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
            next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
        ) async throws -> (HTTPResponse, HTTPBody?) {
            started.put(operationID)
            return try await next(request, body, metadata)
        }
    }

    func start(_ started: Mailbox<String> = Mailbox()) async throws -> Serving {
        let transport = VigilTransport()
        try ExampleService().register(on: transport, middlewares: [StartSignal(started: started)])
        // Below the uploads: /upload lifts the limit for its request.
        return try await Serving.start(transport) { $0.maxBodySize = 1 << 20 }
    }

    /// The service on a `VigilTestServer` for the length of `test`.
    func withService(
        _ started: Mailbox<String> = Mailbox(), _ test: (VigilTestServer) async throws -> Void
    ) async throws {
        let transport = VigilTransport()
        try ExampleService().register(on: transport, middlewares: [StartSignal(started: started)])
        try await VigilTestServer.withServer(
            configure: { $0.maxBodySize = 1 << 20 }, handler: transport.handle, test: test)
    }

    func testGreet() async throws {
        try await withService { server in
            let c = try await server.connect()
            var r = try await c.execute(.get, "/greet/World")
            XCTAssertEqual(r.status.code, 200)
            XCTAssertEqual(r.headerFields[.contentType], "application/json; charset=utf-8")
            XCTAssertEqual(r.bodyText, #"{"message":"Hello, World!"}"#)
            // Percent-decoded by the time the operation sees it; %2F stays in
            // the one segment.
            r = try await c.execute(.get, "/greet/J%C3%B6rg%20%2F%20100%25")
            XCTAssertEqual(r.status.code, 200)
            XCTAssertEqual(try r.json() as? [String: String], ["message": "Hello, Jörg / 100%!"])
            r = try await c.execute(.head, "/greet/World")
            XCTAssertEqual(r.status.code, 200)
            XCTAssertEqual(r.headerFields[.contentLength], "27")
            XCTAssertEqual(r.body, [])
        }
    }

    func testNotFoundAndMethodNotAllowed() async throws {
        try await withService { server in
            let c = try await server.connect()
            var r = try await c.execute(.get, "/nothing/here")
            XCTAssertEqual(r.status.code, 404)
            r = try await c.execute(.get, "/greet")
            XCTAssertEqual(r.status.code, 404)
            r = try await c.execute(.post, "/greet/World", body: Array("x".utf8))
            XCTAssertEqual(r.status.code, 405)
            XCTAssertEqual(r.headerFields[.allow], "GET, HEAD")
            r = try await c.execute(.get, "/upload")
            XCTAssertEqual(r.status.code, 405)
            XCTAssertEqual(r.headerFields[.allow], "POST")
            r = try await c.execute(.delete, "/files/a.zip")
            XCTAssertEqual(r.status.code, 405)
            XCTAssertEqual(r.headerFields[.allow], "GET, HEAD")
        }
    }

    /// 5 MiB, sent in pieces while the operation counts them.
    func testUploadFiveMiB() async throws {
        let s = try await start()
        let c = try s.client()
        let size = 5 << 20
        try await c.send(
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: \(size)\r\n\r\n")
        let piece = [UInt8](repeating: 0x5a, count: 128 * 1024)
        for _ in 0..<(size / piece.count) { try await c.send(piece) }
        let r = try await c.response()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, #"{"bytes":5242880}"#)
        // A wrong content type: the runtime's 415.
        let bad = try await c.request("POST", "/upload", headers: ["Content-Type: text/plain"], body: [1])
        XCTAssertEqual(bad.status, 415)
        try await s.stop()
    }

    /// `/files/{name}.zip`: the name decoded, the body of unknown length
    /// sent chunked.
    func testChunkedDownloadWithMixedSegment() async throws {
        try await withService { server in
            let c = try await server.connect()
            let streamed = try await c.stream(
                HTTPRequest(method: .get, scheme: nil, authority: nil,
                            path: "/files/q%C3%A4rterly%20v1.2.zip?size=100000"))
            XCTAssertEqual(streamed.status.code, 200)
            XCTAssertEqual(streamed.head.headerFields[.contentType], "application/zip")
            XCTAssertEqual(streamed.head.headerFields[.transferEncoding], "chunked")
            XCTAssertNil(streamed.head.headerFields[.contentLength])
            let body = try await streamed.body.collect()
            let name = Array("qärterly v1.2".utf8)
            XCTAssertEqual(body.count, 100_000)
            XCTAssertEqual(body, (0..<100_000).map { name[$0 % name.count] })
            var r = try await c.execute(.get, "/files/x.zip")
            XCTAssertEqual(r.body.count, 1024)
            r = try await c.execute(.get, "/files/x.zip?size=-1")
            XCTAssertEqual(r.status.code, 400)
            r = try await c.execute(.get, "/files/x.tar")
            XCTAssertEqual(r.status.code, 404)
        }
    }

    func testSlowAnswersAfterItsTime() async throws {
        let s = try await start()
        let c = try s.client()
        var r = try await c.request("GET", "/slow?seconds=0.05")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, #"{"slept":0.05}"#)
        r = try await c.request("GET", "/slow?seconds=1")
        XCTAssertEqual(r.text, #"{"slept":1}"#)
        r = try await c.request("GET", "/slow?seconds=abc")
        XCTAssertEqual(r.status, 400)
        r = try await c.request("GET", "/slow")
        XCTAssertEqual(r.status, 400)
        r = try await c.request("GET", "/slow?seconds=4000")
        XCTAssertEqual(r.status, 400)
        r = try await c.request("GET", "/cancellations")
        XCTAssertEqual(r.text, "[]")
        try await s.stop()
    }

    /// A client leaving /slow cancels the generated operation's task (its
    /// sleep throws), and /cancellations names the reason, oldest first.
    func testClientLeavingSlowCancelsIt() async throws {
        let started = Mailbox<String>()
        try await withService(started) { server in
            var expected: [String] = []
            let observer = try await server.connect()
            for leave in [VigilTestClient.Disconnect.fin, .reset, .fin] {
                let c = try await server.connect()
                try await c.send(.get, "/slow?seconds=30")
                let op = await started.take()
                XCTAssertEqual(op, "slow", "\(leave)")
                c.disconnect(leave)
                // The request ended with the reason the server saw...
                let end = try await server.nextEnd()
                XCTAssertEqual(end.head.path, "/slow?seconds=30")
                let reason: CancellationReason = leave == .fin ? .clientClosed : .reset
                XCTAssertEqual(end.reason, reason)
                // ...and the operation records it under the same name (as
                // its task unwinds: it may come a moment after).
                expected.append("\(reason)")
                var seen: [String] = []
                let ok = try await eventually {
                    let r = try await observer.execute(.get, "/cancellations")
                    let op = await started.take()
                    XCTAssertEqual(op, "cancellations")
                    let ended = try await server.nextEndReason()
                    XCTAssertEqual(ended, .handlerFinished)
                    seen = try r.json() as? [String] ?? []
                    return seen == expected
                }
                XCTAssertTrue(ok, "\(leave): /cancellations says \(seen), not \(expected)")
            }
        }
    }

    /// The executable as built (`swift build --product vigil-openapi-example`),
    /// next to this test bundle: --host/--port, serves, SIGTERM stops it.
    func testExecutable() async throws {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        let candidates = [dir, dir.deletingLastPathComponent()].map {
            $0.appendingPathComponent("vigil-openapi-example")
        }
        guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw XCTSkip("vigil-openapi-example is not built next to the tests (\(dir.path))")
        }
        // posix_spawn rather than Foundation's Process, which keeps an
        // allocation of its own that LeakSanitizer reports.
        var out: [Int32] = [-1, -1]
        guard pipe(&out) == 0 else { return XCTFail("pipe: \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_addclose(&actions, out[0])
        posix_spawn_file_actions_addclose(&actions, out[1])
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] =
            ([exe.path, "--host", "127.0.0.1", "--port", "0"] as [String]).map { strdup($0) } + [nil]
        let env: [UnsafeMutablePointer<CChar>?] =
            ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + env { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, exe.path, &actions, nil, argv, env)
        Glibc.close(out[1])
        let reader = out[0]
        defer { Glibc.close(reader) }
        guard spawned == 0 else { return XCTFail("posix_spawn: \(spawned)") }
        var reaped = false
        defer {
            if !reaped {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }

        // "vigil-openapi-example listening on 127.0.0.1:PORT"
        let line = await within(seconds: 20) {
            var bytes: [UInt8] = []
            var b: UInt8 = 0
            while !bytes.contains(UInt8(ascii: "\n")), read(reader, &b, 1) == 1 { bytes.append(b) }
            return String(decoding: bytes, as: UTF8.self)
        } ?? ""
        guard let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            return XCTFail("no port in \(line.debugDescription)")
        }
        let r = try await Client(port: port).request("GET", "/greet/exe")
        XCTAssertEqual(r.text, #"{"message":"Hello, exe!"}"#)

        kill(pid, SIGTERM)
        let child = pid
        let exited = await within(seconds: 10) { () -> Int32 in
            var status: Int32 = 0
            waitpid(child, &status, 0)
            return status
        }
        if exited != nil { reaped = true }
        // Exited (not signalled) with status 0: WIFEXITED and WEXITSTATUS.
        XCTAssertEqual(exited, 0, "not stopped by SIGTERM within 10 s, or failed (wait status \(exited.map(String.init) ?? "none"))")
    }
}

extension VigilTestResponse {
    /// The body as JSON.
    func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) }
}
