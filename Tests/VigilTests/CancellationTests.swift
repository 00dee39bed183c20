import HTTPTypes
@testable import Vigil
import VigilTesting
import XCTest

/// What a handler saw of its own cancellation.
struct Observed: Sendable {
    var taskCancelled: Bool
    var checkCancellationThrew: Bool
    var handlerSawCancel: Bool
    var reason: CancellationReason?
}

/// Ports of Go's TestServerRequestContextCancel_* (net/http serve_test.go),
/// over real loopback sockets.
final class CancellationTests: XCTestCase {

    /// A handler that waits (bounded) to be cancelled and reports how it
    /// saw it.
    private func waitingHandler(done: Signal<Observed>) -> Server.Handler {
        { request, response in
            let sawCancel = Locked(false)
            await withTaskCancellationHandler {
                try? await Task.sleep(for: .seconds(10))
            } onCancel: {
                sawCancel.withLock { $0 = true }
            }
            var threw = false
            do { try Task.checkCancellation() } catch { threw = true }
            done.fire(Observed(
                taskCancelled: Task.isCancelled, checkCancellationThrew: threw,
                handlerSawCancel: sawCancel.withLock { $0 },
                reason: request.cancellation.reason))
        }
    }

    /// Go: TestServerRequestContextCancel_ConnClose. The client sends a GET,
    /// waits until the handler runs, closes: the handler's task is cancelled
    /// with reason "clientClosed".
    func testClientCloseCancelsHandler() async throws {
        let done = Signal<Observed>()
        try await VigilTestServer.withServer(handler: waitingHandler(done: done)) { server in
            let client = try await server.connect()
            try await client.send(.get, "/")
            _ = try await server.nextRequest()
            client.disconnect(.fin)
            let reason = try await server.nextEndReason()
            XCTAssertEqual(reason, .clientClosed)
            let seen = await done.wait(timeout: 4)
            XCTAssertNotNil(seen, "handler was not cancelled within 4 s")
            XCTAssertEqual(seen?.taskCancelled, true)
            XCTAssertEqual(seen?.checkCancellationThrew, true)
            XCTAssertEqual(seen?.handlerSawCancel, true)
            XCTAssertEqual(seen?.reason, .clientClosed)
        }
    }

    /// A server for the worker-reuse tests: every handler records whether
    /// its task was already cancelled when it started; `GET /waitN` blocks
    /// (until cancelled) after firing signal N; anything else is answered
    /// with its own path, after a suspension (the worker may resume on
    /// another thread).
    private struct WorkerProbe {
        let server: TestServer
        let entered: [Signal<Void>]
        let cancelledAtEntry: Recorder<Bool>

        static func start(
            rounds: Int, _ configure: (inout Server.Configuration) -> Void = { _ in }
        ) async throws -> WorkerProbe {
            let entered = (0..<rounds).map { _ in Signal<Void>() }
            let cancelledAtEntry = Recorder<Bool>()
            let server = try await TestServer.start(configure) { request, response in
                cancelledAtEntry.append(Task.isCancelled)
                let path = request.head.path ?? ""
                if path.hasPrefix("/wait"), let round = Int(path.dropFirst(5)) {
                    entered[round].fire()
                    try? await Task.sleep(for: .seconds(10))
                    return
                }
                await Task.yield()
                try response.send(HTTPResponse(status: .ok), body: Array(path.utf8))
            }
            return WorkerProbe(server: server, entered: entered, cancelledAtEntry: cancelledAtEntry)
        }

        /// Round N's cancelled request: `GET /waitN`, and once its handler
        /// runs, the client leaves (FIN, or RST); then every request object
        /// must be gone.
        func cancelOne(round: Int, reset: Bool) async throws {
            let c = try server.client()
            try await c.send("GET /wait\(round) HTTP/1.1\r\nHost: x\r\n\r\n")
            let ran = await entered[round].wait()
            XCTAssertNotNil(ran, "handler never ran (round \(round))")
            if reset { c.reset() } else { c.close() }
            let s = await server.waitForStats { $0.requestsLive == 0 }
            XCTAssertEqual(s?.requestsLive, 0, "requests left alive after round \(round)")
        }

