// Vigil as a swift-openapi-runtime ServerTransport: the generated code
// registers its operations here, and `handle` serves them as a Vigil
// handler.
import HTTPTypes
import OpenAPIRuntime
import Vigil

/// Serves the operations that swift-openapi-generator's server code
/// registers, as a Vigil handler.
///
/// ```swift
/// let transport = VigilTransport()
/// try MyService().registerHandlers(on: transport, middlewares: [ErrorHandlingMiddleware()])
/// let server = Server(configuration: .init(host: "127.0.0.1", port: 8080))
/// try await server.run(transport.handle)
/// ```
///
/// Each operation runs in its request's task, as any Vigil handler does: a
/// client that leaves cancels it (`Task.isCancelled`, a cancelled
/// `Task.sleep`), and `VigilTransport.currentRequest` gives it the request
/// (`cancellation.reason`, `connectionClosed()`).
///
/// Routing: a template's segments match literally, its `{parameters}`
/// match a non-empty part of one segment (`/files/{name}.zip`), up to the
/// first occurrence of the literal text after them, or to the segment's
/// end when that text ends the segment (`a.b.zip` gives `a.b`). Concrete
/// templates are tried before templated ones. A path no template matches
/// gets 404; one that templates match but not for its method gets 405 with
/// `Allow`. A HEAD request with no HEAD operation is served by the GET one;
/// a HEAD request's response body is never iterated (its length, when
/// known, is the `Content-Length`). Path parameters reach the generated code as
/// they were sent, percent-encoded, and it decodes them (so `%2F` is a `/`
/// inside a parameter, never a segment break: an operation serving files
/// must refuse `..` and `/` in names itself); a parameter with a malformed
/// escape (`%zz`, `%`) or one that does not decode to UTF-8 (`%FF`) gets
/// 400 before any operation runs. The query stays in the
/// request's path, where the generated code reads it.
///
/// Bodies: the request body is an `HTTPBody` over Vigil's streamed body
/// (`.known` length from `Content-Length`, iterated once, read from the
/// client only as the operation reads it); none when the request has no
/// body. A response body of known length is sent with `Content-Length`
/// (streamed when larger than 64 KiB), one of unknown length chunked; the
/// transport frames it, so `Content-Length` and `Transfer-Encoding` fields
/// an operation sets are replaced.
///
/// Errors an operation throws give a 500 (Vigil's) unless a middleware
/// answers them: register with `ErrorHandlingMiddleware()` for the
/// runtime's own statuses (400 for a malformed parameter, 415 for a wrong
/// content type). A `ServerError` that reaches the transport is thrown on
/// as an `OperationFailedError`, which Vigil logs without the request's
/// fields (credentials stay out of the log).
///
/// Not handled here: OPTIONS (a CORS preflight) gets 405 like any method
/// no operation has; wrap `handle` to answer it before the transport.
public final class VigilTransport: ServerTransport, Sendable {
    /// The generated code's handler, as `ServerTransport.register` gives it.
    public typealias OperationHandler =
        @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)

    /// The Vigil request the current task serves, while a handler that
    /// this transport called runs (nil elsewhere). Generated operations
    /// read `cancellation.reason` from it or await `connectionClosed()`.
    @TaskLocal public static var currentRequest: Request?

    /// Response bodies of known length up to this size are gathered and
    /// sent in one write; larger ones are streamed with `Content-Length`.
    static let gatherLimit = 64 * 1024

    struct Route: Sendable {
        let method: HTTPRequest.Method
        let template: PathTemplate
        let handler: OperationHandler
    }

    /// Routes by segment count, each list most specific first.
    private let routes = Locked<[Int: [Route]]>([:])

    public init() {}

    /// Registers `handler` for `method` requests whose path matches the
    /// template `path` (`/greet/{name}`). Throws `RouteError` for a
    /// malformed template, or a second handler for the same method and a
    /// template of the same shape. Called by the generated
    /// `registerHandlers(on:)`, before the server runs; safe from any
    /// thread.
    public func register(
        _ handler: @escaping OperationHandler, method: HTTPRequest.Method, path: String
    ) throws {
        let template = try PathTemplate(path)
        try routes.withLock { table in
            var list = table[template.segments.count, default: []]
            if list.contains(where: { $0.method == method && $0.template.shape == template.shape }) {
                throw RouteError.duplicate(method: method.rawValue, path: path)
            }
            list.append(Route(method: method, template: template, handler: handler))
            list.sort { PathTemplate.moreSpecific($0.template, $1.template) }
            table[template.segments.count] = list
        }
    }

    /// What a request path and method lead to.
    enum Resolution {
        case found(Route, [String: Substring])
        /// Templates match, for other methods: their methods, sorted.
        case methodNotAllowed([String])
        case notFound
    }

    func resolve(method: HTTPRequest.Method, target: String?) -> Resolution {
        guard let target, let segments = PathTemplate.split(target) else { return .notFound }
        let candidates = routes.withLock { $0[segments.count] } ?? []
        var allowed = Set<String>()
        var getRoute: (Route, [String: Substring])?
        for route in candidates {
            guard let parameters = route.template.match(segments) else { continue }
            if route.method == method { return .found(route, parameters) }
            if route.method == .get && getRoute == nil { getRoute = (route, parameters) }
            allowed.insert(route.method.rawValue)
        }
        if method == .head, let (route, parameters) = getRoute { return .found(route, parameters) }
        if allowed.isEmpty { return .notFound }
        if allowed.contains(HTTPRequest.Method.get.rawValue) { allowed.insert(HTTPRequest.Method.head.rawValue) }
        return .methodNotAllowed(allowed.sorted())
    }

    /// Serves one request: a `Server.Handler`
    /// (`server.run(transport.handle)`). The operation runs in the
    /// calling task, so a client leaving cancels it.
    nonisolated(nonsending) public func handle(_ request: Request, _ response: ResponseWriter) async throws {
        let head = request.head
        switch resolve(method: head.method, target: head.path) {
        case .notFound:
            try await response.write(HTTPResponse(status: .notFound))
        case .methodNotAllowed(let methods):
            var answer = HTTPResponse(status: .methodNotAllowed)
            answer.headerFields[.allow] = methods.joined(separator: ", ")
            try await response.write(answer)
        case .found(let route, let parameters):
            // RFC 3986 2.1: `%` starts two hex digits. The runtime decodes
            // a parameter it cannot decode as "", so `/greet/%zz` would
            // reach the operation as an empty name: refuse it here.
            guard parameters.values.allSatisfy(PathTemplate.isDecodable) else {
                try await response.write(HTTPResponse(status: .badRequest))
                return
            }
            let (answer, body): (HTTPResponse, HTTPBody?)
            do {
                (answer, body) = try await Self.$currentRequest.withValue(request) {
                    try await route.handler(
                        head, Self.requestBody(request), ServerRequestMetadata(pathParameters: parameters))
                }
            } catch {
                // The runtime wraps the operation's CancellationError (or
                // a failed read's RequestEndedError) in a ServerError:
                // when the request was cancelled, that is Vigil's
                // cancellation (logged at debug), not the operation failing.
                if request.cancellation.isCancelled { throw CancellationError() }
                // Vigil logs what a handler throws; a ServerError's
                // description holds the whole request, Authorization and
                // Cookie included. What reaches the log names the
                // operation and the cause only.
                if let failure = error as? ServerError { throw OperationFailedError(failure) }
                throw error
            }
            try await Self.$currentRequest.withValue(request) {
                try await Self.send(answer, body, to: response, head: head.method == .head)
            }
        }
    }

    /// The request's body for the generated code: nil without one (no
    /// Content-Length, no Transfer-Encoding: RFC 9112 6.3).
    static func requestBody(_ request: Request) -> HTTPBody? {
        let fields = request.head.headerFields
        let length: HTTPBody.Length
        if let value = fields[.contentLength], let n = Int64(value) {
            length = .known(n)
        } else if fields[.transferEncoding] != nil {
            length = .unknown
        } else {
            return nil
        }
        // Each chunk as Vigil read it: nothing is gathered, and the next
        // chunk is read from the client when the operation asks for it.
        return HTTPBody(request.body, length: length, iterationBehavior: .single)
    }

    /// Sends the operation's answer. `head`: the request was HEAD (served
    /// by a GET operation, or a HEAD one): the framing a GET would get,
    /// and the body never iterated, since nothing of it is sent (RFC 9110
    /// 9.3.2) and producing it may cost as much as the GET.
    static func send(
        _ answer: HTTPResponse, _ body: HTTPBody?, to response: ResponseWriter, head isHead: Bool = false
    ) async throws {
        var head = answer
        head.headerFields[.contentLength] = nil
        head.headerFields[.transferEncoding] = nil
        guard let body else {
            try await response.write(head)
            return
        }
        if isHead {
            if case .known(let length) = body.length { head.headerFields[.contentLength] = String(length) }
            let writer = try await response.start(head)
            try await writer.finish()
            return
        }
        switch body.length {
        case .known(let length) where length <= gatherLimit:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(length))
            for try await chunk in body {
                guard bytes.count + chunk.count <= length else { throw BodyLengthError(declared: length) }
                bytes.append(contentsOf: chunk)
            }
            guard bytes.count == length else { throw BodyLengthError(declared: length) }
            try await response.write(head, body: bytes)
        case .known(let length):
            head.headerFields[.contentLength] = String(length)
            let writer = try await response.start(head)
            var sent: Int64 = 0
            var chunks = body.makeAsyncIterator()
            while let chunk = try await chunks.next() {
                if chunk.isEmpty { continue }
                sent += Int64(chunk.count)
                guard sent <= length else { throw BodyLengthError(declared: length) }
                // The chunk that completes the length is held until the
                // body is known to end: written before, a body that goes on
                // would leave the client a response that looks whole.
                if sent == length {
                    while let more = try await chunks.next() {
                        if !more.isEmpty { throw BodyLengthError(declared: length) }
                    }
                }
                try await writer.write(Array(chunk))
            }
            // Short: not finished, so the core cuts the response off
            // rather than leave the client waiting for the rest.
            guard sent == length else { throw BodyLengthError(declared: length) }
            try await writer.finish()
        case .unknown:
            let writer = try await response.start(head)
            for try await chunk in body where !chunk.isEmpty {
                try await writer.write(Array(chunk))
            }
            try await writer.finish()
        }
    }
}

/// A response body whose bytes did not add up to its `.known` length.
public struct BodyLengthError: Error, Sendable, Hashable, CustomStringConvertible {
    public let declared: Int64
    public var description: String { "the response body's length differs from its declared \(declared) bytes" }
}

/// An operation failed (the runtime's `ServerError`, reduced to what is
/// safe to log: its operation, cause and underlying error, without the
/// request's fields, body or decoded input). What `handle` throws, and
/// Vigil logs, when no middleware answered the error.
public struct OperationFailedError: Error, CustomStringConvertible {
    public let operationID: String
    public let causeDescription: String
    public let underlyingError: any Error

    init(_ error: ServerError) {
        operationID = error.operationID
        causeDescription = error.causeDescription
        underlyingError = error.underlyingError
    }

    public var description: String {
        "operation \(operationID) failed: \(causeDescription); underlying error: \(underlyingError)"
    }
}
