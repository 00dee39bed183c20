import HTTPTypes
@testable import Vigil
import XCTest

/// HTTP/1.x behaviour over raw sockets: keep-alive, pipelining, bodies,
/// HEAD, 100-continue, HTTP/1.0.
final class HTTPTests: XCTestCase {

    /// A small router shared by these tests.
    static let handler: Server.Handler = { request, response in
        switch request.head.path ?? "" {
        case "/echo":
            var out: ResponseBodyWriter?
            for try await chunk in request.body {
                if out == nil { out = try await response.start(HTTPResponse(status: .ok)) }
                try await out!.write(chunk)
            }
            if let out { try await out.finish() } else { try await response.write(HTTPResponse(status: .ok)) }
        case "/len":
            let all = try await request.body.collect(upTo: 1 << 24)
            try await response.write(HTTPResponse(status: .ok), body: "\(all.count)")
        default:
            try await response.write(
                HTTPResponse(status: .ok, headerFields: [.contentType: "text/plain"]),
                body: "path=\(request.head.path ?? "")")
        }
    }

    /// Go: TestCloseNotifierPipelined / the core issue: two GETs in one
    /// write, both answered in order, neither handler cancelled.
    func testPipelinedRequestsAnsweredInOrderWithoutCancel() async throws {
        let cancelled = Recorder<Bool>()
        let server = try await TestServer.start { request, response in
            try? await Task.sleep(for: .milliseconds(100))
            cancelled.append(Task.isCancelled || request.cancellation.isCancelled)
            try await response.write(HTTPResponse(status: .ok), body: request.head.path ?? "")
        }
        let client = try server.client()
        try await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        let rs = try await client.readResponses(2)
        XCTAssertEqual(rs.map(\.bodyString), ["/a", "/b"])
        XCTAssertEqual(cancelled.all, [false, false])
        try await server.stop()
    }

    func testThousandSequentialRequestsOnOneConnection() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        for i in 0..<1000 {
            try await client.send("GET /\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            let r = try await client.readResponse()
            XCTAssertEqual(r.bodyString, "path=/\(i)")
            if r.bodyString != "path=/\(i)" { break }
        }
        let stats = server.server.statistics
        XCTAssertEqual(stats?.connectionsAccepted, 1)
        XCTAssertEqual(stats?.requestsTotal, 1000)
        try await server.stop()
    }

