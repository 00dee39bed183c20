// The bridge to the C core, and the only place Swift meets its conventions:
// the C server and its callbacks, C heads to HTTPRequest, HTTPFields to
// vigil_header_t, C codes and reasons to Swift errors, write completions.
// (RequestContext keeps the C calls of its own per-request state machine.)
import CVigil
import HTTPTypes
import Logging

#if canImport(Glibc)
import Glibc
#endif

// MARK: the C server and its callbacks

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

    /// The C server of this run, for `Request.sleep`; set by `run()` once
    /// the server exists. The cycle with `CServer`'s own reference to this
    /// core ends when `CServer.release` lets that one go.
    private let cserver = Locked<CServer?>(nil)
    func attach(_ server: CServer) { cserver.withLock { $0 = server } }
    var server: CServer? { cserver.withLock { $0 } }

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
                raw: raw, head: HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"),
                core: self)
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
        let context = RequestContext(raw: raw, head: head, core: self)
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
    /// Set once free() has begun (the loops are stopped): a loop executor
    /// may still be asked to run a job (a task that outlived run()), and
    /// must not touch the C server then.
    private let freed = Locked(false)
    /// When the first shutdown's grace period ends (the core keeps the
    /// first call's grace); nil before any shutdown.
    private let graceDeadline = Locked<ContinuousClock.Instant?>(nil)
    var graceEnd: ContinuousClock.Instant? { graceDeadline.withLock { $0 } }

    init(configuration: Server.Configuration, core: ServerCore) throws {
        var cfg = vigil_config_t()
        vigil_config_init(&cfg)
        var host = "127.0.0.1"
        var unixPath: String?
        switch configuration.listen {
        case .tcp(let h, let p):
            host = h
            guard (0...65535).contains(p) else { throw VigilError.invalidArgument }
            cfg.port = UInt16(p)
        case .unix(let path, let mode):
            unixPath = path
            cfg.unix_mode = mode ?? 0
        case .descriptor(let fd):
            cfg.listen_fd = fd
        case .systemd:
            guard vigil_listen_fds(1) > 0 else { throw VigilError.noInheritedSocket }
            cfg.listen_fd = Int32(VIGIL_LISTEN_FDS_START)
        }
        cfg.reuse_port = configuration.reusePort ? 1 : 0
        cfg.backlog = Int32(clamping: configuration.backlog)
        cfg.shutdown_idle_ms = milliseconds(configuration.shutdownIdleTimeout)
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
        switch configuration.proxyProtocol {
        case nil: cfg.proxy_protocol = VIGIL_PROXY_OFF
        case .v1: cfg.proxy_protocol = VIGIL_PROXY_V1
        case .v2: cfg.proxy_protocol = VIGIL_PROXY_V2
        case .any: cfg.proxy_protocol = VIGIL_PROXY_ANY
        }
        if let keepAlive = configuration.tcpKeepAlive {
            // A zero idle would turn keepalive off in C: the smallest
            // setting is 1 ms (1 s on the socket), as `nil` is "off".
            cfg.tcp_keepalive_idle_ms = max(1, milliseconds(keepAlive.idle))
            cfg.tcp_keepalive_interval_ms = milliseconds(keepAlive.interval)
            cfg.tcp_keepalive_count = UInt32(clamping: keepAlive.count)
        } else {
            cfg.tcp_keepalive_idle_ms = 0
        }
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
        // vigil_server_new copies both strings.
        let r = host.withCString { host in
            cfg.host = host
            guard let unixPath else { return vigil_server_new(&out, &cfg) }
            return unixPath.withCString { path in
                cfg.unix_path = path
                return vigil_server_new(&out, &cfg)
            }
        }
        guard r == 0, let out else {
            unmanaged.release()
            throw VigilError(code: r)
        }
        self.pointer = out
        self.core = unmanaged
    }

    /// `vigil_server_stats`, any thread.
    var statistics: Server.Statistics {
        var s = vigil_stats_t()
        vigil_server_stats(pointer, &s)
        return Server.Statistics(
            connectionsAccepted: s.connections_accepted, connectionsOpen: s.connections_open,
            requestsTotal: s.requests_total, requestsLive: s.requests_live,
            requestsCancelled: s.requests_cancelled, badRequests: s.bad_requests,
            connectionsIdle: s.connections_idle, connectionsHijacked: s.connections_hijacked)
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

    /// Has `executor.drain()` run on loop `loop` (`vigil_server_post`),
    /// unless the server is freed. The job holds a reference to the
    /// executor until it runs. False if it will not run.
    func post(loop: UInt32, drain executor: LoopExecutor) -> Bool {
        let me = Unmanaged.passRetained(executor)
        let posted = freed.withLock { freed in
            !freed && vigil_server_post(pointer, loop, { ud in
                Unmanaged<LoopExecutor>.fromOpaque(ud!).takeRetainedValue().drain()
            }, me.toOpaque()) == 0
        }
        if !posted { me.release() }
        return posted
    }

    /// `vigil_timer_start` on loop `loop` for `sleep`, which the timer
    /// holds (retained) until its callback's last call; unless the server
    /// is freed (VIGIL_ESHUTDOWN). The lock keeps the C server alive
    /// across the call, as in `post`.
    func startTimer(loop: UInt32, milliseconds: UInt64, for sleep: LoopSleep) -> (Int32, OpaquePointer?) {
        let me = Unmanaged.passRetained(sleep)
        var timer: OpaquePointer?
        let r = freed.withLock { freed -> Int32 in
            if freed { return VIGIL_ESHUTDOWN }
            return vigil_timer_start(pointer, loop, milliseconds, 0, { timer, status, ud in
                // A one-shot timer: every call is its last.
                let sleep = Unmanaged<LoopSleep>.fromOpaque(ud!)
                sleep.takeUnretainedValue().ended(status: status)
                sleep.release()
            }, me.toOpaque(), &timer)
        }
        if r != 0 { me.release() }
        return (r, timer)
    }

    /// Hand-overs under way, and whether `free` has begun: the C server
    /// must outlive every vigil_server_handover call. Whichever ends last,
    /// `free` or a hand-over's thread, frees it (`release`): `free` runs on
    /// the cooperative pool (run()'s defer) and must not wait there for a
    /// hand-over, whose resumption may need that very thread.
    private let handovers = Locked<(freed: Bool, active: Int)>((false, 0))

    /// `vigil_server_handover`, on a thread of its own (it blocks until
    /// the successor is ready, up to the timeout). Returns its pid.
    func handOver(executable: String, arguments: [String], timeoutMs: UInt64) async throws -> Int32 {
        let entered = handovers.withLock { s -> Bool in
            if s.freed { return false }
            s.active += 1
            return true
        }
        guard entered else { throw VigilError(code: VIGIL_ESHUTDOWN) }
        let argv = [executable] + arguments
        let server = self
        let (r, pid) = await onOwnThread { () -> (Int32, Int32) in
            var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
            cArgs.append(nil)
            defer { for a in cArgs { Glibc.free(a) } }
            var pid: Int32 = 0
            let r = vigil_server_handover(server.pointer, executable, cArgs, timeoutMs, &pid)
            // Done with the C server, on this thread: no pool thread needed.
            let last = server.handovers.withLock { s -> Bool in
                s.active -= 1
                return s.freed && s.active == 0
            }
            if last { server.release() }
            return (r, pid)
        }
        if r != 0 { throw VigilError(code: r) }
        return pid
    }

    /// Stops the server and frees the C server, or leaves that to the last
    /// hand-over still waiting for its successor (bounded by its timeout).
    /// Never blocks beyond the loops' shutdown.
    func free() {
        // Stop and join the loops first, without the lock: a loop thread may
        // be posting a job right now and needs it.
        _ = vigil_server_shutdown(pointer, 0)
        _ = vigil_server_wait(pointer)
        freed.withLock { $0 = true }
        let now = handovers.withLock { s -> Bool in
            s.freed = true
            return s.active == 0
        }
        if now { release() }
    }

    /// Frees the C server and releases the core: once, by whichever of
    /// `free` and the hand-overs ends last.
    private func release() {
        vigil_server_free(pointer)
        core.release()
    }
}


