// The options that notice a client that vanished without FIN or RST
// (`tcpKeepAlive`, `tcpUserTimeout`) reach the accepted socket, and the C
// core's reasons, `.peerUnreachable` included, map to Swift and back. That
// unanswered probes end a request with `.peerUnreachable` takes a network
// that loses packets: Tests/deploy/vanish.sh.
import CVigil
import HTTPTypes
import XCTest

@testable import Vigil

#if canImport(Glibc)
import Glibc
#endif

final class KeepAliveTests: XCTestCase {
    struct SocketOptions: Equatable {
        var keepAlive: Int32 = -1, idle: Int32 = -1, interval: Int32 = -1, count: Int32 = -1
        var userTimeout: UInt32 = 0
    }

    /// The server runs in this process: its end of the test's one connection
    /// is the connected TCP socket whose local port is the server's.
    static func serverSideOptions(port: Int) -> SocketOptions? {
        for fd in Int32(3)..<4096 {
            var type: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0,
                type == Int32(SOCK_STREAM.rawValue)
            else { continue }
            var local = sockaddr_in()
            var peer = sockaddr_in()
            var alen = socklen_t(MemoryLayout<sockaddr_in>.size)
            var plen = alen
            let named = withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &alen) }
            }
            let connected = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &plen) }
            }
            guard named == 0, connected == 0, local.sin_family == sa_family_t(AF_INET),
                Int(UInt16(bigEndian: local.sin_port)) == port
            else { continue }
            var o = SocketOptions()
            func get<T>(_ level: Int32, _ name: Int32, _ value: inout T) {
                var l = socklen_t(MemoryLayout<T>.size)
                _ = getsockopt(fd, level, name, &value, &l)
            }
            get(SOL_SOCKET, SO_KEEPALIVE, &o.keepAlive)
            get(Int32(IPPROTO_TCP), TCP_KEEPIDLE, &o.idle)
            get(Int32(IPPROTO_TCP), TCP_KEEPINTVL, &o.interval)
            get(Int32(IPPROTO_TCP), TCP_KEEPCNT, &o.count)
            get(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &o.userTimeout)
            return o
        }
        return nil
    }

    /// One request answered on a kept-alive connection, then the options of
    /// the server's end of it.
    func optionsOfAcceptedSocket(
        _ configure: @escaping (inout Server.Configuration) -> Void
    ) async throws -> SocketOptions? {
        let server = try await TestServer.start(configure) { _, response in
            try response.send(HTTPResponse(status: .ok), body: Array("hi".utf8))
        }
        let client = try server.client()
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await client.readResponse()
        let options = Self.serverSideOptions(port: server.port)
        client.close()
        try await server.stop()
        return options
    }

    func testDefaultsProbeAfter15SecondsEvery15Seconds3Times() async throws {
        let defaults = Server.Configuration()
        XCTAssertEqual(
            defaults.tcpKeepAlive,
            Server.Configuration.TCPKeepAlive(idle: .seconds(15), interval: .seconds(15), count: 3))
        XCTAssertNil(defaults.tcpUserTimeout)
        let o = try await optionsOfAcceptedSocket { _ in }
        XCTAssertEqual(o, SocketOptions(keepAlive: 1, idle: 15, interval: 15, count: 3, userTimeout: 0))
    }

    /// Durations rounded up to whole seconds; the user timeout in ms.
    func testConfigurationReachesTheSocket() async throws {
        let o = try await optionsOfAcceptedSocket { config in
            config.tcpKeepAlive = .init(idle: .milliseconds(1500), interval: .seconds(1), count: 4)
            config.tcpUserTimeout = .milliseconds(2500)
        }
        XCTAssertEqual(o, SocketOptions(keepAlive: 1, idle: 2, interval: 1, count: 4, userTimeout: 2500))
    }

    func testNilTurnsKeepAliveOff() async throws {
        let o = try await optionsOfAcceptedSocket { config in config.tcpKeepAlive = nil }
        XCTAssertEqual(o?.keepAlive, 0)
    }

    /// Past the kernel's limits (127 probes, 32767 s) `run()` throws rather
    /// than the socket keeping another value.
    func testPastTheKernelsLimitsRunThrows() async throws {
        for keepAlive in [
            Server.Configuration.TCPKeepAlive(count: 128),
            Server.Configuration.TCPKeepAlive(idle: .seconds(32768)),
        ] {
            do {
                let server = try await TestServer.start({ $0.tcpKeepAlive = keepAlive }) { _, _ in }
                try await server.stop()
                XCTFail("started with \(keepAlive)")
            } catch let error as VigilError {
                XCTAssertEqual(error, .invalidArgument)
            }
        }
    }

    /// Every reason maps to the C core's and back, each with its own name.
    func testEveryReasonMapsToCAndBack() {
        let all: [CancellationReason] = [
            .clientClosed, .reset, .readFailed, .writeFailed, .timedOut, .serverShutdown,
            .handlerFinished, .badRequest, .bodyTooLarge, .peerUnreachable,
        ]
        for r in all { XCTAssertEqual(CancellationReason(r.cValue), r) }
        XCTAssertEqual(Set(all.map(\.description)).count, all.count)
        XCTAssertEqual(CancellationReason(VIGIL_REASON_PEER_UNREACHABLE), .peerUnreachable)
        XCTAssertEqual(CancellationReason.peerUnreachable.description, "peerUnreachable")
        XCTAssertTrue(CancellationReason.peerUnreachable.isCancellation)
    }
}
