// The public `Server`: its configuration, `run`, and the worker tasks that
// run handlers (the C server it drives is in CBridge.swift).
import CVigil
import Logging
import ServiceLifecycle

/// An HTTP/1.1 server whose handlers are cancelled the moment their client
/// goes away.
///
/// ```swift
/// let server = Server(configuration: .init(host: "127.0.0.1", port: 8080))
/// try await server.run { request, response in
///     try await response.write(HTTPResponse(status: .ok), body: "Hello")
/// }
/// ```
public final class Server: Sendable {
    /// Runs on the executor of the task that calls it: its connection's
    /// loop (`.onEventLoop`, the default) or the global one. Declared
    /// `nonisolated(nonsending)` because it is called from that task alone:
    /// a plain `async` closure would make the runtime check, on each call
    /// and each return, whether it must hop (the task's executor
    /// preference, read under a lock) — to land where it already is.
    public typealias Handler =
        nonisolated(nonsending) @Sendable (Request, ResponseWriter) async throws -> Void

    public struct Configuration: Sendable {
        /// What a client's half-close (FIN) means while its request runs.
        public enum HalfClose: Sendable {
            /// Cancel the request with `.clientClosed` (like Go, Node, NIO).
            case cancel
            /// Finish the response, then close (RFC 9112 section 9.6).
            case finishResponse
        }

        /// Where the server listens (`.tcp(host: "127.0.0.1", port: 8080)`
        /// by default).
        public enum Listen: Sendable, Hashable {
            /// A TCP address: "127.0.0.1", "::1", "0.0.0.0", "::" (which
            /// serves IPv4 too: IPV6_V6ONLY is turned off). Port 0 picks a
            /// free port; `run(onListening:)` reports it.
            case tcp(host: String, port: Int)
            /// A Unix domain socket at `path`, its file given `mode` (chmod
            /// before listen; nil or 0: as the umask leaves it). A stale
            /// socket file (nobody listens on it) is replaced, a live one is
            /// an error (EADDRINUSE); of two servers started on one path at
            /// once, exactly one gets it. The file is removed at shutdown if
            /// it is still the one the server made.
            case unix(path: String, mode: UInt32? = nil)
            /// A socket already bound and listening that this process
            /// inherited (`--fd N`). It stays yours: the server serves
            /// duplicates of it and closes them when it stops. The
            /// duplicates share its open file description: the server makes
            /// it non-blocking (`O_NONBLOCK`, for every holder, also after
            /// it stops) and listens again with `backlog`.
            case descriptor(Int32)
            /// systemd socket activation: the first socket in `LISTEN_FDS`
            /// (descriptor 3), also how a successor started by `handOver`
            /// gets its socket. `run` throws `VigilError.noInheritedSocket`
            /// when there is none (`Server.inheritedSockets` tells first).
            case systemd
        }

