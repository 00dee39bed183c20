import HTTPTypes
@testable import Vigil
import VigilTesting
import XCTest

/// `Request.sleep(for:)`: a one-shot timer on the request's loop.
final class SleepTests: XCTestCase {
    static let get = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/")

    /// What one sleeping handler saw: how long it slept, and how the sleep
    /// ended (nil: returned; else the error's type).
    struct Slept: Sendable {
        var seconds: Double
        var error: String?
    }

    private func sleepingHandler(_ duration: Duration, done: Signal<Slept>) -> Server.Handler {
        { request, response in
            let start = ContinuousClock.now
            var failure: String?
            do {
                try await request.sleep(for: duration)
            } catch {
                failure = "\(type(of: error))"
            }
            let elapsed = ContinuousClock.now - start
            done.fire(Slept(seconds: Double(elapsed.components.seconds)
                                + Double(elapsed.components.attoseconds) / 1e18, error: failure))
            if failure == nil {
                try response.send(HTTPResponse(status: .ok), body: Array("slept".utf8))
            }
        }
    }

    /// Sleeps, not less than asked (a sub-millisecond part rounds up), and
    /// the handler goes on on its own; on the loop executor and off it.
    func testSleepsAtLeastTheDuration() async throws {
        for handlers in [Server.Configuration.HandlerPlacement.onEventLoop, .globalExecutor] {
            let done = Signal<Slept>()
            try await VigilTestServer.withServer(
                configure: { $0.handlers = handlers },
                handler: sleepingHandler(.milliseconds(80) + .microseconds(300), done: done)
            ) { server in
                let response = try await server.execute(Self.get)
                XCTAssertEqual(response.head.status, .ok)
                XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "slept")
                let seen = try XCTUnwrap(done.value)
                XCTAssertNil(seen.error, "\(handlers)")
                XCTAssertGreaterThanOrEqual(seen.seconds, 0.0803, "woke early (\(handlers))")
            }
        }
    }

    /// A client that leaves ends a long sleep at once with
    /// CancellationError; the server is left with no live request.
    func testClientLeavingEndsTheSleep() async throws {
        for how in [VigilTestClient.Disconnect.fin, .reset] {
            let done = Signal<Slept>()
            try await VigilTestServer.withServer(
                handler: sleepingHandler(.seconds(60), done: done)
            ) { server in
                let client = try await server.connect()
                try await client.send(.get, "/")
                _ = try await server.nextRequest()
                client.disconnect(how)
                let seen = await done.wait(timeout: 5)
                XCTAssertNotNil(seen, "the sleep did not end within 5 s (\(how))")
                XCTAssertEqual(seen?.error, "CancellationError")
                XCTAssertLessThan(seen?.seconds ?? 60, 5)
            }
        }
    }

    /// Cancelled before it sleeps: throws at once.
    func testAlreadyCancelledThrowsAtOnce() async throws {
        let done = Signal<Slept>()
        try await VigilTestServer.withServer(handler: { request, response in
            let child = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                let start = ContinuousClock.now
                do {
                    try await request.sleep(for: .seconds(30))
                    return Slept(seconds: 0, error: nil)
                } catch {
                    let e = ContinuousClock.now - start
                    return Slept(seconds: Double(e.components.seconds), error: "\(type(of: error))")
                }
            }
            done.fire(await child.value)
            try response.send(HTTPResponse(status: .ok), body: [])
        }) { server in
            _ = try await server.execute(Self.get)
            let seen = try XCTUnwrap(done.value)
            XCTAssertEqual(seen.error, "CancellationError")
            XCTAssertEqual(seen.seconds, 0)
        }
    }

    /// Many sleeps at once on one loop: 200 short ones that must return,
    /// 200 of 60 s cancelled from another task once their timers run (the
    /// cancellation stops a live loop timer, from off the loop), and 200 of
    /// 1 ms cancelled one by one over a few milliseconds (the cancellation
    /// races the arm and the fire). Each ends once; the long ones end at
    /// once, not after 60 s.
    func testConcurrentSleepsAndCancellations() async throws {
        let outcomes = Locked<[String: Int]>([:])
        try await VigilTestServer.withServer(handler: { request, response in
            await withTaskGroup(of: String.self) { group in
                var long: [Task<String, Never>] = []
                var raced: [Task<String, Never>] = []
                for i in 0..<600 {
                    let duration: Duration = i % 3 == 1 ? .seconds(60) : .milliseconds(i % 3 == 0 ? i % 4 : 1)
                    let task = Task { () -> String in
                        do {
                            try await request.sleep(for: duration)
                            return i % 3 == 1 ? "long slept" : i % 3 == 0 ? "slept" : "raced: slept"
                        } catch is CancellationError {
                            return i % 3 == 1 ? "long cancelled" : i % 3 == 0 ? "short cancelled" : "raced: cancelled"
                        } catch {
                            return "\(error)"
                        }
                    }
                    if i % 3 == 1 { long.append(task) }
                    if i % 3 == 2 { raced.append(task) }
                    group.addTask { await task.value }
                }
                // Cancelled one at a time over the next few milliseconds:
                // the first before their sleeps begin, others while their
                // timers are armed, firing, or done.
                for task in raced {
                    task.cancel()
                    try? await Task.sleep(for: .microseconds(20))
                }
                // The long sleeps' timers are armed by now (a loop timer
                // starts within the loop's next turn).
                try? await Task.sleep(for: .milliseconds(100))
                for task in long { task.cancel() }
                for await o in group { outcomes.withLock { $0[o, default: 0] += 1 } }
            }
            try response.send(HTTPResponse(status: .ok), body: [])
        }) { server in
            let response = try await server.execute(Self.get, timeout: .seconds(20))
            XCTAssertEqual(response.head.status, .ok)
        }
        let o = outcomes.withLock { $0 }
        XCTAssertEqual(o.values.reduce(0, +), 600, "\(o)")
        XCTAssertEqual(o["slept"], 200, "\(o)")
        XCTAssertEqual(o["long cancelled"], 200, "\(o)")
        XCTAssertEqual((o["raced: slept"] ?? 0) + (o["raced: cancelled"] ?? 0), 200, "\(o)")
    }

    /// A sleep that outlives its handler (an unstructured task kept the
    /// request) ends with CancellationError when the server shuts down, and
    /// does not hold the shutdown; a sleep begun after it throws at once.
    func testServerShutdownEndsASleep() async throws {
        let done = Signal<Slept>()
        let kept = Locked<Request?>(nil)
        let began = ContinuousClock.now
        try await VigilTestServer.withServer(handler: { request, response in
            kept.withLock { $0 = request }
            Task {
                let start = ContinuousClock.now
                var failure: String?
                do { try await request.sleep(for: .seconds(60)) } catch { failure = "\(type(of: error))" }
                let e = ContinuousClock.now - start
                done.fire(Slept(seconds: Double(e.components.seconds), error: failure))
            }
            try response.send(HTTPResponse(status: .ok), body: [])
        }) { server in
            _ = try await server.execute(Self.get)
            try? await Task.sleep(for: .milliseconds(50))
            XCTAssertNil(done.value, "the sleep ended before the shutdown")
        }
        XCTAssertLessThan(ContinuousClock.now - began, .seconds(30), "the shutdown waited for the sleep")
        let seen = await done.wait(timeout: 10)
        XCTAssertEqual(seen?.error, "CancellationError", "the sleep did not end at the shutdown")
        let request = try XCTUnwrap(kept.withLock { $0 })
        let start = ContinuousClock.now
        do {
            try await request.sleep(for: .seconds(60))
            XCTFail("a sleep after the shutdown returned")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
    }
}
