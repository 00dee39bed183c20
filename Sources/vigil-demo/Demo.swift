// vigil-demo: the demo and benchmark server.
//
//   GET  /          200 text/plain "Hello, World!"
//   (HEAD is answered as GET on every GET route: the core sends the head
//   without the body, RFC 9110 §9.3.2)
//   GET  /wait      waits up to 30 s for the request to be cancelled; records
//                   the wall-clock time (CLOCK_REALTIME, ns) at which the
//                   handler observed it; after 30 s answers 200 "timeout"
//   GET  /cancels   the recorded times, one per line, oldest first
//   GET  /reasons   how /wait and /stream requests were cancelled, one per
//                   line, oldest first: "TIME ROUTE REASON [TIMEOUT]", TIME
//                   as in /cancels, the handler's cancellation (onCancel)
//   POST /echo      200 with the request body streamed back
//   GET  /stream?n=N[&size=B][&ms=M]  a chunked response of N chunks: short
//                   lines, or B bytes each; M ms between chunks
//   GET  /stats     the core's counters, one "name value" per line
//   GET  /pid       the serving process's pid (restart tests)
//   GET  /slow?ms=N 200 "slept" after N ms (default 1000; an in-flight
//                   request for restart tests)
//   GET  /whoami    the addresses the handler reads, one "name value" per
//                   line: remote (the client: from the PROXY header with
//                   --proxy-protocol), peer (the connected socket's other
//                   end), destination (the PROXY header's, or -), and the
//                   X-Forwarded-For header as sent (or -), which the
//                   server does not interpret
//
// Signals: SIGINT/SIGTERM shut down gracefully; SIGUSR2 hands the listening
// socket over to a new process of this executable with the same arguments
// (Server.handOver), then this one drains and exits. A socket passed by
// systemd (LISTEN_FDS) is served instead of --host/--port/--unix/--fd.
import Dispatch
import HTTPTypes
import Vigil

#if canImport(Glibc)
import Glibc
#endif

let cancels = Locked<[Int64]>([])
/// A hand-over is under way (SIGUSR2): a second signal meanwhile is ignored.
let handingOver = Locked(false)
let reasons = Locked<[String]>([])
let hello = Array("Hello, World!".utf8)
let textPlain: HTTPFields = [.contentType: "text/plain"]

func wallClockNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func queryValue(_ path: String, _ key: String) -> String? {
    guard let q = path.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
    for pair in q.split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1)
        if kv.first.map(String.init) == key { return kv.count > 1 ? String(kv[1]) : "" }
    }
    return nil
}

nonisolated(nonsending) func handle(
    _ request: Request, _ response: ResponseWriter, _ server: Server
) async throws {
    let path = request.head.path ?? "/"
    // HEAD is GET without the body (RFC 9110 §9.3.2: curl -I, load
    // balancers' health checks); the core drops the body bytes itself.
    let method = request.head.method == .head ? .get : request.head.method
    // The benchmark's route first, without splitting strings. Every route
    // is a function of its own: an async function's frame holds whatever
    // lives across its awaits, so one big switch here would make even the
    // smallest request pay (in task-allocator memory) for /echo's and
    // /stream's state.
    if path == "/" && method == .get {
        try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: hello)
        return
    }
    let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
    switch (method, route) {
    case (.get, "/"):
        try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: hello)
    case (.get, "/wait"):
        recordCancellation(request, route: "/wait")
        try await waitForCancel(request, response)
    case (.get, "/reasons"):
        let text = reasons.withLock { $0.map { "\($0)\n" }.joined() }
        try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: Array(text.utf8))
    case (.get, "/stats"):
        try sendStats(response, server)
    case (.get, "/slow"):
        let ms = queryValue(path, "ms").flatMap { Int($0) } ?? 1000
        try await request.sleep(for: .milliseconds(max(0, min(ms, 60_000))))
        try response.send(
            HTTPResponse(status: .ok, headerFields: textPlain), body: Array("slept".utf8))
    case (.get, "/pid"):
        try response.send(
            HTTPResponse(status: .ok, headerFields: textPlain), body: Array("\(getpid())".utf8))
    case (.get, "/whoami"):
        try whoami(request, response)
    case (.get, "/cancels"):
        let text = cancels.withLock { $0.map { "\($0)\n" }.joined() }
        try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: Array(text.utf8))
    case (.post, "/echo"):
        try await echo(request, response)
    case (.get, "/stream"):
        recordCancellation(request, route: "/stream")
        try await stream(
            queryValue(path, "n").flatMap { Int($0) } ?? 10,
            size: queryValue(path, "size").flatMap { Int($0) },
            pauseMs: queryValue(path, "ms").flatMap { Int($0) } ?? 0, request, response)
    default:
        try response.send(
            HTTPResponse(status: .notFound, headerFields: textPlain), body: Array("Not Found".utf8))
    }
}

