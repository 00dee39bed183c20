// A Vigil server for one test: a handler on an ephemeral loopback port,
// clients connected to it, what each request's handler went through, and
// a teardown that always runs and is bounded in time.
import HTTPTypes
import Vigil

/// A `Server` running for the length of a closure, on a free port of a
/// loopback address, in the spirit of Go's `httptest.Server` and
/// HummingbirdTesting:
///
/// ```swift
/// try await VigilTestServer.withServer { request, response in
///     _ = try await request.connectionClosed()
/// } test: { server in
///     let client = try await server.connect()
///     try await client.send(.get, "/wait")
///     _ = try await server.nextRequest()      // the handler runs
///     client.disconnect(.reset)
///     let reason = try await server.nextEndReason()
///     // reason == .reset
/// }
/// ```
///
/// When the closure returns or throws, every client's connection is
/// closed and the server is shut down (grace period
/// `Configuration.shutdownGracePeriod`, 200 ms unless changed); the
/// teardown throws `.timedOut` if the server has not stopped within
/// `timeout` after that. Every wait takes a timeout (`timeout` by default).
public final class VigilTestServer: Sendable {
    /// The running server (its `statistics`, `configuration`).
    public let server: Server
    /// The address it listens on: "127.0.0.1" or "::1".
    public let host: String
    /// The port it listens on.
    public let port: Int
    /// The default bound of every wait, the clients' calls included.
    public let timeout: Duration

    private let started: Mailbox<RequestStart>
    private let ended: Mailbox<RequestEnd>
    private let clients = Locked<[TestSocket]>([])

    /// A request's handler began.
    public struct RequestStart: Sendable {
        public var head: HTTPRequest
        public var connectionID: UInt64
    }

    /// A request ended, and why: `.handlerFinished` when its handler
    /// returned first, else what cancelled it (`.clientClosed`, `.reset`,
    /// `.timedOut` with `timeout` saying which, ...). Requests the core
    /// refused itself (400, 413 before the handler, ...) never reach a
    /// handler and are not recorded.
    public struct RequestEnd: Sendable {
        public var head: HTTPRequest
        public var connectionID: UInt64
        public var reason: CancellationReason
        public var timeout: Timeout?
    }

    private init(server: Server, host: String, port: Int, timeout: Duration,
                 started: Mailbox<RequestStart>, ended: Mailbox<RequestEnd>) {
        self.server = server
        self.host = host
        self.port = port
        self.timeout = timeout
        self.started = started
        self.ended = ended
    }

