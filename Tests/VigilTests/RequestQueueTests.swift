import HTTPTypes
@testable import Vigil
import XCTest

/// `RequestQueue` driven directly, as `Server.work` and the dispatcher in
/// `Server.run` drive it, to reach its edge paths on purpose instead of by
/// chance: a spent worker leaving while requests wait, more parked workers
/// than `maxParkedWorkers`, a push while a worker is finishing, a push after
/// `finish`, a parked worker resumed by a push.
///
/// The queue only hands `RequestContext` references around, but a context
/// wraps a C request and only the C core makes those (the type is opaque):
/// the contexts come from GET requests to a loopback server whose handlers
/// give theirs to the test and wait until the test is done (`HeldContexts`).
/// The queue under test is a fresh one, never the server's, and never calls
/// into the contexts.
///
/// Whether workers are parked is not visible from outside the queue, except
/// through `leave` itself: a worker leaving with nothing pending is told to
/// end (`.end`) exactly when `maxParkedWorkers` are parked. So the tests park
/// exactly that many workers and wait until `leave` says so (`parkFull`); from
/// then on every step is deterministic: "still full" proves no parked worker
/// was woken, "not full" that exactly one was (the workers park only once).
final class RequestQueueTests: XCTestCase {

    private var maxParked: Int { RequestQueue.maxParkedWorkers }

    /// (e) A push with workers parked and none finishing resumes one parked
    /// worker with the request; the others stay parked. `finish` then ends
    /// the rest with nil.
    func testPushResumesAParkedWorker() async throws {
        try await withContexts(1) { ctx in
            let queue = RequestQueue()
            let workers = try await parkFull(queue)

            XCTAssertTrue(queue.push(ctx[0]))
            let got = await workers.waitForResults(1)
            XCTAssertEqual(got.count, 1, "the push resumed no parked worker within 5 s")
            XCTAssertTrue(got.first?.context === ctx[0], "the resumed worker got \(got)")
            // Exactly one parked worker was taken, and the request is not
            // pending any more (leave would have returned it as .next).
            XCTAssertEqual(probe(queue), "wait", "one parked worker fewer than the limit")

            try await workers.finishAndJoin(queue)
            XCTAssertEqual(workers.results.count, maxParked)
            XCTAssertEqual(workers.results.all.filter { $0.context == nil && $0.parked }.count,
                           maxParked - 1, "finish ends every other parked worker with nil")
            XCTAssertEqual(workers.results.all.filter { !$0.parked }.count, 0)
        }
    }

    /// (b) With `maxParkedWorkers` parked, a worker leaving with nothing to
    /// do is told to end instead of parking; one below the limit, to park.
    func testWorkerBeyondMaxParkedEnds() async throws {
        try await withContexts(1) { ctx in
            let queue = RequestQueue()
            let workers = try await parkFull(queue)

            // The 257th worker: .end, and it did not disturb the parked ones.
            queue.workerFinishing()
            let leave = queue.leave(spent: false)
            XCTAssertEqual(describe(leave), "end", "a worker past maxParkedWorkers must end")
            XCTAssertEqual(probe(queue), "end")
            XCTAssertEqual(workers.results.count, 0, "no parked worker was resumed")

            // One taken (255 parked): the next leaving worker parks again.
            XCTAssertTrue(queue.push(ctx[0]))
            let got = await workers.waitForResults(1)
            XCTAssertTrue(got.first?.context === ctx[0])
            XCTAssertEqual(probe(queue), "wait", "below the limit a worker parks")

            try await workers.finishAndJoin(queue)
        }
    }

    /// (a) A spent worker (its task was cancelled) leaving while a request
    /// is pending must not get it (.end), and must not lose it: a parked
    /// worker gets it.
    func testSpentWorkerLeavingHandsPendingRequestToParkedWorker() async throws {
        try await withContexts(1) { ctx in
            let queue = RequestQueue()
            let workers = try await parkFull(queue)

            queue.workerFinishing()  // the worker whose task was cancelled
            XCTAssertTrue(queue.push(ctx[0]))  // waits for it: no wake-up
            let leave = queue.leave(spent: true)
            XCTAssertEqual(describe(leave), "end", "a spent worker must end, not take a request")

            let got = await workers.waitForResults(1)
            XCTAssertEqual(got.count, 1, "the pending request was lost: no parked worker got it")
            XCTAssertTrue(got.first?.context === ctx[0])
            XCTAssertEqual(probe(queue), "wait", "exactly one parked worker was taken")

            try await workers.finishAndJoin(queue)
            XCTAssertEqual(workers.results.all.filter { $0.context != nil }.count, 1,
                           "the request went to one worker only")
        }
    }