/// GET /wait: the cancellation handlers run the moment the task is
/// cancelled, which is when the loop thread sees the client go. The
/// innermost runs first: `request.sleep`'s, which stops its loop timer
/// (on the loop thread, in place: no other thread wakes), then this one,
/// which takes the time. So the figure includes the stop, as any handler's
/// clean-up would.
func waitForCancel(_ request: Request, _ response: ResponseWriter) async throws {
    let slept: Bool = await withTaskCancellationHandler {
        (try? await request.sleep(for: .seconds(30))) != nil
    } onCancel: {
        let now = wallClockNanos()
        cancels.withLock { $0.append(now) }
    }
    if slept {
        try response.send(
            HTTPResponse(status: .ok, headerFields: textPlain), body: Array("timeout".utf8))
    }
}

/// GET /reasons: when and why a request was cancelled, recorded the moment
/// it happens (onCancel runs on the loop thread then), for
/// Tests/deploy/vanish.sh: "TIME ROUTE REASON [TIMEOUT]".
func recordCancellation(_ request: Request, route: String) {
    request.cancellation.onCancel { [cancellation = request.cancellation] reason in
        guard reason.isCancellation else { return }
        let now = wallClockNanos()
        var line = "\(now) \(route) \(label(reason))"
        if let t = cancellation.timeout { line += " \(label(t))" }
        reasons.withLock { $0.append(line) }
    }
}

/// The reason's name (the Swift case name, which C's vigil_reason_name
/// gives too): one word each, for logs and metric labels.
func label(_ r: CancellationReason) -> String { r.description }

func label(_ t: Timeout) -> String {
    switch t {
    case .bodyRead: "bodyRead"
    case .write: "write"
    case .handler: "handler"
    }
}

/// GET /stats: the core's counters, for soak tests: "name value" lines.
func sendStats(_ response: ResponseWriter, _ server: Server) throws {
    var text = ""
    if let s = server.statistics {
        text += "connections_accepted \(s.connectionsAccepted)\n"
        text += "connections_open \(s.connectionsOpen)\n"
        text += "connections_idle \(s.connectionsIdle)\n"
        text += "requests_total \(s.requestsTotal)\n"
        text += "requests_live \(s.requestsLive)\n"
        text += "requests_cancelled \(s.requestsCancelled)\n"
        text += "bad_requests \(s.badRequests)\n"
    }
    try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: Array(text.utf8))
}

/// GET /whoami: the addresses the handler reads. X-Forwarded-For is
/// shown as sent: which hops to trust is the deployment's decision.
func whoami(_ request: Request, _ response: ResponseWriter) throws {
    let xff = HTTPField.Name("X-Forwarded-For")!
    let lines = [
        "remote \(request.remoteAddress?.description ?? "-")",
        "peer \(request.peerAddress?.description ?? "-")",
        "destination \(request.proxyDestinationAddress?.description ?? "-")",
        "x-forwarded-for \(request.head.headerFields[xff] ?? "-")",
    ]
    try response.send(
        HTTPResponse(status: .ok, headerFields: textPlain),
        body: Array((lines.joined(separator: "\n") + "\n").utf8))
}

/// POST /echo: the request body streamed back.
func echo(_ request: Request, _ response: ResponseWriter) async throws {
    var writer: ResponseBodyWriter?
    for try await chunk in request.body {
        if writer == nil {
            writer = try await response.start(HTTPResponse(status: .ok, headerFields: textPlain))
        }
        try await writer!.write(chunk)
    }
    if let writer {
        try await writer.finish()
    } else {
        try response.send(HTTPResponse(status: .ok, headerFields: textPlain), body: [])
    }
}

/// GET /stream?n=N[&size=B][&ms=M]: a chunked response of N chunks,
/// "chunk i" lines or B bytes each, M ms apart.
func stream(
    _ n: Int, size: Int?, pauseMs: Int, _ request: Request, _ response: ResponseWriter
) async throws {
    let writer = try await response.start(HTTPResponse(status: .ok, headerFields: textPlain))
    let block = size.map { [UInt8](repeating: UInt8(ascii: "x"), count: max(1, $0)) }
    for i in 0..<max(0, n) {
        if pauseMs > 0 && i > 0 {
            try await request.sleep(for: .milliseconds(pauseMs))
        }
        if let block {
            try await writer.write(block)
        } else {
            try await writer.write("chunk \(i)\n")
        }
    }
    try await writer.finish()
}

