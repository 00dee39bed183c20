// The public request API: the head, the streamed body, and the request's
// cancellation.
import HTTPTypes

/// An HTTP request being served.
public struct Request: Sendable {
    let context: RequestContext

    /// The request head: method (any token, as sent), target (as `path`),
    /// authority (from Host), and the header fields. An absolute-form target
    /// (`http://a/p`) gives scheme, authority (over Host) and path; CONNECT's
    /// authority-form target gives the authority and no path.
    public var head: HTTPRequest { context.head }

    /// The request body, streamed with backpressure. Iterate it once, with
    /// one iterator (`RequestBody`).
    public var body: RequestBody { RequestBody(context: context) }

    /// Whether the request ended, why, and callbacks for when it does.
    public var cancellation: CancellationHandle { CancellationHandle(context: context) }

    /// Identifies the connection the request arrived on (unique per server run).
    public var connectionID: UInt64 { context.connectionID }

    /// The client's address: from the connection's PROXY header when the
    /// server takes the PROXY protocol (`Configuration.proxyProtocol`) and
    /// the header named one, else the connected peer's. nil if it could
    /// not be read.
    ///
    /// `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are ordinary header
    /// fields (`head.headerFields`): the server neither reads nor strips
    /// them. Which hops to believe is the deployment's decision (which
    /// proxies sit in front, which append and which overwrite); a server
    /// that guessed would let any client that reaches it directly name
    /// itself.
    public var remoteAddress: SocketAddress? { context.remoteAddress }

    /// The directly connected peer: the proxy when a PROXY header named
    /// the client, else the same as `remoteAddress`.
    public var peerAddress: SocketAddress? { context.peerAddress }

    /// The destination the PROXY header named (the address the client
    /// connected to, at the proxy); nil without one.
    public var proxyDestinationAddress: SocketAddress? { context.proxyDestinationAddress }

    /// The server's own address on this connection (IPv4 or IPv6, and
    /// port), read once when the connection was accepted: the listener's,
    /// or with `0.0.0.0` / `::` the address the client reached. Behind a
    /// PROXY header it stays the socket's own; the address the client
    /// connected to at the proxy is `proxyDestinationAddress`. nil on a
    /// Unix domain socket (for now), or if it could not be read.
    public var localAddress: SocketAddress? { context.localAddress }

    /// Sets this request's body limit (default: `maxBodySize`; nil: none),
    /// lower or higher than the server's: an upload route may take more than
    /// the rest. Call before reading the body; a body passing it ends the
    /// request with `.bodyTooLarge` and a 413.
    public func setBodyLimit(_ bytes: Int?) {
        context.setBodyLimit(bytes)
    }

    /// Suspends for `duration` on the loop that serves this request: for a
    /// handler that waits between events (server-sent events, polling, a
    /// retry's back-off). Unlike `Task.sleep`, no other thread wakes for
    /// it, and a cancelled sleep holds nothing: its timer is gone at once
    /// (a cancelled `Task.sleep` keeps its timer and job until the original
    /// deadline, which 10 000 clients leaving turn into megabytes).
    ///
    /// Never returns early: the loop's clock has millisecond resolution,
    /// and `duration` is rounded up to it. Throws `CancellationError` when
    /// the task is cancelled (the client went away) or the server has shut
    /// down, and `VigilError` if the core is out of memory for the timer.
    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        let ms = duration > .zero ? milliseconds(duration + .nanoseconds(999_999)) : 0
        try await LoopSleep().sleep(on: context, milliseconds: ms)
    }

    /// Suspends until the request ends, and says why: the connection closed,
    /// was reset, a write failed, the server shut down... or, if the handler
    /// returns (or closes its hijacked connection) first, `.handlerFinished`.
    /// Returns at once if the request has
    /// already ended. Every waiter is resumed exactly once. Throws
    /// `CancellationError` if the waiting task is cancelled for another reason.
    public func connectionClosed() async throws -> CancellationReason {
        try await context.connectionClosed()
    }
}

/// Whether a request was cancelled, and why.
public struct CancellationHandle: Sendable {
    let context: RequestContext

    /// True once the request was cancelled (any reason but `.handlerFinished`).
    public var isCancelled: Bool { context.reason?.isCancellation ?? false }

    /// Why the request ended, or nil while it runs.
    public var reason: CancellationReason? { context.reason }

    /// With `reason == .timedOut`: which timeout.
    public var timeout: Timeout? { context.timeout }

    /// Runs `body` exactly once with the reason the request ended: at the
    /// moment it is cancelled (on the server's loop thread: keep it short), or
    /// with `.handlerFinished` when the handler returns first (in its task)
    /// or closes its hijacked connection (in `close()`). Runs at once if the
    /// request has already ended.
    public func onCancel(_ body: @escaping @Sendable (CancellationReason) -> Void) {
        context.onCancel(body)
    }
}

/// The request body: an async sequence of byte chunks.
///
/// The body is not read from the client until the first `next()` (that is
/// also when `100 Continue` is sent), so a handler that never looks at a
/// body never makes the client send it. Reading throws `RequestEndedError`
/// once the connection is gone or after the handler has returned. One
/// iterator reads it: the first `next()` claims the body for its iterator
/// (each `makeAsyncIterator()`, and so each `for try await` loop and
/// `collect`, is a new one), and any other iterator's `next()` throws
/// `VigilError.bodyAlreadyIterated` at once, whether the owner is waiting
/// or not. Read the whole body with one iterator; once it was read to its
/// end, that iterator's `next()` keeps returning nil. A request without a
/// body ends at once for every iterator.
public struct RequestBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let context: RequestContext

    public struct AsyncIterator: AsyncIteratorProtocol {
        let context: RequestContext
        /// This iterator's identity: the body is its own once its `next()`
        /// came first. Copies share it.
        let id: Int
        public mutating func next() async throws -> [UInt8]? {
            try await context.nextBodyChunk(iterator: id)
        }
    }

    /// A new iterator; its first `next()` claims the body unless another
    /// iterator's did.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(context: context, id: context.makeIteratorID())
    }

    /// Reads the whole body, up to `limit` bytes (throws past it).
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        var all: [UInt8] = []
        for try await chunk in self {
            if all.count + chunk.count > limit { throw VigilError.invalidArgument }
            all.append(contentsOf: chunk)
        }
        return all
    }
}
