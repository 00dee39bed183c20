// swift-metrics for Vigil handlers: a wrapper that counts and times each
// request, and the connection gauges from the server's statistics.
import CoreMetrics
import HTTPTypes
import Vigil

/// Records swift-metrics for every request of the handler it wraps:
///
/// | label | type | dimensions |
/// |---|---|---|
/// | `vigil.server.requests` | counter | `http.request.method`, `http.response.status_code` |
/// | `http.server.request.duration` | timer (seconds) | `http.request.method`, `http.response.status_code` |
/// | `http.server.active_requests` | meter | `http.request.method` |
/// | `vigil.server.cancellations` | counter | `vigil.cancellation.reason` |
/// | `vigil.server.request.body.bytes` | counter | |
/// | `vigil.server.response.body.bytes` | counter | |
///
/// Names follow OpenTelemetry's HTTP semantic conventions where they have
/// one (the duration, the requests in flight, the attribute names); the
/// rest are Vigil's. A Prometheus backend turns the dots into underscores.
///
/// The method is one of the registered ones (`GET`, `POST`, ...) or
/// `_OTHER`, and the status a number: both bounded, since every label
/// value is a time series. The status is the one the response started
/// with, or the one the server answered with itself (500 for a handler
/// that sent nothing, 503 for `handlerTimeout`, 413 and 400 for a body too
/// large or malformed), or empty when no response went out (the client
/// left first). The reason is `String(describing:)` of the
/// `CancellationReason` (`clientClosed`, `reset`, ...); every reason's
/// counter is made up front, so each series exists, at 0, from the start.
///
/// ```swift
/// let metrics = MetricsMiddleware()   // after MetricsSystem.bootstrap
/// try await server.run(metrics.wrap { request, response in ... })
/// ```
public struct MetricsMiddleware: Sendable {
    private let metrics: RequestMetrics

    /// Records into `factory`: by default the one `MetricsSystem` was
    /// bootstrapped with (read now: bootstrap first). Tests pass their own.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.metrics = RequestMetrics(factory: factory)
    }

    /// `handler`, recording each request's metrics around it. Errors the
    /// handler throws go on to the server as they are.
    public func wrap(_ handler: @escaping Server.Handler) -> Server.Handler {
        let metrics = self.metrics
        return { request, response in
            let method = methodLabel(request.head.method)
            let active = metrics.active(method)
            active.increment()
            let start = ContinuousClock.now
            do {
                try await handler(request, response)
            } catch {
                metrics.finish(request, response, method: method, active: active, since: start)
                throw error
            }
            metrics.finish(request, response, method: method, active: active, since: start)
        }
    }
}

/// The method as a label: the registered methods as they are, any other
/// token `_OTHER` (OpenTelemetry's rule): a client must not be able to make
/// a time series per made-up method.
func methodLabel(_ method: HTTPRequest.Method) -> String {
    switch method {
    case .get, .head, .post, .put, .delete, .connect, .options, .trace, .patch:
        return method.rawValue
    default:
        return "_OTHER"
    }
}

/// The status the client was answered with, as far as the handler's side
/// can know it: the response it started, else what the server sends for a
/// request that ended without one. nil: nothing was sent.
func answeredStatus(_ request: Request, _ response: ResponseWriter) -> Int? {
    if let status = response.status { return status.code }
    switch request.cancellation.reason {
    case nil, .handlerFinished?:
        // The server answers a handler that returned or threw without a
        // response with a 500.
        return 500
    case .timedOut?:
        return request.cancellation.timeout == .handler ? 503 : nil
    case .bodyTooLarge?:
        return 413
    case .badRequest?:
        return 400
    default:
        return nil
    }
}

/// The metric objects, made once per label set: the factory's own lookup
/// (a lock and a dictionary in most backends, a fresh handler in some)
/// would run on every request otherwise. Behind Vigil's `Locked` (a pthread
/// mutex, which ThreadSanitizer sees), not `Synchronization.Mutex`.
final class RequestMetrics: Sendable {
    let factory: any MetricsFactory
    private struct Key: Hashable {
        let method: String
        let status: Int?
    }
    private struct Completed {
        let requests: Counter
        let duration: Timer
    }
    private let completed = Locked<[Key: Completed]>([:])
    private let inFlight = Locked<[String: Meter]>([:])
    private let cancellations: [CancellationReason: Counter]
    private let bytesIn: Counter
    private let bytesOut: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        var cancellations: [CancellationReason: Counter] = [:]
        let reasons: [CancellationReason] = [
            .clientClosed, .reset, .readFailed, .writeFailed, .timedOut, .serverShutdown,
            .badRequest, .bodyTooLarge, .peerUnreachable,
        ]
        for reason in reasons {
            cancellations[reason] = Counter(
                label: "vigil.server.cancellations",
                dimensions: [("vigil.cancellation.reason", String(describing: reason))],
                factory: factory)
        }
        self.cancellations = cancellations
        self.bytesIn = Counter(label: "vigil.server.request.body.bytes", factory: factory)
        self.bytesOut = Counter(label: "vigil.server.response.body.bytes", factory: factory)
    }

    func active(_ method: String) -> Meter {
        inFlight.withLock { meters in
            if let meter = meters[method] { return meter }
            let meter = Meter(
                label: "http.server.active_requests",
                dimensions: [("http.request.method", method)], factory: factory)
            meters[method] = meter
            return meter
        }
    }

    private func completed(_ key: Key) -> Completed {
        completed.withLock { all in
            if let made = all[key] { return made }
            let dimensions = [
                ("http.request.method", key.method),
                ("http.response.status_code", key.status.map { String($0) } ?? ""),
            ]
            let made = Completed(
                requests: Counter(label: "vigil.server.requests", dimensions: dimensions, factory: factory),
                duration: Timer(
                    label: "http.server.request.duration", dimensions: dimensions,
                    preferredDisplayUnit: .seconds, factory: factory))
            all[key] = made
            return made
        }
    }

    /// After the handler returned or threw. The request is counted last:
    /// whoever sees it counted sees the rest of its metrics too.
    func finish(
        _ request: Request, _ response: ResponseWriter, method: String, active: Meter,
        since start: ContinuousClock.Instant
    ) {
        let elapsed = ContinuousClock.now - start
        active.decrement()
        let bytesIn = request.bodyBytesReceived
        if bytesIn > 0 { self.bytesIn.increment(by: bytesIn) }
        let bytesOut = response.bodyBytesWritten
        if bytesOut > 0 { self.bytesOut.increment(by: bytesOut) }
        if let reason = request.cancellation.reason, let counter = cancellations[reason] {
            counter.increment()
        }
        let c = completed(Key(method: method, status: answeredStatus(request, response)))
        let (s, atto) = elapsed.components
        c.duration.recordNanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
        c.requests.increment()
    }
}