        /// Where the server listens.
        public var listen: Listen
        /// The host of `.tcp` ("" otherwise); setting it listens on TCP.
        public var host: String {
            get { if case .tcp(let h, _) = listen { return h } else { return "" } }
            set { listen = .tcp(host: newValue, port: port) }
        }
        /// The port of `.tcp` (0 otherwise); setting it listens on TCP. 0
        /// picks a free port; `run(onListening:)` reports it.
        public var port: Int {
            get { if case .tcp(_, let p) = listen { return p } else { return 0 } }
            set { listen = .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: newValue) }
        }
        /// SO_REUSEPORT, off by default: other sockets that also ask for it
        /// (other processes too) may share the port, and each loop gets its
        /// own socket and accept queue. Off, a second server on the port
        /// fails with EADDRINUSE, and all loops accept from one socket. With
        /// `loops > 1`: on, connections spread evenly over the loops, but
        /// each socket has its own queue, so the server cannot `handOver`;
        /// off, one queue that a hand-over passes whole, but see `loops`.
        public var reusePort = false
        /// The listen backlog (capped by net.core.somaxconn).
        public var backlog = 1024
        /// During a graceful shutdown, how long a connection waiting for a
        /// request (idle keep-alive) may still bring one, counted from when
        /// it became idle; that request is served with `Connection:
        /// close`. A busy client sends its next request right after a
        /// response, and would see its connection closed under it
        /// otherwise. `.zero`: close idle connections at once.
        public var shutdownIdleTimeout: Duration = .seconds(1)
        /// Event loops (threads) serving connections. Without `reusePort`
        /// they share one listening socket: every new connection wakes
        /// every loop and the split between them can be uneven (80 / 320
        /// of 400 connections was measured with 2 loops).
        public var loops: Int
        public var halfClose: HalfClose
        /// Unconsumed bytes buffered per connection before reading pauses.
        public var readBufferLimit: Int
        /// Response bytes queued per connection before body writes wait.
        public var writeBufferLimit: Int
        /// Unread request body drained after the handler returned, to keep
        /// the connection; past it the connection closes.
        public var drainLimit: Int
        /// Largest request head, request line included (431 past it); a
        /// chunked body's trailer section is held to it too (its bytes on
        /// the wire).
        public var maxHeaderBytes: Int
        /// How long in-flight requests may run on after shutdown begins,
        /// before they are cancelled with `.serverShutdown`.
        public var shutdownGracePeriod: Duration
        /// Called on the loop thread at every connection state change (keep
        /// it short): connection id, new state. Like Go's `ConnState`.
        public var onConnectionState: (@Sendable (UInt64, ConnectionState) -> Void)?
        /// Where handlers run.
        public var handlers: HandlerPlacement
        /// Header lines before 431.
        public var maxHeaders: Int = 100
        /// Request-target bytes before 414.
        public var maxTargetBytes: Int = 8 * 1024
        /// Request body bytes (nil: no limit), the default of each request's
        /// body limit (`Request.setBodyLimit` raises or lowers it), checked
        /// when the body is read: a larger Content-Length ends the request
        /// with `.bodyTooLarge` and a 413 at the first read, a chunked body
        /// when it passes the limit. A body nobody reads is never read.
        public var maxBodySize: Int? = 8 * 1024 * 1024
        /// Open connections; past it new ones are closed at once.
        public var maxConnections: Int = 10_000
        /// Requests per connection (nil: unlimited); the last response says
        /// `Connection: close`.
        public var maxRequestsPerConnection: Int?
        /// From a head's first byte to its end (408 past it). nil: none.
        public var headerTimeout: Duration? = .seconds(10)
        /// A keep-alive connection with no request is closed after this.
        public var idleTimeout: Duration? = .seconds(60)
        /// No body bytes while the handler reads the body: cancelled with
        /// `.timedOut` (`Timeout.bodyRead`).
        public var bodyTimeout: Duration? = .seconds(30)
        /// No progress writing the response: `.timedOut` (`Timeout.write`).
        public var writeTimeout: Duration? = .seconds(30)
        /// Deadline for a handler, from the head's arrival: `.timedOut`
        /// (`Timeout.handler`) and a 503 if nothing was sent.
        public var handlerTimeout: Duration?
        /// TCP_USER_TIMEOUT (nil: not set, the kernel's retransmission limit,
        /// ~15 min): how long a peer may leave data unacknowledged, or keep a
        /// zero window, before the kernel drops it; the request then ends
        /// with `.peerUnreachable`. Notices clients that vanished without
        /// FIN or RST while response bytes are in flight to them, which
        /// keepalive does not probe. When set, it also replaces keepalive's
        /// `count` (tcp(7)): unanswered probes drop the connection at the
        /// first probe at or after this much silence. Set it to about
        /// keepalive's `idle + interval * count` for one bound on both
        /// paths. Off by default, as in Go and nginx.
        public var tcpUserTimeout: Duration?
        /// The PROXY protocol versions required before every connection's
        /// first request (nil: none, the default). On, a connection
        /// without a valid header of such a version is closed without an
        /// answer; the handler reads the client's address from it
        /// (`Request.remoteAddress`). Off, a connection that starts with a
        /// PROXY header gets 400. Enable it only behind a proxy that sends
        /// the header on every connection (HAProxy `send-proxy` /
        /// `send-proxy-v2`) and where clients cannot connect directly:
        /// whoever connects can claim any address in the header.
        public var proxyProtocol: ProxyProtocol?