    /// (a) As above with no worker parked: the dispatcher, waiting, is
    /// handed the request (to start a new worker), once; so is the next
    /// push.
    func testSpentWorkerLeavingHandsPendingRequestToDispatcher() async throws {
        try await withContexts(2) { ctx in
            let queue = RequestQueue()
            let dispatcher = Recorder<RequestContext?>()
            let dispatching = Task {
                while true {
                    let next = await queue.nextForNewWorker()
                    dispatcher.append(next)
                    if next == nil { return }
                }
            }

            let waiting = await waitUntil { queue.dispatcherWaiting }
            XCTAssertTrue(waiting, "the dispatcher never waited")
            queue.workerFinishing()
            XCTAssertTrue(queue.push(ctx[0]))
            XCTAssertTrue(queue.dispatcherWaiting, "a push while a worker finishes woke the dispatcher")
            XCTAssertEqual(describe(queue.leave(spent: true)), "end")
            let first = await waitUntil { dispatcher.count >= 1 }
            XCTAssertTrue(first, "the pending request reached neither a worker nor the dispatcher")
            XCTAssertTrue(dispatcher.all.first.flatMap { $0 } === ctx[0])

            // No worker at all: a push goes to the dispatcher too.
            let again = await waitUntil { queue.dispatcherWaiting }
            XCTAssertTrue(again, "the dispatcher did not wait again")
            XCTAssertTrue(queue.push(ctx[1]))
            let second = await waitUntil { dispatcher.count >= 2 }
            XCTAssertTrue(second, "a push with no worker did not reach the dispatcher")
            XCTAssertTrue(dispatcher.all.dropFirst().first.flatMap { $0 } === ctx[1])

            queue.finish()
            let ended: Void? = try await withTimeout(seconds: 5) { await dispatching.value }
            XCTAssertNotNil(ended, "the dispatcher did not end after finish")
            XCTAssertEqual(dispatcher.count, 3)
            XCTAssertNil(dispatcher.all.last.flatMap { $0 }, "finish ends the dispatcher with nil")
        }
    }

    /// (a) A spent worker leaving while another worker is finishing leaves
    /// the pending request to that one (no parked worker is woken).
    func testSpentWorkerLeavesPendingRequestToAnotherFinishingWorker() async throws {
        try await withContexts(1) { ctx in
            let queue = RequestQueue()
            let workers = try await parkFull(queue)

            queue.workerFinishing()  // A, spent
            queue.workerFinishing()  // B
            XCTAssertTrue(queue.push(ctx[0]))
            XCTAssertEqual(describe(queue.leave(spent: true)), "end", "A")
            let b = queue.leave(spent: false)
            XCTAssertEqual(describe(b), "next")
            if case .next(let c) = b { XCTAssertTrue(c === ctx[0]) }
            XCTAssertEqual(probe(queue), "end", "no parked worker was woken")
            XCTAssertEqual(workers.results.count, 0)

            try await workers.finishAndJoin(queue)
            XCTAssertEqual(workers.results.all.filter { $0.context != nil }.count, 0)
        }
    }

    /// (c) A push while a worker is finishing waits for that worker (no
    /// wake-up), even with workers parked; leave hands it over in order. A
    /// second request pushed meanwhile goes to a parked worker when the
    /// finishing one takes the first.
    func testPushWhileFinishingGoesToFinishingWorkerFirst() async throws {
        try await withContexts(3) { ctx in
            let queue = RequestQueue()
            let workers = try await parkFull(queue)

            queue.workerFinishing()
            XCTAssertTrue(queue.push(ctx[0]))
            let first = queue.leave(spent: false)
            XCTAssertEqual(describe(first), "next", "the finishing worker takes the request")
            if case .next(let c) = first { XCTAssertTrue(c === ctx[0]) }
            XCTAssertEqual(probe(queue), "end", "the push woke a parked worker")
            XCTAssertEqual(workers.results.count, 0)

            // Two requests while one worker finishes: it takes the first,
            // a parked worker the second.
            queue.workerFinishing()
            XCTAssertTrue(queue.push(ctx[1]))
            XCTAssertTrue(queue.push(ctx[2]))
            XCTAssertEqual(workers.results.count, 0)
            let leave = queue.leave(spent: false)
            XCTAssertEqual(describe(leave), "next")
            if case .next(let c) = leave { XCTAssertTrue(c === ctx[1], "first in, first out") }
            let got = await workers.waitForResults(1)
            XCTAssertTrue(got.first?.context === ctx[2], "a parked worker got \(got)")
            XCTAssertEqual(probe(queue), "wait")

            try await workers.finishAndJoin(queue)
            XCTAssertEqual(workers.results.all.filter { $0.context != nil }.count, 1)
        }
    }

