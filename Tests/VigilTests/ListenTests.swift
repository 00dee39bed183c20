// CVigil: the socket constants (SOCK_STREAM) come from whichever module
// first imported <sys/socket.h> in this build (Glibc or the C targets'),
// and which one that is varies between incremental builds.
import CVigil
import Foundation
import HTTPTypes
@testable import Vigil
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Where the server listens, as `Server.Configuration` says it, reaching
/// the C core: a Unix socket, an inherited descriptor, systemd's variables,
/// `reusePort`; the shutdown's drain; `handOver` failures.
final class ListenTests: XCTestCase {
    private let ok: Server.Handler = { _, response in
        try response.send(HTTPResponse(status: .ok), body: Array("ok".utf8))
    }

    func testUnixSocket() async throws {
        let path = "/tmp/vigil-swift-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let server = try await TestServer.start({ $0.listen = .unix(path: path, mode: 0o600) }, ok)
        XCTAssertEqual(server.port, 0)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let client = try RawClient(unixPath: path)
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyString, "ok")
        client.close()
        try await server.stop()
        XCTAssertNotEqual(stat(path, &st), 0, "the socket file is removed at shutdown")
    }

    func testInheritedDescriptor() async throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        XCTAssertTrue(bound)
        defer { close(fd) }
        let port = Int(UInt16(bigEndian: a.sin_port))
        let server = try await TestServer.start({ $0.listen = .descriptor(fd); $0.loops = 2 }, ok)
        XCTAssertEqual(server.port, port)
        for _ in 0..<3 {
            let client = try RawClient(port: port)
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let status = try await client.readResponse().status
        XCTAssertEqual(status, 200)
        }
        try await server.stop()
        var v: Int32 = 0
        var vl = socklen_t(MemoryLayout<Int32>.size)
        XCTAssertEqual(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl), 0)
        XCTAssertEqual(v, 1, "the descriptor stays the caller's, listening")
    }

    func testSystemdWithoutSocketThrows() async throws {
        XCTAssertEqual(Server.inheritedSockets, [])
        do {
            _ = try await TestServer.start({ $0.listen = .systemd }, ok)
            XCTFail("listening on .systemd without LISTEN_FDS should throw")
        } catch let e as VigilError {
            XCTAssertEqual(e, .noInheritedSocket)
        }
    }

    /// Two loops used to mean SO_REUSEPORT: a second server on the port
    /// started silently. Now it fails unless both ask for `reusePort`.
    func testPortIsExclusiveUnlessAllReusePort() async throws {
        let a = try await TestServer.start({ $0.loops = 2 }, ok)
        do {
            let b = try await TestServer.start({ $0.port = a.port; $0.loops = 2 }, ok)
            try await b.stop()
            XCTFail("a second server on the port started")
        } catch let e as VigilError {
            XCTAssertEqual(e.code, -98)
        }
        try await a.stop()
        let c = try await TestServer.start({ $0.loops = 2; $0.reusePort = true; $0.backlog = 64 }, ok)
        let d = try await TestServer.start({ $0.port = c.port; $0.reusePort = true }, ok)
        XCTAssertEqual(d.port, c.port)
        try await d.stop()
        try await c.stop()
    }

    /// A keep-alive client sending its next request just after the
    /// shutdown began is served (`Connection: close`), not cut off.
    func testShutdownServesTheNextRequestOfAnIdleConnection() async throws {
        let server = try await TestServer.start({ $0.shutdownIdleTimeout = .seconds(2) }, ok)
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let status = try await client.readResponse().status
        XCTAssertEqual(status, 200)
        server.server.shutdown()
        try await Task.sleep(for: .milliseconds(50))
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("connection"), "close")
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        try await server.stop()
    }

    func testHandOverFailuresKeepServing() async throws {
        let server = try await TestServer.start(ok)
        do {
            try await server.server.handOver(to: "/nonexistent/vigil-successor")
            XCTFail("hand-over to a missing file succeeded")
        } catch let e as VigilError {
            XCTAssertEqual(e.code, -ENOENT)
        }
        do {
            try await server.server.handOver(to: "/bin/true")
            XCTFail("hand-over to a program that exits succeeded")
        } catch let e as VigilError {
            XCTAssertEqual(e.code, -ECHILD)
        }
        do {
            try await server.server.handOver(
                to: "/bin/sleep", arguments: ["5"], readyTimeout: .milliseconds(200))
            XCTFail("hand-over to a program that never says it is ready succeeded")
        } catch let e as VigilError {
            XCTAssertEqual(e.code, -ETIMEDOUT)
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let status = try await client.readResponse().status
        XCTAssertEqual(status, 200)
        try await server.stop()
        do {
            try await server.server.handOver(to: "/bin/true")
            XCTFail("hand-over of a stopped server succeeded")
        } catch let e as VigilError {
            XCTAssertEqual(e.code, VigilError(code: -108).code)
        }
    }

    /// run() returns as soon as the server has stopped, while a hand-over
    /// still waits for its successor: freeing the C server is left to the
    /// hand-over's own thread, and no cooperative-pool thread waits for it
    /// (with a one-thread pool, waiting there never ended).
    func testRunReturnsWhileAHandOverWaits() async throws {
        let server = Server(configuration: .init(host: "127.0.0.1", port: 0, loops: 1))
        let ok = self.ok
        let listening = AsyncStream<Int>.makeStream()
        let runTask = Task.detached {
            try await server.run(onListening: { listening.continuation.yield($0) }, ok)
        }
        for await _ in listening.stream { break }
        let handOverEnded = Locked(false)
        let handOver = Task.detached { () -> Int32? in
            defer { handOverEnded.withLock { $0 = true } }
            do {
                _ = try await server.handOver(
                    to: "/bin/sleep", arguments: ["10"], readyTimeout: .seconds(4))
                return 0
            } catch let e as VigilError { return e.code } catch { return nil }
        }
        try await Task.sleep(for: .milliseconds(300))  // it waits for /bin/sleep now
        runTask.cancel()
        _ = await runTask.result
        XCTAssertFalse(
            handOverEnded.withLock { $0 },
            "run() returned only after the hand-over ended: it waited for it")
        let code = await handOver.value
        XCTAssertEqual(code, -ETIMEDOUT)
    }
}
