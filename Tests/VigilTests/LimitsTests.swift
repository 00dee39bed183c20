import HTTPTypes
@testable import Vigil
import XCTest

/// Limits and timeouts: each one, over loopback, with short settings.
final class LimitsTests: XCTestCase {

    private static let ok: Server.Handler = { _, response in
        try await response.write(HTTPResponse(status: .ok), body: "ok")
    }

    private func assertRejected(
        _ wire: String, status: Int, configure: @escaping (inout Server.Configuration) -> Void = { _ in },
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let calls = Recorder<Int>()
        let server = try await TestServer.start(configure) { request, response in
            calls.append(1)
            try await Self.ok(request, response)
        }
        let client = try server.client()
        try await client.send(wire)
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, status, file: file, line: line)
        XCTAssertEqual(r.header("connection"), "close", file: file, line: line)
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed, file: file, line: line)
        XCTAssertEqual(calls.count, 0, "handler ran", file: file, line: line)
        try await server.stop()
    }

    /// A timeout of `.seconds(Int64.max)` ("never") is the largest number
    /// of milliseconds C takes; it trapped on overflow before.
    func testHugeDurationsSaturate() {
        XCTAssertEqual(milliseconds(.seconds(Int64.max)), UInt64.max)
        XCTAssertEqual(milliseconds(.seconds(UInt64.max / 1000)), UInt64.max / 1000 * 1000)
        XCTAssertEqual(milliseconds(.microseconds(1)), 1)
        XCTAssertEqual(milliseconds(.zero), 0)
        XCTAssertEqual(milliseconds(.seconds(-5)), 0)
        XCTAssertEqual(milliseconds(.milliseconds(1500)), 1500)
    }

    func testTooManyHeadersGets431() async throws {
        var wire = "GET / HTTP/1.1\r\nHost: x\r\n"
        for i in 0..<101 { wire += "X-\(i): v\r\n" }
        try await assertRejected(wire + "\r\n", status: 431)
    }

    func testLongTargetGets414() async throws {
        let target = "/" + String(repeating: "a", count: 9000)
        try await assertRejected("GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n", status: 414)
    }

    /// The limit is checked when the body is read (so that a handler can
    /// raise it first): a Content-Length over it ends the request with
    /// `.bodyTooLarge` and a 413 at the first read, with no body byte read.
    func testContentLengthOverLimitGets413WhenRead() async throws {
        let ended = Signal<(CancellationReason?, Bool)>()
        let server = try await TestServer.start({ $0.maxBodySize = 1000 }) { request, _ in
            var threw = false
            do { _ = try await request.body.collect(upTo: 1 << 20) } catch { threw = true }
            ended.fire((request.cancellation.reason, threw))
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.header("connection"), "close")
        let e = await ended.wait()
        XCTAssertEqual(e?.0, .bodyTooLarge)
        XCTAssertEqual(e?.1, true)
        try await server.stop()
    }

    /// One upload route may take more than `maxBodySize`. Fails before the
    /// fix: the 413 came before any handler ran, so no handler could raise
    /// the limit for a Content-Length body.
    func testPerRequestBodyLimitRaisesAboveMaxBodySize() async throws {
        let got = Signal<Int>()
        let server = try await TestServer.start({ $0.maxBodySize = 1000 }) { request, response in
            request.setBodyLimit(10_000)
            let body = try await request.body.collect(upTo: 1 << 20)
            got.fire(body.count)
            try await response.write(HTTPResponse(status: .ok), body: "\(body.count)")
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "u", count: 5000))
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyString, "5000")
        let n = await got.wait()
        XCTAssertEqual(n, 5000)
        try await server.stop()
    }

    func testChunkedBodyOverLimitThrowsAndGets413() async throws {
        let ended = Signal<(CancellationReason?, Bool)>()
        let server = try await TestServer.start({ $0.maxBodySize = 1000 }) { request, _ in
            var threw = false
            do { _ = try await request.body.collect(upTo: 1 << 20) } catch { threw = true }
            ended.fire((request.cancellation.reason, threw))
        }
        let client = try server.client()
        let chunk = String(repeating: "b", count: 600)
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.header("connection"), "close")
        let e = await ended.wait()
        XCTAssertEqual(e?.0, .bodyTooLarge)
        XCTAssertEqual(e?.1, true)
        try await server.stop()
    }

    func testPerRequestBodyLimit() async throws {
        let ended = Signal<CancellationReason?>()
        let server = try await TestServer.start { request, _ in
            request.setBodyLimit(10)
            _ = try? await request.body.collect(upTo: 1 << 20)
            ended.fire(request.cancellation.reason)
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + String(repeating: "c", count: 100))
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 413)
        let why = await ended.wait()
        XCTAssertEqual(why, .bodyTooLarge)
        try await server.stop()
    }

    /// Slowloris: a head that starts and never ends gets 408 and a close.
    func testHeaderTimeoutGets408() async throws {
        let server = try await TestServer.start({ $0.headerTimeout = .milliseconds(200) }, Self.ok)
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 408)
        XCTAssertEqual(r.header("connection"), "close")
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }

    func testIdleTimeoutClosesKeepAliveConnection() async throws {
        let server = try await TestServer.start({ $0.idleTimeout = .milliseconds(200) }, Self.ok)
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await client.readResponse()
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        let stats = await server.waitForStats { $0.connectionsOpen == 0 }
        XCTAssertEqual(stats?.connectionsOpen, 0)
        try await server.stop()
    }

    func testBodyTimeoutCancelsHandler() async throws {
        let ended = Signal<(CancellationReason?, Timeout?)>()
        let server = try await TestServer.start({ $0.bodyTimeout = .milliseconds(200) }) { request, _ in
            _ = try? await request.body.collect(upTo: 1 << 20)
            ended.fire((request.cancellation.reason, request.cancellation.timeout))
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-a-bit")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 408)
        let e = await ended.wait()
        XCTAssertEqual(e?.0, .timedOut)
        XCTAssertEqual(e?.1, .bodyRead)
        try await server.stop()
    }

    func testWriteTimeoutCancelsHandler() async throws {
        let ended = Signal<(CancellationReason?, Timeout?)>()
        let server = try await TestServer.start({ $0.writeTimeout = .milliseconds(200) }) { request, response in
            let out = try await response.start(HTTPResponse(status: .ok))
            do {
                for _ in 0..<100_000 { try await out.write([UInt8](repeating: 0x71, count: 65536)) }
            } catch {}
            ended.fire((request.cancellation.reason, request.cancellation.timeout))
        }
        let client = try server.client()
        client.setReceiveBuffer(4096)
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        // Never read: the server's writes stop making progress.
        let e = await ended.wait(timeout: 5)
        XCTAssertEqual(e?.0, .timedOut)
        XCTAssertEqual(e?.1, .write)
        try await server.stop()
    }

    func testHandlerTimeoutGets503() async throws {
        let ended = Signal<(CancellationReason?, Timeout?, Bool)>()
        let server = try await TestServer.start({ $0.handlerTimeout = .milliseconds(200) }) { request, _ in
            try? await Task.sleep(for: .seconds(5))
            ended.fire((request.cancellation.reason, request.cancellation.timeout, Task.isCancelled))
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 503)
        let e = await ended.wait()
        XCTAssertEqual(e?.0, .timedOut)
        XCTAssertEqual(e?.1, .handler)
        XCTAssertEqual(e?.2, true)
        try await server.stop()
    }

    func testMaxConnections() async throws {
        let server = try await TestServer.start({ $0.maxConnections = 2 }, Self.ok)
        let a = try server.client(), b = try server.client()
        try await a.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await a.readResponse()
        try await b.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await b.readResponse()
        let c = try server.client()
        let closed = try await c.waitForClose()
        XCTAssertTrue(closed, "the third connection is closed at once")
        // The first two are undisturbed.
        try await a.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let ra = try await a.readResponse()
        XCTAssertEqual(ra.status, 200)
        try await server.stop()
    }

    func testMaxRequestsPerConnection() async throws {
        let server = try await TestServer.start({ $0.maxRequestsPerConnection = 3 }, Self.ok)
        let client = try server.client()
        for i in 1...3 {
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let r = try await client.readResponse()
            XCTAssertEqual(r.header("connection"), i == 3 ? "close" : nil)
        }
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }
}
