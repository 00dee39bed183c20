// Hummingbird 2 baseline: GET / -> 200 "Hello, World!" text/plain.
// Default Hummingbird configuration (its default event loop group).
// For the other scenarios (Benchmarks/README.md), the routes every server has:
//   POST /echo    200 with the request body streamed back (the request's
//                 body sequence as the response body)
//   GET /stream?n=N[&size=B][&ms=M]  chunked: N chunks of B bytes ('x'), or
//                 "chunk i\n" lines without size; Task.sleep(M ms) between
//                 chunks
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

router.post("/echo") { request, _ -> Response in
    var headers: HTTPFields = [.contentType: "application/octet-stream"]
    if let cl = request.headers[.contentLength] { headers[.contentLength] = cl }
    return Response(status: .ok, headers: headers, body: .init(asyncSequence: request.body))
}

router.get("/stream") { request, _ -> Response in
    let n = max(0, request.uri.queryParameters.get("n", as: Int.self) ?? 10)
    let size = request.uri.queryParameters.get("size", as: Int.self) ?? 0
    let ms = request.uri.queryParameters.get("ms", as: Int.self) ?? 0
    return Response(
        status: .ok,
        headers: [.contentType: "text/plain"],
        body: .init { writer in
            let block = size > 0 ? ByteBuffer(repeating: UInt8(ascii: "x"), count: size) : nil
            for i in 0..<n {
                if ms > 0 && i > 0 { try await Task.sleep(for: .milliseconds(ms)) }
                if let block {
                    try await writer.write(block)
                } else {
                    try await writer.write(ByteBuffer(string: "chunk \(i)\n"))
                }
            }
            try await writer.finish(nil)
        }
    )
}

let app = Application(
    router: router,
    configuration: .init(address: .hostname(host, port: port), serverName: nil),
    logger: logger
)
say("hb-bench listening on \(host):\(port)")
try await app.runService()
