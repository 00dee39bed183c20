import HTTPTypes
@testable import Vigil
import XCTest

/// Review of issue 11's Swift changes: shutdown reaches a handler that runs
/// on after closing its hijacked connection; one iterator owns a body (or a
/// hijacked stream) from its first `next()`. Real loopback sockets, every
/// wait bounded.
final class ReliabilityReviewTests: XCTestCase {

    // MARK: shutdown after a hijacked connection's close()

    /// A handler that closed its hijacked connection and runs on past the
    /// grace period is cancelled (its request's reason stays
    /// `.handlerFinished`), not before the grace period is over, and run()
    /// returns. Fails before the fix: run() did not return within 5 s (the
    /// handler's task was never cancelled).
    private func shutdownCancelsHandlerAfterHijackClose(
        _ placement: Server.Configuration.HandlerPlacement
    ) async throws {
        let closed = Signal<Void>()
        let ended = Signal<(cancelled: Bool, at: ContinuousClock.Instant, reason: CancellationReason?)>()
        let server = try await TestServer.start({
            $0.handlers = placement
            $0.shutdownGracePeriod = .milliseconds(500)
        }) { request, _ in
            let c = try request.hijack()
            try c.close()
            closed.fire()
            let slept: Bool
            do {
                try await Task.sleep(for: .seconds(20))
                slept = true
            } catch {
                slept = false
            }
            ended.fire((!slept && Task.isCancelled, ContinuousClock.now, request.cancellation.reason))
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let wasClosed: Void? = await closed.wait(timeout: 3)
        XCTAssertNotNil(wasClosed, "the handler never closed its connection")
        let gone = try await client.waitForClose()
        XCTAssertTrue(gone, "the hijacked connection was not closed")
        let stopAt = ContinuousClock.now
        let stopped: Void? = try await withTimeout(seconds: 5) { try await server.stop() }
        XCTAssertNotNil(stopped, "run() did not return")
        let end = await ended.wait(timeout: 1)
        XCTAssertEqual(end?.cancelled, true, "the handler's task was not cancelled")
        XCTAssertEqual(end?.reason, .handlerFinished)
        if let end {
            // Not before the grace period (500 ms; a little slack for timer
            // granularity).
            XCTAssertGreaterThanOrEqual(end.at - stopAt, .milliseconds(450))
        }
    }

    func testShutdownCancelsHandlerRunningOnAfterHijackCloseOnLoop() async throws {
        try await shutdownCancelsHandlerAfterHijackClose(.onEventLoop)
    }

    func testShutdownCancelsHandlerRunningOnAfterHijackCloseOnGlobalExecutor() async throws {
        try await shutdownCancelsHandlerAfterHijackClose(.globalExecutor)
    }

    // MARK: one iterator owns the body

    /// Two iterators of one body used in turn: the first `next()` claims the
    /// body; the other iterator's `next()` throws, and the first reads the
    /// whole body. Fails before the fix: the second iterator got "56789"
    /// (the body split between them).
    func testSecondBodyIteratorUsedInTurnThrows() async throws {
        let seen = Signal<[String]>()
        let server = try await TestServer.start { request, response in
            var one = request.body.makeAsyncIterator()
            var two = request.body.makeAsyncIterator()
            var out: [String] = []
            var all: [UInt8] = []
            // The first half, then the second iterator while no read waits.
            while all.count < 5, let chunk = try await one.next() { all += chunk }
            out.append(String(decoding: all, as: UTF8.self))
            out.append(await describeNext(&two))
            while let chunk = try await one.next() { all += chunk }
            out.append(String(decoding: all, as: UTF8.self))
            // A third, made after the end, is another iterator too.
            var three = request.body.makeAsyncIterator()
            out.append(await describeNext(&three))
            seen.fire(out)
            try await response.write(HTTPResponse(status: .ok), body: all)
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        try await Task.sleep(for: .milliseconds(100))
        try await client.send("56789")
        let got = await seen.wait(timeout: 5)
        let refused = "\(VigilError.bodyAlreadyIterated)"
        XCTAssertEqual(got, ["01234", refused, "0123456789", refused])
        if got != nil {
            let r = try await client.readResponse()
            XCTAssertEqual(r.bodyString, "0123456789")
        }
        try await server.stop()
    }

    /// The same for a hijacked connection's stream. Fails before the fix:
    /// the second iterator got "pong", and the first then waited for ever
    /// (no result within 5 s).
    func testSecondHijackIteratorUsedInTurnThrows() async throws {
        let seen = Signal<[String]>()
        let server = try await TestServer.start { request, _ in
            let conn = try request.hijack()
            var one = conn.makeAsyncIterator()
            var two = conn.makeAsyncIterator()
            var out: [String] = []
            out.append(await describeNext(&one))
            try await conn.write("next\n")
            out.append(await describeNext(&two))
            out.append(await describeNext(&one))
            seen.fire(out)
            try conn.close()
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nping")
        let next = try await client.read(until: { $0.count >= 5 })
        XCTAssertEqual(String(decoding: next, as: UTF8.self), "next\n")
        try await client.send("pong")
        let got = await seen.wait(timeout: 5)
        XCTAssertEqual(got, ["ping", "\(VigilError.bodyAlreadyIterated)", "pong"])
        try await server.stop()
    }
}

/// One `next()`, as text: the bytes as a string, "end", or the error.
func describeNext<I: AsyncIteratorProtocol>(_ it: inout I) async -> String
where I.Element == [UInt8] {
    do {
        guard let bytes = try await it.next() else { return "end" }
        return String(decoding: bytes, as: UTF8.self)
    } catch {
        return "\(error)"
    }
}