        /// TCP keepalive on each connection (nil: off). Defaults to 15 s
        /// idle, 15 s interval, 3 probes: a client that vanished while its
        /// handler works or waits, with nothing in flight to it, is noticed
        /// within 60 s (`idleTimeout`'s default) of its last segment, and
        /// its request ends with `.peerUnreachable`. See `TCPKeepAlive`.
        public var tcpKeepAlive: TCPKeepAlive? = TCPKeepAlive()
        /// Where the server logs: start and stop at info, connection states
        /// and cancellations at debug, handler errors at error.
        public var logger = Logger(label: "vigil")

        /// PROXY protocol versions (HAProxy's proxy-protocol.txt).
        public enum ProxyProtocol: Sendable, Hashable {
            /// The text header (HAProxy `send-proxy`).
            case v1
            /// The binary header (HAProxy `send-proxy-v2`, AWS NLB).
            case v2
            /// Either.
            case any
        }

        /// TCP keepalive (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
        /// TCP_KEEPCNT): after `idle` without any segment from the client,
        /// the kernel probes it every `interval`; after `count` unanswered
        /// probes it gives up. Linux takes whole seconds: durations are
        /// rounded up (never sooner than asked). `interval` `.zero` or
        /// `count` 0 leave the kernel's values (75 s, 9 probes). The kernel's
        /// limits are 32767 s and 127 probes: past them `run()` throws
        /// `VigilError.invalidArgument`.
        public struct TCPKeepAlive: Sendable, Hashable {
            public var idle: Duration
            public var interval: Duration
            public var count: Int

            public init(
                idle: Duration = .seconds(15), interval: Duration = .seconds(15), count: Int = 3
            ) {
                self.idle = idle
                self.interval = interval
                self.count = count
            }
        }

        public enum HandlerPlacement: Sendable {
            /// On the libuv loop thread that owns the connection (a task
            /// executor preference): no thread hop per request or write; a
            /// handler that computes for long holds up its loop's other
            /// connections, as in SwiftNIO. Hop off with your own executor
            /// for heavy work.
            case onEventLoop
            /// On Swift's global concurrent executor: loops only do I/O.
            case globalExecutor
        }