    func testChunkedRequestBodyEchoedExactly() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        var expected: [UInt8] = []
        var wire = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i in 0..<50 {
            let piece = String(repeating: Character(UnicodeScalar(UInt8(65 + i % 26))), count: 1 + i * 37)
            expected += Array(piece.utf8)
            wire += String(piece.utf8.count, radix: 16) + "\r\n" + piece + "\r\n"
        }
        wire += "0\r\n\r\n"
        // Sent in awkward pieces, to split chunk headers across reads.
        let bytes = Array(wire.utf8)
        var off = 0
        while off < bytes.count {
            let n = min(7 + off % 13, bytes.count - off)
            try await client.send(Array(bytes[off..<(off + n)]))
            off += n
        }
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.body, expected)
        try await server.stop()
    }

    func testHeadGetsHeadersWithoutBody() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        try await client.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try await client.readResponse(head: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("content-length"), "7")  // as GET /h would have
        let get = try await client.readResponse()
        XCTAssertEqual(get.bodyString, "path=/g")
        try await server.stop()
    }

    func testExpectContinue() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        try await client.send("POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let interim = try await client.readResponse()
        XCTAssertEqual(interim.status, 100)
        try await client.send("hello")
        let final = try await client.readResponse()
        XCTAssertEqual(final.status, 200)
        XCTAssertEqual(final.bodyString, "5")
        XCTAssertNil(final.header("connection"))  // still keep-alive
        try await server.stop()
    }

    /// A handler that answers without reading an expected body: no 100, and
    /// the connection closes (the client may or may not send the body).
    func testExpectContinueAnsweredWithoutReadingCloses() async throws {
        let server = try await TestServer.start { _, response in
            try await response.write(HTTPResponse(status: .ok), body: "no thanks")
        }
        let client = try server.client()
        try await client.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("connection"), "close")
        let v1 = try await client.waitForClose()
        XCTAssertTrue(v1)
        try await server.stop()
    }

    func testHTTP10WithoutKeepAliveCloses() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        try await client.send("GET /old HTTP/1.0\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "path=/old")
        XCTAssertEqual(r.header("connection"), "close")
        let v2 = try await client.waitForClose()
        XCTAssertTrue(v2)
        try await server.stop()
    }

    func testHTTP10KeepAlive() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        for i in 0..<3 {
            try await client.send("GET /k\(i) HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let r = try await client.readResponse()
            XCTAssertEqual(r.bodyString, "path=/k\(i)")
            XCTAssertEqual(r.header("connection"), "keep-alive")
        }
        try await server.stop()
    }

    /// HTTP/1.0 has no chunking: a streamed body runs until the close.
    func testHTTP10StreamedBodyEndsWithClose() async throws {
        let server = try await TestServer.start { _, response in
            let w = try await response.start(HTTPResponse(status: .ok))
            try await w.write("one,")
            try await w.write("two")
            try await w.finish()
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let all = String(decoding: try await client.readToEnd(), as: UTF8.self)
        XCTAssertTrue(all.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertTrue(all.contains("Connection: close\r\n"))
        XCTAssertTrue(all.hasSuffix("\r\n\r\none,two"), all)
        try await server.stop()
    }

    func testRequestHeadIsMapped() async throws {
        let seen = Signal<HTTPRequest>()
        let server = try await TestServer.start { request, response in
            seen.fire(request.head)
            try await response.write(HTTPResponse(status: .noContent))
        }
        let client = try server.client()
        try await client.send("PUT /p?q=1 HTTP/1.1\r\nHost: example.test:81\r\nX-One: a\r\nx-one: b\r\nContent-Length: 0\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 204)
        XCTAssertNil(r.header("content-length"))
        let head = await seen.wait()
        XCTAssertEqual(head?.method, .put)
        XCTAssertEqual(head?.path, "/p?q=1")
        XCTAssertEqual(head?.authority, "example.test:81")
        XCTAssertEqual(head?.headerFields[values: HTTPField.Name("x-one")!], ["a", "b"])
        try await server.stop()
    }

    /// A body read after the handler returned is an error, not a crash.
    func testBodyReadAfterHandlerReturnedThrows() async throws {
        let escaped = Signal<RequestBody>()
        let server = try await TestServer.start { request, response in
            escaped.fire(request.body)
            try await response.write(HTTPResponse(status: .ok), body: "bye")
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        _ = try await client.readResponse()
        let body = await escaped.wait()!
        try await Task.sleep(for: .milliseconds(50))
        do {
            for try await _ in body {}
            XCTFail("reading a finished request's body should throw")
        } catch let e as RequestEndedError {
            XCTAssertEqual(e.reason, .handlerFinished)
        }
        try await server.stop()
    }

    func testBadRequestGets400AndClose() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n Folded: yes\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.header("connection"), "close")
        let v3 = try await client.waitForClose()
        XCTAssertTrue(v3)
        // The server keeps serving others.
        let other = try server.client()
        try await other.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        let v4 = try await other.readResponse().bodyString
        XCTAssertEqual(v4, "path=/ok")
        try await server.stop()
    }

    func testIPv6Loopback() async throws {
        let server = try await TestServer.start({ $0.host = "::1" }, Self.handler)
        let client = try RawClient(port: server.port, host: "::1")
        try await client.send("GET /six HTTP/1.1\r\nHost: x\r\n\r\n")
        let v5 = try await client.readResponse().bodyString
        XCTAssertEqual(v5, "path=/six")
        try await server.stop()
    }

    /// Found by the fuzzer: trailers after a chunked body arrive when the
    /// head already went to the handler; they are dropped, not a crash.
    func testChunkedTrailersAreDropped() async throws {
        let server = try await TestServer.start(Self.handler)
        let client = try server.client()
        try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        let rs = try await client.readResponses(2)
        XCTAssertEqual(rs[0].bodyString, "abc")
        XCTAssertEqual(rs[1].bodyString, "path=/after")
        try await server.stop()
    }

    /// Found by the fuzzer: a handler that starts reading the body and
    /// returns at once gets no body callback after it finished, and the next
    /// request is served.
    func testHandlerReturningMidBodyKeepsServing() async throws {
        let server = try await TestServer.start { request, response in
            if request.head.path == "/started" {
                var it = request.body.makeAsyncIterator()
                _ = try await it.next()
            }
            try await response.write(HTTPResponse(status: .ok), body: request.head.path ?? "")
        }
        let client = try server.client()
        try await client.send("POST /started HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        let first = try await client.readResponse()
        XCTAssertEqual(first.bodyString, "/started")
        try await client.send("defGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        let second = try await client.readResponse()
        XCTAssertEqual(second.bodyString, "/next")
        try await server.stop()
    }

    /// Two loops (one SO_REUSEPORT listener each): many connections with
    /// pipelined requests are all answered, handlers running on both loops.
    func testTwoLoopsServeEveryConnection() async throws {
        let server = try await TestServer.start({ $0.loops = 2 }) { request, response in
            try await response.write(HTTPResponse(status: .ok), body: request.head.path ?? "")
        }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for c in 0..<8 {
                group.addTask {
                    let client = try server.client(timeout: 20)
                    var wire = ""
                    for i in 0..<200 { wire += "GET /\(c)/\(i) HTTP/1.1\r\nHost: x\r\n\r\n" }
                    try await client.send(wire)
                    let rs = try await client.readResponses(200)
                    return zip(rs, 0..<200).filter { $0.0.bodyString == "/\(c)/\($0.1)" }.count
                }
            }
            var total = 0
            for try await n in group { total += n }
            XCTAssertEqual(total, 8 * 200)
        }
        let stats = await server.waitForStats { $0.requestsLive == 0 }
        XCTAssertEqual(stats?.requestsTotal, 1600)
        try await server.stop()
    }
}