// MARK: sleeping on a loop

/// One `Request.sleep`: a one-shot loop timer (`vigil_timer_start`) and the
/// sleeping task's continuation.
///
/// The continuation is resumed exactly once, by whoever takes it out under
/// the lock: the timer's callback (fired: returns; stopped or shut down:
/// throws), or `sleep` itself when it cannot start a timer. The C timer is
/// stopped exactly once, as vigil.h asks, by whoever takes it out: the
/// cancellation handler (the callback's last call, `VIGIL_ECANCELED`,
/// follows on the loop) or the callback (a release only). The timer is
/// stored after `vigil_timer_start` returns, so a cancellation or a fire
/// in between finds none: `sleep` then stops it itself.
final class LoopSleep: Sendable {
    private struct State {
        var continuation: Continuation<Void, any Error>?
        var timer: OpaquePointer?
        var cancelled = false
        var ended = false
    }
    private let state = Locked(State())

    /// Sleeps on the loop of `context`'s connection.
    func sleep(on context: RequestContext, milliseconds: UInt64) async throws {
        guard let server = context.core.server else { throw CancellationError() }
        let loop = vigil_request_loop(context.raw)
        try await withTaskCancellationHandler {
            try await withThrowingContinuation { (c: Continuation<Void, any Error>) in
                let go = state.withLock { s -> Bool in
                    if s.cancelled { return false }
                    s.continuation = c
                    return true
                }
                guard go else { return c.resume(throwing: CancellationError()) }
                let (r, timer) = server.startTimer(loop: loop, milliseconds: milliseconds, for: self)
                guard r == 0, let timer else {
                    let c = state.withLock { $0.continuation.take() }
                    // Refused because the loop is gone: the server shut
                    // down, which cancels whatever its requests wait for.
                    c?.resume(throwing: r == VIGIL_ESHUTDOWN ? CancellationError() : VigilError(code: r))
                    return
                }
                let stopNow = state.withLock { s -> Bool in
                    if s.cancelled || s.ended { return true }
                    s.timer = timer
                    return false
                }
                if stopNow { vigil_timer_stop(timer) }
            }
        } onCancel: {
            let timer = state.withLock { s -> OpaquePointer? in
                s.cancelled = true
                return s.timer.take()
            }
            if let timer { vigil_timer_stop(timer) }
        }
    }

