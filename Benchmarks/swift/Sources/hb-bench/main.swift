// Hummingbird 2 baseline: GET / -> 200 "Hello, World!" text/plain.
// Default Hummingbird configuration (its default event loop group).
// Usage: hb-bench [--host 127.0.0.1] [--port 8080]
import Hummingbird
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered line to stdout (print() is block-buffered when redirected).
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

func argument(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let host = argument("--host") ?? "127.0.0.1"
let port = Int(argument("--port") ?? "8080") ?? 8080

var logger = Logger(label: "hb-bench")
logger.logLevel = .notice

let router = Router()
router.get("/") { _, _ -> Response in
    Response(
        status: .ok,
        headers: [.contentType: "text/plain"],
        body: .init(byteBuffer: ByteBuffer(string: "Hello, World!"))
    )
}

let app = Application(
    router: router,
    configuration: .init(address: .hostname(host, port: port), serverName: nil),
    logger: logger
)
say("hb-bench listening on \(host):\(port)")
try await app.runService()
