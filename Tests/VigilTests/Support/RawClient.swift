import Dispatch
import Foundation
@testable import Vigil

#if canImport(Glibc)
import Glibc
#endif

/// A client speaking raw bytes over a loopback TCP socket, as real clients
/// do: partial writes, half-close, RST. Every blocking call runs on its own
/// Dispatch queue (never on the Swift cooperative pool, which the server's
/// handlers need) and has a timeout.
final class RawClient: @unchecked Sendable {
    // @unchecked: the descriptor sits behind a lock (close() may run while a
    // send is in flight on its queue); the read buffer is used only by the
    // test's own task.
    private let fdLock = Locked<Int32>(-1)
    private var fd: Int32 {
        get { fdLock.withLock { $0 } }
        set { fdLock.withLock { $0 = newValue } }
    }
    private let queue = DispatchQueue(label: "RawClient.read")
    private let sendQueue = DispatchQueue(label: "RawClient.send")

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(port: Int, host: String = "127.0.0.1", timeout: Double = 5) throws {
        let isV6 = host.contains(":")
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var r: Int32
        if isV6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &a.sin6_addr)
            r = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &a.sin_addr)
            r = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw Failure(description: "connect: \(e)")
        }
        self.fd = fd
    }

    /// A client of a Unix domain socket server.
    init(unixPath: String, timeout: Double = 5) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { p in
            for (i, b) in unixPath.utf8.prefix(p.count - 1).enumerated() { p[i] = b }
        }
        let r = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw Failure(description: "connect: \(e)")
        }
        self.fd = fd
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            queue.async { c.resume(with: Result { try body() }) }
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        // Its own queue: a test may read responses while a big body is sent.
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            sendQueue.async { [self] in c.resume(with: Result { try sendBlocking(bytes) }) }
        }
    }

    func send(_ string: String) async throws { try await send(Array(string.utf8)) }

    private func sendBlocking(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw Failure(description: "send: \(errno)") }
            off += n
        }
    }

    /// Reads what arrives until `until` is satisfied, the peer closes, or the
    /// socket timeout passes. Returns what was read (throws on timeout only
    /// if `throwOnTimeout`).
    func read(until: @escaping @Sendable ([UInt8]) -> Bool = { _ in false },
              max: Int = 64 << 20, throwOnTimeout: Bool = true) async throws -> [UInt8] {
        try await onQueue { [self] in
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while out.count < max {
                if until(out) { return out }
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    out.append(contentsOf: buf[0..<n])
                } else if n == 0 {
                    return out
                } else {
                    let e = errno
                    if e == EAGAIN || e == EWOULDBLOCK {
                        if throwOnTimeout { throw Failure(description: "read timed out after \(out.count) bytes: \(String(decoding: out.prefix(300), as: UTF8.self))") }
                        return out
                    }
                    if e == ECONNRESET { return out }
                    throw Failure(description: "recv: \(e)")
                }
            }
            return out
        }
    }

    /// Reads until the peer closes (EOF or reset).
    func readToEnd() async throws -> [UInt8] { try await read() }

    /// Bytes read past the last parsed response (the test's own task only).
    private var buffered: [UInt8] = []

    /// Reads exactly `count` complete HTTP responses (to HEAD requests if
    /// `head` says so), and returns them parsed.
    func readResponses(_ count: Int, head: Bool = false) async throws -> [HTTPResponseData] {
        var parsed: [HTTPResponseData] = []
        while parsed.count < count {
            if let (r, used) = HTTPResponseData.parse(buffered, head: head) {
                parsed.append(r)
                buffered.removeFirst(used)
                continue
            }
            let have = buffered
            let got = try await read(until: { HTTPResponseData.parse(have + $0, head: head) != nil })
            if got.isEmpty {
                throw Failure(description: "connection ended after \(parsed.count) responses; pending: \(String(decoding: buffered.prefix(400), as: UTF8.self))")
            }
            buffered.append(contentsOf: got)
        }
        return parsed
    }

    func readResponse(head: Bool = false) async throws -> HTTPResponseData {
        try await readResponses(1, head: head)[0]
    }

    /// Half-close: FIN, keep reading possible.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Close with FIN.
    func close() {
        fdLock.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// Close with RST (SO_LINGER 0).
    func reset() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    /// Shrinks the receive buffer, to make a slow reader.
    func setReceiveBuffer(_ bytes: Int32) {
        var v = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// True if the server closed the connection (EOF or reset) within the timeout.
    func waitForClose() async throws -> Bool {
        let rest = try await read(throwOnTimeout: false)
        _ = rest
        return try await onQueue { [self] in
            var b: UInt8 = 0
            let n = recv(fd, &b, 1, Int32(MSG_DONTWAIT))
            return n == 0 || (n < 0 && errno != EAGAIN)
        }
    }
}

/// A parsed HTTP/1.1 response (test side: small and strict).
struct HTTPResponseData: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    var bodyString: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// Parses one response at the start of `bytes`: (response, bytes used),
    /// or nil if incomplete. A body without length runs to the end of `bytes`
    /// and is only complete once the caller saw EOF, so it is not parsed here.
    static func parse(_ bytes: [UInt8], head: Bool = false) -> (HTTPResponseData, Int)? {
        let crlf2: [UInt8] = [13, 10, 13, 10]
        guard let end = find(crlf2, in: bytes, from: 0) else { return nil }
        let headText = String(decoding: bytes[0..<end], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [(String, String)] = []
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers.append((String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)))
        }
        var r = HTTPResponseData(status: status, headers: headers, body: [])
        var pos = end + 4
        if status < 200 || status == 204 || status == 304 || head {
            return (r, pos)
        }
        if let cl = r.header("content-length").flatMap({ Int($0) }) {
            guard bytes.count >= pos + cl else { return nil }
            r.body = Array(bytes[pos..<(pos + cl)])
            return (r, pos + cl)
        }
        if r.header("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                guard let le = find([13, 10], in: bytes, from: pos) else { return nil }
                let sizeText = String(decoding: bytes[pos..<le], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else { return nil }
                pos = le + 2
                if size == 0 {
                    guard bytes.count >= pos + 2 else { return nil }
                    return (r, pos + 2)
                }
                guard bytes.count >= pos + size + 2 else { return nil }
                r.body.append(contentsOf: bytes[pos..<(pos + size)])
                pos += size + 2
            }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}