    /// The timer's last call (loop thread): 0 fired, else stopped or shut
    /// down.
    func ended(status: Int32) {
        let (c, timer) = state.withLock { s in
            s.ended = true
            return (s.continuation.take(), s.timer.take())
        }
        if let timer { vigil_timer_stop(timer) }
        if status == 0 { c?.resume() } else { c?.resume(throwing: CancellationError()) }
    }
}

// MARK: blocking C calls

/// A job for `onOwnThread`'s thread. Sendable: `run` is.
private final class ThreadJob: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Runs `body` on a new thread of its own and returns its result: for a C
/// call that blocks for long (vigil_server_handover waits for its
/// successor), which must not hold one of the cooperative pool's few
/// threads.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (done: CheckedContinuation<T, Never>) in
        let job = Unmanaged.passRetained(ThreadJob { done.resume(returning: body()) })
        var thread = pthread_t()
        let r = pthread_create(&thread, nil, { arg in
            Unmanaged<ThreadJob>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, job.toOpaque())
        if r == 0 {
            pthread_detach(thread)
        } else {
            // No thread to be had: block this one rather than fail.
            job.takeRetainedValue().run()
        }
    }
}

// MARK: configuration values and the request head

/// A duration in whole milliseconds, at least 1 if positive; 0 for nil.
/// Saturates: `.seconds(Int64.max)`, a natural spelling of "never", is
/// `UInt64.max` ms rather than an overflow trap.
func milliseconds(_ d: Duration?) -> UInt64 {
    guard let d, d > .zero else { return 0 }
    let c = d.components
    let (whole, overflow) = UInt64(c.seconds).multipliedReportingOverflow(by: 1000)
    if overflow { return .max }
    let (ms, overflow2) = whole.addingReportingOverflow(UInt64(c.attoseconds) / 1_000_000_000_000_000)
    return overflow2 ? .max : max(1, ms)
}

