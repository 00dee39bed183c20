// The request method as handlers see it, for the methods the Swift layer
// takes from the core's method id (vigil_request_method_id) and for tokens
// it builds from the bytes.
import HTTPTypes
import XCTest

@testable import Vigil

final class MethodIdTests: XCTestCase {
    /// Each method reaches the handler as itself: the ones with a core id
    /// as swift-http-types' own constant (`.head` is not `.get`), any other
    /// token as sent. A wrong entry in the id mapping fails here (the core
    /// answers HEAD alike whatever the handler sees, so no other test
    /// notices).
    func testEveryMethodReachesTheHandlerAsItself() async throws {
        let seen = Recorder<HTTPRequest.Method>()
        let server = try await TestServer.start { request, response in
            seen.append(request.head.method)
            try await response.write(HTTPResponse(status: .ok))
        }
        let expected: [(String, HTTPRequest.Method)] = [
            ("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put),
            ("DELETE", .delete), ("OPTIONS", .options), ("PATCH", .patch),
            ("TRACE", .trace), ("QUERY", HTTPRequest.Method("QUERY")!),
            ("get", HTTPRequest.Method("get")!),
        ]
        let client = try server.client()
        for (token, _) in expected {
            try await client.send("\(token) / HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try await client.readResponse(head: token == "HEAD")
            XCTAssertEqual(r.status, 200, token)
        }
        try await server.stop()
        let got = seen.all
        XCTAssertEqual(got.count, expected.count)
        for (method, (token, want)) in zip(got, expected) {
            XCTAssertEqual(method, want, token)
            XCTAssertEqual(method.rawValue, token)
        }
        // CONNECT has its own end-to-end test (ReliabilityTests'
        // testConnectAuthorityForm): its target splits by the method.
    }
}