        /// `count` pipelined requests on a new connection, answered in order.
        func pipelined(_ count: Int, tag: String) async throws {
            let c = try server.client()
            let paths = (0..<count).map { "/\(tag)n\($0)" }
            try await c.send(paths.map { "GET \($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined())
            let answers = try await c.readResponses(count)
            XCTAssertEqual(answers.map(\.status), Array(repeating: 200, count: count))
            XCTAssertEqual(answers.map(\.bodyString), paths, "answers out of order")
        }

        /// No handler started with its task cancelled, and `handlers` ran.
        func checkEntries(_ handlers: Int) {
            XCTAssertEqual(cancelledAtEntry.count, handlers)
            XCTAssertEqual(cancelledAtEntry.all.filter { $0 }.count, 0, "a handler started cancelled")
        }
    }

    /// Handlers run in reused worker tasks (RequestQueue). A worker whose
    /// request was cancelled stays cancelled and must serve nothing more; a
    /// worker that finished normally serves the next request with its task
    /// not cancelled, pipelined or not; a parked worker keeps no request
    /// alive.
    func testRequestsAfterACancelledOneStartUncancelled() async throws {
        let probe = try await WorkerProbe.start(rounds: 3)
        for round in 0..<3 {
            try await probe.cancelOne(round: round, reset: false)
            try await probe.pipelined(8, tag: "r\(round)p")
            for i in 0..<2 { try await probe.pipelined(1, tag: "r\(round)s\(i)") }
        }
        probe.checkEntries(3 * 11)
        let idle = await probe.server.waitForStats { $0.requestsLive == 0 }
        XCTAssertEqual(idle?.requestsLive, 0, "parked workers keep requests alive")
        try await probe.server.stop()
    }

    /// The same hand-over with handlers on the global executor and two
    /// loops: workers run on Swift's thread pool while each loop thread
    /// pushes requests to its queue (the cross-thread paths of
    /// RequestQueue, which `make test` also runs under TSan). Concurrent
    /// pipelined connections all get their answers in order; cancelled
    /// requests in between leave nothing behind.
    func testWorkersOnTheGlobalExecutorAcrossLoops() async throws {
        let probe = try await WorkerProbe.start(rounds: 3) {
            $0.handlers = .globalExecutor
            $0.loops = 2
        }
        for round in 0..<3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for conn in 0..<6 {
                    group.addTask { try await probe.pipelined(12, tag: "r\(round)c\(conn)") }
                }
                try await group.waitForAll()
            }
            try await probe.cancelOne(round: round, reset: true)
        }
        probe.checkEntries(3 * (6 * 12 + 1))
        try await probe.server.stop()
    }

    /// The same with an RST (SO_LINGER 0): reason "reset".
    func testResetCancelsHandlerWithReset() async throws {
        let done = Signal<Observed>()
        try await VigilTestServer.withServer(handler: waitingHandler(done: done)) { server in
            let client = try await server.connect()
            try await client.send(.get, "/")
            _ = try await server.nextRequest()
            client.disconnect(.reset)
            let reason = try await server.nextEndReason()
            XCTAssertEqual(reason, .reset)
            let seen = await done.wait(timeout: 4)
            XCTAssertEqual(seen?.taskCancelled, true)
            XCTAssertEqual(seen?.reason, .reset)
        }
    }

