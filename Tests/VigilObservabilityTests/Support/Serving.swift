// Runs a handler on a Vigil server on 127.0.0.1, a free port, for one
// test; bounded waits; an in-memory log handler.
import Logging
import Vigil
import XCTest

final class Serving: Sendable {
    let server: Server
    let port: Int
    private let task: Task<Void, any Error>

    /// Serves `handler` until `stop()`.
    static func start(
        configure: (inout Server.Configuration) -> Void = { _ in },
        _ handler: @escaping Server.Handler
    ) async throws -> Serving {
        var config = Server.Configuration(host: "127.0.0.1", port: 0)
        config.shutdownGracePeriod = .milliseconds(200)
        config.logger.logLevel = .warning
        configure(&config)
        let server = Server(configuration: config)
        let (ports, cont) = AsyncStream.makeStream(of: Int.self)
        let task = Task {
            defer { cont.finish() }
            try await server.run(onListening: { cont.yield($0) }, handler)
        }
        for await port in ports {
            return Serving(server: server, port: port, task: task)
        }
        try await task.value
        throw ClientFailure(description: "the server did not start")
    }

    private init(server: Server, port: Int, task: Task<Void, any Error>) {
        self.server = server
        self.port = port
        self.task = task
    }

    func client() throws -> Client { try Client(port: port) }

    /// Cancels run() and waits (at most 10 s) for it to return.
    func stop(file: StaticString = #filePath, line: UInt = #line) async throws {
        task.cancel()
        let done: Void? = await within(seconds: 10) { [task] in _ = try? await task.value }
        if done == nil { XCTFail("the server did not stop within 10 s", file: file, line: line) }
    }
}

/// `body`'s result, or nil when it takes longer than `seconds`: a body
/// that does not end is cancelled and abandoned, so a test cannot hang.
func within<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async -> T) async -> T? {
    let slot = Locked<CheckedContinuation<T?, Never>?>(nil)
    let resume: @Sendable (T?) -> Void = { value in
        slot.withLock { c in
            c?.resume(returning: value)
            c = nil
        }
    }
    return await withCheckedContinuation { c in
        slot.withLock { $0 = c }
        let work = Task { resume(await body()) }
        Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            resume(nil)
            work.cancel()
        }
    }
}

/// Polls `condition` every 10 ms for at most `seconds`; true once it held.
func eventually(seconds: Double = 5, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Values a handler hands the test, taken in order with a bounded wait.
final class Mailbox<T: Sendable>: Sendable {
    private let values = Locked<[T]>([])

    func put(_ value: T) { values.withLock { $0.append(value) } }

    /// The oldest value not yet taken, or nil after `seconds`.
    func take(seconds: Double = 5) async -> T? {
        var value: T?
        _ = await eventually(seconds: seconds) {
            value = values.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            return value != nil
        }
        return value
    }
}

/// What a `CapturingLogHandler` was given.
struct LogEntry: Sendable {
    var level: Logger.Level
    var message: String
    var metadata: Logger.Metadata
}

/// Keeps every entry in memory, for tests that read what was logged.
final class LogCapture: Sendable {
    private let entries = Locked<[LogEntry]>([])
    var all: [LogEntry] { entries.withLock { $0 } }
    func append(_ entry: LogEntry) { entries.withLock { $0.append(entry) } }

    /// A logger writing here, at `level`.
    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "test") { _ in CapturingLogHandler(capture: self) }
        logger.logLevel = level
        return logger
    }
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        capture.append(LogEntry(level: event.level, message: "\(event.message)", metadata: merged))
    }
}