/// Builds the swift-http-types head from the C request (loop thread); nil
/// if the method is not a token.
func makeHead(_ raw: OpaquePointer) -> HTTPRequest? {
    let method: HTTPRequest.Method
    if let known = knownMethod(vigil_request_method_id(raw)) {
        method = known
    } else {
        var mlen = 0
        let m = UnsafeRawBufferPointer(start: vigil_request_method(raw, &mlen)!, count: mlen)
        guard let token = httpMethod(m) else { return nil }
        method = token
    }
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
/// kept as sent; nil if not a token. For the methods the core has no id
/// for (`knownMethod`).
func httpMethod(_ m: UnsafeRawBufferPointer) -> HTTPRequest.Method? {
    HTTPRequest.Method(String(decoding: m, as: UTF8.self))
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

/// The common methods from the core's method id: no String built, no
/// bytes compared again (the core read the request line).
private func knownMethod(_ id: vigil_method_t) -> HTTPRequest.Method? {
    switch id {
    case VIGIL_METHOD_GET: .get
    case VIGIL_METHOD_HEAD: .head
    case VIGIL_METHOD_POST: .post
    case VIGIL_METHOD_PUT: .put
    case VIGIL_METHOD_DELETE: .delete
    case VIGIL_METHOD_CONNECT: .connect
    case VIGIL_METHOD_OPTIONS: .options
    case VIGIL_METHOD_PATCH: .patch
    default: nil
    }
}

/// "Host", in any case, without making a String.
private func isHost(_ name: UnsafeRawBufferPointer) -> Bool {
    guard name.count == 4 else { return false }
    return name[0] | 0x20 == UInt8(ascii: "h") && name[1] | 0x20 == UInt8(ascii: "o")
        && name[2] | 0x20 == UInt8(ascii: "s") && name[3] | 0x20 == UInt8(ascii: "t")
}


// MARK: C enums

extension Server.ConnectionState {
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

extension CancellationReason {
    init?(_ c: vigil_reason_t) {
        switch c {
        case VIGIL_REASON_CLIENT_CLOSED: self = .clientClosed
        case VIGIL_REASON_RESET: self = .reset
        case VIGIL_REASON_READ_FAILED: self = .readFailed
        case VIGIL_REASON_WRITE_FAILED: self = .writeFailed
        case VIGIL_REASON_TIMED_OUT: self = .timedOut
        case VIGIL_REASON_SERVER_SHUTDOWN: self = .serverShutdown
        case VIGIL_REASON_HANDLER_FINISHED: self = .handlerFinished
        case VIGIL_REASON_BAD_REQUEST: self = .badRequest
        case VIGIL_REASON_BODY_TOO_LARGE: self = .bodyTooLarge
        case VIGIL_REASON_PEER_UNREACHABLE: self = .peerUnreachable
        default: return nil
        }
    }

    var cValue: vigil_reason_t {
        switch self {
        case .clientClosed: VIGIL_REASON_CLIENT_CLOSED
        case .reset: VIGIL_REASON_RESET
        case .readFailed: VIGIL_REASON_READ_FAILED
        case .writeFailed: VIGIL_REASON_WRITE_FAILED
        case .timedOut: VIGIL_REASON_TIMED_OUT
        case .serverShutdown: VIGIL_REASON_SERVER_SHUTDOWN
        case .handlerFinished: VIGIL_REASON_HANDLER_FINISHED
        case .badRequest: VIGIL_REASON_BAD_REQUEST
        case .bodyTooLarge: VIGIL_REASON_BODY_TOO_LARGE
        case .peerUnreachable: VIGIL_REASON_PEER_UNREACHABLE
        }
    }
}

extension Timeout {
    init?(_ c: vigil_timeout_t) {
        switch c {
        case VIGIL_TIMEOUT_BODY: self = .bodyRead
        case VIGIL_TIMEOUT_WRITE: self = .write
        case VIGIL_TIMEOUT_HANDLER: self = .handler
        default: return nil
        }
    }
}

// MARK: the per-request calls of the public API

extension RequestContext {
    func sendResponse(_ response: HTTPResponse, body: [UInt8]) throws {
        let r = withCHeaders(response.headerFields) { headers in
            body.withUnsafeBytes { b in
                vigil_response_send(
                    raw, Int32(response.status.code), headers.baseAddress,
                    headers.count, b.baseAddress, b.count)
            }
        }
        try check(r)
        // The facts `ResponseWriter.status` and `bodyBytesWritten` read.
        // Stores, not an add: a response starts once (the core refuses a
        // second), so no body byte was counted before this one.
        responseStatus.store(response.status.code, ordering: .relaxed)
        responseBodyBytes.store(body.count, ordering: .relaxed)
    }

    /// With a `Content-Length` field the body must have that length; else
    /// the core frames it (chunked, or until close for HTTP/1.0).
    func startResponse(_ response: HTTPResponse) throws {
        var length: Int64 = -1
        if let cl = response.headerFields[.contentLength], let n = Int64(cl), n >= 0 {
            length = n
        }
        let r = withCHeaders(response.headerFields) { headers in
            vigil_response_start(
                raw, Int32(response.status.code), headers.baseAddress, headers.count, length)
        }
        try check(r)
        responseStatus.store(response.status.code, ordering: .relaxed)
    }

    func writeResponseBody(_ bytes: [UInt8]) async throws {
        try await write(bytes, with: vigil_response_write)
        responseBodyBytes.add(bytes.count, ordering: .relaxed)
    }

    func endResponse() throws {
        try check(vigil_response_end(raw))
    }

    /// `vigil_request_hijack`'s code: 0, or why the core refused
    /// (`checkHijack`).
    func hijackCore() -> Int32 { vigil_request_hijack(raw) }

    func checkHijack(_ r: Int32) throws {
        // The core's own mid-body check: the refusal `beginHijack` makes.
        if r == VIGIL_EBUSY { throw VigilError.bodyInProgress }
        try check(r)
    }

    func writeHijacked(_ bytes: [UInt8]) async throws {
        try await write(bytes, with: vigil_hijack_write)
    }

    func closeHijackedCore() throws {
        try check(vigil_hijack_close(raw))
    }

    func setBodyLimit(_ bytes: Int?) {
        _ = vigil_request_set_body_limit(raw, UInt64(max(0, bytes ?? 0)))
    }

    var timeout: Timeout? { Timeout(vigil_request_timeout(raw)) }
}

// MARK: writes, errors and header fields

private final class WriteCompletion: Sendable {
    let context: RequestContext
    let continuation: CheckedContinuation<Void, any Error>
    init(context: RequestContext, continuation: CheckedContinuation<Void, any Error>) {
        self.context = context
        self.continuation = continuation
    }
    func complete(_ status: Int32) {
        continuation.resume(with: Result { try context.check(status) })
    }
}

typealias CWriteFunction = (
    OpaquePointer?, UnsafeRawPointer?, Int, vigil_write_cb?, UnsafeMutableRawPointer?
) -> Int32

extension RequestContext {
    /// Queues bytes through `vigil_response_write` or `vigil_hijack_write`
    /// and waits for the completion callback (backpressure).
    func write(_ bytes: [UInt8], with function: CWriteFunction) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let box = Unmanaged.passRetained(WriteCompletion(context: self, continuation: c))
            let r = bytes.withUnsafeBytes { b in
                function(
                    raw, b.baseAddress, b.count,
                    { _, status, ud in
                        Unmanaged<WriteCompletion>.fromOpaque(ud!).takeRetainedValue()
                            .complete(status)
                    }, box.toOpaque())
            }
            if r != 0 {
                // The callback will never run.
                box.takeRetainedValue().complete(r)
            }
        }
    }
}

extension RequestContext {
    /// Maps a C return code to a Swift error.
    func check(_ r: Int32) throws {
        if r == 0 { return }
        if r == VIGIL_ECANCELED || r == VIGIL_ESHUTDOWN {
            let c = vigil_request_reason(raw)
            throw RequestEndedError(
                reason: CancellationReason(c) ?? (r == VIGIL_ESHUTDOWN ? .serverShutdown : .clientClosed))
        }
        throw VigilError(code: r)
    }
}

/// Lays the fields out as `vigil_header_t`s in one temporary allocation
/// (on the stack): the structs first, then the name and value bytes they
/// point at. Valid for the duration of `body`; the C side copies.
///
/// One pass over the fields when they fit in a first guess of the size,
/// which the usual response's do: reading an `HTTPField` out of
/// `HTTPFields` copies it (its name's two strings and its value retained,
/// then released), and a sizing pass before the copying one would double
/// that.
func withCHeaders<R>(_ fields: HTTPFields, _ body: (UnsafeBufferPointer<vigil_header_t>) -> R) -> R {
    let count = fields.count
    if count == 0 {
        return body(UnsafeBufferPointer(start: nil, count: 0))
    }
    if let r = withCHeaders(fields, count: count, textCapacity: 64 * count, body) { return r }
    var bytes = 0
    for field in fields { bytes += field.name.rawName.utf8.count + field.value.utf8.count }
    return withCHeaders(fields, count: count, textCapacity: bytes, body)!
}

/// nil if the names and values need more than `textCapacity` bytes.
private func withCHeaders<R>(
    _ fields: HTTPFields, count: Int, textCapacity: Int,
    _ body: (UnsafeBufferPointer<vigil_header_t>) -> R
) -> R? {
    let headerBytes = count * MemoryLayout<vigil_header_t>.stride
    return withUnsafeTemporaryAllocation(
        byteCount: headerBytes + textCapacity, alignment: MemoryLayout<vigil_header_t>.alignment
    ) { raw -> R? in
        let headers = raw.baseAddress!.bindMemory(to: vigil_header_t.self, capacity: count)
        let text = raw.baseAddress! + headerBytes
        var used = 0
        var i = 0
        // Copies `s` at `text + used`; false if it does not fit. Through
        // `withContiguousStorageIfAvailable`, not `withUTF8`: that one is
        // mutating, and the copy of the string it needs costs retains and
        // releases per field.
        func put(_ s: String) -> Bool {
            let n = s.utf8.count
            guard used + n <= textCapacity else { return false }
            let copied = s.utf8.withContiguousStorageIfAvailable { u -> Bool in
                if n > 0 { (text + used).copyMemory(from: u.baseAddress!, byteCount: n) }
                return true
            }
            if copied == nil {
                // Not a native string (bridged or lazy): copy by element.
                for (k, b) in s.utf8.enumerated() { (text + used + k).storeBytes(of: b, as: UInt8.self) }
            }
            used += n
            return true
        }
        var at = fields.startIndex
        while at != fields.endIndex {
            let field = fields[at]
            at = fields.index(after: at)
            let nameAt = used
            guard put(field.name.rawName) else { return nil }
            let valueAt = used
            guard put(field.value) else { return nil }
            let base = UnsafeRawPointer(text).assumingMemoryBound(to: CChar.self)
            headers[i] = vigil_header_t(
                name: base + nameAt, name_len: valueAt - nameAt, value: base + valueAt,
                value_len: used - valueAt)
            i += 1
        }
        return body(UnsafeBufferPointer(start: headers, count: count))
    }
}

// MARK: addresses

extension RequestContext {
    /// `vigil_request_remote_addr`: the client (from a PROXY header when
    /// the connection carried one).
    var remoteAddress: SocketAddress? { address(vigil_request_remote_addr) }
    /// `vigil_request_peer_addr`: the directly connected peer.
    var peerAddress: SocketAddress? { address(vigil_request_peer_addr) }
    /// `vigil_request_proxy_dest_addr`: the PROXY header's destination.
    var proxyDestinationAddress: SocketAddress? { address(vigil_request_proxy_dest_addr) }
    /// `vigil_request_local_addr`: the socket's own address; a Unix
    /// socket's (AF_UNIX without a path) is left out.
    var localAddress: SocketAddress? {
        guard let a = address(vigil_request_local_addr), a.family != .unix else { return nil }
        return a
    }

    /// Any thread: the C accessors read the request's head, immutable
    /// while we hold our reference (RequestContext.raw).
    private func address(
        _ get: (OpaquePointer?, UnsafeMutablePointer<sockaddr_storage>?) -> Int32
    ) -> SocketAddress? {
        var storage = sockaddr_storage()
        guard get(raw, &storage) == 0 else { return nil }
        return SocketAddress(storage)
    }
}

extension SocketAddress {
    /// An AF_INET, AF_INET6 or AF_UNIX address; nil for another family.
    init?(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let (host, port) = withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    return (Self.text(AF_INET, &addr, Int(INET_ADDRSTRLEN)),
                            Int(UInt16(bigEndian: sin.pointee.sin_port)))
                }
            }
            self.init(family: .ipv4, host: host, port: port)
        case AF_INET6:
            let (host, port) = withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var addr = sin6.pointee.sin6_addr
                    return (Self.text(AF_INET6, &addr, Int(INET6_ADDRSTRLEN)),
                            Int(UInt16(bigEndian: sin6.pointee.sin6_port)))
                }
            }
            self.init(family: .ipv6, host: host, port: port)
        case AF_UNIX:
            // sun_path: up to 108 bytes, NUL-terminated unless full.
            let path = withUnsafeBytes(of: &storage) { raw -> String in
                let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
                let bytes = raw[offset..<(offset + MemoryLayout.size(ofValue: sockaddr_un().sun_path))]
                return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            self.init(family: .unix, host: path, port: 0)
        default:
            return nil
        }
    }

    private static func text(_ family: Int32, _ addr: UnsafeRawPointer, _ size: Int) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buf in
            guard inet_ntop(family, addr, buf.baseAddress, socklen_t(size)) != nil else { return "" }
            return String(cString: buf.baseAddress!)
        }
    }
}
