import HTTPTypes
@testable import Vigil
import XCTest

/// Ports (by meaning) of the Go net/http tests that the connReader change
/// (golang/go commit faf882d, "make Server Handler's Request.Context be done
/// on conn errors") and its follow-ups touched. Each test names its Go test.
final class GoPortTests: XCTestCase {

    /// Go: TestCloseNotifier. A keep-alive GET whose client closes while the
    /// handler waits on close-notify: the waiter resumes.
    func testCloseNotifier() async throws {
        let inHandler = Signal<Void>(), got = Signal<CancellationReason>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            if let why = try? await request.connectionClosed() { got.fire(why) }
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        _ = await inHandler.wait()
        client.close()
        let why = await got.wait(timeout: 4)
        XCTAssertEqual(why, .clientClosed)
        try await server.stop()
    }

    /// Go: TestCloseNotifierPipelined. Two GETs in one write; each handler
    /// waits 100 ms on close-notify, which must not fire (golang/go#20617,
    /// #23921: pipelined bytes are not a disconnect). Two responses, in order.
    func testCloseNotifierPipelined() async throws {
        let fired = Recorder<CancellationReason>()
        let server = try await TestServer.start { request, response in
            let why = try? await withTimeout(seconds: 0.1) { try await request.connectionClosed() }
            if let why { fired.append(why) }
            try await response.write(HTTPResponse(status: .ok), body: request.head.path ?? "")
        }
        let client = try server.client()
        try await client.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        let rs = try await client.readResponses(2)
        XCTAssertEqual(rs.map(\.bodyString), ["/1", "/2"])
        XCTAssertEqual(fired.all, [])
        // And exactly two: nothing more arrives.
        let extra = try await client.read(throwOnTimeout: false)
        XCTAssertTrue(extra.isEmpty)
        try await server.stop()
    }

