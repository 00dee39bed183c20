// The public error and end-reason types: why a request ended, which
// timeout, and the errors calls throw (mapped from the C core's codes and
// reasons in CBridge.swift).
import CVigil

/// Why a request ended. The first reason wins and never changes.
public enum CancellationReason: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The client closed its side of the connection (FIN).
    case clientClosed
    /// The connection was reset (RST).
    case reset
    /// Another read error on the socket.
    case readFailed
    /// Writing the response failed (EPIPE, ECONNRESET on write).
    case writeFailed
    /// A server timeout fired.
    case timedOut
    /// The server shut down and the grace period ran out.
    case serverShutdown
    /// The handler returned first: the request was not cancelled.
    case handlerFinished
    /// The request body was malformed.
    case badRequest
    /// The request body passed its limit (413).
    case bodyTooLarge
    /// The kernel gave up on a client that sent neither FIN nor RST: its
    /// keepalive probes went unanswered (`Server.Configuration.tcpKeepAlive`),
    /// or sent data stayed unacknowledged (or a zero window was kept) past
    /// `tcpUserTimeout`, or the network reported it unreachable. A client
    /// whose host crashed or whose network went away.
    case peerUnreachable

    /// True for every reason except `.handlerFinished`.
    public var isCancellation: Bool { self != .handlerFinished }

    /// The case's name (`clientClosed`, `reset`, ...), the same as the C
    /// core's `vigil_reason_name`: an identifier with no spaces, to use as
    /// a metric label or log value as it is.
    public var description: String { String(cString: vigil_reason_name(cValue)) }
}

/// Which timeout ended a request whose reason is `.timedOut`.
public enum Timeout: Sendable, Hashable {
    /// No request body bytes for `bodyTimeout` while the handler read it.
    case bodyRead
    /// No progress writing the response for `writeTimeout`.
    case write
    /// The handler ran longer than `handlerTimeout`.
    case handler
}

/// Thrown by body reads and response writes once the request has ended:
/// the connection is gone (or the handler already finished), and why.
public struct RequestEndedError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: CancellationReason
    public var description: String { "request ended: \(reason)" }
}

/// An error from the C core (its code, which `vigil_strerror` names) or
/// from the Swift layer (a code of its own, outside the core's).
public struct VigilError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: Int32
    public init(code: Int32) { self.code = code }
    public var description: String {
        switch code {
        case Self.bodyAlreadyIteratedCode:
            return "this body or connection is read by another iterator (one iterator reads it)"
        case Self.bodyInProgressCode:
            return "the request body is partly read: it cannot be hijacked now"
        case Self.hijackInProgressCode:
            return "the request is being hijacked: its body cannot be read now"
        case Self.noInheritedSocketCode:
            return "no listening socket was passed to this process (LISTEN_FDS, LISTEN_PID)"
        default:
            return String(cString: vigil_strerror(code)) + " (\(code))"
        }
    }

    /// The response was already started or ended.
    public static let alreadySent = VigilError(code: VIGIL_EALREADY)
    /// A body write or `finish()` of a response that was not started.
    public static let responseNotStarted = VigilError(code: VIGIL_EBUSY)
    /// A bad argument: header bytes, status, or a body longer than its Content-Length.
    public static let invalidArgument = VigilError(code: VIGIL_EINVAL)
    /// A `next()` on a request body or a hijacked connection through an
    /// iterator other than the one that read it first: the first `next()`
    /// claims the body (or the hijacked stream) for its iterator, and every
    /// other iterator's `next()` throws this at once, whether or not a read
    /// is waiting (two iterators would split the bytes between them). Also
    /// thrown for a `next()` while the same iterator's previous one (a copy
    /// used from another task) still waits. The owning iterator goes on.
    /// Its code is Swift's own, no C function returns it.
    public static let bodyAlreadyIterated = VigilError(code: bodyAlreadyIteratedCode)
    /// `hijack()` after the body was partly read: the bytes still to come
    /// are the middle of the body's framing, not the connection's own.
    /// Hijack before the first `next()` or after the body's end.
    public static let bodyInProgress = VigilError(code: bodyInProgressCode)
    /// A body `next()` while another task's `hijack()` of the same request
    /// is under way: starting the body then would hand its bytes to a
    /// stream that the hijack is about to restart.
    public static let hijackInProgress = VigilError(code: hijackInProgressCode)

    /// `Listen.systemd` in a process given no socket (`LISTEN_FDS` and
    /// `LISTEN_PID` unset, or naming another process). Swift's own code.
    public static let noInheritedSocket = VigilError(code: noInheritedSocketCode)

    // Swift's own codes, outside the C core's (negative errno values,
    // libuv's included).
    static let bodyAlreadyIteratedCode: Int32 = -100_001
    static let bodyInProgressCode: Int32 = -100_002
    static let hijackInProgressCode: Int32 = -100_003
    static let noInheritedSocketCode: Int32 = -100_004
}
