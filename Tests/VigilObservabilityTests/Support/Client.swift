// A small HTTP/1.1 client over a loopback TCP socket, for these tests (as
// VigilOpenAPITests' own): whole requests, responses with Content-Length or
// chunked bodies, and leaving on purpose (FIN, or RST with SO_LINGER 0).
// Blocking calls run on Dispatch queues, never on the cooperative pool the
// server's handlers need; each has a timeout.
// CVigil: the socket constants (SOCK_STREAM) come from whichever module
// first imported <sys/socket.h> in a build (Glibc or the C targets'), as
// in VigilTests.
import CVigil
import Dispatch
import Foundation
import Vigil

#if canImport(Glibc)
import Glibc
#endif

struct ClientFailure: Error, CustomStringConvertible {
    let description: String
}

/// A parsed response.
struct Reply: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    /// The body came chunked.
    var chunked: Bool

    var text: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body as JSON.
    func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) }
}

final class Client: @unchecked Sendable {
    // @unchecked: `fd` is behind `fdLock` (close/reset may come while a
    // send waits on its queue); `buffered` is used by the test's task only.
    private let fdLock = Locked<Int32>(-1)
    private let readQueue = DispatchQueue(label: "Client.read")
    private let sendQueue = DispatchQueue(label: "Client.send")
    private var buffered: [UInt8] = []

    init(port: Int, timeout: Int = 10) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientFailure(description: "socket: \(errno)") }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr)
        let r = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ClientFailure(description: "connect: \(e)")
        }
        fdLock.withLock { $0 = fd }
    }

    deinit { close() }

    private var fd: Int32 { fdLock.withLock { $0 } }

    func send(_ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            sendQueue.async { [self] in
                c.resume(with: Result {
                    var off = 0
                    while off < bytes.count {
                        let n = bytes[off...].withUnsafeBytes {
                            Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                        }
                        if n <= 0 { throw ClientFailure(description: "send: \(errno)") }
                        off += n
                    }
                })
            }
        }
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Sends a request with an optional body (Content-Length) and reads
    /// the response.
    func request(
        _ method: String, _ target: String, headers: [String] = [], body: [UInt8]? = nil
    ) async throws -> Reply {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: test\r\n"
        for h in headers { head += h + "\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        try await send(Array((head + "\r\n").utf8) + (body ?? []))
        return try await response(head: method == "HEAD")
    }

    /// Reads one response.
    func response(head: Bool = false) async throws -> Reply {
        while true {
            if let (reply, used) = Self.parse(buffered, head: head) {
                buffered.removeFirst(used)
                return reply
            }
            let more = try await readSome()
            if more.isEmpty {
                throw ClientFailure(description: "connection closed; had: \(String(decoding: buffered.prefix(300), as: UTF8.self))")
            }
            buffered += more
        }
    }

    /// One recv: empty at EOF or reset; throws on timeout.
    private func readSome() async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { c in
            readQueue.async { [self] in
                c.resume(with: Result {
                    var buf = [UInt8](repeating: 0, count: 256 * 1024)
                    let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 { return Array(buf[..<n]) }
                    if n == 0 || errno == ECONNRESET { return [] }
                    throw ClientFailure(description: "recv: errno \(errno)")
                })
            }
        }
    }

    /// Leaves with FIN.
    func close() {
        fdLock.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// Leaves with RST (SO_LINGER 0).
    func reset() {
        fdLock.withLock { fd in
            guard fd >= 0 else { return }
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            Glibc.close(fd)
            fd = -1
        }
    }

    /// One response at the start of `bytes` and the bytes it took, or nil
    /// while incomplete.
    static func parse(_ bytes: [UInt8], head: Bool) -> (Reply, Int)? {
        guard let end = find([13, 10, 13, 10], in: bytes, from: 0) else { return nil }
        var lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [(String, String)] = []
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers.append((String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)))
        }
        var reply = Reply(status: status, headers: headers, body: [], chunked: false)
        var pos = end + 4
        if head || status < 200 || status == 204 || status == 304 { return (reply, pos) }
        if reply.header("transfer-encoding")?.lowercased() == "chunked" {
            reply.chunked = true
            while true {
                guard let le = find([13, 10], in: bytes, from: pos) else { return nil }
                let sizeText = String(decoding: bytes[pos..<le], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { return nil }
                pos = le + 2
                if size == 0 {
                    guard let te = find([13, 10], in: bytes, from: pos) else { return nil }
                    return (reply, te + 2)
                }
                guard bytes.count >= pos + size + 2 else { return nil }
                reply.body += bytes[pos..<(pos + size)]
                pos += size + 2
            }
        }
        let length = reply.header("content-length").flatMap { Int($0) } ?? 0
        guard bytes.count >= pos + length else { return nil }
        reply.body = Array(bytes[pos..<(pos + length)])
        return (reply, pos + length)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0], hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