        public init(
            host: String = "127.0.0.1", port: Int = 8080, loops: Int = 1,
            halfClose: HalfClose = .cancel, readBufferLimit: Int = 64 * 1024,
            writeBufferLimit: Int = 64 * 1024, drainLimit: Int = 256 * 1024,
            maxHeaderBytes: Int = 16 * 1024, shutdownGracePeriod: Duration = .seconds(10),
            handlers: HandlerPlacement = .onEventLoop
        ) {
            self.handlers = handlers
            self.listen = .tcp(host: host, port: port)
            self.loops = loops
            self.halfClose = halfClose
            self.readBufferLimit = readBufferLimit
            self.writeBufferLimit = writeBufferLimit
            self.drainLimit = drainLimit
            self.maxHeaderBytes = maxHeaderBytes
            self.shutdownGracePeriod = shutdownGracePeriod
        }
    }

    /// Counters from the C core.
    public struct Statistics: Sendable, Hashable {
        public var connectionsAccepted: UInt64
        public var connectionsOpen: UInt64
        public var requestsTotal: UInt64
        /// Request objects not yet freed: back to 0 once every handler
        /// returned and every connection closed.
        public var requestsLive: UInt64
        public var requestsCancelled: UInt64
        /// Requests the core answered with an error status itself, and
        /// connections closed for a missing or malformed PROXY header.
        public var badRequests: UInt64
        public var connectionsIdle: UInt64
        public var connectionsHijacked: UInt64
    }

    /// A connection's state, as Go's `ConnState`.
    public enum ConnectionState: Sendable, Hashable {
        case new, active, idle, hijacked, closed
    }

    public let configuration: Configuration
    private let running = Locked<CServer?>(nil)
    private let handler: Handler?

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.handler = nil
    }

    /// A server with its handler, to run as a swift-service-lifecycle
    /// `Service` (`run()`).
    public init(configuration: Configuration = .init(), handler: @escaping Handler) {
        self.configuration = configuration
        self.handler = handler
    }

    /// Begins a graceful shutdown of the running server: stop accepting,
    /// close idle connections (one idle for less than
    /// `shutdownIdleTimeout` may still bring a request, answered with
    /// `Connection: close`), let requests in flight finish within
    /// `shutdownGracePeriod`, then cancel them. `run` returns once done.
    public func shutdown() {
        let grace = milliseconds(configuration.shutdownGracePeriod)
        running.withLock { $0?.shutdown(graceMs: grace) }
    }

    /// The sockets systemd passed this process (socket activation:
    /// `LISTEN_FDS` and `LISTEN_PID` naming this process), descriptors 3,
    /// 4, ...; empty when none. The variables are then removed from the
    /// environment (child processes must not take them for theirs), and
    /// the first answer is kept: later reads give it again. Read it early,
    /// before other threads use the environment. `vigil_listen_fds`.
    public static var inheritedSockets: [Int32] {
        let n = vigil_listen_fds(1)
        return n > 0 ? (0..<n).map { Int32(VIGIL_LISTEN_FDS_START) + $0 } : []
    }

    /// Restart without losing a request, like nginx's binary upgrade:
    /// starts `executable` (a path, no PATH search) with `arguments` (not
    /// counting the program name, which is `executable`) as this server's
    /// successor. It gets the listening socket the systemd way (descriptor
    /// 3, `LISTEN_FDS=1`, `LISTEN_PID`), so a Vigil server there listening
    /// on `.systemd` serves it; once its `run` is listening it says so, and
    /// this returns the successor's pid. Both then accept from the same
    /// socket; call `shutdown()` (or cancel `run`) next: this server stops
    /// accepting, finishes its requests (see `shutdownIdleTimeout`,
    /// `shutdownGracePeriod`), and `run` returns; exit then. The successor
    /// is this process's child, in a process group of its own: it must be
    /// the server itself (a wrapper script ends with `exec`), since a child
    /// that exits counts as a failure; and it dies with a container whose
    /// PID 1 this process is, or a systemd `Type=simple`/`exec` service's
    /// cgroup: use socket activation (`.systemd`) there. Other threads must
    /// not change the environment meanwhile.
    ///
    /// Throws `VigilError` and this server keeps serving as before, with
    /// no successor left running: the successor was not ready within
    /// `readyTimeout` (code -110, ETIMEDOUT: it is killed), it exited
    /// first (-10, ECHILD), it could not be started (the errno of execve,
    /// e.g. -2 for a missing file), the server is not running or shutting
    /// down, was handed over already, another hand-over is under way, or
    /// it uses `reusePort` with several loops. Waits on a thread of its
    /// own, not on the cooperative pool; `run` returns without waiting for
    /// it (the server's memory is freed once both are done).
    @discardableResult
    public func handOver(
        to executable: String, arguments: [String] = [], readyTimeout: Duration = .seconds(10)
    ) async throws -> Int32 {
        guard let server = running.withLock({ $0 }) else {
            throw VigilError(code: VIGIL_ESHUTDOWN)
        }
        return try await server.handOver(
            executable: executable, arguments: arguments,
            timeoutMs: max(1, milliseconds(readyTimeout)))
    }

    /// The bound port while `run` runs (useful with port 0; 0 on a Unix
    /// socket), nil otherwise.
    public var localPort: Int? { running.withLock { $0?.port } }

    /// The counters while `run` runs, nil otherwise.
    public var statistics: Statistics? {
        running.withLock { $0?.statistics }
    }

    /// Serves until the calling task is cancelled, then shuts down
    /// gracefully (as `shutdown()`): stops accepting, closes idle connections, lets requests in
    /// flight finish within `shutdownGracePeriod`, cancels the rest. A
    /// handler still running once the grace period is over and the core has
    /// stopped (one that closed its hijacked connection and went on) has its
    /// task cancelled; its request's reason stays what ended it. Returns
    /// when every handler has returned.
    ///
    /// Each request's handler runs in a child task of this call (a worker
    /// task, reused for later requests unless it was cancelled). When the
    /// client goes away, that task is cancelled.
    public func run(
        onListening: (@Sendable (Int) -> Void)? = nil,
        _ handler: @escaping Handler
    ) async throws {
        let loops = max(1, configuration.loops)
        let queues = (0..<loops).map { _ in RequestQueue() }
        let logger = configuration.logger
        let core = ServerCore(
            queues: queues,
            onConnectionState: configuration.onConnectionState, logger: logger)
        let server = try CServer(configuration: configuration, core: core)
        core.attach(server)
        defer { server.free() }
        try server.start()
        running.withLock { $0 = server }
        defer { running.withLock { $0 = nil } }
        onListening?(server.port)
        logger.info(
            "listening", metadata: ["on": "\(configuration.listen)", "port": "\(server.port)",
                                    "loops": "\(loops)"])
        defer { logger.info("stopped", metadata: ["port": "\(server.port)"]) }

        let graceMs = milliseconds(configuration.shutdownGracePeriod)
        // The handlers' task group runs in a task of its own, which run()
        // awaits to the end: were it run()'s own group, cancelling run()
        // would cancel every handler at once and leave no grace period.
        // Cancelling run() starts the graceful shutdown instead; handlers
        // still running when the grace period ends are cancelled by the core
        // with `.serverShutdown`. The task inherits run()'s priority and
        // task-local values.
        let executors: [LoopExecutor?] = (0..<loops).map { i in
            configuration.handlers == .onEventLoop ? LoopExecutor(server: server, index: i) : nil
        }
        let serving = Task {
            // One dispatcher per loop, each on its loop's executor (or the
            // global one), starting that loop's workers in its task group
            // when no worker is free to take a request (RequestQueue).
            await withDiscardingTaskGroup { perLoop in
                for (i, queue) in queues.enumerated() {
                    perLoop.addTask(executorPreference: executors[i]) {
                        await withDiscardingTaskGroup { group in
                            while let context = await queue.nextForNewWorker() {
                                let first = FirstRequest(context)
                                group.addTask(executorPreference: executors[i]) {
                                    await Self.work(first, queue, handler, logger)
                                }
                            }
                        }
                    }
                }
            }
        }
        // The core's shutdown cancels the requests still in flight when the
        // grace period ends, through their C requests. A handler can run on
        // after its request ended: one that closed its hijacked connection
        // (its request ended with `.handlerFinished`, as the core reports
        // it) and goes on working. No request is left for the core to
        // cancel, so once the core has stopped and the grace period is over
        // we cancel the handlers' task group: every handler still running
        // then gets its task cancelled, and run() returns once they honour
        // it. Cancelling the tasks, rather than keeping such a request
        // cancellable with `.serverShutdown` in Swift: `reason` stays what
        // ended the request (close() did), it needs no registry of requests
        // whose handlers run on, and it holds for any handler the core no
        // longer knows. Not before the grace period is over: the core stops
        // as soon as every connection is closed, which can be early, and a
        // handler past close() gets the same grace as a request in flight.
        let reaper = Locked<Task<Void, Never>?>(nil)
        core.whenStopped {
            let deadline = server.graceEnd ?? .now
            let task = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                if !Task.isCancelled { serving.cancel() }
            }
            reaper.withLock { $0 = task }
        }
        await withTaskCancellationHandler {
            await serving.value
        } onCancel: {
            logger.info("shutting down", metadata: ["grace_ms": "\(graceMs)"])
            server.shutdown(graceMs: graceMs)
        }
        // The core stopped before serving ended (the queues finish in
        // on_stopped, after whenStopped's action ran): the reaper is set.
        reaper.withLock { $0?.cancel() }
    }

    /// A worker: serves requests of one loop until it is spent (its task
    /// was cancelled with its request), not needed, or the server stops.
    nonisolated(nonsending) static func work(
        _ first: FirstRequest, _ queue: RequestQueue, _ handler: Handler, _ logger: Logger
    ) async {
        var next: RequestContext? = first.context.take()
        repeat {
            // Handed over (consumed), never bound here: a parked worker must
            // not keep its last request (and the C request) alive.
            await serveAndFinish(next.take()!, queue, handler, logger)
            switch queue.leave(spent: Task.isCancelled) {
            case .next(let context): next = context
            case .end: next = nil
            case .wait: next = await queue.park()
            }
        } while next != nil
    }

    /// One request: its handler, in the current (worker) task, then the
    /// request's finish. One function, not two: a `nonisolated(nonsending)`
    /// function that is not inlined begins with a hop to its caller's
    /// executor, which here is a runtime check (the task's executor
    /// preference, under a lock) per request for nothing.
    @inline(__always)
    nonisolated(nonsending) private static func serveAndFinish(
        _ context: consuming RequestContext, _ queue: RequestQueue, _ handler: Handler,
        _ logger: Logger
    ) async {
        context.attachCurrentTask()
        do {
            try await handler(Request(context: copy context), ResponseWriter(context: copy context))
        } catch {
            handlerThrew(error, context, logger)
        }
        // `workerFinishing` not before the request's callbacks: while a
        // worker is finishing, new requests of this loop wait for it
        // instead of a wake-up.
        if !context.detachTaskAndFinish(beforeCoreFinish: queue.workerFinishing) {
            await context.waitForCancel()
            context.finishHandler(beforeCoreFinish: queue.workerFinishing)
        }
    }
}

