// The public response API: a whole response, or a head and a streamed
// body (the C calls behind it are in CBridge.swift).
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
        try context.sendResponse(response, body: body)
    }

    /// Starts a streamed response. With a `Content-Length` field the body must
    /// have exactly that length; without one it is sent chunked (HTTP/1.1) or
    /// until the connection closes (HTTP/1.0).
    public func start(_ response: HTTPResponse) async throws -> ResponseBodyWriter {
        try context.startResponse(response)
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
        try await context.writeResponseBody(bytes)
    }

    public func write(_ string: String) async throws {
        try await write(Array(string.utf8))
    }

    /// Ends the response (the last chunk of a chunked body).
    public func finish() async throws {
        try context.endResponse()
    }
}