/// Not on the main actor: the handler runs on a Dispatch queue.
nonisolated func installSignalHandlers(
    _ signals: [Int32], _ action: @escaping @Sendable () -> Void
) -> [DispatchSourceSignal] {
    signals.map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler(handler: action)
        source.resume()
        return source
    }
}

/// This executable's path, read at start: a hand-over starts whatever file
/// is at that path then (a new version put there meanwhile).
func executablePath() -> String {
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = buf.withUnsafeMutableBufferPointer {
        readlink("/proc/self/exe", UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 4095)
    }
    return n > 0 ? String(decoding: buf[..<n], as: UTF8.self) : CommandLine.arguments[0]
}

let usage = """
    usage: vigil-demo [--host 127.0.0.1] [--port 8080] [--loops 1]
                      [--unix PATH [--unix-mode MODE]] [--fd N]
                      [--reuse-port] [--backlog N] [--shutdown-idle-ms N]
                      [--proxy-protocol v1|v2|any]
                      [--tcp-keepalive IDLE_MS,INTERVAL_MS,COUNT | off]
                      [--tcp-user-timeout MS] [--write-timeout MS]
      --unix PATH       listen on a Unix domain socket instead of host/port
      --unix-mode MODE  its file mode, octal (e.g. 660)
      --fd N            serve listening socket N, inherited from the parent
      --reuse-port      SO_REUSEPORT: share the port with other processes that
                        ask too (one socket per loop); off, a port in use fails
      --backlog N       listen backlog (1024)
      --shutdown-idle-ms N  at shutdown, how long an idle keep-alive connection
                        may still bring a request (1000; 0: closed at once)
      --proxy-protocol V  every connection must begin with a PROXY protocol
                        header of version V (v1, v2 or any): behind HAProxy's
                        send-proxy / send-proxy-v2; GET /whoami shows it
      --tcp-keepalive IDLE_MS,INTERVAL_MS,COUNT | off
                        TCP keepalive (15000,15000,3): a client that vanished
                        is cancelled with peerUnreachable
      --tcp-user-timeout MS  TCP_USER_TIMEOUT (0: not set, the default)
      --write-timeout MS     no write progress for this long (30000; 0: none)
    A socket passed by systemd socket activation (LISTEN_FDS, LISTEN_PID) is
    served instead of --host/--port/--unix/--fd, whatever they say.
    SIGTERM/SIGINT: graceful shutdown. SIGUSR2: start a new process of this
    executable with the same arguments, hand it the listening socket, then
    drain and exit (a restart that loses no request).
    """

/// The flags for noticing clients that vanish (Tests/deploy/vanish.sh):
/// `--tcp-keepalive IDLE_MS,INTERVAL_MS,COUNT` or `off`,
/// `--tcp-user-timeout MS` (0: not set), `--write-timeout MS` (0: none).
/// Unset flags keep the configuration's defaults.
struct PeerChecks {
    var keepAlive: Server.Configuration.TCPKeepAlive??
    var userTimeout: Duration??
    var writeTimeout: Duration??

    /// nil, or what is wrong with the value.
    mutating func parse(_ flag: String, _ value: String?) -> String? {
        guard let value else { return "\(flag) needs a value" }
        func ms(_ v: Int) -> Duration? { v == 0 ? nil : .milliseconds(v) }
        switch flag {
        case "--tcp-keepalive":
            if value == "off" {
                keepAlive = .some(nil)
                return nil
            }
            let parts = value.split(separator: ",").map { Int($0) }
            guard parts.count == 3, let idle = parts[0], let interval = parts[1],
                let count = parts[2], idle > 0, interval >= 0, count >= 0
            else { return "--tcp-keepalive takes IDLE_MS,INTERVAL_MS,COUNT (IDLE_MS > 0) or off, not \(value)" }
            keepAlive = .some(.init(idle: .milliseconds(idle), interval: .milliseconds(interval), count: count))
        case "--tcp-user-timeout", "--write-timeout":
            guard let v = Int(value), v >= 0 else { return "\(flag) takes milliseconds, not \(value)" }
            if flag == "--write-timeout" { writeTimeout = .some(ms(v)) } else { userTimeout = .some(ms(v)) }
        default:
            return "unknown argument \(flag)"
        }
        return nil
    }

