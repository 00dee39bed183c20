// vigil-openapi-example --host H --port P: serves openapi.yaml's
// operations (ExampleService) through VigilOpenAPI's transport, under
// swift-service-lifecycle (SIGTERM/SIGINT: graceful shutdown), with its
// metrics in a Prometheus registry that GET /metrics shows.
import CoreMetrics
import Logging
import OpenAPIExampleService
import Prometheus
import ServiceLifecycle
import Vigil
import VigilOpenAPI

#if canImport(Glibc)
import Glibc
#endif

@main
struct Main {
    static let usage = """
        usage: vigil-openapi-example [--host H] [--port P]
          --host H   address to listen on (default 127.0.0.1)
          --port P   port (default 8080; 0 picks a free one, printed at start)
        """

    static func main() async {
        var host = "127.0.0.1"
        var port = 8080
        var args = CommandLine.arguments.dropFirst()
        while let a = args.popFirst() {
            switch a {
            case "--host":
                guard let v = args.popFirst() else { fail("--host needs a value") }
                host = v
            case "--port":
                guard let v = args.popFirst().flatMap({ Int($0) }), (0...65535).contains(v) else {
                    fail("--port needs a port number (0-65535)")
                }
                port = v
            case "-h", "--help":
                print(usage)
                return
            default:
                fail("unknown argument \(a)")
            }
        }

        var logger = Logger(label: "vigil-openapi-example")
        logger.logLevel = .info
        var configuration = Server.Configuration(host: host, port: port)
        configuration.logger = logger
        // The server's body limit (8 MiB) stays for every route; /upload
        // lifts it for its own request (ExampleService.upload).

        // Every swift-metrics metric of the process goes to one registry,
        // which /metrics shows: the service's request and connection
        // metrics, and those of any library that records some. Tracing
        // stays off: with no tracer bootstrapped there is nothing to
        // export to (bootstrap one, e.g. swift-otel's, and wrap the
        // handler with VigilTracing's TracingMiddleware).
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        do {
            let server = Server(configuration: configuration)
            let transport = VigilTransport()
            let example = ExampleService(registry: registry, statistics: { server.statistics })
            try example.register(on: transport)
            let service = ExampleServer(server: server, handler: example.handler(for: transport), host: host)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            try await group.run()
        } catch {
            fail("\(error)", usage: false)
        }
    }

    static func fail(_ message: String, usage showUsage: Bool = true) -> Never {
        writeLine("vigil-openapi-example: \(message)" + (showUsage ? "\n" + usage : ""), to: 2)
        exit(2)
    }
}

/// The server as a swift-service-lifecycle service that prints its port
/// once listening (`--port 0`).
struct ExampleServer: Service {
    let server: Server
    let handler: Server.Handler
    let host: String

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run(onListening: { port in
                // Unbuffered: a script waiting for the port reads it at once.
                writeLine("vigil-openapi-example listening on \(host):\(port)", to: 1)
            }, handler)
        } onGracefulShutdown: {
            server.shutdown()
        }
    }
}

/// Writes `line` and a newline to descriptor `fd` at once (no stdio buffer).
func writeLine(_ line: String, to fd: Int32) {
    let bytes = Array((line + "\n").utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return }
        off += n
    }
}
