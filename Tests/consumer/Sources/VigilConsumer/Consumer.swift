// Serves a request and observes a cancellation through Vigil's public API
// only, over real loopback sockets: a client that asks for /hello and reads
// the answer, and one that asks for /wait and disconnects while the handler
// waits. The handler must see the client leave through every channel the
// README lists: its task cancelled, `onCancel`, `connectionClosed()`,
// `cancellation.reason`. Exits non-zero on any failure; a watchdog ends a
// run that hangs. Last line: "N passed, M failed".
import Glibc
import HTTPTypes
import Vigil

/// What the /wait handler saw, handed to the checks below.
struct Observed: Sendable {
    var taskCancelled = false
    var onCancelReason: CancellationReason?
    var connectionClosedReason: CancellationReason?
    var handleReason: CancellationReason?
    var isCancelled = false
}

/// Counts and prints the checks.
struct Checks {
    var passed = 0
    var failed = 0
    mutating func check(_ ok: Bool, _ what: String) {
        if ok { passed += 1; print("ok   \(what)") } else { failed += 1; print("FAIL \(what)") }
    }
}

/// A blocking loopback client: connects, sends `request`, and either reads
/// until the server closes (`read: true`) or returns the socket open.
func connectAndSend(port: Int, _ request: String) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0, "socket")
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let r = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    precondition(r == 0, "connect")
    let bytes = Array(request.utf8)
    precondition(write(fd, bytes, bytes.count) == bytes.count, "write")
    return fd
}

func readAll(_ fd: Int32) -> String {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buf, buf.count)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

@main
enum Consumer {
    static func main() async {
        // Every wait below is bounded by this: a hang is a failure, not a stuck run.
        signal(SIGALRM) { _ in
            let msg = "FAIL watchdog: the consumer did not finish in 60 s\n"
            _ = msg.withCString { write(2, $0, strlen($0)) }
            _exit(2)
        }
        alarm(60)

        var checks = Checks()
        let (observedStream, observedSink) = AsyncStream.makeStream(of: Observed.self)
        let (startedStream, startedSink) = AsyncStream.makeStream(of: Void.self)
        let (portStream, portSink) = AsyncStream.makeStream(of: Int.self)

        let server = Server(configuration: .init(host: "127.0.0.1", port: 0))
        let serving = Task {
            try await server.run(onListening: { port in portSink.yield(port) }) { request, response in
                switch request.head.path {
                case "/hello":
                    try await response.write(HTTPResponse(status: .ok), body: "hello from a consumer")
                case "/wait":
                    let onCancel = AsyncStream.makeStream(of: CancellationReason.self)
                    request.cancellation.onCancel { reason in
                        onCancel.continuation.yield(reason)
                        onCancel.continuation.finish()
                    }
                    startedSink.yield()
                    var seen = Observed()
                    // Waits for the client to leave: the handler's task is cancelled.
                    do {
                        try await Task.sleep(for: .seconds(30))
                    } catch is CancellationError {
                        seen.taskCancelled = true
                    }
                    seen.isCancelled = request.cancellation.isCancelled
                    seen.handleReason = request.cancellation.reason
                    for await reason in onCancel.stream { seen.onCancelReason = reason }
                    // Already ended: returns the reason at once, even though this
                    // task is cancelled (it throws only for a cancellation of its own).
                    seen.connectionClosedReason = try? await request.connectionClosed()
                    observedSink.yield(seen)
                default:
                    try await response.write(HTTPResponse(status: .notFound))
                }
            }
        }

        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { fatalError("the server did not start") }
        checks.check(server.localPort == port, "the server listens on port \(port)")

        // 1. A request served.
        let fd = connectAndSend(port: port, "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        let answer = readAll(fd)
        close(fd)
        checks.check(answer.hasPrefix("HTTP/1.1 200"), "GET /hello answered 200")
        checks.check(answer.hasSuffix("hello from a consumer"), "GET /hello body")

        // 2. A client that disconnects while its handler waits.
        let waiter = connectAndSend(port: port, "GET /wait HTTP/1.1\r\nHost: localhost\r\n\r\n")
        var started = startedStream.makeAsyncIterator()
        _ = await started.next()
        close(waiter)  // FIN while the request is in flight: .clientClosed
        var observations = observedStream.makeAsyncIterator()
        let seen = await observations.next()!
        checks.check(seen.taskCancelled, "the handler's task was cancelled when the client left")
        checks.check(seen.isCancelled, "request.cancellation.isCancelled")
        checks.check(seen.handleReason == .clientClosed, "cancellation.reason is .clientClosed (\(String(describing: seen.handleReason)))")
        checks.check(seen.onCancelReason == .clientClosed, "onCancel ran with .clientClosed")
        checks.check(seen.connectionClosedReason == .clientClosed, "connectionClosed() returned .clientClosed")
        checks.check((server.statistics?.requestsCancelled ?? 0) == 1, "statistics count one cancelled request")

        // 3. Shutdown: cancelling run() stops the server and run() returns.
        serving.cancel()
        do {
            try await serving.value
            checks.check(true, "run() returned after its task was cancelled")
        } catch {
            checks.check(false, "run() threw \(error)")
        }
        checks.check(server.localPort == nil, "no port once run() returned")

        print("\(checks.passed) passed, \(checks.failed) failed")
        exit(checks.failed == 0 ? 0 : 1)
    }
}
