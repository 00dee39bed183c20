// VigilMetrics over loopback, counted by swift-metrics' in-memory backend
// (MetricsTestKit), passed to the middleware: no global bootstrap.
import HTTPTypes
import MetricsTestKit
import Vigil
import VigilMetrics
import VigilTesting
import XCTest

final class MetricsTests: XCTestCase {
    private func dims(_ method: String, _ status: String) -> [(String, String)] {
        [("http.request.method", method), ("http.response.status_code", status)]
    }

    func testRequestsDurationsBytesAndInFlight() async throws {
        let metrics = TestMetrics()
        let middleware = MetricsMiddleware(factory: metrics)
        struct Boom: Error {}
        try await VigilTestServer.withServer(handler: middleware.wrap { request, response in
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
        }) { server in
            let client = try await server.connect()
            var reply = try await client.execute(.get, "/")
            XCTAssertEqual(reply.status, .ok)
            reply = try await client.execute(.get, "/?again")
            XCTAssertEqual(reply.status, .ok)
            reply = try await client.execute(.post, "/echo", body: Array(repeating: 7, count: 1000))
            XCTAssertEqual(reply.status, .created)
            XCTAssertEqual(reply.body.count, 1000)
            reply = try await client.execute(.get, "/stream")
            XCTAssertEqual(reply.bodyText, "abcdefg")
            reply = try await client.execute(.get, "/throw")
            XCTAssertEqual(reply.status, .internalServerError)
            let other = try await server.connect()
            reply = try await other.execute(HTTPRequest.Method("BREW")!, "/")
            XCTAssertEqual(reply.status, .ok)

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
        }
    }

    /// A client leaving with FIN, then one with RST: each request counted
    /// once, under its reason, with no status (nothing was sent).
    func testCancellationsByReason() async throws {
        let metrics = TestMetrics()
        try await VigilTestServer.withServer(handler: MetricsMiddleware(factory: metrics).wrap { request, _ in
            _ = try await request.connectionClosed()
            try await Task.sleep(for: .milliseconds(1))  // throws: the task is cancelled
        }) { server in
            for (n, leave) in [VigilTestClient.Disconnect.fin, .reset].enumerated() {
                let client = try await server.connect()
                try await client.send(.get, "/wait")
                _ = try await server.nextRequest()
                client.disconnect(leave)
                let counted = await eventually {
                    metrics.counterTotal(label: "vigil.server.requests") == n + 1
                }
                XCTAssertTrue(counted, "\(leave)")
            }
            for reason in [CancellationReason.clientClosed, .reset] {
                let c = try metrics.expectCounter(
                    "vigil.server.cancellations", [("vigil.cancellation.reason", String(describing: reason))])
                XCTAssertEqual(c.totalValue, 1, "\(reason)")
            }
            XCTAssertEqual(try metrics.expectCounter("vigil.server.requests", dims("GET", "")).totalValue, 2)
            XCTAssertEqual(
                try metrics.expectMeter("http.server.active_requests", [("http.request.method", "GET")]).lastValue, 0)
        }
    }

    func testConnectionGaugesFromStatistics() async throws {
        let metrics = TestMetrics()
        let connections = ConnectionMetrics(factory: metrics)
        let release = Mailbox<Void>()
        try await VigilTestServer.withServer(handler: { request, response in
            if request.head.path == "/hold" {
                _ = await release.take(seconds: 10)
            }
            try await response.write(HTTPResponse(status: .ok), body: "ok")
        }) { server in
            // Two idle keep-alive connections and one busy in a handler.
            let a = try await server.connect()
            let b = try await server.connect()
            _ = try await a.execute(.get, "/")
            _ = try await b.execute(.get, "/")
            let c = try await server.connect()
            try await c.send(.get, "/hold")
            func gauge(_ state: String) -> Double? {
                try? metrics.expectGauge("vigil.server.connections", [("vigil.connection.state", state)]).lastValue
            }
            let seen = await eventually {
                connections.record(server.server)
                return gauge("idle") == 2 && gauge("active") == 1
            }
            XCTAssertTrue(seen, "idle \(String(describing: gauge("idle"))), active \(String(describing: gauge("active")))")
            XCTAssertEqual(gauge("hijacked"), 0)
            XCTAssertEqual(try metrics.expectCounter("vigil.server.connections.accepted").totalValue, 3)
            // A second record adds only what grew.
            connections.record(server.server)
            XCTAssertEqual(try metrics.expectCounter("vigil.server.connections.accepted").totalValue, 3)
            release.put(())
            _ = try await c.readResponse()
        }
    }
}
