import HTTPTypes
@testable import Vigil
import XCTest

/// Where Vigil goes beyond Go: hijack with close-notify, disconnects seen
/// while reading is paused, the half-close policy, and every reason.
final class SemanticsTests: XCTestCase {

    /// After a hijack the always-pending read keeps running: a reset of the
    /// hijacked connection cancels the handler and resumes close-notify with
    /// the reason (Go cannot: golang/go#22347, #32314).
    func testHijackedConnectionStillReportsItsEnd() async throws {
        let hijacked = Signal<Void>(), got = Signal<(CancellationReason, Bool)>()
        let server = try await TestServer.start { request, _ in
            let conn = try request.hijack()
            try await conn.write("hello\n")
            hijacked.fire()
            let why = try await request.connectionClosed()
            got.fire((why, Task.isCancelled))
        }
        let client = try server.client()
        try await client.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: custom\r\nConnection: Upgrade\r\n\r\n")
        _ = try await client.read(until: { $0.count >= 6 })
        _ = await hijacked.wait()
        client.reset()
        let r = await got.wait(timeout: 4)
        XCTAssertEqual(r?.0, .reset)
        XCTAssertEqual(r?.1, true)
        try await server.stop()
    }

    /// A hijacked line-echo protocol: reads and writes raw bytes, and the
    /// client's FIN ends the stream in "finish" half-close mode.
    func testHijackedEchoUntilHalfClose() async throws {
        let server = try await TestServer.start({ $0.halfClose = .finishResponse }) { request, _ in
            let conn = try request.hijack()
            try await conn.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
            for try await chunk in conn { try await conn.write(chunk) }
            try await conn.write("bye\n")
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        let head = try await client.readResponse(head: true)
        XCTAssertEqual(head.status, 101)
        try await client.send("one\n")
        let one = try await client.read(until: { $0.count >= 4 })
        XCTAssertEqual(String(decoding: one, as: UTF8.self), "one\n")
        try await client.send("two\n")
        client.shutdownWrite()
        let rest = String(decoding: try await client.readToEnd(), as: UTF8.self)
        XCTAssertEqual(rest, "two\nbye\n")
        try await server.stop()
    }

    /// Backpressure: 1 MiB of pipelined requests behind a waiting handler
    /// fills the read buffer and pauses reading; an RST during the pause is
    /// still noticed by the socket probe, and the handler is cancelled.
    func testResetNoticedWhileReadingIsPaused() async throws {
        let inHandler = Signal<Void>(), cancelledAt = Signal<(CancellationReason?, ContinuousClock.Instant)>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            await withTaskCancellationHandler {
                try? await Task.sleep(for: .seconds(10))
            } onCancel: {
                cancelledAt.fire((request.cancellation.reason, .now))
            }
        }
        let client = try server.client()
        try await client.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        let one = Array("GET /next HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var wire: [UInt8] = []
        while wire.count < 1 << 20 { wire += one }
        // Most of it stays in the socket buffers: the core stops reading at
        // its 64 KiB cap. Send what fits without blocking the test.
        async let sent: Void = client.send(wire)
        try await Task.sleep(for: .milliseconds(200))
        let t0 = ContinuousClock.now
        client.reset()
        _ = try? await sent
        let r = await cancelledAt.wait(timeout: 4)
        XCTAssertEqual(r?.0, .reset)
        if let r {
            let latency = r.1 - t0
            print("reset noticed while paused after \(latency)")
            // The probe runs every 50 ms; generous bound for a loaded machine.
            XCTAssertLessThan(latency, .milliseconds(500))
        }
        try await server.stop()
    }

    /// A handler that never reads a large body: reading pauses at the cap,
    /// and the client leaving is still noticed.
    func testClientCloseNoticedWhileBodyUnread() async throws {
        let inHandler = Signal<Void>(), got = Signal<CancellationReason>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            if let why = try? await request.connectionClosed() { got.fire(why) }
        }
        let client = try server.client()
        let size = 4 << 20
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n")
        _ = await inHandler.wait()
        async let sent: Void = client.send([UInt8](repeating: 1, count: size))
        try await Task.sleep(for: .milliseconds(200))
        client.reset()
        _ = try? await sent
        let why = await got.wait(timeout: 4)
        XCTAssertEqual(why, .reset)
        try await server.stop()
    }

