import HTTPTypes
@testable import Vigil
import XCTest

/// Issue 11, the Swift layer: a hijacked connection's close ends its
/// readers; a failed hijack changes nothing; one body, one reader at a time;
/// absolute-form and authority-form targets become the right `HTTPRequest`
/// parts; any method token reaches the handler. Real loopback sockets, every
/// wait bounded.
final class ReliabilityTests: XCTestCase {

    // MARK: 7. hijack close() resumes its readers

    /// What a handler saw around `close()` of its hijacked connection.
    struct CloseObservation: Sendable, Equatable {
        var reasonRightAfterClose: CancellationReason?
        var pendingNext: String
        var laterNext: String
        var pendingConnectionClosed: String
        var laterConnectionClosed: String
        var taskCancelled: Bool
    }

    private func hijackCloseResumesWaiters(_ placement: Server.Configuration.HandlerPlacement) async throws {
        let seen = Signal<CloseObservation>()
        let onCancelReasons = Recorder<CancellationReason>()
        let server = try await TestServer.start({ $0.handlers = placement }) { request, _ in
            let conn = try request.hijack()
            request.cancellation.onCancel { onCancelReasons.append($0) }
            try await conn.write("hijacked\n")
            // A read and a close-notify waiter pending when close() comes.
            async let pending = outcome { var it = conn.makeAsyncIterator(); return try await it.next() }
            async let pendingClosed = outcome { try await request.connectionClosed() }
            let registered = await waitUntil { request.context.waiters == (true, 1) }
            XCTAssertTrue(registered, "the pending next() and connectionClosed() never registered")
            try conn.close()
            let reasonNow = request.cancellation.reason
            let later = await outcome { var it = conn.makeAsyncIterator(); return try await it.next() }
            let laterClosed = await outcome { try await request.connectionClosed() }
            seen.fire(CloseObservation(
                reasonRightAfterClose: reasonNow, pendingNext: await pending, laterNext: later,
                pendingConnectionClosed: await pendingClosed, laterConnectionClosed: laterClosed,
                taskCancelled: Task.isCancelled))
        }
        let client = try server.client()
        try await client.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: custom\r\nConnection: Upgrade\r\n\r\n")
        let hello = try await client.read(until: { $0.count >= 9 })
        XCTAssertEqual(String(decoding: hello, as: UTF8.self), "hijacked\n")
        let got = await seen.wait(timeout: 3)
        XCTAssertNotNil(got, "the handler never got past its readers after close()")
        XCTAssertEqual(got?.reasonRightAfterClose, .handlerFinished)
        XCTAssertEqual(got?.pendingNext, "end")
        XCTAssertEqual(got?.laterNext, "end")
        XCTAssertEqual(got?.pendingConnectionClosed, "handlerFinished")
        XCTAssertEqual(got?.laterConnectionClosed, "handlerFinished")
        XCTAssertEqual(got?.taskCancelled, false)
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed, "the hijacked connection was not closed")
        XCTAssertEqual(onCancelReasons.all, [.handlerFinished])
        let stopped = try await withTimeout(seconds: 5) { try await server.stop() }
        XCTAssertNotNil(stopped, "run() did not return")
    }

    /// Defect 7: fails before the fix: the pending next() and
    /// connectionClosed() were never resumed (the handler never reported,
    /// run() never returned), reason stayed nil.
    func testHijackCloseResumesPendingReadersOnLoop() async throws {
        try await hijackCloseResumesWaiters(.onEventLoop)
    }

    /// Defect 7, with the close posted to the loop from another thread.
    /// Fails before the fix: as above.
    func testHijackCloseResumesPendingReadersOnGlobalExecutor() async throws {
        try await hijackCloseResumesWaiters(.globalExecutor)
    }

    /// Defect 7: a handler that closes, then waits for close-notify, returns,
    /// and shutdown completes. Fails before the fix: connectionClosed() never
    /// returned and run() did not return at shutdown.
    func testShutdownCompletesAfterHijackClose() async throws {
        let why = Signal<CancellationReason>()
        let server = try await TestServer.start { request, _ in
            let conn = try request.hijack()
            try conn.close()
            why.fire(try await request.connectionClosed())
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        let r = await why.wait(timeout: 3)
        XCTAssertEqual(r, .handlerFinished)
        let stopped = try await withTimeout(seconds: 5) { try await server.stop() }
        XCTAssertNotNil(stopped, "run() did not return")
    }

    // MARK: 12. body and hijack state

    /// Defect 12: a hijack refused by the core (the response was started)
    /// leaves the body as it was: read to its end, it stays at its end.
    /// Fails before the fix: the Swift state was reset for raw bytes before
    /// the core refused, and the next read waited forever.
    func testFailedHijackLeavesBodyAsItWas() async throws {
        let hijackError = Signal<String>(), afterwards = Signal<String>()
        let server = try await TestServer.start { request, response in
            // One iterator: only the one that read the body may read on.
            var it = request.body.makeAsyncIterator()
            var body: [UInt8] = []
            while let chunk = try await it.next() { body += chunk }
            let writer = try await response.start(HTTPResponse(status: .ok))
            do {
                _ = try request.hijack()
                hijackError.fire("no error")
            } catch {
                hijackError.fire("\(error)")
            }
            // Bounded by the test's wait and stop (which cancels it).
            afterwards.fire(await describeNext(&it))
            try await writer.write(body)
            try await writer.finish()
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        let err = await hijackError.wait(timeout: 3)
        XCTAssertEqual(err, "\(VigilError.alreadySent)")
        let next = await afterwards.wait(timeout: 4)
        XCTAssertEqual(next, "end", "the body read after a failed hijack did not end")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyString, "hello")
        try await server.stop()
    }

    /// Defect 12: a hijack refused by the core because the request was
    /// cancelled (client reset) changes nothing in Swift: a second try gets
    /// the core's answer again (the request ended), not "already hijacked".
    /// Fails before the fix: the second try threw `alreadySent`.
    func testFailedHijackAfterCancelIsNotHijacked() async throws {
        let errors = Signal<[String]>(), inHandler = Signal<Void>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            _ = try? await request.connectionClosed()
            var out: [String] = []
            for _ in 0..<2 {
                do { _ = try request.hijack(); out.append("hijacked") } catch { out.append("\(error)") }
            }
            errors.fire(out)
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        client.reset()
        let got = await errors.wait(timeout: 3)
        let ended = "\(RequestEndedError(reason: .reset))"
        XCTAssertEqual(got, [ended, ended])
        try await server.stop()
    }

    /// Defect 12: two concurrent iterations of one body: the second gets
    /// `VigilError.bodyAlreadyIterated` at once; the first still gets the
    /// body. Fails before the fix: the second took the first's waiter slot
    /// (the first was never resumed) and waited for the body itself.
    func testSecondConcurrentBodyIteratorFailsAtOnce() async throws {
        let second = Signal<String>(), first = Signal<[UInt8]>()
        let server = try await TestServer.start { request, response in
            let body = request.body
            async let all: [UInt8] = {
                var out: [UInt8] = []
                var it = body.makeAsyncIterator()
                while let chunk = try? await it.next() { out += chunk }
                return out
            }()
            let waiting = await waitUntil { request.context.waiters.bodyRead }
            XCTAssertTrue(waiting, "the first reader never waited")
            do {
                var it = body.makeAsyncIterator()
                let got = try await it.next()
                second.fire("got \(got?.count ?? -1) bytes")
            } catch {
                second.fire("\(error)")
            }
            let bytes = await all
            first.fire(bytes)
            try await response.write(HTTPResponse(status: .ok), body: bytes)
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        let secondResult = await second.wait(timeout: 2)
        try await client.send("0123456789")
        XCTAssertEqual(secondResult, "\(VigilError.bodyAlreadyIterated)")
        let firstResult = await first.wait(timeout: 3)
        XCTAssertEqual(firstResult.map { String(decoding: $0, as: UTF8.self) }, "0123456789")
        if firstResult != nil {
            let r = try await client.readResponse()
            XCTAssertEqual(r.bodyString, "0123456789")
        }
        try await server.stop()
    }

    /// Defect 12, the hijacked stream: the same rule for its iterators.
    /// Fails before the fix: as for the body.
    func testSecondConcurrentHijackIteratorFailsAtOnce() async throws {
        let second = Signal<String>(), first = Signal<[UInt8]?>()
        let server = try await TestServer.start { request, _ in
            let conn = try request.hijack()
            async let one: [UInt8]? = {
                var it = conn.makeAsyncIterator()
                return try? await it.next()
            }()
            let waiting = await waitUntil { request.context.waiters.bodyRead }
            XCTAssertTrue(waiting, "the first reader never waited")
            do {
                var it = conn.makeAsyncIterator()
                _ = try await it.next()
                second.fire("returned")
            } catch {
                second.fire("\(error)")
            }
            let got = await one
            first.fire(got)
            try await conn.write(got ?? [])
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let secondResult = await second.wait(timeout: 2)
        try await client.send("ping")
        XCTAssertEqual(secondResult, "\(VigilError.bodyAlreadyIterated)")
        let firstResult = await first.wait(timeout: 3)
        XCTAssertEqual(firstResult.map { $0.map { String(decoding: $0, as: UTF8.self) } }, "ping")
        try await server.stop()
    }

    // MARK: 10. request-target forms

    struct Parts: Sendable, Equatable {
        var method: String
        var scheme: String?
        var authority: String?
        var path: String?
    }

    private func partsOf(_ raw: String) async throws -> (Parts?, Int) {
        let seen = Signal<Parts>()
        let server = try await TestServer.start { request, response in
            let h = request.head
            seen.fire(Parts(method: h.method.rawValue, scheme: h.scheme, authority: h.authority, path: h.path))
            // A 2xx to CONNECT has no framing and ends with the connection
            // (RFC 9110 9.3.6); another status keeps readResponse simple.
            let status: HTTPResponse.Status = h.method == .connect ? .notFound : .ok
            try await response.write(HTTPResponse(status: status), body: h.path ?? "")
        }
        let client = try server.client()
        try await client.send(raw)
        let r = try await client.readResponse()
        let parts = await seen.wait(timeout: 2)
        try await server.stop()
        return (parts, r.status)
    }

    /// Defect 10: absolute-form (RFC 9112 §3.2.2: a server MUST accept it;
    /// the target's authority wins over Host). Fails before the fix: path
    /// was "http://a/", scheme nil.
    func testAbsoluteFormTargetGivesSchemeAuthorityPath() async throws {
        let (p, status) = try await partsOf("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(p, Parts(method: "GET", scheme: "http", authority: "a", path: "/"))
        let (q, _) = try await partsOf(
            "GET HTTP://Example.com:8080/x/y?z=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
        XCTAssertEqual(q, Parts(method: "GET", scheme: "http", authority: "Example.com:8080", path: "/x/y?z=1"))
    }

    /// Defect 10: the target parts, unit level, for every form (RFC 9112
    /// §3.2). Fails before the fix: absolute-form was taken as a path, and
    /// CONNECT's authority-form too (path "a:443", authority from Host).
    func testRequestTargetForms() {
        func parts(_ m: HTTPRequest.Method, _ t: String) -> [String?] {
            let p = Array(t.utf8).withUnsafeBytes { requestTargetParts(method: m, target: $0) }
            return [p.scheme, p.authority, p.path]
        }
        XCTAssertEqual(parts(.get, "/a?b"), [nil, nil, "/a?b"])
        XCTAssertEqual(parts(.options, "*"), [nil, nil, "*"])
        XCTAssertEqual(parts(.get, "http://a/"), ["http", "a", "/"])
        XCTAssertEqual(parts(.get, "http://a"), ["http", "a", "/"])
        XCTAssertEqual(parts(.get, "http://a?x=1"), ["http", "a", "/?x=1"])
        XCTAssertEqual(parts(.get, "https://a:8443/p/q"), ["https", "a:8443", "/p/q"])
        XCTAssertEqual(parts(.options, "http://a"), ["http", "a", "*"])
        XCTAssertEqual(parts(.connect, "a:443"), [nil, "a:443", nil])
        XCTAssertEqual(parts(.connect, "[::1]:443"), [nil, "[::1]:443", nil])
    }

    /// Defect 10: CONNECT's authority-form end to end: authority is the
    /// target, path nil (swift-http-types' CONNECT). Fails before the fix:
    /// path "a:443".
    func testConnectAuthorityForm() async throws {
        let (p, _) = try await partsOf("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
        XCTAssertEqual(p, Parts(method: "CONNECT", scheme: nil, authority: "a:443", path: nil))
    }

    // MARK: 18. methods are tokens

    /// Defect 18 (Swift side): any token is a method, kept as sent (methods
    /// are case-sensitive, RFC 9110 §9.1): "get" is not GET. Something that
    /// is not a token gives nil, never a method it is not. Fails before the
    /// fix: there was no mapping of its own; makeHead turned any method it
    /// could not build into GET.
    /// Defect 18 end to end: methods llhttp 8.1 does not know reach the
    /// handler as sent (the core has llhttp parse the rest as for GET).
    /// Fails before the C fix: 400, no handler.
    func testUnknownMethodsReachTheHandler() async throws {
        for m in ["QUERY", "get", "MKCOLA"] {
            let (p, status) = try await partsOf("\(m) /x HTTP/1.1\r\nHost: a\r\n\r\n")
            XCTAssertEqual(status, 200, m)
            XCTAssertEqual(p?.method, m)
            XCTAssertEqual(p?.path, "/x")
        }
    }

    func testAnyTokenIsAMethod() {
        func method(_ s: String) -> HTTPRequest.Method? {
            Array(s.utf8).withUnsafeBytes { httpMethod($0) }
        }
        for token in ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
                      "QUERY", "get", "MKCOLA", "M-SEARCH", "PROPFIND", "X!#$%&'*+.^_`|~1"] {
            XCTAssertEqual(method(token)?.rawValue, token)
        }
        XCTAssertEqual(method("GET"), .get)
        XCTAssertNotEqual(method("get"), .get)
        XCTAssertEqual(method("QUERY"), HTTPRequest.Method("QUERY"))
        XCTAssertNil(method(""))
        XCTAssertNil(method("G T"))
        XCTAssertNil(method("GET\r"))
    }
}

/// How an awaited call came out, as text: "end" (nil), "N bytes", the
/// value, "error: ..." or "timeout" (bounded by `within` seconds).
func outcome<T: Sendable>(within seconds: Double = 5, _ body: @escaping @Sendable () async throws -> T?) async -> String {
    do {
        guard let r = try await withTimeout(seconds: seconds, body) else { return "timeout" }
        switch r {
        case nil: return "end"
        case let bytes as [UInt8]: return "\(bytes.count) bytes"
        case let v?: return "\(v)"
        }
    } catch {
        return "error: \(error)"
    }
}

/// Polls `condition` every 5 ms until it holds or `seconds` pass; whether
/// it held. Assert the result: a wait that timed out must fail the test,
/// not let it go on as if the condition held.
func waitUntil(seconds: Double = 3, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}
