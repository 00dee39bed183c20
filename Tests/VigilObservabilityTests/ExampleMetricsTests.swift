// The example service's GET /metrics: Prometheus text with the requests,
// cancellations and connections VigilMetrics recorded, as
// vigil-openapi-example serves it.
import OpenAPIExampleService
import Prometheus
import Vigil
import VigilOpenAPI
import VigilTesting
import XCTest

final class ExampleMetricsTests: XCTestCase {
    func testMetricsExposition() async throws {
        let running = Locked<Server?>(nil)
        let example = ExampleService(
            registry: PrometheusCollectorRegistry(),
            statistics: { running.withLock { $0 }?.statistics })
        let transport = VigilTransport()
        try example.register(on: transport)
        try await VigilTestServer.withServer(handler: example.handler(for: transport)) { server in
            running.withLock { $0 = server.server }

            let client = try await server.connect()
            for name in ["a", "b", "c"] {
                let reply = try await client.execute(.get, "/greet/\(name)")
                XCTAssertEqual(reply.status, .ok)
                _ = try await server.nextRequest()
            }
            // A client leaving /slow: its cancellation, by reason.
            let leaving = try await server.connect()
            try await leaving.send(.get, "/slow?seconds=30")
            _ = try await server.nextRequest()
            leaving.disconnect(.fin)

            let greeted = #"vigil_server_requests{http_request_method="GET",http_response_status_code="200"} 3"#
            let reason = String(describing: CancellationReason.clientClosed)
            let cancelled = #"vigil_server_cancellations{vigil_cancellation_reason="\#(reason)"} 1"#
            // Read from the server at the scrape: this client's connection is
            // the one serving it, once the leaver's has closed.
            let connections = #"vigil_server_connections{vigil_connection_state="active"} 1.0"#
            var text = ""
            let complete = try await eventually {
                let reply = try await client.execute(.get, "/metrics")
                XCTAssertEqual(reply.status, .ok)
                XCTAssertEqual(reply.headerFields[.contentType], "text/plain")
                text = reply.bodyText
                return text.contains(greeted) && text.contains(cancelled) && text.contains(connections)
            }
            XCTAssertTrue(complete, text)
            XCTAssertTrue(text.contains("# TYPE vigil_server_requests counter"), text)
            XCTAssertTrue(text.contains("# TYPE http_server_request_duration histogram"), text)
            XCTAssertTrue(text.contains(#"http_server_request_duration_count{http_request_method="GET",http_response_status_code="200"} 3"#), text)
            // The /metrics request being served is in flight.
            XCTAssertTrue(text.contains(#"http_server_active_requests{http_request_method="GET"} 1.0"#), text)
            XCTAssertTrue(text.contains(#"vigil_server_connections{vigil_connection_state="idle"} 0.0"#), text)
            XCTAssertTrue(text.contains("vigil_server_connections_accepted 2"), text)
        }
    }
}
