// VigilTracing over loopback, with swift-distributed-tracing's in-memory
// tracer reading W3C `traceparent` fields, passed to the middleware: no
// global bootstrap.
import HTTPTypes
import InMemoryTracing
import Tracing
import Vigil
import VigilTesting
import VigilTracing
import XCTest

/// InMemoryTracer, whose own propagation uses fields of its own, taking
/// its parent from a W3C `traceparent` instead
/// (`00-<32 hex trace id>-<16 hex span id>-<flags>`), as a real tracer's
/// instrument would.
struct W3CInMemoryTracer: Tracer {
    typealias Span = InMemorySpan
    let inner = InMemoryTracer()

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        inner.startSpan(
            operationName, context: context(), ofKind: kind, at: instant(), function: function,
            file: fileID, line: line)
    }

    func forceFlush() { inner.forceFlush() }

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        inner.inject(context, into: &carrier, using: injector)
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let value = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = value.split(separator: "-")
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16 else { return }
        context.inMemorySpanContext = InMemorySpanContext(
            traceID: String(parts[1]), spanID: String(parts[2]), parentSpanID: nil)
    }
}

final class TracingTests: XCTestCase {
    func testOneServerSpanPerRequestWithParentAndAttributes() async throws {
        let tracer = W3CInMemoryTracer()
        let current = Mailbox<String?>()
        try await VigilTestServer.withServer(handler: TracingMiddleware(tracer: tracer).wrap { request, response in
            // The handler runs with the span's context current.
            current.put(ServiceContext.current?.inMemorySpanContext?.spanID)
            let body = try await request.body.collect(upTo: 1 << 20)
            let status: HTTPResponse.Status = request.head.path == "/fail" ? .serviceUnavailable : .ok
            try await response.write(HTTPResponse(status: status), body: Array("got \(body.count)".utf8))
        }) { server in
            let client = try await server.connect()
            let traceID = "0af7651916cd43dd8448eb211c80319c"
            let parentID = "b7ad6b7169203331"
            var reply = try await client.execute(
                .post, "/items/7?secret=x",
                headerFields: [HTTPField.Name("traceparent")!: "00-\(traceID)-\(parentID)-01", .userAgent: "tests/1"],
                body: Array(repeating: 1, count: 300))
            XCTAssertEqual(reply.bodyText, "got 300")
            reply = try await client.execute(.get, "/fail")
            XCTAssertEqual(reply.status, .serviceUnavailable)

            let ended = await eventually { tracer.inner.finishedSpans.count == 2 }
            XCTAssertTrue(ended, "spans: \(tracer.inner.finishedSpans.count)")
            let spans = tracer.inner.finishedSpans
            guard spans.count == 2 else { return }
            let post = spans[0]
            XCTAssertEqual(post.operationName, "POST")
            XCTAssertEqual(post.kind, .server)
            XCTAssertEqual(post.traceID, traceID)
            XCTAssertEqual(post.parentSpanID, parentID)
            let seenID = await current.take()
            XCTAssertEqual(seenID, post.spanID)
            XCTAssertEqual(post.attributes.get("http.request.method"), .string("POST"))
            XCTAssertEqual(post.attributes.get("url.path"), .string("/items/7"))
            XCTAssertEqual(post.attributes.get("user_agent.original"), .string("tests/1"))
            XCTAssertEqual(post.attributes.get("client.address"), .string("127.0.0.1"))
            XCTAssertEqual(post.attributes.get("http.response.status_code"), .int64(200))
            XCTAssertEqual(post.attributes.get("http.request.body.size"), .int64(300))
            XCTAssertEqual(post.attributes.get("http.response.body.size"), .int64(7))
            XCTAssertNil(post.status)
            XCTAssertTrue(post.events.isEmpty)

            let get = spans[1]
            XCTAssertEqual(get.operationName, "GET")
            // No traceparent: a root span of its own.
            XCTAssertNil(get.parentSpanID)
            XCTAssertNotEqual(get.traceID, traceID)
            XCTAssertEqual(get.attributes.get("http.response.status_code"), .int64(503))
            XCTAssertEqual(get.status?.code, .error)
            XCTAssertEqual(get.attributes.get("error.type"), .string("503"))
        }
    }

    /// A client leaving with FIN, then with RST: the span records the
    /// cancellation and its reason.
    func testCancellationRecordedWithReason() async throws {
        let tracer = W3CInMemoryTracer()
        try await VigilTestServer.withServer(handler: TracingMiddleware(tracer: tracer).wrap { _, _ in
            try await Task.sleep(for: .seconds(30))  // until cancelled
        }) { server in
            for (n, reason) in [CancellationReason.clientClosed, .reset].enumerated() {
                let client = try await server.connect()
                try await client.send(.get, "/wait")
                _ = try await server.nextRequest()
                client.disconnect(reason == .clientClosed ? .fin : .reset)
                let ended = await eventually { tracer.inner.finishedSpans.count == n + 1 }
                XCTAssertTrue(ended, "\(reason)")
                guard let span = tracer.inner.finishedSpans.last, ended else { continue }
                let name = String(describing: reason)
                XCTAssertEqual(span.attributes.get("vigil.cancellation.reason"), .string(name))
                XCTAssertEqual(span.attributes.get("error.type"), .string(name))
                XCTAssertEqual(span.events.map(\.name), ["vigil.request.cancelled"])
                XCTAssertEqual(span.events.first?.attributes.get("vigil.cancellation.reason"), .string(name))
                XCTAssertEqual(span.status?.code, .error)
                // Nothing was sent.
                XCTAssertNil(span.attributes.get("http.response.status_code"))
                // The CancellationError the handler ended with is the
                // cancellation, not an error of its own.
                XCTAssertTrue(span.errors.isEmpty)
            }
        }
    }
}
