// The public hijack API: a connection taken over from HTTP, raw bytes both
// ways.

extension Request {
    /// Takes the connection over from HTTP (Upgrade, CONNECT, a protocol of
    /// your own). Allowed before a response was started (else
    /// `VigilError.alreadySent`), and before the body was read or after it
    /// was read to its end (else `VigilError.bodyInProgress`).
    ///
    /// The bytes the client sent after the request head — an unread body,
    /// pipelined bytes — come first out of the returned connection, then
    /// everything that arrives later. The request's cancellation still
    /// reports the end of the connection: the handler's task is cancelled
    /// and close-notify waiters resume when the client goes (Go cannot:
    /// golang/go#22347, #32314). The connection closes when `close()` is
    /// called or the handler returns.
    public func hijack() throws -> HijackedConnection {
        try context.beginHijack()
        let r = context.hijackCore()
        // Refused (response started, request ended): nothing changed.
        context.endHijack(succeeded: r == 0)
        try context.checkHijack(r)
        return HijackedConnection(context: context)
    }
}

/// A connection taken over from HTTP: raw bytes both ways.
public struct HijackedConnection: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let context: RequestContext

    public var connectionID: UInt64 { context.connectionID }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let context: RequestContext
        /// Copies share it: see `next()`.
        let id: Int
        /// The next bytes; nil once the client half-closed (with
        /// `halfClose: .finishResponse`; with `.cancel` a FIN ends the
        /// request and this throws `RequestEndedError(.clientClosed)`) or
        /// after `close()`. One iterator reads the connection: the first
        /// `next()` claims it for its iterator, and any other iterator's
        /// `next()` throws `VigilError.bodyAlreadyIterated` at once
        /// (waiting or not), as does a second `next()` of a copy while one
        /// waits. After `close()` every iterator's `next()` returns nil.
        public mutating func next() async throws -> [UInt8]? {
            try await context.nextBodyChunk(iterator: id)
        }
    }

    /// A new iterator; its first `next()` claims the stream unless another
    /// iterator's did.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(context: context, id: context.makeIteratorID())
    }

    /// Writes raw bytes; returns once the output queue is under its limit.
    public func write(_ bytes: [UInt8]) async throws {
        try await context.writeHijacked(bytes)
    }

    public func write(_ string: String) async throws {
        try await write(Array(string.utf8))
    }

    /// Closes the connection once what was written is sent. The stream
    /// ends: a waiting `next()` and every later one return nil. The request
    /// ends with `.handlerFinished` unless it ended already, so
    /// `connectionClosed()` waiters return and `onCancel` callbacks run with
    /// it; the handler's task is not cancelled. Calling it again does
    /// nothing more.
    public func close() throws {
        try context.closeHijackedCore()
        context.hijackClosed()
    }
}
