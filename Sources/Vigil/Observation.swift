// What observers of a request read: its id and logger, and the few facts
// metrics and tracing need (the status the response started with, body
// bytes each way). Kept out of the hot path: the facts are a relaxed atomic
// store or a count under a lock the request already takes; the id and
// logger are made only when asked.
import HTTPTypes
import Logging

extension Request {
    /// The request's id: its `X-Request-Id` field when that is 1 to 128
    /// visible ASCII characters (one field; no spaces or control
    /// characters, so it is safe in a log line), else one made here,
    /// unique in this process ("3f9a0c1d22e4b871-1a": 64 random bits drawn
    /// once per process, and a counter). Made at the first ask; the same
    /// for every later one.
    public var id: String { context.identity.id }

    /// The server's logger (`Server.Configuration.logger`) with the
    /// request's id in its metadata (`request.id`). Made at the first ask,
    /// so a handler that never logs pays nothing for it.
    public var logger: Logger { context.identity.logger }

    /// Request body bytes that have arrived from the client so far: what
    /// the handler read, and what waits in the body's buffer (framing not
    /// counted). The body is read only once the handler iterates it: one
    /// that never does has 0. After a hijack, the connection's raw bytes
    /// count too.
    public var bodyBytesReceived: Int { context.bodyBytesReceived }
}

extension ResponseWriter {
    /// The status the response started with (`write`, `send` or `start`
    /// accepted it), nil before. A request whose handler sends nothing is
    /// answered by the server itself (500, or 503 when `handlerTimeout`
    /// fired), or not at all if its client is gone: that status is not
    /// shown here.
    public var status: HTTPResponse.Status? {
        let code = context.responseStatus.load(ordering: .relaxed)
        return code == 0 ? nil : HTTPResponse.Status(code: code)
    }

    /// Response body bytes the handler has handed over so far (framing not
    /// counted; a write is counted once the connection took it). For a
    /// HEAD request the server sends none of them.
    public var bodyBytesWritten: Int { context.responseBodyBytes.load(ordering: .relaxed) }
}
