// swift-distributed-tracing for Vigil handlers: a server span per request,
// its parent taken from the request's headers.
import HTTPTypes
import Tracing
import Vigil

/// Runs the handler it wraps inside a server span (`SpanKind.server`), one
/// per request, whose parent is the context the tracer extracts from the
/// request's header fields (`traceparent` with a W3C tracer). The handler
/// runs with the span's context current (`ServiceContext.current`), so the
/// calls it makes (an HTTP client that injects it, a child span) carry it
/// on.
///
/// The span is named after the method (`GET`; `HTTP` for a method outside
/// the registered ones, OpenTelemetry's rule) and carries, in
/// OpenTelemetry's HTTP names:
/// - `http.request.method` (and `http.request.method_original` for
///   `_OTHER`), `url.path` (the target without its query, which may carry
///   secrets), `user_agent.original`, `client.address` and `client.port`;
/// - at the end, `http.response.status_code`, `http.request.body.size` and
///   `http.response.body.size` (body bytes as `Request.bodyBytesReceived`
///   and `ResponseWriter.bodyBytesWritten` count them).
///
/// A request its client left (or that another cancellation ended) gets the
/// event `vigil.request.cancelled` and the attributes
/// `vigil.cancellation.reason` (`clientClosed`, `reset`, ...) and
/// `error.type` (the same name), and status error. So does a 5xx answer
/// (status error, `error.type` the code), and an error the handler throws
/// is recorded on the span (`recordError`).
///
/// ```swift
/// InstrumentationSystem.bootstrap(myTracer)        // first
/// let tracing = TracingMiddleware()
/// try await server.run(tracing.wrap { request, response in ... })
/// ```
public struct TracingMiddleware: Sendable {
    let tracer: any Tracer

    /// Traces with `tracer`: by default the one `InstrumentationSystem`
    /// was bootstrapped with (read now: bootstrap first), which is a no-op
    /// tracer when none was.
    public init(tracer: any Tracer = InstrumentationSystem.tracer) {
        self.tracer = tracer
    }

    /// `handler`, each request in a span of its own. Errors the handler
    /// throws go on to the server as they are.
    public func wrap(_ handler: @escaping Server.Handler) -> Server.Handler {
        let tracer = self.tracer
        return { request, response in
            try await serve(request, response, tracer, handler)
        }
    }
}

/// Opens the existential: the tracer's own span type from here on.
nonisolated(nonsending) func serve<T: Tracer>(
    _ request: Request, _ response: ResponseWriter, _ tracer: T, _ handler: Server.Handler
) async throws {
    let head = request.head
    var context = ServiceContext.current ?? .topLevel
    tracer.extract(head.headerFields, into: &context, using: HTTPFieldsExtractor())
    let known = isRegistered(head.method)
    let span = tracer.startSpan(known ? head.method.rawValue : "HTTP", context: context, ofKind: .server)
    // A span that records nothing (a sampled-out one, the no-op tracer's)
    // is spared the attributes: the client's address as text, a
    // dictionary of a dozen entries, per request.
    if span.isRecording {
        span.updateAttributes { a in
            a["http.request.method"] = known ? head.method.rawValue : "_OTHER"
            if !known { a["http.request.method_original"] = head.method.rawValue }
            if let path = head.path {
                a["url.path"] = String(path.prefix { $0 != "?" })
            }
            if let agent = head.headerFields[.userAgent] { a["user_agent.original"] = agent }
            if let client = request.remoteAddress {
                a["client.address"] = client.host
                if client.family != .unix { a["client.port"] = client.port }
            }
        }
    }
    do {
        try await ServiceContext.$current.withValue(span.context) {
            try await handler(request, response)
        }
    } catch {
        end(span, request, response, error: error)
        throw error
    }
    end(span, request, response, error: nil)
}

private func end(_ span: some Span, _ request: Request, _ response: ResponseWriter, error: (any Error)?) {
    guard span.isRecording else {
        span.end()
        return
    }
    let reason = request.cancellation.reason
    let cancelled = reason?.isCancellation == true ? reason : nil
    let status = response.status?.code ?? serverStatus(request, reason)
    span.updateAttributes { a in
        if let status { a["http.response.status_code"] = status }
        a["http.request.body.size"] = request.bodyBytesReceived
        a["http.response.body.size"] = response.bodyBytesWritten
        if let cancelled {
            a["vigil.cancellation.reason"] = String(describing: cancelled)
            a["error.type"] = String(describing: cancelled)
        } else if let status, status >= 500 {
            a["error.type"] = String(status)
        }
    }
    if let cancelled {
        let name = String(describing: cancelled)
        span.addEvent(SpanEvent(
            name: "vigil.request.cancelled", attributes: ["vigil.cancellation.reason": .string(name)]))
        span.setStatus(SpanStatus(code: .error, message: "request cancelled: \(name)"))
    } else if let status, status >= 500 {
        span.setStatus(SpanStatus(code: .error))
    }
    // The end of a cancelled request shows as a thrown RequestEndedError
    // or CancellationError, which the cancellation above already tells.
    if let error, cancelled == nil {
        span.recordError(error)
    }
    span.end()
}

/// What the server itself answers a request that ended without a
/// response (see `vigil_request_finish`); nil: nothing.
private func serverStatus(_ request: Request, _ reason: CancellationReason?) -> Int? {
    switch reason {
    case nil, .handlerFinished?: 500
    case .timedOut?: request.cancellation.timeout == .handler ? 503 : nil
    case .bodyTooLarge?: 413
    case .badRequest?: 400
    default: nil
    }
}

private func isRegistered(_ method: HTTPRequest.Method) -> Bool {
    switch method {
    case .get, .head, .post, .put, .delete, .connect, .options, .trace, .patch: true
    default: false
    }
}

/// Reads propagation fields (`traceparent`, `tracestate`, `baggage`, ...)
/// from the request's header fields; several fields of one name arrive
/// joined with ", ", as W3C trace context reads them.
public struct HTTPFieldsExtractor: Extractor {
    public init() {}
    public func extract(key: String, from fields: HTTPFields) -> String? {
        guard let name = HTTPField.Name(key) else { return nil }
        return fields[name]
    }
}
