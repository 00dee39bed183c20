// The test kit itself, over loopback: whole and streamed responses, raw
// bytes, FIN and RST disconnects as the handler saw them, waits that
// throw instead of hanging, and a teardown that leaves no descriptor open.
import HTTPTypes
import Vigil
@testable import VigilTesting
import XCTest

#if canImport(Dispatch)
import Dispatch
#endif

#if canImport(Glibc)
import Glibc
#endif

final class VigilTestingTests: XCTestCase {
    /// Answers "METHOD PATH BODY".
    static let echo: Server.Handler = { request, response in
        let body = try await request.body.collect(upTo: 1 << 20)
        let text = "\(request.head.method) \(request.head.path ?? "-") \(String(decoding: body, as: UTF8.self))"
        try await response.write(HTTPResponse(status: .ok), body: text)
    }

    /// Waits for its client to leave, and says why.
    static let waitForClose: Server.Handler = { request, _ in
        _ = try? await request.connectionClosed()
    }

    func testWholeResponses() async throws {
        try await VigilTestServer.withServer(handler: Self.echo) { server in
            let client = try await server.connect()
            var r = try await client.execute(.get, "/hello")
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.bodyText, "GET /hello ")
            XCTAssertEqual(r.headerFields[.contentLength], "11")
            // The same connection carries the next one (keep-alive).
            r = try await client.execute(.post, "/up", body: Array("data".utf8))
            XCTAssertEqual(r.bodyText, "POST /up data")
            r = try await client.execute(.head, "/h")
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.body, [])
            XCTAssertEqual(r.headerFields[.contentLength], "8")  // "HEAD /h "
            // And a request on a connection of its own.
            let one = try await server.execute(
                HTTPRequest(method: .put, scheme: nil, authority: nil, path: "/x", headerFields: [.contentType: "text/plain"]),
                body: Array("y".utf8))
            XCTAssertEqual(one.bodyText, "PUT /x y")
            let reason = try await server.nextEndReason()
            XCTAssertEqual(reason, .handlerFinished)
        }
    }

    /// A chunked body arrives piece by piece: the first piece is read
    /// before the handler writes the second.
    func testStreamedChunkedBody() async throws {
        let next = Gate()
        try await VigilTestServer.withServer { _, response in
            let body = try await response.start(HTTPResponse(status: .ok))
            for i in 1...3 {
                try await body.write("piece \(i);")
                if i < 3 { await next.wait() }
            }
            try await body.finish()
        } test: { server in
            let client = try await server.connect()
            let r = try await client.stream(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/stream"))
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.head.headerFields[.transferEncoding], "chunked")
            var pieces: [String] = []
            for try await chunk in r.body {
                pieces.append(String(decoding: chunk, as: UTF8.self))
                next.open()
            }
            XCTAssertEqual(pieces, ["piece 1;", "piece 2;", "piece 3;"])
            // The connection goes on after the body's end.
            let again = try await client.stream(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/stream"))
            next.open()
            next.open()
            let all = try await again.body.collect()
            XCTAssertEqual(String(decoding: all, as: UTF8.self), "piece 1;piece 2;piece 3;")
        }
    }

    /// Raw bytes: a request without Host gets 400 with Connection: close,
    /// then the server closes, and no handler ran.
    func testRawMalformedRequestGets400AndClose() async throws {
        try await VigilTestServer.withServer(handler: Self.echo) { server in
            let client = try await server.connect()
            try await client.writeRaw("GET / HTTP/1.1\r\n\r\n")
            let r = try await client.readResponse()
            XCTAssertEqual(r.status, .badRequest)
            XCTAssertEqual(r.headerFields[.connection], "close")
            let rest = try await client.readToEnd()
            XCTAssertEqual(rest, [])
            let closed = await client.closedByServer
            XCTAssertTrue(closed)
            do {
                _ = try await server.nextRequest(timeout: .milliseconds(100))
                XCTFail("a handler ran")
            } catch let e as VigilTestingError {
                XCTAssertEqual(e.kind, .timedOut)
            }
        }
    }

    /// A half-close with the finish policy: the answer still comes.
    func testHalfCloseWithFinishPolicy() async throws {
        try await VigilTestServer.withServer(configure: { $0.halfClose = .finishResponse }, handler: Self.echo) { server in
            let client = try await server.connect()
            try await client.send(.post, "/half", body: Array("x".utf8))
            await client.shutdownWrite()
            let r = try await client.readResponse()
            XCTAssertEqual(r.bodyText, "POST /half x")
            let reason = try await server.nextEndReason()
            XCTAssertEqual(reason, .handlerFinished)
        }
    }

    func testFinIsSeenAsClientClosed() async throws {
        try await VigilTestServer.withServer(handler: Self.waitForClose) { server in
            let client = try await server.connect()
            try await client.send(.get, "/wait")
            _ = try await server.nextRequest()
            client.disconnect(.fin)
            let reason = try await server.nextEndReason()
            XCTAssertEqual(reason, .clientClosed)
        }
    }

    func testResetIsSeenAsReset() async throws {
        let cancelled = Locked<Bool?>(nil)
        try await VigilTestServer.withServer { request, _ in
            _ = try? await request.connectionClosed()
            cancelled.withLock { $0 = Task.isCancelled }
        } test: { server in
            let client = try await server.connect()
            try await client.send(.get, "/wait")
            let started = try await server.nextRequest()
            XCTAssertEqual(started.head.path, "/wait")
            client.disconnect(.reset)
            let end = try await server.nextEnd()
            XCTAssertEqual(end.reason, .reset)
            XCTAssertEqual(end.connectionID, started.connectionID)
        }
        // The server stopped only after the handler returned.
        XCTAssertEqual(cancelled.withLock { $0 }, true)
    }

    /// Waits run out with `.timedOut`, promptly, instead of hanging.
    func testTimeoutsThrowRatherThanHang() async throws {
        try await VigilTestServer.withServer(handler: Self.waitForClose) { server in
            let client = try await server.connect()
            let clock = ContinuousClock()
            let began = clock.now
            do {
                _ = try await client.execute(.get, "/never", timeout: .milliseconds(200))
                XCTFail("a response came")
            } catch let e as VigilTestingError {
                XCTAssertEqual(e.kind, .timedOut, "\(e)")
            }
            do {
                _ = try await server.nextEnd(timeout: .milliseconds(100))
                XCTFail("a request ended")
            } catch let e as VigilTestingError {
                XCTAssertEqual(e.kind, .timedOut, "\(e)")
            }
            let elapsed = clock.now - began
            XCTAssertLessThan(elapsed, .seconds(2))
            XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(300))
            // A read cancelled by its task ends too.
            let reading = Task { try await client.readRaw(timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(50))
            reading.cancel()
            let result = await reading.result
            XCTAssertThrowsError(try result.get())
            XCTAssertLessThan(clock.now - began, .seconds(3))
        }
    }

    /// Nothing stays open after the scope: clients (one idle, one waiting
    /// inside a handler, one that left), the server's sockets and loops;
    /// also when the test body throws.
    func testTeardownClosesEverything() async throws {
        // A first run opens whatever the process keeps (Dispatch's and the
        // runtime's own descriptors).
        try await VigilTestServer.withServer(handler: Self.echo) { server in
            _ = try await server.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"))
        }
        let before = openDescriptors()
        try await VigilTestServer.withServer(handler: Self.waitForClose) { server in
            _ = try await server.connect()
            let busy = try await server.connect()
            try await busy.send(.get, "/wait")
            _ = try await server.nextRequest()
            let gone = try await server.connect()
            gone.disconnect(.reset)
            XCTAssertGreaterThan(openDescriptors(), before)
        }
        XCTAssertEqual(openDescriptors(), before)

        struct Planned: Error {}
        do {
            try await VigilTestServer.withServer(handler: Self.waitForClose) { server in
                let client = try await server.connect()
                try await client.send(.get, "/wait")
                _ = try await server.nextRequest()
                throw Planned()
            }
            XCTFail("the test body's error was not rethrown")
        } catch is Planned {}
        XCTAssertEqual(openDescriptors(), before)
    }

    func testIPv6Loopback() async throws {
        try await VigilTestServer.withServer(host: "::1", handler: { request, response in
            try await response.write(HTTPResponse(status: .ok), body: request.localAddress?.description ?? "-")
        }) { server in
            let r = try await server.withClient { try await $0.execute(.get, "/") }
            XCTAssertEqual(r.bodyText, "[::1]:\(server.port)")
        }
    }

    /// The descriptors this process has open.
    func openDescriptors() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while readdir(dir) != nil { n += 1 }
        return n - 3  // ".", ".." and the directory's own
    }

    /// The kit's mailbox hands values from many threads to a waiting task
    /// without losing one. Under `make test-tsan` this is also the check
    /// that its lock is one TSan can see: `Synchronization.Mutex` on Linux
    /// takes its contended path through a PI futex in the uninstrumented
    /// standard library, and TSan then reports a race on the mailbox.
    func testMailboxUnderContention() async {
        let box = Mailbox<Int>()
        let producers = 4, each = 500
        let putter = Task.detached {
            DispatchQueue.concurrentPerform(iterations: producers) { p in
                for i in 0..<each { box.put(p * each + i) }
            }
        }
        var seen = Set<Int>()
        for _ in 0..<(producers * each) {
            guard let v = await box.take(timeout: .seconds(20)) else {
                XCTFail("a value was lost (\(seen.count) came)")
                break
            }
            seen.insert(v)
        }
        await putter.value
        XCTAssertEqual(seen.count, producers * each)
    }
}

/// Opens once per `open()`: a handler waits for the test's go.
final class Gate: Sendable {
    private let state = Locked<(tokens: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    func open() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.tokens += 1
                return nil
            }
            return s.waiters.removeFirst()
        }
        w?.resume()
    }

    /// Bounded: goes on after 5 s without an `open()` (the test then
    /// fails on what it reads, instead of hanging).
    func wait() async {
        let timeout = Task {
            try await Task.sleep(for: .seconds(5))
            self.open()
        }
        defer { timeout.cancel() }
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool in
                if s.tokens > 0 {
                    s.tokens -= 1
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