extension Server {
    /// What a handler's error means, logged. Not inlined into
    /// `serveAndFinish`, and not async: everything a catch clause builds
    /// (the logger's metadata, the interpolated strings, the casts) would
    /// otherwise get a slot in the worker's async frame, which lives in the
    /// task's allocator as long as the worker: 2 000 bytes with it inlined,
    /// an extra 1 KiB slab per streaming request.
    @inline(never)
    static func handlerThrew(_ error: any Error, _ context: RequestContext, _ logger: Logger) {
        switch error {
        case let error as RequestEndedError:
            // The client went away (or the like): not the handler's fault.
            logger.debug("request ended", metadata: ["reason": "\(error.reason)"])
        case is CancellationError where context.reason?.isCancellation == true:
            logger.debug("request cancelled", metadata: ["reason": "\(context.reason!)"])
        case is CancellationError where context.reason != nil && Task.isCancelled:
            // Its request ended earlier (a hijacked connection's close()):
            // cancelled by run() when the server stopped.
            logger.debug("handler cancelled at shutdown", metadata: ["reason": "\(context.reason!)"])
        default:
            // The core answers 500 if nothing was sent yet, and cuts off a
            // started response; the server keeps serving.
            logger.error(
                "handler threw",
                metadata: ["error": "\(error)", "path": "\(context.head.path ?? "")",
                           "connection": "\(context.connectionID)"])
        }
    }
}

/// A new worker's first request. A task's closure, and what it captures,
/// lives as long as the task: a worker capturing its first request directly
/// would keep it (and its C request) for its whole life. It empties this box
/// instead.
///
/// `@unchecked Sendable`: written before the worker task exists, then read
/// and cleared by that task alone.
final class FirstRequest: @unchecked Sendable {
    var context: RequestContext?
    init(_ context: RequestContext) { self.context = context }
}

extension Server: Service {
    /// Runs the server built with `init(configuration:handler:)` as a
    /// swift-service-lifecycle service: a graceful shutdown (SIGTERM through
    /// a `ServiceGroup`) becomes `shutdown()`, task cancellation too.
    public func run() async throws {
        // Without a handler there is nothing to serve: init(configuration:)
        // servers use run(onListening:_:).
        guard let handler else { throw VigilError.invalidArgument }
        try await withGracefulShutdownHandler {
            try await run(onListening: nil, handler)
        } onGracefulShutdown: {
            self.shutdown()
        }
    }
}
