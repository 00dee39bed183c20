// The example service's GET /metrics: Prometheus text with the requests,
// cancellations and connections VigilMetrics recorded, as
// vigil-openapi-example serves it.
import OpenAPIExampleService
import Prometheus
import Vigil
import VigilOpenAPI
import XCTest

final class ExampleMetricsTests: XCTestCase {
    func testMetricsExposition() async throws {
        let running = Locked<Server?>(nil)
        let example = ExampleService(
            registry: PrometheusCollectorRegistry(),
            statistics: { running.withLock { $0 }?.statistics })
        let transport = VigilTransport()
        try example.register(on: transport)
        let serving = try await Serving.start(example.handler(for: transport))
        running.withLock { $0 = serving.server }

        let client = try serving.client()
        for name in ["a", "b", "c"] {
            let reply = try await client.request("GET", "/greet/\(name)")
            XCTAssertEqual(reply.status, 200)
        }
        // A client leaving /slow: its cancellation, by reason.
        let leaving = try serving.client()
        try await leaving.send("GET /slow?seconds=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))
        leaving.close()

        let greeted = #"vigil_server_requests{http_request_method="GET",http_response_status_code="200"} 3"#
        let reason = String(describing: CancellationReason.clientClosed)
        let cancelled = #"vigil_server_cancellations{vigil_cancellation_reason="\#(reason)"} 1"#
        // Read from the server at the scrape: this client's connection is
        // the one serving it, once the leaver's has closed.
        let connections = #"vigil_server_connections{vigil_connection_state="active"} 1.0"#
        var text = ""
        let complete = try await eventually {
            let reply = try await client.request("GET", "/metrics")
            XCTAssertEqual(reply.status, 200)
            XCTAssertEqual(reply.header("content-type"), "text/plain")
            text = reply.text
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
        try await serving.stop()
    }
}
