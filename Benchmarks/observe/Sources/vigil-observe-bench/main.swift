// vigil-observe-bench --port P --mode off|metrics|tracing|tracing-noop|both
//
// GET / -> 200 "Hello, World!", the benchmark route of vigil-demo, served
// plain (off) or through VigilMetrics' and VigilTracing's wrappers with
// backends that do real work: Prometheus' registry for the metrics (GET
// /metrics shows it), swift-distributed-tracing's InMemoryTracer for the
// spans, emptied every second so that memory stays flat. tracing-noop:
// the tracing wrapper with the no-op tracer, the wrapper's own cost.
import HTTPTypes
import InMemoryTracing
import Prometheus
import Tracing
import Vigil
import VigilMetrics
import VigilTracing

#if canImport(Glibc)
import Glibc
#endif

func arguments() -> (port: Int, mode: String) {
    var port = 8080
    var mode = "off"
    var args = CommandLine.arguments.dropFirst()
    while let a = args.popFirst() {
        switch a {
        case "--port": port = args.popFirst().flatMap { Int($0) } ?? port
        case "--mode": mode = args.popFirst() ?? mode
        default:
            print("usage: vigil-observe-bench [--port P] [--mode off|metrics|tracing|tracing-noop|both]")
            exit(2)
        }
    }
    return (port, mode)
}
let (port, mode) = arguments()
guard ["off", "metrics", "tracing", "tracing-noop", "both"].contains(mode) else {
    print("vigil-observe-bench: unknown mode \(mode)")
    exit(2)
}

let hello = Array("Hello, World!".utf8)
let textPlain: HTTPFields = [.contentType: "text/plain"]
let registry = PrometheusCollectorRegistry()
let tracer = InMemoryTracer()

var handler: Server.Handler = { request, response in
    if request.head.path == "/metrics" {
        try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: registry.emitToBuffer())
        return
    }
    try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: hello)
}
if mode == "tracing" || mode == "both" {
    handler = TracingMiddleware(tracer: tracer).wrap(handler)
}
if mode == "tracing-noop" {
    handler = TracingMiddleware(tracer: NoOpTracer()).wrap(handler)
}
if mode == "metrics" || mode == "both" {
    handler = MetricsMiddleware(factory: PrometheusMetricsFactory(registry: registry)).wrap(handler)
}

var configuration = Server.Configuration(host: "127.0.0.1", port: port)
configuration.logger.logLevel = .warning
let server = Server(configuration: configuration)
let spans = Task {
    while !Task.isCancelled {
        try? await Task.sleep(for: .seconds(1))
        tracer.clearFinishedSpans()
    }
}
signal(SIGTERM, SIG_DFL)
try await server.run(onListening: { print("vigil-observe-bench (\(mode)) listening on 127.0.0.1:\($0)") }, handler)
spans.cancel()
