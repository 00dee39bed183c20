import HTTPTypes
@testable import Vigil
import XCTest

/// The PROXY protocol from Swift (`Configuration.proxyProtocol`): the
/// client's address in a v1 or v2 header reaches `Request.remoteAddress`,
/// the proxy's `peerAddress`, the header's destination
/// `proxyDestinationAddress`; without the header a connection is closed
/// unanswered; a server that takes none answers a header with 400.
final class ProxyProtocolTests: XCTestCase {
    /// Answers "remote|peer|destination|x-forwarded-for".
    static let whoami: Server.Handler = { request, response in
        let xff = request.head.headerFields[HTTPField.Name("X-Forwarded-For")!] ?? "-"
        let text = [
            request.remoteAddress?.description ?? "-",
            request.peerAddress?.description ?? "-",
            request.proxyDestinationAddress?.description ?? "-",
            xff,
        ].joined(separator: "|")
        try response.send(HTTPResponse(status: .ok), body: Array(text.utf8))
    }

    static let get = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n"

    func testV1AddressReachesTheRequest() async throws {
        let server = try await TestServer.start({ $0.proxyProtocol = .v1 }, Self.whoami)
        let client = try server.client()
        try await client.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + Self.get)
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        let parts = r.bodyString.split(separator: "|").map(String.init)
        XCTAssertEqual(parts.count, 4)
        XCTAssertEqual(parts[0], "203.0.113.7:51234")
        XCTAssertTrue(parts[1].hasPrefix("127.0.0.1:"), parts[1])
        XCTAssertNotEqual(parts[1], "127.0.0.1:51234")
        XCTAssertEqual(parts[2], "192.0.2.1:443")
        // X-Forwarded-For is the handler's to read, as sent.
        XCTAssertEqual(parts[3], "198.51.100.9")
        client.close()
        try await server.stop()
    }

    func testV2IPv6AndLocal() async throws {
        let server = try await TestServer.start({ $0.proxyProtocol = .any }, Self.whoami)
        let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        var a6 = [UInt8](repeating: 0, count: 36)
        a6[0] = 0x20; a6[1] = 0x01; a6[2] = 0x0d; a6[3] = 0xb8; a6[15] = 7  // 2001:db8::7
        a6[31] = 1                                                          // ::1
        a6[32] = 0x9c; a6[33] = 0x40; a6[34] = 0x1f; a6[35] = 0x90          // 40000, 8080
        let client = try server.client()
        try await client.send(sig + [0x21, 0x21, 0x00, 36] + a6 + Array(Self.get.utf8))
        let r = try await client.readResponse()
        XCTAssertEqual(r.bodyString.split(separator: "|").first.map(String.init), "[2001:db8::7]:40000")
        XCTAssertTrue(r.bodyString.contains("|[::1]:8080|"), r.bodyString)
        client.close()

        // LOCAL (health checks): the real peer, no destination.
        let local = try server.client()
        try await local.send(sig + [0x20, 0x00, 0x00, 0x00] + Array(Self.get.utf8))
        let l = try await local.readResponse()
        let parts = l.bodyString.split(separator: "|").map(String.init)
        XCTAssertEqual(parts.count, 4)
        XCTAssertTrue(parts[0].hasPrefix("127.0.0.1:"), parts[0])
        XCTAssertEqual(parts[0], parts[1])
        XCTAssertEqual(parts[2], "-")
        local.close()
        try await server.stop()
    }

    func testMissingHeaderIsClosedUnanswered() async throws {
        let handled = Recorder<Int>()
        let server = try await TestServer.start({ $0.proxyProtocol = .any }) { _, response in
            handled.append(1)
            try response.send(HTTPResponse(status: .ok), body: [])
        }
        let client = try server.client(timeout: 3)
        try await client.send(Self.get)
        let rest = try await client.read(throwOnTimeout: false)
        XCTAssertEqual(rest, [], String(decoding: rest, as: UTF8.self))
        let closed = try await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertEqual(handled.count, 0)
        client.close()
        try await server.stop()
    }

    func testHeaderWithoutTheProtocolIs400() async throws {
        let server = try await TestServer.start(Self.whoami)
        let client = try server.client()
        try await client.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + Self.get)
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.header("Connection"), "close")
        client.close()
        // Without a header the client is the peer.
        let plain = try server.client()
        try await plain.send(Self.get)
        let p = try await plain.readResponse()
        let parts = p.bodyString.split(separator: "|").map(String.init)
        XCTAssertEqual(parts.count, 4)
        XCTAssertEqual(parts[0], parts[1])
        XCTAssertEqual(parts[2], "-")
        plain.close()
        try await server.stop()
    }

    func testSocketAddressDescriptions() {
        XCTAssertEqual(SocketAddress(family: .ipv4, host: "1.2.3.4", port: 80).description, "1.2.3.4:80")
        XCTAssertEqual(SocketAddress(family: .ipv6, host: "::1", port: 443).description, "[::1]:443")
        XCTAssertEqual(SocketAddress(family: .unix, host: "/run/a.sock", port: 0).description, "unix:/run/a.sock")
    }
}