    /// An RST that arrives behind unread request bytes, which libuv may
    /// report as plain EOF, is still "reset".
    func testResetBehindPipelinedBytesIsReset() async throws {
        let done = Signal<Observed>()
        try await VigilTestServer.withServer(handler: waitingHandler(done: done)) { server in
            let client = try await server.connect()
            try await client.send(.get, "/")
            _ = try await server.nextRequest()
            try await client.writeRaw("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            client.disconnect(.reset)
            let reason = try await server.nextEndReason()
            XCTAssertEqual(reason, .reset)
            let seen = await done.wait(timeout: 4)
            XCTAssertEqual(seen?.reason, .reset)
        }
    }

    /// A client that stops reading while the handler streams a large
    /// response, then resets: the handler ends with "writeFailed" or "reset",
    /// and its pending write throws.
    func testSlowReaderThenResetFailsWrites() async throws {
        let streaming = Signal<Void>(), ended = Signal<(CancellationReason?, Bool)>()
        let server = try await TestServer.start { request, response in
            let body = try await response.start(HTTPResponse(status: .ok))
            let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
            var writeThrew = false
            do {
                for i in 0..<10_000 {  // 640 MiB: far more than any socket buffer
                    try await body.write(chunk)
                    if i == 4 { streaming.fire() }
                }
            } catch {
                writeThrew = true
            }
            ended.fire((request.cancellation.reason, writeThrew))
        }
        let client = try server.client()
        client.setReceiveBuffer(4096)
        try await client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        let v1 = await streaming.wait()
        XCTAssertNotNil(v1)
        try await Task.sleep(for: .milliseconds(100))  // let the queue fill up
        client.reset()
        let result = await ended.wait(timeout: 5)
        XCTAssertNotNil(result, "the streaming handler never ended")
        XCTAssertEqual(result?.1, true, "a write after the reset should throw")
        XCTAssertTrue(result?.0 == .writeFailed || result?.0 == .reset, "reason: \(String(describing: result?.0))")
        try await server.stop()
    }

    /// Go: TestServerRequestContextCancel_ServeHTTPDone. After a normal
    /// response the handle says "handlerFinished" and the task was never
    /// cancelled.
    func testNormalResponseEndsWithHandlerFinished() async throws {
        let handle = Signal<CancellationHandle>(), wasCancelled = Signal<Bool>()
        let server = try await TestServer.start { request, response in
            handle.fire(request.cancellation)
            try await response.write(HTTPResponse(status: .ok), body: "ok")
            wasCancelled.fire(Task.isCancelled)
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyString, "ok")
        let h = await handle.wait()
        let v2 = await wasCancelled.wait()
        XCTAssertEqual(v2, false)
        // The handler returned right after writing: its reason settles.
        var reason: CancellationReason?
        for _ in 0..<200 {
            reason = h?.reason
            if reason != nil { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTAssertEqual(reason, .handlerFinished)
        XCTAssertEqual(h?.isCancelled, false)
        // Closing the connection afterwards changes nothing.
        client.close()
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(h?.reason, .handlerFinished)
        try await server.stop()
    }

    /// onCancel runs exactly once, with the reason.
    func testOnCancelCallbackRunsOnceWithReason() async throws {
        let calls = Recorder<CancellationReason>(), inHandler = Signal<Void>(), out = Signal<Void>()
        let server = try await TestServer.start { request, response in
            request.cancellation.onCancel { calls.append($0) }
            request.cancellation.onCancel { calls.append($0) }
            inHandler.fire()
            try? await Task.sleep(for: .seconds(10))
            out.fire()
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        client.reset()
        let v3 = await out.wait()
        XCTAssertNotNil(v3)
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(calls.all, [.reset, .reset])
        try await server.stop()
    }

    /// A handler that throws gets a 500, and the server keeps serving.
    func testThrowingHandlerGets500() async throws {
        struct Boom: Error {}
        let server = try await TestServer.start { request, response in
            if request.head.path == "/boom" { throw Boom() }
            try await response.write(HTTPResponse(status: .ok), body: "fine")
        }
        let client = try server.client()
        try await client.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let rs = try await client.readResponses(2)
        XCTAssertEqual(rs[0].status, 500)
        XCTAssertEqual(rs[1].status, 200)
        XCTAssertEqual(rs[1].bodyString, "fine")
        try await server.stop()
    }
}
