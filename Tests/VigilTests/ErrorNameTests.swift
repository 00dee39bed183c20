// Errors named for what they mean: the error each refusal throws.
import HTTPTypes
import XCTest

@testable import Vigil

final class ErrorNameTests: XCTestCase {
    /// `hijack()` with the body partly read throws `.bodyInProgress` (not
    /// the response's `.responseNotStarted`, nor `.alreadySent`), and
    /// changes nothing: the handler still answers.
    func testHijackMidBodyThrowsBodyInProgress() async throws {
        let thrown = Signal<String>()
        let server = try await TestServer.start { request, response in
            var it = request.body.makeAsyncIterator()
            _ = try await it.next()  // the first part of a 10-byte body
            do {
                _ = try request.hijack()
                thrown.fire("no error")
            } catch {
                thrown.fire("\(error)")
            }
            try await response.write(HTTPResponse(status: .ok), body: "after")
        }
        let client = try server.client()
        try await client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
        let got = await thrown.wait(timeout: 5)
        XCTAssertEqual(got, "\(VigilError.bodyInProgress)")
        try await client.send("67890")  // the rest: the request ends cleanly
        let r = try await client.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyString, "after")
        try await server.stop()
    }

    /// Each case is one error: no two compare equal or read alike.
    func testErrorCasesAreDistinct() {
        let all: [VigilError] = [
            .alreadySent, .responseNotStarted, .invalidArgument, .bodyAlreadyIterated,
            .bodyInProgress, .hijackInProgress,
        ]
        XCTAssertEqual(Set(all).count, all.count)
        XCTAssertEqual(Set(all.map(\.description)).count, all.count)
    }
}