    func apply(to c: inout Server.Configuration) {
        if let keepAlive { c.tcpKeepAlive = keepAlive }
        if let userTimeout { c.tcpUserTimeout = userTimeout }
        if let writeTimeout { c.writeTimeout = writeTimeout }
    }
}

@main
struct Demo {
    static func main() async {
        var host = "127.0.0.1"
        var port = 8080
        var loops = 1
        var unixPath: String?
        var unixMode: UInt32?
        var fd: Int32?
        var reusePort = false
        var backlog = 1024
        var shutdownIdle: Int?
        var proxyProtocol: Server.Configuration.ProxyProtocol?
        var peerChecks = PeerChecks()
        var args = CommandLine.arguments.dropFirst()
        func value<T>(_ name: String, _ parse: (String) -> T?) -> T {
            guard let v = args.popFirst().flatMap(parse) else {
                print("\(name) needs a valid value\n\(usage)")
                exit(2)
            }
            return v
        }
        while let a = args.popFirst() {
            switch a {
            case "--host": host = value(a) { $0 }
            case "--port": port = value(a) { Int($0) }
            case "--loops": loops = value(a) { Int($0) }
            case "--unix": unixPath = value(a) { $0 }
            case "--unix-mode": unixMode = value(a) { UInt32($0, radix: 8) }
            case "--fd": fd = value(a) { Int32($0) }
            case "--reuse-port": reusePort = true
            case "--backlog": backlog = value(a) { Int($0) }
            case "--shutdown-idle-ms": shutdownIdle = value(a) { Int($0) }
            case "--proxy-protocol":
                switch args.popFirst() {
                case "v1": proxyProtocol = .v1
                case "v2": proxyProtocol = .v2
                case "any": proxyProtocol = .any
                case let v:
                    print("--proxy-protocol takes v1, v2 or any, not \(v ?? "nothing")")
                    exit(2)
                }
            case "--tcp-keepalive", "--tcp-user-timeout", "--write-timeout":
                if let problem = peerChecks.parse(a, args.popFirst()) {
                    print("vigil-demo: \(problem)")
                    exit(2)
                }
            case "-h", "--help":
                print(usage)
                exit(0)
            default:
                print("unknown argument \(a)\n\(usage)")
                exit(2)
            }
        }
        var config = Server.Configuration(host: host, port: port, loops: loops)
        var shown = "\(host):"
        if !Server.inheritedSockets.isEmpty {
            config.listen = .systemd
            shown = "inherited socket (LISTEN_FDS), port "
        } else if let fd {
            config.listen = .descriptor(fd)
            shown = "inherited socket \(fd), port "
        } else if let unixPath {
            config.listen = .unix(path: unixPath, mode: unixMode)
            shown = "unix:\(unixPath)"
        }
        config.reusePort = reusePort
        config.backlog = backlog
        config.proxyProtocol = proxyProtocol
        if let shutdownIdle { config.shutdownIdleTimeout = .milliseconds(shutdownIdle) }
        peerChecks.apply(to: &config)
        let server = Server(configuration: config)
        let shownListen = shown
        let runTask = Task {
            try await server.run(onListening: { port in
                let at = shownListen.hasPrefix("unix:") ? shownListen : "\(shownListen)\(port)"
                print("vigil-demo listening on \(at) (pid \(getpid()))")
                fflush(nil)
            }) { request, response in try await handle(request, response, server) }
        }
        // SIGINT/SIGTERM: cancel run(), which shuts down gracefully.
        let sources = installSignalHandlers([SIGINT, SIGTERM]) { runTask.cancel() }
        // SIGUSR2: a successor takes the socket over; then the same
        // graceful shutdown. A failed hand-over keeps this one serving.
        let exe = executablePath()
        let arguments = Array(CommandLine.arguments.dropFirst())
        let usr2 = installSignalHandlers([SIGUSR2]) {
            guard handingOver.withLock({ h in defer { h = true }; return !h }) else { return }
            Task {
                do {
                    let pid = try await server.handOver(to: exe, arguments: arguments)
                    print("vigil-demo: handed over to pid \(pid); draining")
                    fflush(nil)
                    runTask.cancel()
                } catch {
                    print("vigil-demo: hand-over failed, still serving: \(error)")
                    fflush(nil)
                    handingOver.withLock { $0 = false }
                }
            }
        }
        do {
            try await runTask.value
        } catch {
            print("vigil-demo: \(error)")
            exit(1)
        }
        // Keep the signal sources alive until here: an optimized build may
        // otherwise release them after their last use, and SIGTERM would do
        // nothing.
        withExtendedLifetime((sources, usr2)) {}
    }
}