    /// (d) `finish` ends the parked workers with nil; after it push returns
    /// false (the caller finishes the request itself); a worker finishing
    /// at that moment still takes what was pending before; then leave says
    /// end, park and the dispatcher return nil.
    func testFinishedQueue() async throws {
        try await withContexts(2) { ctx in
            let queue = RequestQueue()
            let workers = try await parkFull(queue)
            // Parked workers and a pending request coexist only while a
            // worker finishes.
            queue.workerFinishing()
            XCTAssertTrue(queue.push(ctx[0]))

            queue.finish()
            let all: Void? = try await withTimeout(seconds: 10) { [workers] in
                await workers.join()
            }
            XCTAssertNotNil(all, "finish did not end the parked workers within 10 s")
            XCTAssertEqual(workers.results.count, maxParked)
            XCTAssertTrue(workers.results.all.allSatisfy { $0.parked && $0.context == nil })

            XCTAssertFalse(queue.push(ctx[1]), "push after finish must say nobody will take it")
            // The finishing worker still gets what was pending before.
            let leave = queue.leave(spent: false)
            XCTAssertEqual(describe(leave), "next")
            if case .next(let c) = leave { XCTAssertTrue(c === ctx[0]) }

            queue.workerFinishing()
            XCTAssertEqual(describe(queue.leave(spent: false)), "end", "nothing to do after finish")
            let parked = try await withTimeout(seconds: 5) { await queue.park() }
            XCTAssertTrue(parked != nil, "park after finish did not return")
            XCTAssertNil(parked ?? nil, "park after finish gives nil")
            let next = try await withTimeout(seconds: 5) { await queue.nextForNewWorker() }
            XCTAssertTrue(next != nil, "the dispatcher after finish did not return")
            XCTAssertNil(next ?? nil, "ctx[1] was refused, so nothing is left")
        }
    }

    /// (d) A request pending at `finish` still reaches the dispatcher, and
    /// a dispatcher already waiting when `finish` comes ends.
    func testFinishDrainsPendingToDispatcher() async throws {
        try await withContexts(1) { ctx in
            let queue = RequestQueue()
            XCTAssertTrue(queue.push(ctx[0]))  // no worker, no dispatcher yet
            queue.finish()
            XCTAssertFalse(queue.push(ctx[0]))
            let first = try await withTimeout(seconds: 5) { await queue.nextForNewWorker() }
            XCTAssertTrue(first.flatMap { $0 } === ctx[0], "the pending request was dropped")
            let second = try await withTimeout(seconds: 5) { await queue.nextForNewWorker() }
            XCTAssertTrue(second != nil, "the dispatcher did not end")
            XCTAssertNil(second ?? nil)

            let waiting = RequestQueue()
            let started = Signal<Void>()
            let dispatcher = Task {
                started.fire()
                return await waiting.nextForNewWorker()
            }
            _ = await started.wait()
            let isWaiting = await waitUntil { waiting.dispatcherWaiting }
            XCTAssertTrue(isWaiting, "the dispatcher never waited")
            waiting.finish()
            let ended = try await withTimeout(seconds: 5) { await dispatcher.value }
            XCTAssertTrue(ended != nil, "a waiting dispatcher was not ended by finish")
            XCTAssertNil(ended ?? nil)
        }
    }

    // MARK: helpers

    /// What a worker leaving now (not spent, nothing pending) would be
    /// told, without parking it: "end" (maxParkedWorkers are parked, or the
    /// queue finished) or "wait" (it would park); "next" if a request was
    /// pending after all (a failure: it is taken).
    private func probe(_ queue: RequestQueue) -> String {
        queue.workerFinishing()
        return describe(queue.leave(spent: false))
    }

