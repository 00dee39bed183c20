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

/// Lays the fields out as `vigil_header_t`s in one temporary allocation
/// (on the stack): the structs first, then the name and value bytes they
/// point at. Valid for the duration of `body`; the C side copies.
///
/// One pass over the fields when they fit in a first guess of the size,
/// which the usual response's do: reading an `HTTPField` out of
/// `HTTPFields` copies it (its name's two strings and its value retained,
/// then released), and a sizing pass before the copying one would double
/// that.
func withCHeaders<R>(_ fields: HTTPFields, _ body: (UnsafeBufferPointer<vigil_header_t>) -> R) -> R {
    let count = fields.count
    if count == 0 {
        return body(UnsafeBufferPointer(start: nil, count: 0))
    }
    if let r = withCHeaders(fields, count: count, textCapacity: 64 * count, body) { return r }
    var bytes = 0
    for field in fields { bytes += field.name.rawName.utf8.count + field.value.utf8.count }
    return withCHeaders(fields, count: count, textCapacity: bytes, body)!
}

/// nil if the names and values need more than `textCapacity` bytes.
private func withCHeaders<R>(
    _ fields: HTTPFields, count: Int, textCapacity: Int,
    _ body: (UnsafeBufferPointer<vigil_header_t>) -> R
) -> R? {
    let headerBytes = count * MemoryLayout<vigil_header_t>.stride
    return withUnsafeTemporaryAllocation(
        byteCount: headerBytes + textCapacity, alignment: MemoryLayout<vigil_header_t>.alignment
    ) { raw -> R? in
        let headers = raw.baseAddress!.bindMemory(to: vigil_header_t.self, capacity: count)
        let text = raw.baseAddress! + headerBytes
        var used = 0
        var i = 0
        // Copies `s` at `text + used`; false if it does not fit. Through
        // `withContiguousStorageIfAvailable`, not `withUTF8`: that one is
        // mutating, and the copy of the string it needs costs retains and
        // releases per field.
        func put(_ s: String) -> Bool {
            let n = s.utf8.count
            guard used + n <= textCapacity else { return false }
            let copied = s.utf8.withContiguousStorageIfAvailable { u -> Bool in
                if n > 0 { (text + used).copyMemory(from: u.baseAddress!, byteCount: n) }
                return true
            }
            if copied == nil {
                // Not a native string (bridged or lazy): copy by element.
                for (k, b) in s.utf8.enumerated() { (text + used + k).storeBytes(of: b, as: UInt8.self) }
            }
            used += n
            return true
        }
        var at = fields.startIndex
        while at != fields.endIndex {
            let field = fields[at]
            at = fields.index(after: at)
            let nameAt = used
            guard put(field.name.rawName) else { return nil }
            let valueAt = used
            guard put(field.value) else { return nil }
            let base = UnsafeRawPointer(text).assumingMemoryBound(to: CChar.self)
            headers[i] = vigil_header_t(
                name: base + nameAt, name_len: valueAt - nameAt, value: base + valueAt,
                value_len: used - valueAt)
            i += 1
        }
        return body(UnsafeBufferPointer(start: headers, count: count))
    }
}
