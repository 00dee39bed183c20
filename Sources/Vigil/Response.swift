import CVigil
import HTTPTypes

/// Answers one request: a whole response at once, or a head followed by a
/// streamed body. Every call may be made from any task.
public struct ResponseWriter: Sendable {
    let context: RequestContext

    /// Sends a whole response with a `Content-Length` body. Does not wait for
    /// the bytes to reach the client.
    public func write(_ response: HTTPResponse, body: [UInt8] = []) async throws {
        try send(response, body: body)
    }

    /// Sends a whole response whose body is the UTF-8 of `body`.
    public func write(_ response: HTTPResponse, body: String) async throws {
        try send(response, body: Array(body.utf8))
    }

    /// Synchronous form of `write(_:body:)`.
    public func send(_ response: HTTPResponse, body: [UInt8]) throws {
        let r = withCHeaders(response.headerFields) { headers in
            body.withUnsafeBytes { b in
                vigil_response_send(
                    context.raw, Int32(response.status.code), headers.baseAddress,
                    headers.count, b.baseAddress, b.count)
            }
        }
        try context.check(r)
    }

    /// Starts a streamed response. With a `Content-Length` field the body must
    /// have exactly that length; without one it is sent chunked (HTTP/1.1) or
    /// until the connection closes (HTTP/1.0).
    public func start(_ response: HTTPResponse) async throws -> ResponseBodyWriter {
        var length: Int64 = -1
        if let cl = response.headerFields[.contentLength], let n = Int64(cl), n >= 0 {
            length = n
        }
        let r = withCHeaders(response.headerFields) { headers in
            vigil_response_start(
                context.raw, Int32(response.status.code), headers.baseAddress,
                headers.count, length)
        }
        try context.check(r)
        return ResponseBodyWriter(context: context)
    }
}

/// The body of a started response.
public struct ResponseBodyWriter: Sendable {
    let context: RequestContext

    /// Queues `bytes`, and returns once the connection's output queue is
    /// under its limit (backpressure from a slow client). Throws
    /// `RequestEndedError` if the connection is gone.
    public func write(_ bytes: [UInt8]) async throws {
        try await context.write(bytes, with: vigil_response_write)
    }

    public func write(_ string: String) async throws {
        try await write(Array(string.utf8))
    }

    /// Ends the response (the last chunk of a chunked body).
    public func finish() async throws {
        try context.check(vigil_response_end(context.raw))
    }
}

private final class WriteCompletion: Sendable {
    let context: RequestContext
    let continuation: CheckedContinuation<Void, any Error>
    init(context: RequestContext, continuation: CheckedContinuation<Void, any Error>) {
        self.context = context
        self.continuation = continuation
    }
    func complete(_ status: Int32) {
        continuation.resume(with: Result { try context.check(status) })
    }
}

typealias CWriteFunction = (
    OpaquePointer?, UnsafeRawPointer?, Int, vigil_write_cb?, UnsafeMutableRawPointer?
) -> Int32

extension RequestContext {
    /// Queues bytes through `vigil_response_write` or `vigil_hijack_write`
    /// and waits for the completion callback (backpressure).
    func write(_ bytes: [UInt8], with function: CWriteFunction) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let box = Unmanaged.passRetained(WriteCompletion(context: self, continuation: c))
            let r = bytes.withUnsafeBytes { b in
                function(
                    raw, b.baseAddress, b.count,
                    { _, status, ud in
                        Unmanaged<WriteCompletion>.fromOpaque(ud!).takeRetainedValue()
                            .complete(status)
                    }, box.toOpaque())
            }
            if r != 0 {
                // The callback will never run.
                box.takeRetainedValue().complete(r)
            }
        }
    }
}

extension RequestContext {
    /// Maps a C return code to a Swift error.
    func check(_ r: Int32) throws {
        if r == 0 { return }
        if r == VIGIL_ECANCELED || r == VIGIL_ESHUTDOWN {
            let c = vigil_request_reason(raw)
            throw RequestEndedError(
                reason: CancellationReason(c) ?? (r == VIGIL_ESHUTDOWN ? .serverShutdown : .clientClosed))
        }
        throw VigilError(code: r)
    }
}

/// Lays the fields out as `vigil_header_t`s pointing into one byte buffer
/// that lives for the duration of `body`.
func withCHeaders<R>(_ fields: HTTPFields, _ body: (UnsafeBufferPointer<vigil_header_t>) -> R) -> R {
    if fields.isEmpty {
        return body(UnsafeBufferPointer(start: nil, count: 0))
    }
    var bytes: [UInt8] = []
    var spans: [(Int, Int, Int, Int)] = []
    spans.reserveCapacity(fields.count)
    for field in fields {
        let n = bytes.count
        bytes.append(contentsOf: field.name.rawName.utf8)
        let v = bytes.count
        bytes.append(contentsOf: field.value.utf8)
        spans.append((n, v - n, v, bytes.count - v))
    }
    return bytes.withUnsafeBufferPointer { buf in
        let base = UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self)
        let headers = spans.map { s in
            vigil_header_t(
                name: base + s.0, name_len: s.1, value: base + s.2, value_len: s.3)
        }
        return headers.withUnsafeBufferPointer(body)
    }
}