    /// Half-close, default policy: a FIN while the request runs cancels it.
    func testHalfCloseCancelsByDefault() async throws {
        let inHandler = Signal<Void>(), got = Signal<CancellationReason?>()
        let server = try await TestServer.start { request, response in
            inHandler.fire()
            try? await Task.sleep(for: .seconds(10))
            got.fire(request.cancellation.reason)
            try await response.write(HTTPResponse(status: .ok), body: "late")
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        client.shutdownWrite()
        let why = await got.wait(timeout: 4)
        XCTAssertEqual(why, .clientClosed)
        let rest = try await client.readToEnd()
        XCTAssertEqual(rest, [], "no response after a cancel")
        try await server.stop()
    }

    /// Half-close, "finish the response": the handler is not cancelled, the
    /// response arrives, then the connection closes.
    func testHalfCloseFinishResponse() async throws {
        let inHandler = Signal<Void>(), cancelled = Signal<Bool>()
        let server = try await TestServer.start({ $0.halfClose = .finishResponse }) { request, response in
            inHandler.fire()
            try await Task.sleep(for: .milliseconds(100))
            cancelled.fire(Task.isCancelled)
            try await response.write(HTTPResponse(status: .ok), body: "finished")
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        client.shutdownWrite()
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "finished")
        let wasCancelled = await cancelled.wait()
        XCTAssertEqual(wasCancelled, false)
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }

    /// "writeFailed": with the finish policy the core stops reading after
    /// the client's FIN, so a later RST is learnt from the next write.
    func testWriteFailedReason() async throws {
        let started = Signal<Void>(), ended = Signal<CancellationReason?>()
        let server = try await TestServer.start({ $0.halfClose = .finishResponse }) { request, response in
            let out = try await response.start(HTTPResponse(status: .ok))
            try await out.write("first\n")
            started.fire()
            do {
                for _ in 0..<500 {
                    try await Task.sleep(for: .milliseconds(10))
                    try await out.write("more\n")
                }
            } catch {}
            ended.fire(request.cancellation.reason)
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.shutdownWrite()
        _ = await started.wait()
        _ = try await client.read(until: { $0.count > 10 })
        // Let the loop read the FIN first; an RST that arrives with the FIN
        // still unread is rightly reported as "reset".
        try await Task.sleep(for: .milliseconds(100))
        client.reset()
        let why = await ended.wait(timeout: 5)
        XCTAssertEqual(why, .writeFailed)
        try await server.stop()
    }

    /// "serverShutdown": a handler still running when the grace period
    /// (200 ms here) ends is cancelled with that reason.
    func testServerShutdownReason() async throws {
        let inHandler = Signal<Void>(), got = Signal<CancellationReason?>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            try? await Task.sleep(for: .seconds(10))
            got.fire(request.cancellation.reason)
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        try await server.stop()
        let why = await got.wait()
        XCTAssertEqual(why, .serverShutdown)
    }

    /// Shutdown lets a request finish within the grace period; its response
    /// says `Connection: close`.
    func testShutdownLetsInFlightRequestFinish() async throws {
        let inHandler = Signal<Void>()
        let server = try await TestServer.start({ $0.shutdownGracePeriod = .seconds(5) }) { _, response in
            inHandler.fire()
            try await Task.sleep(for: .milliseconds(300))
            try await response.write(HTTPResponse(status: .ok), body: "made it")
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        async let stopped: Void = server.stop()
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "made it")
        XCTAssertEqual(r.header("connection"), "close")
        try await stopped
    }

    /// "badRequest": the chunked body turns malformed while the handler
    /// reads it: the read throws and the reason says so.
    func testMalformedBodyReason() async throws {
        let ended = Signal<(CancellationReason?, Bool)>()
        let server = try await TestServer.start { request, _ in
            var threw = false
            do { _ = try await request.body.collect(upTo: 1 << 20) } catch { threw = true }
            ended.fire((request.cancellation.reason, threw))
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n")
        let r = await ended.wait(timeout: 4)
        XCTAssertEqual(r?.0, .badRequest)
        XCTAssertEqual(r?.1, true)
        try await server.stop()
    }

    /// Found by the fuzzer: hijacking a request that expects 100-continue
    /// sends no "100 Continue" into the hijacked stream.
    func testHijackWithExpectContinueSendsNoInterimResponse() async throws {
        let server = try await TestServer.start { request, _ in
            let conn = try request.hijack()
            var got: [UInt8] = []
            for try await chunk in conn {
                got += chunk
                if got.count >= 3 { break }
            }
            try await conn.write(got)
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
        let back = try await client.read(until: { $0.count >= 3 })
        XCTAssertEqual(String(decoding: back, as: UTF8.self), "abc")
        try await server.stop()
    }

    /// "peerUnreachable": a client that keeps a zero window (it never
    /// reads) past TCP_USER_TIMEOUT is dropped by the kernel; the
    /// always-armed read (or the write in flight) sees ETIMEDOUT, as for a
    /// vanished peer (Tests/deploy/vanish.sh). It was `.readFailed`, which
    /// said nothing of why.
    func testPeerUnreachableReasonFromUserTimeout() async throws {
        let ended = Signal<CancellationReason?>()
        let server = try await TestServer.start({ config in
            config.tcpUserTimeout = .milliseconds(300)
            config.writeTimeout = nil
        }) { request, response in
            let out = try await response.start(HTTPResponse(status: .ok))
            do {
                for _ in 0..<100_000 { try await out.write([UInt8](repeating: 0x72, count: 65536)) }
            } catch {}
            ended.fire(request.cancellation.reason)
        }
        let client = try server.client()
        client.setReceiveBuffer(4096)
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let why = await ended.wait(timeout: 10)
        XCTAssertEqual(why, .peerUnreachable)
        try await server.stop()
    }
}
