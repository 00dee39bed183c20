// The client's socket: non-blocking, its calls made on a Dispatch thread
// (never on the cooperative pool, which the server's handlers need), each
// waiting in poll() slices so that a deadline, the task's cancellation or
// a disconnect from another task ends it promptly.
import Dispatch
import Synchronization  // Atomic
import Vigil

// Linux with glibc, as Vigil itself.
import Glibc

/// A TCP socket of a test client. The descriptor is closed exactly once:
/// by `close`, or, while a call is using it, by the last call to finish
/// (so that a number reused by another socket is never read or written).
final class TestSocket: Sendable {
    private struct State {
        var fd: Int32
        /// Calls running with `fd`.
        var users = 0
        /// A close asked for while calls were running.
        var pendingClose: VigilTestClient.Disconnect?
    }

    private let state: Locked<State>

    /// Poll slices: the longest a blocked call takes to notice a
    /// cancellation or a `close` from another task.
    private static let sliceMs: Int32 = 20

    private init(fd: Int32) {
        state = Locked(State(fd: fd))
    }

    deinit {
        // Nobody uses it any more: close what `close` was not called for.
        let fd = state.withLock { $0.fd }
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Connects to `host` (an IPv4 or IPv6 literal) and `port`.
    static func connect(host: String, port: Int, deadline: ContinuousClock.Instant,
                        timeout: Duration) async throws -> TestSocket {
        var storage = sockaddr_storage()
        let length: socklen_t
        if host.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else {
                throw VigilTestingError(.invalidUse, "not an IPv6 address: \(host)")
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in6.self) }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else {
                throw VigilTestingError(.invalidUse, "not an IPv4 address: \(host)")
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in.self) }
        }
        let fd = socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw socketError("socket") }
        let sock = TestSocket(fd: fd)
        let address = storage
        try await sock.blocking("connecting to \(host) port \(port)", deadline: deadline, timeout: timeout) { fd, wait in
            var address = address
            let r = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
            }
            if r == 0 { return }
            guard errno == EINPROGRESS else { throw socketError("connect") }
            try wait(Int16(POLLOUT))
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { throw VigilTestingError(.socket, "connect: errno \(err)") }
        }
        var one: Int32 = 1
        sock.withFD { setsockopt($0, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        return sock
    }

    enum ReadResult: Sendable {
        case bytes([UInt8])
        /// The server closed its side (FIN).
        case eof
        /// The server reset the connection.
        case reset
    }

    /// Whatever arrives first (up to 64 KiB), or the end of the stream.
    func read(_ what: String, deadline: ContinuousClock.Instant, timeout: Duration) async throws -> ReadResult {
        try await blocking(what, deadline: deadline, timeout: timeout) { fd, wait in
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { return .bytes(Array(buf[..<n])) }
                if n == 0 { return .eof }
                switch errno {
                case EAGAIN, EWOULDBLOCK: try wait(Int16(POLLIN))
                case EINTR: continue
                case ECONNRESET: return .reset
                default: throw socketError("recv")
                }
            }
        }
    }

    /// Writes all of `bytes`.
    func write(_ bytes: [UInt8], _ what: String, deadline: ContinuousClock.Instant, timeout: Duration) async throws {
        try await blocking(what, deadline: deadline, timeout: timeout) { fd, wait in
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes {
                    send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                }
                if n > 0 {
                    off += n
                    continue
                }
                switch errno {
                case EAGAIN, EWOULDBLOCK: try wait(Int16(POLLOUT))
                case EINTR: continue
                case EPIPE, ECONNRESET:
                    throw VigilTestingError(.connectionClosed, "\(what): the server closed the connection (errno \(errno)) after \(off) of \(bytes.count) bytes")
                default: throw socketError("send")
                }
            }
        }
    }

    /// Half-close: a FIN; the server's answer can still be read.
    func shutdownWrite() {
        withFD { _ = shutdown($0, Int32(SHUT_WR)) }
    }

    /// Leaves: `.fin` closes the socket (the kernel sends FIN), `.reset`
    /// closes it with SO_LINGER 0 (the kernel sends RST). While another
    /// task's call uses the socket, that call ends within a poll slice
    /// (throwing `.invalidUse`) and closes it. A second close does nothing.
    func close(_ how: VigilTestClient.Disconnect) {
        state.withLock { s in
            guard s.fd >= 0, s.pendingClose == nil else { return }
            if how == .reset {
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            }
            if s.users == 0 {
                _ = Glibc.close(s.fd)
                s.fd = -1
            } else {
                s.pendingClose = how
            }
        }
    }

    var isClosed: Bool { state.withLock { $0.fd < 0 || $0.pendingClose != nil } }

    /// The socket's local port (the client's side).
    var localPort: Int {
        withFD { fd in
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let r = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            guard r == 0 else { return 0 }
            return withUnsafeBytes(of: &storage) { raw in
                // sin_port and sin6_port sit at the same offset.
                Int(UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self)))
            }
        } ?? 0
    }

    /// `body` with the descriptor, under the lock (short calls only); nil
    /// once closed.
    @discardableResult
    private func withFD<R>(_ body: (Int32) -> R) -> R? {
        state.withLock { s in
            guard s.fd >= 0, s.pendingClose == nil else { return nil }
            return body(s.fd)
        }
    }

    private final class Cancelled: Sendable {
        let flag = Atomic<Bool>(false)
    }

    /// Runs `body` on a Dispatch thread with the descriptor, which stays
    /// open until it returns. `body` gets a `wait(events)` that polls for
    /// `events` in slices and throws once the deadline passed, the task was
    /// cancelled, or the socket is being closed.
    private func blocking<R: Sendable>(
        _ what: String, deadline: ContinuousClock.Instant, timeout: Duration,
        _ body: @escaping @Sendable (Int32, (Int16) throws -> Void) throws -> R
    ) async throws -> R {
        let fd = try state.withLock { s -> Int32 in
            guard s.fd >= 0, s.pendingClose == nil else {
                throw VigilTestingError(.invalidUse, "\(what): the client has disconnected")
            }
            s.users += 1
            return s.fd
        }
        let cancelled = Cancelled()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
                DispatchQueue.global().async { [self] in
                    let wait: (Int16) throws -> Void = { events in
                        try self.poll(fd, events, what, deadline: deadline, timeout: timeout, cancelled: cancelled)
                    }
                    let result = Result { try body(fd, wait) }
                    release()
                    c.resume(with: result)
                }
            }
        } onCancel: {
            cancelled.flag.store(true, ordering: .relaxed)
        }
    }

    private func poll(_ fd: Int32, _ events: Int16, _ what: String, deadline: ContinuousClock.Instant,
                      timeout: Duration, cancelled: Cancelled) throws {
        while true {
            if cancelled.flag.load(ordering: .relaxed) { throw CancellationError() }
            if state.withLock({ $0.pendingClose != nil }) {
                throw VigilTestingError(.invalidUse, "\(what): the client disconnected meanwhile")
            }
            let left = deadline - .now
            if left <= .zero { throw VigilTestingError.timedOut(what, timeout) }
            let leftMs = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = Glibc.poll(&p, 1, Int32(min(Int64(Self.sliceMs), leftMs)))
            // Ready, or an error or hang-up the next call reports.
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw socketError("poll") }
        }
    }

    /// A call is done with the descriptor: the last one closes it if a
    /// close was asked for meanwhile.
    private func release() {
        state.withLock { s in
            s.users -= 1
            if s.users == 0, s.pendingClose != nil, s.fd >= 0 {
                _ = Glibc.close(s.fd)
                s.fd = -1
            }
        }
    }
}

func socketError(_ call: String) -> VigilTestingError {
    VigilTestingError(.socket, "\(call): errno \(errno)")
}
