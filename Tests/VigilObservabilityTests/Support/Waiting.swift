// What these tests wait with and log into: bounded polling, a mailbox a
// handler fills, an in-memory log handler. Servers and clients are
// VigilTesting's.
import Logging
import Vigil
import XCTest

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