    /// Runs `handler` on a server listening on `host` (a loopback
    /// address), port 0 (a free one), for the duration of `test`; then
    /// tears everything down, whether `test` returned or threw.
    ///
    /// - Parameters:
    ///   - host: "127.0.0.1" (the default) or "::1".
    ///   - timeout: the bound of every wait, of the start and of the
    ///     teardown.
    ///   - configure: changes to the server's configuration (its host and
    ///     port are set after it: use `host`). It starts with
    ///     `shutdownGracePeriod` 200 ms and the logger at `.warning`.
    nonisolated(nonsending)
    public static func withServer<T>(
        host: String = "127.0.0.1",
        timeout: Duration = .seconds(5),
        configure: (inout Server.Configuration) -> Void = { _ in },
        handler: @escaping Server.Handler,
        test: (VigilTestServer) async throws -> T
    ) async throws -> T {
        var config = Server.Configuration(host: host, port: 0)
        config.shutdownGracePeriod = .milliseconds(200)
        config.logger.logLevel = .warning
        configure(&config)
        config.listen = .tcp(host: host, port: 0)
        let server = Server(configuration: config)
        let started = Mailbox<RequestStart>()
        let ended = Mailbox<RequestEnd>()
        let recording: Server.Handler = { request, response in
            let head = request.head
            let connectionID = request.connectionID
            let cancellation = request.cancellation
            cancellation.onCancel { reason in
                ended.put(RequestEnd(head: head, connectionID: connectionID, reason: reason,
                                     timeout: cancellation.timeout))
            }
            started.put(RequestStart(head: head, connectionID: connectionID))
            try await handler(request, response)
        }
        // What run() reported: the port once listening, then how it ended.
        let events = Mailbox<Result<Int?, any Error>>()
        let running = Task {
            do {
                try await server.run(onListening: { events.put(.success($0)) }, recording)
                events.put(.success(nil))
            } catch {
                events.put(.failure(error))
            }
        }
        let first = await events.take(timeout: timeout)
        guard case .success(let port?) = first else {
            running.cancel()
            switch first {
            case .failure(let error)?:
                throw VigilTestingError(.serverDidNotStart, "the server did not start: \(error)")
            case nil:
                throw VigilTestingError(.serverDidNotStart, "the server did not start within \(timeout)")
            default:
                throw VigilTestingError(.serverDidNotStart, "the server returned before listening")
            }
        }
        let testServer = VigilTestServer(server: server, host: host, port: port, timeout: timeout,
                                         started: started, ended: ended)
        let result: Result<T, any Error>
        do {
            result = .success(try await test(testServer))
        } catch {
            result = .failure(error)
        }
        // Teardown: the clients leave, the server shuts down (the grace
        // period, then the handlers still running are cancelled).
        testServer.closeClients()
        running.cancel()
        let grace = config.shutdownGracePeriod
        let stopped = await events.take(timeout: grace + timeout)
        if stopped == nil, case .success = result {
            throw VigilTestingError.timedOut("the server to stop (a handler ignoring its cancellation?)", grace + timeout)
        }
        return try result.get()
    }

    /// A new connection to the server. It is closed when the server's
    /// scope ends, if `disconnect` was not called before.
    public func connect(timeout: Duration? = nil) async throws -> VigilTestClient {
        let t = timeout ?? self.timeout
        let socket = try await TestSocket.connect(host: host, port: port, deadline: .now + t, timeout: t)
        clients.withLock { $0.append(socket) }
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return VigilTestClient(socket: socket, timeout: self.timeout, authority: authority)
    }

    /// `body` with a new connection, closed (FIN) when it returns or throws.
    nonisolated(nonsending)
    public func withClient<T>(_ body: (VigilTestClient) async throws -> T) async throws -> T {
        let client = try await connect()
        defer { client.disconnect(.fin) }
        return try await body(client)
    }

    /// One request on a new connection, and its whole response.
    public func execute(
        _ request: HTTPRequest, body: [UInt8]? = nil, timeout: Duration? = nil
    ) async throws -> VigilTestResponse {
        let client = try await connect(timeout: timeout)
        defer { client.disconnect(.fin) }
        return try await client.execute(request, body: body, timeout: timeout)
    }

    /// The next request whose handler began (in the order they began).
    public func nextRequest(timeout: Duration? = nil) async throws -> RequestStart {
        let t = timeout ?? self.timeout
        guard let start = await started.take(timeout: t) else {
            throw VigilTestingError.timedOut("a request to reach the handler", t)
        }
        return start
    }

    /// The next request to end (in the order they ended), and why.
    public func nextEnd(timeout: Duration? = nil) async throws -> RequestEnd {
        let t = timeout ?? self.timeout
        guard let end = await ended.take(timeout: t) else {
            throw VigilTestingError.timedOut("a request to end", t)
        }
        return end
    }

    /// Why the next request to end ended: `nextEnd().reason`.
    public func nextEndReason(timeout: Duration? = nil) async throws -> CancellationReason {
        try await nextEnd(timeout: timeout).reason
    }

    /// The server's counters (nil once it stopped).
    public var statistics: Server.Statistics? { server.statistics }

    private func closeClients() {
        let all = clients.withLock { c in
            defer { c.removeAll() }
            return c
        }
        for socket in all { socket.close(.fin) }
    }
}
