// openapi.yaml's operations (the generated APIProtocol in Generated/),
// implemented over VigilOpenAPI: each runs in its request's task, so a
// client that leaves cancels it.
import HTTPTypes
import OpenAPIRuntime
import Prometheus
import Vigil
import VigilMetrics
import VigilOpenAPI

/// The example service: register it on a `VigilTransport` and serve
/// `handler(for:)`, the transport's handler with the service's metrics.
public struct ExampleService: APIProtocol {
    /// The reasons cancelled `/slow` requests ended with, oldest first (the
    /// last `CancellationLog.capacity`).
    let cancellations: CancellationLog
    /// Where the metrics are kept: `/metrics` shows it.
    public let registry: PrometheusCollectorRegistry
    /// The requests' metrics (VigilMetrics), into `registry`.
    let requestMetrics: MetricsMiddleware
    /// The connections' gauges, from `statistics` at each `/metrics`.
    let connectionMetrics: ConnectionMetrics
    let statistics: @Sendable () -> Server.Statistics?

    /// A service whose metrics go into `registry`, and whose `/metrics`
    /// reports the connections of the server `statistics` reads (nil while
    /// it does not run). Other metrics of the process may share the
    /// registry (`MetricsSystem.bootstrap(PrometheusMetricsFactory(registry:))`).
    public init(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        statistics: @escaping @Sendable () -> Server.Statistics? = { nil }
    ) {
        self.cancellations = CancellationLog()
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        self.requestMetrics = MetricsMiddleware(factory: factory)
        self.connectionMetrics = ConnectionMetrics(factory: factory)
        self.statistics = statistics
    }

    /// The handler to serve: `transport`'s, every request counted and
    /// timed (`MetricsMiddleware`).
    public func handler(for transport: VigilTransport) -> Server.Handler {
        requestMetrics.wrap(transport.handle)
    }

    /// Registers the operations on `transport`, with the runtime's
    /// `ErrorHandlingMiddleware` first (a malformed parameter gets its 400,
    /// a wrong content type its 415, instead of a 500), then `middlewares`.
    /// JSON goes out compact: `{"message":"Hello, World!"}`.
    public func register(
        on transport: VigilTransport, middlewares: [any ServerMiddleware] = []
    ) throws {
        try registerHandlers(
            on: transport,
            configuration: Configuration(jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes]),
            middlewares: [ErrorHandlingMiddleware()] + middlewares)
    }

    /// `GET /greet/{name}`: the name arrives decoded (`J%C3%B6rg` is `Jörg`).
    func greet(_ input: Operations.greet.Input) async throws -> Operations.greet.Output {
        .ok(.init(body: .json(.init(message: "Hello, \(input.path.name)!"))))
    }

    /// `POST /upload`: counts the body as it streams in, holding one chunk
    /// at a time, so its size has no limit (the server's `maxBodySize` is
    /// lifted for this request).
    func upload(_ input: Operations.upload.Input) async throws -> Operations.upload.Output {
        VigilTransport.currentRequest?.setBodyLimit(nil)
        let body: HTTPBody
        switch input.body {
        case .binary(let b): body = b
        }
        var count: Int64 = 0
        for try await chunk in body { count += Int64(chunk.count) }
        return .ok(.init(body: .json(.init(bytes: count))))
    }

    /// `GET /slow?seconds=S`: answers after S seconds. A client that leaves
    /// first cancels the task: the sleep throws, and the reason the request
    /// ended with is recorded for `/cancellations`.
    func slow(_ input: Operations.slow.Input) async throws -> Operations.slow.Output {
        let seconds = input.query.seconds
        guard seconds.isFinite, (0...3600).contains(seconds) else {
            return .badRequest(.init(body: .json(.init(error: "seconds must be within 0...3600"))))
        }
        do {
            try await Task.sleep(for: .milliseconds(Int64((seconds * 1000).rounded())))
        } catch is CancellationError {
            if let request = VigilTransport.currentRequest, let reason = request.cancellation.reason {
                // The request's logger: its lines carry the request's id.
                request.logger.info("slow request cancelled", metadata: ["reason": "\(reason)"])
                await cancellations.append(reason)
            }
            throw CancellationError()
        }
        return .ok(.init(body: .json(.init(slept: seconds))))
    }

    /// `GET /cancellations`: the reason names, oldest first.
    func cancellations(_ input: Operations.cancellations.Input) async throws -> Operations.cancellations.Output {
        .ok(.init(body: .json(await cancellations.names)))
    }

    /// `GET /metrics`: the Prometheus text exposition of `registry`, the
    /// connection gauges read from the server first, so they are exact
    /// at the scrape.
    func metrics(_ input: Operations.metrics.Input) async throws -> Operations.metrics.Output {
        if let statistics = statistics() { connectionMetrics.record(statistics) }
        return .ok(.init(body: .plainText(HTTPBody(registry.emitToBuffer()))))
    }

    /// `GET /files/{name}.zip?size=N`: N bytes (default 1024), the decoded
    /// name repeated, produced as they are sent: the body has no length, so
    /// it goes out chunked, and a slow client slows the producer.
    func downloadZip(_ input: Operations.downloadZip.Input) async throws -> Operations.downloadZip.Output {
        let size = input.query.size ?? 1024
        guard (0...64 << 20).contains(size) else {
            return .badRequest(.init(body: .json(.init(error: "size must be within 0...67108864"))))
        }
        let body = HTTPBody(
            RepeatedBytes(pattern: Array(input.path.name.utf8), count: size),
            length: .unknown, iterationBehavior: .single)
        return .ok(.init(body: .application_zip(body)))
    }
}

/// The names of the reasons `/slow` saw, as the README's table names them
/// (`clientClosed`, `reset`, ...): no spaces, usable as labels.
actor CancellationLog {
    /// The oldest entries go past this many.
    static let capacity = 1000
    private(set) var names: [String] = []

    func append(_ reason: CancellationReason) {
        if names.count == Self.capacity { names.removeFirst() }
        names.append(reason.description)  // clientClosed, reset: C's vigil_reason_name
    }
}

/// `count` bytes of `pattern` repeated, in 16 KiB chunks made as they are
/// asked for.
struct RepeatedBytes: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>
    static let chunkSize = 16 * 1024

    let pattern: [UInt8]
    let count: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let pattern: [UInt8]
        var remaining: Int
        var offset = 0

        mutating func next() async throws -> ArraySlice<UInt8>? {
            guard remaining > 0, !pattern.isEmpty else { return nil }
            try Task.checkCancellation()
            let n = Swift.min(remaining, RepeatedBytes.chunkSize)
            var chunk = [UInt8]()
            chunk.reserveCapacity(n)
            for _ in 0..<n {
                chunk.append(pattern[offset])
                offset = (offset + 1) % pattern.count
            }
            remaining -= n
            return chunk[...]
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(pattern: pattern, remaining: count)
    }
}
