// Request.localAddress over loopback: the accepted socket's own address on
// IPv4 and IPv6 listeners, unchanged behind a PROXY header, nil on a Unix
// socket.
import Foundation
import HTTPTypes
@testable import Vigil
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class LocalAddressTests: XCTestCase {
    /// Answers "local|destination".
    static let whereAmI: Server.Handler = { request, response in
        let text = [
            request.localAddress?.description ?? "-",
            request.proxyDestinationAddress?.description ?? "-",
        ].joined(separator: "|")
        try response.send(HTTPResponse(status: .ok), body: Array(text.utf8))
    }

    static let get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

    func testIPv4Listener() async throws {
        let server = try await TestServer.start(Self.whereAmI)
        let client = try server.client()
        try await client.send(Self.get)
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "127.0.0.1:\(server.port)|-")
        client.close()
        try await server.stop()
    }

    func testIPv6Listener() async throws {
        let server = try await TestServer.start({ $0.host = "::1" }, Self.whereAmI)
        let client = try RawClient(port: server.port, host: "::1")
        try await client.send(Self.get)
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "[::1]:\(server.port)|-")
        client.close()
        try await server.stop()
    }

    /// Behind a PROXY header the local address is still the socket's (the
    /// proxy connected to it); the header's destination is beside it.
    func testBehindAProxyHeaderStaysTheSocketsOwn() async throws {
        let server = try await TestServer.start({ $0.proxyProtocol = .v1 }, Self.whereAmI)
        let client = try server.client()
        try await client.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + Self.get)
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "127.0.0.1:\(server.port)|192.0.2.1:443")
        client.close()
        try await server.stop()
    }

    func testUnixSocketHasNone() async throws {
        let path = "/tmp/vigil-local-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let server = try await TestServer.start({ $0.listen = .unix(path: path, mode: 0o600) }, Self.whereAmI)
        let client = try RawClient(unixPath: path)
        try await client.send(Self.get)
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString, "-|-")
        client.close()
        try await server.stop()
    }
}