    /// Go: TestCloseNotifierChanLeak. 20 HTTP/1.0 requests whose handlers
    /// ask for close-notify and ignore it: no suspended task, no request
    /// object or connection left behind.
    func testCloseNotifierChanLeak() async throws {
        let resumed = Recorder<CancellationReason>()
        let server = try await TestServer.start { request, response in
            Task { if let why = try? await request.connectionClosed() { resumed.append(why) } }
            try await response.write(HTTPResponse(status: .ok), body: "x")
        }
        for _ in 0..<20 {
            let client = try server.client()
            try await client.send("GET / HTTP/1.0\r\n\r\n")
            let r = try await client.readResponse()
            XCTAssertEqual(r.status, 200)
        }
        let stats = await server.waitForStats { $0.requestsLive == 0 && $0.connectionsOpen == 0 }
        XCTAssertEqual(stats?.requestsLive, 0)
        XCTAssertEqual(stats?.connectionsOpen, 0)
        for _ in 0..<200 where resumed.count < 20 { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(resumed.count, 20, "every close-notify waiter resumed")
        try await server.stop()
    }

    /// Go: TestHijackAfterCloseNotifier. Request 1 uses close-notify;
    /// request 2 on the same connection hijacks and answers by hand. Both see
    /// the same connection.
    func testHijackAfterCloseNotifier() async throws {
        let ids = Recorder<UInt64>()
        let server = try await TestServer.start { request, response in
            ids.append(request.connectionID)
            if request.head.path == "/first" {
                Task { _ = try? await request.connectionClosed() }
                try await response.write(HTTPResponse(status: .ok), body: "first")
            } else {
                let conn = try request.hijack()
                try await conn.write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecond")
                try conn.close()
            }
        }
        let client = try server.client()
        try await client.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        let v1 = try await client.readResponse()
        XCTAssertEqual(v1.bodyString, "first")
        try await client.send("GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        let v2 = try await client.readResponse()
        XCTAssertEqual(v2.bodyString, "second")
        XCTAssertEqual(ids.count, 2)
        XCTAssertEqual(Set(ids.all).count, 1)
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }

    /// Go: TestHijackBeforeRequestBodyRead (the close-notify half). A POST
    /// with a 1 MiB body: the handler takes close-notify, reads exactly the
    /// body, then the client closes and close-notify fires.
    func testCloseNotifyAfterReadingLargeBody() async throws {
        let read = Signal<Int>(), got = Signal<CancellationReason>()
        let server = try await TestServer.start { request, _ in
            let waiter = Task { try await request.connectionClosed() }
            let body = try await request.body.collect(upTo: 2 << 20)
            read.fire(body.count)
            if let why = try? await waiter.value { got.fire(why) }
        }
        let client = try server.client()
        let size = 1 << 20
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n")
        try await client.send([UInt8](repeating: 0x41, count: size))
        let n = await read.wait()
        XCTAssertEqual(n, size)
        client.close()
        let why = await got.wait(timeout: 4)
        XCTAssertEqual(why, .clientClosed)
        try await server.stop()
    }

    /// Bytes sent after the request and before the hijack all reach the
    /// hijacked stream, first; the request is not cancelled by them.
    private func hijackGetsBackgroundBytes(count: Int, asBody: Bool) async throws {
        let gotBytes = Signal<[UInt8]>(), cancelled = Signal<Bool>()
        let arrived = Signal<Void>()
        let server = try await TestServer.start { request, _ in
            // Let the extra bytes arrive and sit in the core's buffer.
            _ = await arrived.wait()
            try? await Task.sleep(for: .milliseconds(50))
            cancelled.fire(request.cancellation.isCancelled)
            let conn = try request.hijack()
            var all: [UInt8] = []
            for try await chunk in conn {
                all += chunk
                if all.count >= count { break }
            }
            gotBytes.fire(all)
            try await conn.write("done")
        }
        let client = try server.client()
        let extra = (0..<count).map { UInt8(truncatingIfNeeded: $0 % 251) }
        if asBody {
            try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(count)\r\n\r\n")
        } else {
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        try await client.send(extra)
        arrived.fire()
        let got = await gotBytes.wait()
        XCTAssertEqual(got?.count, count)
        XCTAssertTrue(got == extra, "hijacked stream got other bytes")
        let wasCancelled = await cancelled.wait()
        XCTAssertEqual(wasCancelled, false)
        let tail = try await client.read(until: { $0.count >= 4 })
        XCTAssertEqual(String(decoding: tail, as: UTF8.self), "done")
        try await server.stop()
    }

    /// Go: TestServerHijackGetsBackgroundByte.
    func testHijackGetsBackgroundByte() async throws {
        try await hijackGetsBackgroundBytes(count: 1, asBody: false)
    }

    /// Go: TestServerHijackGetsBackgroundByte_big (8 KiB).
    func testHijackGetsBackgroundByteBig() async throws {
        try await hijackGetsBackgroundBytes(count: 8 << 10, asBody: false)
    }

    /// Go: TestServerHijackGetsFullBody (100 KiB unread body).
    func testHijackGetsFullBody() async throws {
        try await hijackGetsBackgroundBytes(count: 100 << 10, asBody: true)
    }

    /// Go: TestServerDuplicateBackgroundRead. 5 connections each pipelining
    /// 2000 GETs, with a reader draining responses: all answered, no hang.
    func testDuplicateBackgroundRead() async throws {
        let server = try await TestServer.start { _, response in
            try await response.write(HTTPResponse(status: .ok), body: "y")
        }
        let perConn = 2000
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    let client = try server.client(timeout: 20)
                    let req = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                    var wire: [UInt8] = []
                    for _ in 0..<perConn { wire += req }
                    async let sent: Void = client.send(wire)
                    let rs = try await client.readResponses(perConn)
                    try await sent
                    return rs.filter { $0.status == 200 && $0.bodyString == "y" }.count
                }
            }
            var total = 0
            for try await n in group { total += n }
            XCTAssertEqual(total, 5 * perConn)
        }
        try await server.stop()
    }

    /// Go: TestServerReaderFromOrder. A 3 MiB POST whose handler streams its
    /// response while reading the body.
    func testReaderFromOrder() async throws {
        let server = try await TestServer.start { request, response in
            let out = try await response.start(HTTPResponse(status: .ok))
            for try await chunk in request.body { try await out.write(chunk) }
            try await out.finish()
        }
        let client = try server.client(timeout: 20)
        let body = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
        async let sent: Void = client.send(body)
        let r = try await client.readResponse()
        try await sent
        XCTAssertEqual(r.body.count, body.count)
        XCTAssertTrue(r.body == body)
        try await server.stop()
    }

