import CVigil
import HTTPTypes
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

        public var host: String
        /// 0 picks a free port; `run(onListening:)` reports it.
        public var port: Int
        /// Event loops (threads) serving connections.
        public var loops: Int
        public var halfClose: HalfClose
        /// Unconsumed bytes buffered per connection before reading pauses.
        public var readBufferLimit: Int
        /// Response bytes queued per connection before body writes wait.
        public var writeBufferLimit: Int
        /// Unread request body drained after the handler returned, to keep
        /// the connection; past it the connection closes.
        public var drainLimit: Int
        /// Largest request head, request line included (431 past it).
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
        /// TCP_USER_TIMEOUT (nil: the kernel's ~15 min): how long a peer may
        /// leave data unacknowledged, or keep a zero window, before the
        /// kernel drops it; the request then ends with `.readFailed`. Notices
        /// clients that vanished without FIN or RST.
        public var tcpUserTimeout: Duration?
        /// Where the server logs: start and stop at info, connection states
        /// and cancellations at debug, handler errors at error.
        public var logger = Logger(label: "vigil")

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
            self.host = host
            self.port = port
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
        public var badRequests: UInt64
        public var connectionsIdle: UInt64
        public var connectionsHijacked: UInt64
    }

    /// A connection's state, as Go's `ConnState`.
    public enum ConnectionState: Sendable, Hashable {
        case new, active, idle, hijacked, closed

        init(_ c: vigil_conn_state_t) {
            switch c {
            case VIGIL_CONN_NEW: self = .new
            case VIGIL_CONN_ACTIVE: self = .active
            case VIGIL_CONN_IDLE: self = .idle
            case VIGIL_CONN_HIJACKED: self = .hijacked
            default: self = .closed
            }
        }
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
    /// close idle connections, let requests in flight finish within
    /// `shutdownGracePeriod`, then cancel them. `run` returns once done.
    public func shutdown() {
        let grace = milliseconds(configuration.shutdownGracePeriod)
        running.withLock { $0?.shutdown(graceMs: grace) }
    }

    /// The bound port while `run` runs (useful with port 0), nil otherwise.
    public var localPort: Int? { running.withLock { $0?.port } }

    /// The counters while `run` runs, nil otherwise.
    public var statistics: Statistics? {
        running.withLock { server in
            guard let server else { return nil }
            var s = vigil_stats_t()
            vigil_server_stats(server.pointer, &s)
            return Statistics(
                connectionsAccepted: s.connections_accepted, connectionsOpen: s.connections_open,
                requestsTotal: s.requests_total, requestsLive: s.requests_live,
                requestsCancelled: s.requests_cancelled, badRequests: s.bad_requests,
                connectionsIdle: s.connections_idle, connectionsHijacked: s.connections_hijacked)
        }
    }

    /// Serves until the calling task is cancelled, then shuts down
    /// gracefully: stops accepting, closes idle connections, lets requests in
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
        defer { server.free() }
        try server.start()
        running.withLock { $0 = server }
        defer { running.withLock { $0 = nil } }
        onListening?(server.port)
        logger.info(
            "listening", metadata: ["host": "\(configuration.host)", "port": "\(server.port)",
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
        } catch let error as RequestEndedError {
            // The client went away (or the like): not the handler's fault.
            logger.debug("request ended", metadata: ["reason": "\(error.reason)"])
        } catch is CancellationError where context.reason?.isCancellation == true {
            logger.debug("request cancelled", metadata: ["reason": "\(context.reason!)"])
        } catch is CancellationError where context.reason != nil && Task.isCancelled {
            // Its request ended earlier (a hijacked connection's close()):
            // cancelled by run() when the server stopped.
            logger.debug("handler cancelled at shutdown", metadata: ["reason": "\(context.reason!)"])
        } catch {
            // The core answers 500 if nothing was sent yet, and cuts off a
            // started response; the server keeps serving.
            logger.error(
                "handler threw",
                metadata: ["error": "\(error)", "path": "\(context.head.path ?? "")",
                           "connection": "\(context.connectionID)"])
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

/// Receives the C callbacks of one `run()`.
final class ServerCore: Sendable {
    /// One per loop: requests go to the consumer of their loop.
    let queues: [RequestQueue]
    let onConnectionState: (@Sendable (UInt64, Server.ConnectionState) -> Void)?
    let logger: Logger
    init(
        queues: [RequestQueue],
        onConnectionState: (@Sendable (UInt64, Server.ConnectionState) -> Void)?,
        logger: Logger
    ) {
        self.queues = queues
        self.onConnectionState = onConnectionState
        self.logger = logger
    }

    /// `whenStopped`'s action, and whether the core has stopped.
    private let stopped = Locked<(done: Bool, action: (@Sendable () -> Void)?)>((false, nil))

    /// Runs `action` once the core has stopped (on_stopped), at once if it
    /// has; before the request queues finish.
    func whenStopped(_ action: @escaping @Sendable () -> Void) {
        let now = stopped.withLock { s -> Bool in
            if s.done { return true }
            s.action = action
            return false
        }
        if now { action() }
    }

    /// Loop thread, from on_stopped.
    func coreStopped() {
        let action = stopped.withLock { s -> (@Sendable () -> Void)? in
            s.done = true
            defer { s.action = nil }
            return s.action
        }
        action?()
        for q in queues { q.finish() }
    }

    /// Loop thread.
    func connectionState(_ id: UInt64, _ state: Server.ConnectionState) {
        logger.debug("connection", metadata: ["id": "\(id)", "state": "\(state)"])
        onConnectionState?(id, state)
    }

    static func from(_ ud: UnsafeMutableRawPointer?) -> ServerCore {
        Unmanaged<ServerCore>.fromOpaque(ud!).takeUnretainedValue()
    }

    /// Loop thread: a request head arrived.
    func request(_ raw: OpaquePointer) {
        guard let head = makeHead(raw) else {
            // A method that is not a token: the core lets none through
            // (RFC 9110 §9.1), but a handler must never see it as another
            // method. Answered 400 without a handler.
            let context = RequestContext(
                raw: raw, head: HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"))
            vigil_request_set_data(raw, Unmanaged.passRetained(context).toOpaque())
            "Connection".withCString { n in
                "close".withCString { v in
                    var close = vigil_header_t(name: n, name_len: 10, value: v, value_len: 5)
                    _ = vigil_response_send(raw, 400, &close, 1, nil, 0)
                }
            }
            context.finishHandler()
            return
        }
        let context = RequestContext(raw: raw, head: head)
        vigil_request_set_data(raw, Unmanaged.passRetained(context).toOpaque())
        if !queues[Int(vigil_request_loop(raw))].push(context) {
            // run() is over: no task will take it.
            context.finishHandler()
        }
    }
}

/// The C server of one `run()`. `vigil_server_shutdown` and
/// `vigil_server_stats` may be called from any thread (vigil.h); `start`,
/// `free` are called only by `run()`, in order.
final class CServer: @unchecked Sendable {
    let pointer: OpaquePointer
    private let core: Unmanaged<ServerCore>
    private(set) var port: Int = 0
    /// Set once the C server is freed: a loop executor may still be asked to
    /// run a job (a task that outlived run()), and must not touch it then.
    private let freed = Locked(false)
    /// When the first shutdown's grace period ends (the core keeps the
    /// first call's grace); nil before any shutdown.
    private let graceDeadline = Locked<ContinuousClock.Instant?>(nil)
    var graceEnd: ContinuousClock.Instant? { graceDeadline.withLock { $0 } }

    init(configuration: Server.Configuration, core: ServerCore) throws {
        var cfg = vigil_config_t()
        vigil_config_init(&cfg)
        cfg.port = UInt16(clamping: configuration.port)
        cfg.loops = UInt32(max(1, configuration.loops))
        cfg.half_close =
            configuration.halfClose == .cancel ? VIGIL_HALF_CLOSE_CANCEL : VIGIL_HALF_CLOSE_FINISH
        cfg.read_buffer_limit = configuration.readBufferLimit
        cfg.write_buffer_limit = configuration.writeBufferLimit
        cfg.drain_limit = configuration.drainLimit
        cfg.max_header_bytes = configuration.maxHeaderBytes
        cfg.max_headers = UInt32(clamping: configuration.maxHeaders)
        cfg.max_target_bytes = configuration.maxTargetBytes
        cfg.max_body_bytes = UInt64(max(0, configuration.maxBodySize ?? 0))
        cfg.max_connections = UInt32(clamping: configuration.maxConnections)
        cfg.max_requests_per_connection = UInt64(max(0, configuration.maxRequestsPerConnection ?? 0))
        cfg.header_timeout_ms = milliseconds(configuration.headerTimeout)
        cfg.idle_timeout_ms = milliseconds(configuration.idleTimeout)
        cfg.body_timeout_ms = milliseconds(configuration.bodyTimeout)
        cfg.write_timeout_ms = milliseconds(configuration.writeTimeout)
        cfg.handler_timeout_ms = milliseconds(configuration.handlerTimeout)
        cfg.tcp_user_timeout_ms = milliseconds(configuration.tcpUserTimeout)
        let unmanaged = Unmanaged.passRetained(core)
        cfg.userdata = unmanaged.toOpaque()
        cfg.on_request = { req, ud in ServerCore.from(ud).request(req!) }
        cfg.on_body = { req, data, len, end, _ in
            let context = Unmanaged<RequestContext>.fromOpaque(vigil_request_get_data(req)!)
                .takeUnretainedValue()
            context.bodyReceived(UnsafeRawBufferPointer(start: data, count: len), end: end != 0)
        }
        cfg.on_request_done = { req, reason, _ in
            // The last callback for this request: take back the reference
            // stored in on_request.
            let context = Unmanaged<RequestContext>.fromOpaque(vigil_request_get_data(req)!)
                .takeRetainedValue()
            if let r = CancellationReason(reason), r.isCancellation { context.cancel(r) }
        }
        cfg.on_stopped = { _, ud in ServerCore.from(ud).coreStopped() }
        if configuration.onConnectionState != nil || configuration.logger.logLevel <= .debug {
            cfg.on_conn_state = { id, state, ud in
                ServerCore.from(ud).connectionState(id, Server.ConnectionState(state))
            }
        }
        var out: OpaquePointer?
        let r = configuration.host.withCString { host in
            cfg.host = host
            return vigil_server_new(&out, &cfg)
        }
        guard r == 0, let out else {
            unmanaged.release()
            throw VigilError(code: r)
        }
        self.pointer = out
        self.core = unmanaged
    }

    func start() throws {
        let r = vigil_server_start(pointer)
        if r != 0 { throw VigilError(code: r) }
        port = Int(vigil_server_port(pointer))
    }

    func shutdown(graceMs: UInt64) {
        graceDeadline.withLock { d in
            if d == nil { d = .now + .milliseconds(graceMs) }
        }
        _ = vigil_server_shutdown(pointer, graceMs)
    }

    /// `vigil_server_post`, unless the server is freed. False if the job
    /// will not run.
    func post(loop: UInt32, _ fn: vigil_task_cb, _ ud: UnsafeMutableRawPointer) -> Bool {
        freed.withLock { freed in
            !freed && vigil_server_post(pointer, loop, fn, ud) == 0
        }
    }

    func free() {
        // Stop and join the loops first, without the lock: a loop thread may
        // be posting a job right now and needs it.
        _ = vigil_server_shutdown(pointer, 0)
        _ = vigil_server_wait(pointer)
        freed.withLock { $0 = true }
        vigil_server_free(pointer)
        core.release()
    }
}

/// A duration in whole milliseconds, at least 1 if positive; 0 for nil.
func milliseconds(_ d: Duration?) -> UInt64 {
    guard let d, d > .zero else { return 0 }
    let c = d.components
    let ms = UInt64(c.seconds) * 1000 + UInt64(c.attoseconds) / 1_000_000_000_000_000
    return max(1, ms)
}

/// Builds the swift-http-types head from the C request (loop thread); nil
/// if the method is not a token.
func makeHead(_ raw: OpaquePointer) -> HTTPRequest? {
    var mlen = 0
    let m = UnsafeRawBufferPointer(start: vigil_request_method(raw, &mlen)!, count: mlen)
    guard let method = httpMethod(m) else { return nil }
    var tlen = 0
    let t = vigil_request_target(raw, &tlen)!
    let target = requestTargetParts(
        method: method, target: UnsafeRawBufferPointer(start: t, count: tlen))
    var fields = HTTPFields()
    // From the target (absolute-form, CONNECT's authority-form), else Host.
    var authority = target.authority
    var hostSeen = false
    let n = vigil_request_header_count(raw)
    // Host alone (the common small request) needs no field storage.
    if n > 1 { fields.reserveCapacity(n) }
    for i in 0..<n {
        var name: UnsafePointer<CChar>?
        var value: UnsafePointer<CChar>?
        var nl = 0
        var vl = 0
        vigil_request_header_at(raw, i, &name, &nl, &value, &vl)
        let nameBytes = UnsafeRawBufferPointer(start: name, count: nl)
        let valueBytes = UnsafeRawBufferPointer(start: value, count: vl)
        if !hostSeen, isHost(nameBytes) {
            // As in swift-http-types' HTTP/1 mapping: Host becomes
            // :authority; with an authority in the target, Host is ignored
            // (RFC 9112 §3.2.2: the server MUST use the target's).
            hostSeen = true
            if authority == nil { authority = String(decoding: valueBytes, as: UTF8.self) }
            continue
        }
        guard let fieldName = HTTPField.Name(String(decoding: nameBytes, as: UTF8.self)) else {
            continue
        }
        fields.append(HTTPField(name: fieldName, lenientValue: valueBytes))
    }
    return HTTPRequest(
        method: method, scheme: target.scheme, authority: authority, path: target.path,
        headerFields: fields)
}

/// The method from its bytes: any token (RFC 9110 §9.1: methods are
/// case-sensitive tokens; `QUERY`, `get` and `MKCOLA` are three methods),
/// kept as sent; nil if not a token. The common ones without building a
/// String.
func httpMethod(_ m: UnsafeRawBufferPointer) -> HTTPRequest.Method? {
    knownMethod(m) ?? HTTPRequest.Method(String(decoding: m, as: UTF8.self))
}

/// The `HTTPRequest` pseudo-header parts of a request-target (RFC 9112
/// §3.2), as swift-http-types expects them:
/// - origin-form `/p?q` and asterisk-form `*`: the path;
/// - authority-form (CONNECT): the authority, no path (§3.2.3);
/// - absolute-form `http://a/p?q`: scheme (lowercased, RFC 3986 §3.1),
///   authority and path (§3.2.2, which a server MUST accept); an empty path
///   is `/`, or `*` for OPTIONS (§3.3).
/// A target that fits none of these stays the path as it came: the core
/// checks the forms, this only splits them.
func requestTargetParts(
    method: HTTPRequest.Method, target t: UnsafeRawBufferPointer
) -> (scheme: String?, authority: String?, path: String?) {
    // Origin-form, nearly every request: one byte compared.
    if t.first == UInt8(ascii: "/") { return (nil, nil, String(decoding: t, as: UTF8.self)) }
    if method == .connect { return (nil, String(decoding: t, as: UTF8.self), nil) }
    guard let (scheme, authority, rest) = splitAbsoluteForm(t) else {
        return (nil, nil, String(decoding: t, as: UTF8.self))
    }
    let path: String
    if rest.isEmpty {
        path = method == .options ? "*" : "/"
    } else if rest.first == UInt8(ascii: "/") {
        path = String(decoding: rest, as: UTF8.self)
    } else {
        path = "/" + String(decoding: rest, as: UTF8.self)  // "http://a?q"
    }
    return (scheme, authority, path)
}

/// absolute-URI = scheme ":" "//" authority path-abempty [ "?" query ]
/// (RFC 3986 §3; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )):
/// the scheme (lowercased), the authority (not empty) and the rest.
private func splitAbsoluteForm(
    _ t: UnsafeRawBufferPointer
) -> (String, String, Slice<UnsafeRawBufferPointer>)? {
    func isAlpha(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }
    func isSchemeByte(_ b: UInt8) -> Bool {
        isAlpha(b) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
    }
    guard let colon = t.firstIndex(of: UInt8(ascii: ":")), colon > 0, isAlpha(t[0]),
          t[1..<colon].allSatisfy(isSchemeByte), colon + 2 < t.count,
          t[colon + 1] == UInt8(ascii: "/"), t[colon + 2] == UInt8(ascii: "/")
    else { return nil }
    let start = colon + 3
    let end = t[start...].firstIndex {
        $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#")
    } ?? t.count
    guard end > start else { return nil }
    return (String(decoding: t[..<colon], as: UTF8.self).lowercased(),
            String(decoding: t[start..<end], as: UTF8.self), t[end...])
}

/// The common methods without building and validating a String (the core
/// has validated the token already).
private func knownMethod(_ m: UnsafeRawBufferPointer) -> HTTPRequest.Method? {
    func eq(_ s: StaticString) -> Bool {
        guard s.utf8CodeUnitCount == m.count else { return false }
        for i in 0..<m.count where s.utf8Start[i] != m[i] { return false }
        return true
    }
    switch m.count {
    case 3: return eq("GET") ? .get : eq("PUT") ? .put : nil
    case 4: return eq("POST") ? .post : eq("HEAD") ? .head : nil
    case 5: return eq("PATCH") ? .patch : nil
    case 6: return eq("DELETE") ? .delete : nil
    case 7: return eq("OPTIONS") ? .options : eq("CONNECT") ? .connect : nil
    default: return nil
    }
}

/// "Host", in any case, without making a String.
private func isHost(_ name: UnsafeRawBufferPointer) -> Bool {
    guard name.count == 4 else { return false }
    return name[0] | 0x20 == UInt8(ascii: "h") && name[1] | 0x20 == UInt8(ascii: "o")
        && name[2] | 0x20 == UInt8(ascii: "s") && name[3] | 0x20 == UInt8(ascii: "t")
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
