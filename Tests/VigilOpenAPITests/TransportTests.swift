// VigilTransport on its own, over loopback: routing (mixed segments,
// percent-encoding, 404, 405 with Allow), the request body's length and
// streaming, response framing, the task-local request, cancellation.
import HTTPTypes
import Logging
import OpenAPIRuntime
import Vigil
@testable import VigilOpenAPI
import XCTest

final class TransportTests: XCTestCase {
    typealias Handler = VigilTransport.OperationHandler

    /// A handler answering `text`.
    static func answer(_ text: String) -> Handler {
        { _, _, _ in (HTTPResponse(status: .ok), HTTPBody(text)) }
    }

    /// A handler answering its path parameters, `name=value` sorted, `;`
    /// between.
    static let echoParameters: Handler = { _, _, metadata in
        let text = metadata.pathParameters.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: ";")
        return (HTTPResponse(status: .ok), HTTPBody(text))
    }

    func testMixedSegmentsAndPercentEncodedParameters() async throws {
        let transport = VigilTransport()
        try transport.register(Self.echoParameters, method: .get, path: "/files/{name}.zip")
        try transport.register(Self.echoParameters, method: .get, path: "/files/{name}")
        try transport.register(Self.answer("list"), method: .get, path: "/files/list")
        try transport.register(Self.echoParameters, method: .get, path: "/v/{a}-{b}.{ext}")
        let s = try await Serving.start(transport)
        let c = try s.client()
        let cases: [(String, Int, String)] = [
            ("/files/report.zip", 200, "name=report"),
            // The suffix is the segment's end: the name keeps its dots.
            ("/files/a.b.zip", 200, "name=a.b"),
            // Parameters arrive as sent (the generated code decodes them):
            // %2F is inside the segment, not a separator.
            ("/files/a%2Fb%20c.zip", 200, "name=a%2Fb%20c"),
            ("/files/list", 200, "list"),
            ("/files/other", 200, "name=other"),
            // An escaped unreserved character is that character.
            ("/fil%65s/list", 200, "list"),
            ("/files/x.zip?size=3#frag", 200, "name=x"),
            ("/v/x-y-z.tar", 200, "a=x;b=y-z;ext=tar"),
            ("/v/x-y.z.tar", 200, "a=x;b=y;ext=z.tar"),
            // A long segment full of the literals: matched without
            // backtracking (the target is the client's).
            ("/v/" + String(repeating: "-", count: 6000) + ".", 404, ""),
            // An empty parameter does not match.
            ("/files/.zip", 200, "name=.zip"),
            ("/files/", 404, ""),
            ("/v/-y.tar", 404, ""),
            ("/files/a/b.zip", 404, ""),
            ("/nothing", 404, ""),
            ("/", 404, ""),
        ]
        for (target, status, body) in cases {
            let r = try await c.request("GET", target)
            XCTAssertEqual(r.status, status, String(target.prefix(80)))
            if status == 200 { XCTAssertEqual(r.text, body, String(target.prefix(80))) }
        }
        try await s.stop()
    }

    func testMethodNotAllowedNamesTheAllowedMethods() async throws {
        let transport = VigilTransport()
        try transport.register(Self.answer("get"), method: .get, path: "/items/{id}")
        try transport.register(Self.answer("delete"), method: .delete, path: "/items/{key}")
        try transport.register(Self.answer("post"), method: .post, path: "/items")
        let s = try await Serving.start(transport)
        let c = try s.client()

        var r = try await c.request("PUT", "/items/7")
        XCTAssertEqual(r.status, 405)
        XCTAssertEqual(r.header("Allow"), "DELETE, GET, HEAD")
        r = try await c.request("GET", "/items")
        XCTAssertEqual(r.status, 405)
        XCTAssertEqual(r.header("Allow"), "POST")
        r = try await c.request("DELETE", "/items/7")
        XCTAssertEqual(r.text, "delete")
        // HEAD is served by GET, without the body.
        r = try await c.request("HEAD", "/items/7")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Length"), "3")
        r = try await c.request("GET", "/items/7/x")
        XCTAssertEqual(r.status, 404)
        XCTAssertNil(r.header("Allow"))
        // Methods are case-sensitive tokens: `get` is not GET.
        r = try await c.request("get", "/items/7")
        XCTAssertEqual(r.status, 405)
        try await s.stop()
    }

    func testRegisterRefusesMalformedAndDuplicateTemplates() throws {
        let transport = VigilTransport()
        try transport.register(Self.echoParameters, method: .get, path: "/a/{x}")
        XCTAssertThrowsError(try transport.register(Self.echoParameters, method: .get, path: "/a/{y}"))
        XCTAssertNoThrow(try transport.register(Self.echoParameters, method: .put, path: "/a/{y}"))
        for bad in ["a/b", "/a/{x", "/a/x}", "/a/{}", "/a/{x}{y}", "/a/{x}/{x}"] {
            XCTAssertThrowsError(try transport.register(Self.echoParameters, method: .get, path: bad), bad)
        }
    }

    /// The body reaches the operation with its length, as Vigil reads it:
    /// chunk by chunk, none larger than what the server buffers, never the
    /// whole body at once.
    func testStreamedUploadOfFiveMiB() async throws {
        let seen = Mailbox<(HTTPBody.Length, Int, Int, Int)>()
        let transport = VigilTransport()
        try transport.register({ _, body, _ in
            var total = 0, chunks = 0, largest = 0
            for try await chunk in body! {
                total += chunk.count
                chunks += 1
                largest = max(largest, chunk.count)
            }
            seen.put((body!.length, total, chunks, largest))
            return (HTTPResponse(status: .ok), HTTPBody("\(total)"))
        }, method: .post, path: "/upload")
        let s = try await Serving.start(transport) { $0.maxBodySize = nil }
        let c = try s.client()
        let size = 5 << 20
        try await c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
        var pattern = [UInt8](repeating: 0, count: 256 * 1024)
        for i in pattern.indices { pattern[i] = UInt8(truncatingIfNeeded: i) }
        for _ in 0..<(size / pattern.count) { try await c.send(pattern) }
        let r = try await c.response()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, "\(size)")
        let got = await seen.take()
        XCTAssertEqual(got?.0, .known(Int64(size)))
        XCTAssertEqual(got?.1, size)
        XCTAssertGreaterThan(got?.2 ?? 0, 1, "one chunk: the body was gathered")
        XCTAssertLessThanOrEqual(got?.3 ?? .max, 64 * 1024, "a chunk larger than readBufferLimit")

        // Chunked: length unknown.
        try await c.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        let r2 = try await c.response()
        XCTAssertEqual(r2.text, "5")
        let chunked = await seen.take()
        XCTAssertEqual(chunked?.0, .unknown)
        try await s.stop()
    }

    func testRequestWithoutBodyHasNone() async throws {
        let transport = VigilTransport()
        try transport.register({ _, body, _ in
            (HTTPResponse(status: .ok), HTTPBody(body == nil ? "none" : "some"))
        }, method: .get, path: "/b")
        let s = try await Serving.start(transport)
        let c = try s.client()
        let none = try await c.request("GET", "/b")
        XCTAssertEqual(none.text, "none")
        let empty = try await c.request("GET", "/b", body: [])
        XCTAssertEqual(empty.text, "some")
        try await s.stop()
    }

    /// Known length: Content-Length, gathered or streamed; unknown: chunked.
    func testResponseFraming() async throws {
        let big = (0..<(300 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let transport = VigilTransport()
        try transport.register({ _, _, _ in
            (HTTPResponse(status: .ok), HTTPBody("small"))
        }, method: .get, path: "/small")
        try transport.register({ _, _, _ in
            let chunks = stride(from: 0, to: big.count, by: 10_000).map {
                big[$0..<min($0 + 10_000, big.count)]
            }
            return (HTTPResponse(status: .ok),
                    HTTPBody(AsyncChunks(chunks), length: .known(Int64(big.count)), iterationBehavior: .single))
        }, method: .get, path: "/big")
        try transport.register({ _, _, _ in
            (HTTPResponse(status: .ok),
             HTTPBody(AsyncChunks([[1, 2, 3], [], [4, 5]]), length: .unknown, iterationBehavior: .single))
        }, method: .get, path: "/stream")
        try transport.register({ _, _, _ in
            var head = HTTPResponse(status: .noContent)
            head.headerFields[.contentLength] = "99"
            return (head, nil)
        }, method: .get, path: "/none")
        try transport.register({ _, _, _ in
            (HTTPResponse(status: .ok),
             HTTPBody(AsyncChunks([[1, 2]]), length: .known(3), iterationBehavior: .single))
        }, method: .get, path: "/short")
        let s = try await Serving.start(transport)
        let c = try s.client()

        var r = try await c.request("GET", "/small")
        XCTAssertEqual(r.header("Content-Length"), "5")
        XCTAssertFalse(r.chunked)
        r = try await c.request("GET", "/big")
        XCTAssertEqual(r.header("Content-Length"), "\(big.count)")
        XCTAssertFalse(r.chunked)
        XCTAssertEqual(r.body, big)
        r = try await c.request("GET", "/stream")
        XCTAssertTrue(r.chunked)
        XCTAssertNil(r.header("Content-Length"))
        XCTAssertEqual(r.body, [1, 2, 3, 4, 5])
        r = try await c.request("GET", "/none")
        XCTAssertEqual(r.status, 204)
        XCTAssertNil(r.header("Content-Length"))
        // A body shorter than it said: 500, never a response that looks whole.
        r = try await c.request("GET", "/short")
        XCTAssertEqual(r.status, 500)
        try await s.stop()
    }

    /// The operation runs in the request's task: it reads the request
    /// through the task-local, and a client leaving cancels it.
    func testOperationSeesItsRequestAndIsCancelledWhenTheClientLeaves() async throws {
        let started = Mailbox<Void>()
        let ended = Mailbox<(CancellationReason, Bool, CancellationReason?)>()
        let transport = VigilTransport()
        try transport.register({ _, _, _ in
            guard let request = VigilTransport.currentRequest else {
                return (HTTPResponse(status: .internalServerError), nil)
            }
            started.put(())
            let reason = try await request.connectionClosed()
            ended.put((reason, Task.isCancelled, request.cancellation.reason))
            return (HTTPResponse(status: .ok), nil)
        }, method: .get, path: "/wait")
        try transport.register({ _, _, _ in
            (HTTPResponse(status: .ok), HTTPBody(VigilTransport.currentRequest == nil ? "nil" : "set"))
        }, method: .get, path: "/check")
        let s = try await Serving.start(transport)
        XCTAssertNil(VigilTransport.currentRequest)

        let check = try await s.client().request("GET", "/check")
        XCTAssertEqual(check.text, "set")

        for leave in ["FIN", "RST"] {
            let c = try s.client()
            try await c.send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
            let began: Void? = await started.take()
            XCTAssertNotNil(began, leave)
            if leave == "FIN" { c.close() } else { c.reset() }
            let got = await ended.take()
            let expected: CancellationReason = leave == "FIN" ? .clientClosed : .reset
            XCTAssertEqual(got?.0, expected, leave)
            XCTAssertEqual(got?.1, true, "\(leave): the operation's task was not cancelled")
            XCTAssertEqual(got?.2, expected, leave)
        }
        try await s.stop()
    }

    /// A parameter that does not decode gets 400 before any operation runs;
    /// the runtime would have handed it over as "" (a 200 with an empty
    /// name before the fix).
    func testUndecodableParameterGets400() async throws {
        let transport = VigilTransport()
        try transport.register(Self.echoParameters, method: .get, path: "/files/{name}.zip")
        try transport.register(Self.echoParameters, method: .get, path: "/greet/{name}")
        let s = try await Serving.start(transport)
        let c = try s.client()
        let cases: [(String, Int, String)] = [
            ("/greet/%zz", 400, ""),
            ("/greet/%", 400, ""),
            ("/greet/a%2", 400, ""),
            ("/greet/%FF", 400, ""),
            ("/greet/%C3", 400, ""),
            ("/greet/%C3%B6%ZZ", 400, ""),
            ("/files/%FF.zip", 400, ""),
            ("/greet/%C3%B6", 200, "name=%C3%B6"),
            ("/greet/a%20b", 200, "name=a%20b"),
            ("/greet/100%25", 200, "name=100%25"),
        ]
        for (target, status, body) in cases {
            let r = try await c.request("GET", target)
            XCTAssertEqual(r.status, status, target)
            if status == 200 { XCTAssertEqual(r.text, body, target) }
        }
        try await s.stop()
    }

    /// HEAD served by a GET operation: the GET's framing, and its body never
    /// produced (it cost the whole body's CPU before the fix); the
    /// connection goes on.
    func testHeadDoesNotProduceTheBody() async throws {
        let iterated = Mailbox<Void>()
        let transport = VigilTransport()
        try transport.register({ _, _, _ in
            (HTTPResponse(status: .ok),
             HTTPBody(Recording(chunks: [[UInt8](repeating: 1, count: 100_000)], onNext: { iterated.put(()) }),
                      length: .known(100_000), iterationBehavior: .single))
        }, method: .get, path: "/known")
        try transport.register({ _, _, _ in
            (HTTPResponse(status: .ok),
             HTTPBody(Recording(chunks: [[1, 2, 3]], onNext: { iterated.put(()) }),
                      length: .unknown, iterationBehavior: .single))
        }, method: .get, path: "/unknown")
        let s = try await Serving.start(transport)
        let c = try s.client()
        var r = try await c.request("HEAD", "/known")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Length"), "100000")
        XCTAssertTrue(r.body.isEmpty)
        r = try await c.request("HEAD", "/unknown")
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(r.body.isEmpty)
        let produced: Void? = await iterated.take(seconds: 0.1)
        XCTAssertNil(produced, "a HEAD request's body was produced")
        r = try await c.request("GET", "/known")
        XCTAssertEqual(r.body.count, 100_000)
        try await s.stop()
    }

    /// A streamed body of known length that goes on past it: the client
    /// must not get a response that looks whole (it did before the fix:
    /// the chunk completing the length was written before the body was
    /// known to end).
    func testStreamedBodyLongerThanDeclaredIsCutOff() async throws {
        let transport = VigilTransport()
        try transport.register({ _, _, _ in
            let chunk = [UInt8](repeating: 7, count: 100_000)
            return (HTTPResponse(status: .ok),
                    HTTPBody(AsyncChunks([chunk, chunk, chunk]), length: .known(200_000), iterationBehavior: .single))
        }, method: .get, path: "/long")
        let s = try await Serving.start(transport)
        let c = try s.client()
        do {
            let r = try await c.request("GET", "/long")
            XCTFail("a whole response: \(r.status), \(r.body.count) bytes")
        } catch {
            // The connection closed before the 200 000 bytes: as expected.
        }
        try await s.stop()
    }

    /// A ServerError reaching the transport is logged by Vigil without
    /// the request's fields: an Authorization header stayed in the log
    /// before the fix (the runtime's description holds the whole request).
    func testOperationFailureIsLoggedWithoutTheRequestsFields() async throws {
        let lines = Locked<[String]>([])
        let transport = VigilTransport()
        try transport.register({ request, body, metadata in
            throw ServerError(
                operationID: "secretive", request: request, requestBody: body, requestMetadata: metadata,
                causeDescription: "it broke", underlyingError: CancellationError())
        }, method: .get, path: "/fail")
        let s = try await Serving.start(transport) { config in
            config.logger = Logger(label: "test") { _ in CapturingLogHandler(lines: lines) }
            config.logger.logLevel = .error
        }
        let r = try await s.client().request("GET", "/fail", headers: ["Authorization: Bearer hunter2"])
        XCTAssertEqual(r.status, 500)
        try await s.stop()
        let logged = lines.withLock { $0 }.joined(separator: "\n")
        XCTAssertTrue(logged.contains("secretive"), logged)
        XCTAssertTrue(logged.contains("it broke"), logged)
        XCTAssertFalse(logged.contains("hunter2"), logged)
    }

    func testTemplateOrder() throws {
        let t = try ["/f/{n}", "/f/list", "/f/{n}.zip", "/f/a{n}.zip"].map { try PathTemplate($0) }
        let sorted = t.sorted(by: PathTemplate.moreSpecific).map(\.text)
        XCTAssertEqual(sorted, ["/f/list", "/f/a{n}.zip", "/f/{n}.zip", "/f/{n}"])
        XCTAssertEqual(PathTemplate.split("/a%2f%41%7e/b?x=/c"), ["a%2FA~", "b"])
        XCTAssertNil(PathTemplate.split("*"))
    }
}

/// A log handler keeping each line (message and metadata) in `lines`.
struct CapturingLogHandler: LogHandler {
    let lines: Locked<[String]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.withLock { $0.append("\(event.message) \(all)") }
    }
}

/// Chunks as an async sequence that reports each `next()`.
struct Recording: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>
    let chunks: [[UInt8]]
    let onNext: @Sendable () -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<[UInt8]>
        let onNext: @Sendable () -> Void
        mutating func next() async -> ArraySlice<UInt8>? {
            onNext()
            return rest.popFirst()?[...]
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: chunks[...], onNext: onNext) }
}

/// Chunks as an async sequence.
struct AsyncChunks: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>
    let chunks: [ArraySlice<UInt8>]
    init(_ chunks: [ArraySlice<UInt8>]) { self.chunks = chunks }
    init(_ chunks: [[UInt8]]) { self.chunks = chunks.map { $0[...] } }

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<ArraySlice<UInt8>>
        mutating func next() async -> ArraySlice<UInt8>? { rest.popFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: chunks[...]) }
}