    /// Go: TestRequestBodyCloseDoesntBlock. Content-Length 100000 and no
    /// body; the handler returns after 500 ms while a child task still reads
    /// the body: that read ends with an error, not a hang.
    func testBodyReadAfterHandlerReturnsFails() async throws {
        let readResult = Signal<String>()
        let server = try await TestServer.start { request, response in
            Task {
                do {
                    _ = try await request.body.collect(upTo: 1 << 20)
                    readResult.fire("completed")
                } catch let e as RequestEndedError {
                    readResult.fire("ended: \(e.reason)")
                } catch {
                    readResult.fire("other: \(error)")
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            try await response.write(HTTPResponse(status: .ok), body: "bye")
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        let result = await readResult.wait(timeout: 4)
        XCTAssertEqual(result, "ended: handlerFinished")
        try await server.stop()
    }

    /// Go: TestHandlerFinishSkipBigContentLengthRead. Content-Length
    /// 9999999999 and a handler that answers 404 without reading: the server
    /// does not read the body, and closes.
    func testHandlerFinishSkipsBigContentLengthRead() async throws {
        // No body limit, so that the handler (not the 413 check) sees it.
        let server = try await TestServer.start({ $0.maxBodySize = nil }) { _, response in
            try await response.write(HTTPResponse(status: .notFound), body: "nope")
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual(r.header("connection"), "close")
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }

    /// Go: TestClientWriteShutdown. A client that connects and half-closes
    /// at once gets nothing, and the connection closes.
    func testClientWriteShutdown() async throws {
        let calls = Recorder<Int>()
        let server = try await TestServer.start { _, _ in calls.append(1) }
        let client = try server.client()
        client.shutdownWrite()
        let got = try await client.read(throwOnTimeout: true)
        XCTAssertEqual(got, [])
        XCTAssertEqual(calls.count, 0)
        try await server.stop()
    }

    /// Go: TestServerKeepAliveAfterWriteError. A write that fails ends the
    /// connection; the next request comes on a new one.
    func testKeepAliveAfterWriteError() async throws {
        let firstEnded = Signal<CancellationReason?>()
        let server = try await TestServer.start { request, response in
            if request.head.path == "/stream" {
                let out = try await response.start(HTTPResponse(status: .ok))
                do {
                    while true { try await out.write([UInt8](repeating: 0x7a, count: 65536)) }
                } catch {
                    firstEnded.fire(request.cancellation.reason)
                }
            } else {
                try await response.write(HTTPResponse(status: .ok), body: "fresh")
            }
        }
        let c1 = try server.client()
        try await c1.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await c1.read(until: { $0.count > 1000 })
        c1.reset()
        let why = await firstEnded.wait()
        XCTAssertNotNil(why ?? nil)
        let c2 = try server.client()
        try await c2.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try await c2.readResponse()
        XCTAssertEqual(r.bodyString, "fresh")
        XCTAssertEqual(server.server.statistics?.connectionsAccepted, 2)
        try await server.stop()
    }

    // MARK: TestServerConnState

    private func connStates(
        _ script: @escaping @Sendable (TestServer) async throws -> Void,
        handler: @escaping Server.Handler = { _, response in
            try await response.write(HTTPResponse(status: .ok), body: "ok")
        }
    ) async throws -> [Server.ConnectionState] {
        let log = Recorder<(UInt64, Server.ConnectionState)>()
        let server = try await TestServer.start({ config in
            config.onConnectionState = { id, state in log.append((id, state)) }
        }, handler)
        try await script(server)
        for _ in 0..<400 where log.all.last?.1 != .closed { try await Task.sleep(for: .milliseconds(5)) }
        try await server.stop()
        let ids = Set(log.all.map(\.0))
        XCTAssertEqual(ids.count, 1, "one connection")
        return log.all.map(\.1)
    }

    /// Go: TestServerConnState, keep-alive then Connection: close.
    func testConnStateKeepAliveThenClose() async throws {
        let states = try await connStates { server in
            let c = try server.client()
            try await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try await c.readResponse()
            try await c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            _ = try await c.readResponse()
            _ = try await c.waitForClose()
        }
        XCTAssertEqual(states, [.new, .active, .idle, .active, .closed])
    }

    /// Go: TestServerConnState, hijack (Vigil also reports the close).
    func testConnStateHijack() async throws {
        let states = try await connStates({ server in
            let c = try server.client()
            try await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try await c.waitForClose()
        }, handler: { request, _ in
            let conn = try request.hijack()
            try conn.close()
        })
        XCTAssertEqual(states, [.new, .active, .hijacked, .closed])
    }

    /// Go: TestServerConnState, connect then close.
    func testConnStateConnectThenClose() async throws {
        let states = try await connStates { server in
            let c = try server.client()
            try await Task.sleep(for: .milliseconds(20))
            c.close()
        }
        XCTAssertEqual(states, [.new, .closed])
    }

    /// Go: TestServerConnState, a bogus request.
    func testConnStateBogusRequest() async throws {
        let states = try await connStates { server in
            let c = try server.client()
            try await c.send("BOGUS\r\n\r\n")
            _ = try await c.waitForClose()
        }
        XCTAssertEqual(states, [.new, .active, .closed])
    }

    /// Go: TestServerConnState, a GET then the client closes.
    func testConnStateGetThenClientClose() async throws {
        let states = try await connStates { server in
            let c = try server.client()
            try await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try await c.readResponse()
            c.close()
        }
        XCTAssertEqual(states, [.new, .active, .idle, .closed])
    }
}
