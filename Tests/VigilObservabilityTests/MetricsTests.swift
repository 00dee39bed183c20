// VigilMetrics over loopback, counted by swift-metrics' in-memory backend
// (MetricsTestKit), passed to the middleware: no global bootstrap.
import HTTPTypes
import MetricsTestKit
import Vigil
import VigilMetrics
import XCTest

final class MetricsTests: XCTestCase {
    private func dims(_ method: String, _ status: String) -> [(String, String)] {
        [("http.request.method", method), ("http.response.status_code", status)]
    }

    func testRequestsDurationsBytesAndInFlight() async throws {
        let metrics = TestMetrics()
        let middleware = MetricsMiddleware(factory: metrics)
        struct Boom: Error {}
        let serving = try await Serving.start(middleware.wrap { request, response in
            switch request.head.path {
            case "/echo":
                let body = try await request.body.collect(upTo: 1 << 20)
                try await response.write(HTTPResponse(status: .created), body: body)
            case "/throw":
                throw Boom()
            case "/stream":
                let writer = try await response.start(HTTPResponse(status: .ok))
                try await writer.write("abc")
                try await writer.write("defg")
                try await writer.finish()
            default:
                try await response.write(HTTPResponse(status: .ok), body: "hello")
            }
        })
        let client = try serving.client()
        var reply = try await client.request("GET", "/")
        XCTAssertEqual(reply.status, 200)
        reply = try await client.request("GET", "/?again")
        XCTAssertEqual(reply.status, 200)
        reply = try await client.request("POST", "/echo", body: Array(repeating: 7, count: 1000))
        XCTAssertEqual(reply.status, 201)
        XCTAssertEqual(reply.body.count, 1000)
        reply = try await client.request("GET", "/stream")
        XCTAssertEqual(reply.text, "abcdefg")
        reply = try await client.request("GET", "/throw")
        XCTAssertEqual(reply.status, 500)
        let other = try serving.client()
        reply = try await other.request("BREW", "/")
        XCTAssertEqual(reply.status, 200)

        // Recorded after the handler returns, which may be just after the
        // client read the response.
        let counted = await eventually {
            metrics.counterTotal(label: "vigil.server.requests") == 6
        }
        XCTAssertTrue(counted, "requests: \(metrics.counterTotal(label: "vigil.server.requests"))")
        XCTAssertEqual(try metrics.expectCounter("vigil.server.requests", dims("GET", "200")).totalValue, 3)
        XCTAssertEqual(try metrics.expectCounter("vigil.server.requests", dims("POST", "201")).totalValue, 1)
        XCTAssertEqual(try metrics.expectCounter("vigil.server.requests", dims("GET", "500")).totalValue, 1)
        // An unregistered method is not a series of its own.
        XCTAssertEqual(try metrics.expectCounter("vigil.server.requests", dims("_OTHER", "200")).totalValue, 1)
        let timer = try metrics.expectTimer("http.server.request.duration", dims("GET", "200"))
        XCTAssertEqual(timer.values.count, 3)
        XCTAssertTrue(timer.values.allSatisfy { $0 > 0 && $0 < 10_000_000_000 }, "\(timer.values)")
        XCTAssertEqual(try metrics.expectCounter("vigil.server.request.body.bytes").totalValue, 1000)
        // hello three times, the echo, the stream; not the server's 500 page.
        XCTAssertEqual(try metrics.expectCounter("vigil.server.response.body.bytes").totalValue, 3 * 5 + 1000 + 7)
        let active = try metrics.expectMeter("http.server.active_requests", [("http.request.method", "GET")])
        XCTAssertEqual(active.lastValue, 0)
        XCTAssertEqual(active.values.max(), 1)
        // Every reason's series exists from the start, at 0.
        XCTAssertEqual(
            try metrics.expectCounter(
                "vigil.server.cancellations",
                [("vigil.cancellation.reason", String(describing: CancellationReason.reset))]
            ).totalValue, 0)
        try await serving.stop()
    }

    /// A client leaving with FIN, then one with RST: each request counted
    /// once, under its reason, with no status (nothing was sent).
    func testCancellationsByReason() async throws {
        let metrics = TestMetrics()
        let started = Mailbox<Void>()
        let serving = try await Serving.start(MetricsMiddleware(factory: metrics).wrap { request, response in
            started.put(())
            _ = try await request.connectionClosed()
            try await Task.sleep(for: .milliseconds(1))  // throws: the task is cancelled
        })
        for leave in ["fin", "rst"] {
            let client = try serving.client()
            try await client.send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
            let began: Void? = await started.take()
            XCTAssertNotNil(began, "the handler did not start")
            if leave == "fin" { client.close() } else { client.reset() }
            let counted = await eventually {
                metrics.counterTotal(label: "vigil.server.requests") == (leave == "fin" ? 1 : 2)
            }
            XCTAssertTrue(counted, leave)
        }
        for reason in [CancellationReason.clientClosed, .reset] {
            let c = try metrics.expectCounter(
                "vigil.server.cancellations", [("vigil.cancellation.reason", String(describing: reason))])
            XCTAssertEqual(c.totalValue, 1, "\(reason)")
        }
        XCTAssertEqual(try metrics.expectCounter("vigil.server.requests", dims("GET", "")).totalValue, 2)
        XCTAssertEqual(
            try metrics.expectMeter("http.server.active_requests", [("http.request.method", "GET")]).lastValue, 0)
        try await serving.stop()
    }

    func testConnectionGaugesFromStatistics() async throws {
        let metrics = TestMetrics()
        let connections = ConnectionMetrics(factory: metrics)
        let release = Mailbox<Void>()
        let serving = try await Serving.start { request, response in
            if request.head.path == "/hold" {
                _ = await release.take(seconds: 10)
            }
            try await response.write(HTTPResponse(status: .ok), body: "ok")
        }
        // Two idle keep-alive connections and one busy in a handler.
        let a = try serving.client()
        let b = try serving.client()
        _ = try await a.request("GET", "/")
        _ = try await b.request("GET", "/")
        let c = try serving.client()
        try await c.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        func gauge(_ state: String) -> Double? {
            try? metrics.expectGauge("vigil.server.connections", [("vigil.connection.state", state)]).lastValue
        }
        let seen = await eventually {
            connections.record(serving.server)
            return gauge("idle") == 2 && gauge("active") == 1
        }
        XCTAssertTrue(seen, "idle \(String(describing: gauge("idle"))), active \(String(describing: gauge("active")))")
        XCTAssertEqual(gauge("hijacked"), 0)
        XCTAssertEqual(try metrics.expectCounter("vigil.server.connections.accepted").totalValue, 3)
        // A second record adds only what grew.
        connections.record(serving.server)
        XCTAssertEqual(try metrics.expectCounter("vigil.server.connections.accepted").totalValue, 3)
        release.put(())
        _ = try await c.response()
        try await serving.stop()
    }
}
