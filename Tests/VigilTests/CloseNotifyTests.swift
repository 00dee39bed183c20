import HTTPTypes
@testable import Vigil
import XCTest

/// The close-notify continuation: `request.connectionClosed()`.
final class CloseNotifyTests: XCTestCase {

    /// A waiter resumes with the reason when the client goes.
    func testWaiterResumesWithReason() async throws {
        let inHandler = Signal<Void>(), got = Signal<CancellationReason>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            if let why = try? await request.connectionClosed() { got.fire(why) }
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        client.close()
        let v1 = await got.wait(timeout: 4)
        XCTAssertEqual(v1, .clientClosed)
        try await server.stop()
    }

    /// Several waiters, in other tasks, each resume exactly once.
    func testEveryWaiterResumesOnce() async throws {
        let inHandler = Signal<Void>(), results = Recorder<CancellationReason>(), all = Signal<Void>()
        let server = try await TestServer.start { request, _ in
            await withTaskGroup(of: Void.self) { g in
                for _ in 0..<5 {
                    g.addTask {
                        if let why = try? await request.connectionClosed() { results.append(why) }
                    }
                }
                inHandler.fire()
                await g.waitForAll()
            }
            all.fire()
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        try await Task.sleep(for: .milliseconds(20))
        client.reset()
        let v2 = await all.wait(timeout: 4)
        XCTAssertNotNil(v2)
        XCTAssertEqual(results.all, Array(repeating: .reset, count: 5))
        try await server.stop()
    }

    /// A waiter started after the connection died returns at once.
    func testWaiterAfterDeathReturnsAtOnce() async throws {
        let inHandler = Signal<Void>(), got = Signal<(CancellationReason, Duration)>()
        let server = try await TestServer.start { request, _ in
            inHandler.fire()
            try? await Task.sleep(for: .seconds(10))  // cancelled by the close
            let start = ContinuousClock.now
            if let why = try? await request.connectionClosed() {
                got.fire((why, ContinuousClock.now - start))
            }
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await inHandler.wait()
        client.close()
        let r = await got.wait(timeout: 4)
        XCTAssertEqual(r?.0, .clientClosed)
        XCTAssertLessThan(r?.1 ?? .seconds(99), .seconds(1))
        try await server.stop()
    }

    /// The waiting task's own cancellation ends its wait (CancellationError)
    /// without touching the request.
    func testWaiterHonoursItsOwnCancellation() async throws {
        let got = Signal<String>()
        let server = try await TestServer.start { request, response in
            let waiter = Task {
                do {
                    _ = try await request.connectionClosed()
                    return "resumed"
                } catch is CancellationError {
                    return "cancelled"
                } catch {
                    return "other"
                }
            }
            try? await Task.sleep(for: .milliseconds(20))
            waiter.cancel()
            got.fire(await waiter.value)
            try await response.write(HTTPResponse(status: .ok), body: "ok")
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let v3 = try await client.readResponse().status
        XCTAssertEqual(v3, 200)
        let v4 = await got.wait()
        XCTAssertEqual(v4, "cancelled")
        try await server.stop()
    }

    /// 1000 requests, each leaving a waiter the client never triggers: each
    /// waiter resumes with "handlerFinished" when its handler returns, so no
    /// task stays suspended, and the core frees every request.
    func testThousandUntriggeredWaitersAllResume() async throws {
        let resumed = Recorder<CancellationReason>()
        let server = try await TestServer.start { request, response in
            Task { if let why = try? await request.connectionClosed() { resumed.append(why) } }
            try await response.write(HTTPResponse(status: .ok), body: "x")
        }
        let client = try server.client()
        for _ in 0..<1000 {
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try await client.readResponse()
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while resumed.count < 1000 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertEqual(resumed.count, 1000)
        XCTAssertEqual(Set(resumed.all), [.handlerFinished])
        client.close()
        let stats = await server.waitForStats { $0.requestsLive == 0 && $0.connectionsOpen == 0 }
        XCTAssertEqual(stats?.requestsLive, 0)
        XCTAssertEqual(stats?.connectionsOpen, 0)
        XCTAssertEqual(stats?.requestsCancelled, 0)
        try await server.stop()
    }
}
