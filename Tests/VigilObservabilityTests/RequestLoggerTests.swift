// Request.id and Request.logger: the id from X-Request-Id when it is safe
// to log, else made by the server; the logger carries it.
import HTTPTypes
import Logging
import Vigil
import VigilTesting
import XCTest

final class RequestLoggerTests: XCTestCase {
    func testRequestIDFromHeaderOrGenerated() async throws {
        let capture = LogCapture()
        let ids = Mailbox<String>()
        try await VigilTestServer.withServer(configure: { $0.logger = capture.logger() }, handler: { request, response in
            request.logger.info("handling")
            // The same id at every ask.
            XCTAssertEqual(request.id, request.id)
            ids.put(request.id)
            try await response.write(HTTPResponse(status: .ok))
        }) { server in
            let client = try await server.connect()
            let long = String(repeating: "a", count: 129)
            let cases: [(header: String?, kept: Bool)] = [
                ("abc-123_XYZ.7", true),
                (nil, false),
                ("has space", false),
                (long, false),
                (String(repeating: "b", count: 128), true),
                ("caf\u{E9}", false),
            ]
            var generated: [String] = []
            for (header, kept) in cases {
                var fields = HTTPFields()
                if let header { fields[RequestIDTests.field] = header }
                _ = try await client.execute(.get, "/", headerFields: fields)
                let id = await ids.take()
                guard let id else {
                    XCTFail("no id for \(String(describing: header))")
                    continue
                }
                if kept {
                    XCTAssertEqual(id, header)
                } else {
                    XCTAssertNotEqual(id, header)
                    // 16 hex digits, a dash, a hex counter.
                    let parts = id.split(separator: "-")
                    XCTAssertEqual(parts.count, 2, id)
                    XCTAssertEqual(parts.first?.count, 16, id)
                    XCTAssertTrue(id.allSatisfy { $0.isHexDigit || $0 == "-" }, id)
                    generated.append(id)
                }
            }
            XCTAssertEqual(Set(generated).count, generated.count, "generated ids repeat: \(generated)")
            // Two X-Request-Id fields (joined "a, b") are not one id.
            _ = try await client.execute(.get, "/", headerFields: HTTPFields([
                HTTPField(name: RequestIDTests.field, value: "a"), HTTPField(name: RequestIDTests.field, value: "b"),
            ]))
            let joined = await ids.take()
            XCTAssertNotEqual(joined, "a")
            XCTAssertNotEqual(joined, "a, b")

            let logged = capture.all.filter { $0.message == "handling" }.map { $0.metadata["request.id"] }
            XCTAssertEqual(logged.count, cases.count + 1)
            XCTAssertEqual(logged.first, .string("abc-123_XYZ.7"))
            XCTAssertEqual(logged[1], .string(generated[0]))
        }
    }
}

enum RequestIDTests {
    static let field = HTTPField.Name("X-Request-Id")!
}