    private func describe(_ leave: RequestQueue.Leave) -> String {
        switch leave {
        case .next: return "next"
        case .end: return "end"
        case .wait: return "wait"
        }
    }

    /// Starts maxParkedWorkers workers that finish a request and park, as
    /// `Server.work` does, and waits (bounded) until all are parked.
    private func parkFull(
        _ queue: RequestQueue, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> Workers {
        let workers = Workers()
        for _ in 0..<maxParked { workers.start(queue) }
        let full = await waitUntil(timeout: 10) { [self] in probe(queue) == "end" }
        guard full else {
            // Not all parked (or a mutation broke the limit): end them.
            try await workers.finishAndJoin(queue)
            throw Failure("\(maxParked) workers did not park within 10 s", file: file, line: line)
        }
        XCTAssertEqual(workers.results.count, 0, "a worker did not park", file: file, line: line)
        return workers
    }

    /// Polls `condition` every millisecond for at most `timeout` seconds.
    private func waitUntil(timeout: Double = 5, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            if condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    private struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String, file: StaticString, line: UInt) {
            description = d
            XCTFail(d, file: file, line: line)
        }
    }

    /// Runs `body` with `n` real contexts, then lets their handlers return
    /// and stops the server.
    private func withContexts(
        _ n: Int, _ body: ([RequestContext]) async throws -> Void
    ) async throws {
        let held = try await HeldContexts.make(n)
        do {
            try await body(held.contexts)
        } catch {
            try await held.close()
            throw error
        }
        try await held.close()
    }
}

/// Worker tasks that leave a (pretend) finished request and park, as
/// `Server.work` does, each reporting what it was finally given.
private final class Workers: @unchecked Sendable {
    // @unchecked: `tasks` is only touched by the test's own task.
    struct Outcome: Sendable, CustomStringConvertible {
        var parked: Bool  // leave said .wait, so it parked
        var context: RequestContext?
        var description: String {
            "\(parked ? "parked" : "not parked"), \(context == nil ? "nil" : "a request")"
        }
    }

    let results = Recorder<Outcome>()
    private var tasks: [Task<Void, Never>] = []

    func start(_ queue: RequestQueue) {
        let results = results
        tasks.append(Task {
            queue.workerFinishing()
            switch queue.leave(spent: false) {
            case .wait: results.append(Outcome(parked: true, context: await queue.park()))
            case .next(let c): results.append(Outcome(parked: false, context: c))
            case .end: results.append(Outcome(parked: false, context: nil))
            }
        })
    }

    /// The outcomes once `n` arrived, or what there is after `timeout`.
    func waitForResults(_ n: Int, timeout: Double = 5) async -> [Outcome] {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while results.count < n && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
        return results.all
    }

    func join() async {
        for t in tasks { await t.value }
    }

    /// Finishes the queue and waits (bounded) for every worker to end.
    func finishAndJoin(
        _ queue: RequestQueue, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        queue.finish()
        let done: Void? = try await withTimeout(seconds: 10) { [self] in await join() }
        if done == nil { XCTFail("workers did not end within 10 s of finish", file: file, line: line) }
    }
}

/// `n` real `RequestContext`s: GET requests on `n` loopback connections,
/// whose handlers hand over their context and wait (bounded) for `close()`.
private final class HeldContexts: Sendable {
    let server: TestServer
    let clients: [RawClient]
    let contexts: [RequestContext]
    let release: Signal<Void>

    private init(
        server: TestServer, clients: [RawClient], contexts: [RequestContext],
        release: Signal<Void>
    ) {
        self.server = server
        self.clients = clients
        self.contexts = contexts
        self.release = release
    }

    static func make(_ n: Int) async throws -> HeldContexts {
        let got = Recorder<RequestContext>()
        let release = Signal<Void>()
        let server = try await TestServer.start { request, response in
            got.append(request.context)
            _ = await release.wait(timeout: 30)
            try await response.write(HTTPResponse(status: .noContent))
        }
        var clients: [RawClient] = []
        for i in 0..<n {
            let c = try server.client()
            try await c.send("GET /\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(c)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while got.count < n && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
        let held = HeldContexts(server: server, clients: clients, contexts: got.all, release: release)
        guard got.count == n else {
            try await held.close()
            throw RawClient.Failure(description: "only \(got.count) of \(n) handlers ran within 5 s")
        }
        return held
    }

    func close() async throws {
        release.fire()
        for c in clients { c.close() }
        try await server.stop()
    }
}
