// What VigilTesting throws: a wait that ran out of time, a connection the
// server closed, a response that does not parse, a socket call that failed.

/// An error from the test kit: every wait is bounded, and a wait that runs
/// out throws `kind == .timedOut` (saying what it waited for) instead of
/// hanging the test.
public struct VigilTestingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// A wait ran out of time.
        case timedOut
        /// The server closed (or reset) the connection before the
        /// response was complete.
        case connectionClosed
        /// The server's bytes are not an HTTP/1.1 response the client
        /// understands.
        case malformedResponse
        /// A socket call failed (its errno is in the description).
        case socket
        /// A call the client cannot make now: a new request while a
        /// streamed response body is still unread, or a call after
        /// `disconnect`.
        case invalidUse
        /// The server did not start (its `run` threw before listening).
        case serverDidNotStart
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func timedOut(_ what: String, _ timeout: Duration) -> Self {
        Self(.timedOut, "timed out after \(timeout) waiting for \(what)")
    }
}
