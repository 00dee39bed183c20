// Errors named for what they mean: the error each refusal throws.
import CVigil
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

    /// Reason names work as metric labels and log values: each is an
    /// identifier ([a-z][A-Za-z]*), the Swift case's name, and the same
    /// text as the C core's `vigil_reason_name`.
    func testReasonNamesAreIdentifiersSharedWithC() {
        let expected: [CancellationReason: String] = [
            .clientClosed: "clientClosed", .reset: "reset", .readFailed: "readFailed",
            .writeFailed: "writeFailed", .timedOut: "timedOut", .serverShutdown: "serverShutdown",
            .handlerFinished: "handlerFinished", .badRequest: "badRequest",
            .bodyTooLarge: "bodyTooLarge", .peerUnreachable: "peerUnreachable",
        ]
        XCTAssertEqual(CancellationReason.allCases.count, expected.count)
        for reason in CancellationReason.allCases {
            let name = reason.description
            XCTAssertEqual(name, expected[reason])
            XCTAssertEqual(name, String(cString: vigil_reason_name(reason.cValue)))
            XCTAssertNotNil(name.wholeMatch(of: /[a-z][A-Za-z]*/), "\(name) is not an identifier")
            XCTAssertEqual("\(RequestEndedError(reason: reason))", "request ended: \(name)")
        }
        XCTAssertEqual(String(cString: vigil_reason_name(VIGIL_REASON_NONE)), "none")
    }
}
