@testable import Vigil
import XCTest

/// Runs a `Server` on 127.0.0.1 with a free port for one test, and stops it.
final class TestServer: Sendable {
    let server: Server
    let port: Int
    private let task: Task<Void, any Error>

    static func start(_ handler: @escaping Server.Handler) async throws -> TestServer {
        try await start({ _ in }, handler)
    }

    static func start(
        _ configure: (inout Server.Configuration) -> Void,
        _ handler: @escaping Server.Handler
    ) async throws -> TestServer {
        var config = Server.Configuration(host: "127.0.0.1", port: 0)
        config.shutdownGracePeriod = .milliseconds(200)
        // Quiet by default; a test may turn it up (debug logs connection
        // states and exercises that path).
        config.logger.logLevel = .warning
        configure(&config)
        let server = Server(configuration: config)
        let (portStream, cont) = AsyncStream.makeStream(of: Int.self)
        let task = Task {
            defer { cont.finish() }
            try await server.run(onListening: { cont.yield($0) }, handler)
        }
        var port: Int?
        for await p in portStream {
            port = p
            break
        }
        guard let port else {
            try await task.value
            throw RawClient.Failure(description: "server did not start")
        }
        return TestServer(server: server, port: port, task: task)
    }

    private init(server: Server, port: Int, task: Task<Void, any Error>) {
        self.server = server
        self.port = port
        self.task = task
    }

    func client(timeout: Double = 5) throws -> RawClient {
        try RawClient(port: port, timeout: timeout)
    }

    /// Cancels run() and waits for it to return (bounded: fails the test
    /// instead of hanging).
    func stop(file: StaticString = #filePath, line: UInt = #line) async throws {
        task.cancel()
        let finished = try await withTimeout(seconds: 10) { [task] in try await task.value }
        if finished == nil { XCTFail("server did not stop within 10 s", file: file, line: line) }
    }

    /// Waits until `condition` holds on the statistics, or the timeout.
    func waitForStats(timeout: Double = 5, _ condition: (Server.Statistics) -> Bool) async -> Server.Statistics? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            if let s = server.statistics, condition(s) { return s }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return server.statistics
    }
}

/// Runs `body`, or gives up after `seconds` (returns nil then). A body that
/// never ends is abandoned (cancelled and left), so a test cannot hang on it.
func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    let slot = Locked<CheckedContinuation<T?, any Error>?>(nil)
    let resume: @Sendable (Result<T?, any Error>) -> Void = { r in
        slot.withLock { c in
            c?.resume(with: r)
            c = nil
        }
    }
    return try await withCheckedThrowingContinuation { c in
        slot.withLock { $0 = c }
        let work = Task {
            do { resume(.success(try await body())) } catch { resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            resume(.success(nil))
            work.cancel()
        }
    }
}

/// A one-shot signal between a handler and the test, with a bounded wait.
final class Signal<T: Sendable>: Sendable {
    private let state = Locked<(value: T?, waiters: [CheckedContinuation<T?, Never>])>((nil, []))

    func fire(_ value: T) {
        let waiters = state.withLock { s -> [CheckedContinuation<T?, Never>] in
            guard s.value == nil else { return [] }
            s.value = value
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: value) }
    }

    var value: T? { state.withLock { $0.value } }

    /// The value, or nil after `timeout` seconds.
    func wait(timeout: Double = 5) async -> T? {
        let result = try? await withTimeout(seconds: timeout) { [self] in
            await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
                let now = state.withLock { s -> T?? in
                    if let v = s.value { return .some(v) }
                    s.waiters.append(c)
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
        }
        return result ?? nil
    }
}

extension Signal where T == Void {
    func fire() { fire(()) }
}

/// A thread-safe counter / recorder for tests.
final class Recorder<T: Sendable>: Sendable {
    private let items = Locked<[T]>([])
    func append(_ v: T) { items.withLock { $0.append(v) } }
    var all: [T] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }
}
