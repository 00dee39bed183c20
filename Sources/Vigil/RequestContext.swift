// The Swift state of one C request: its handler task, close-notify
// waiters, cancel callbacks and body stream. Its own C calls (reference,
// body flow, finish) sit here, in the locked transitions they belong to;
// every other C call is in CBridge.swift.
import CVigil
import HTTPTypes
import Logging
import Synchronization

/// The Swift side of one C request: the handler's task, the close-notify
/// waiters, the cancel callbacks and the body buffer, all behind one lock.
///
/// Lifetime: created on the loop thread in `on_request`, which stores a
/// retained reference in the C request (`vigil_request_set_data`). The C core
/// calls `on_request_done` exactly once, as the last callback for the request;
/// that callback takes the reference back. The worker task running the
/// handler holds its own strong reference while the handler runs.
final class RequestContext: Sendable {
    /// The C request. `vigil.h` makes every request function callable from
    /// any thread, and we hold the handler reference until `finishHandler()`
    /// and our own retain until `deinit`, so the pointer stays valid for
    /// this object's whole life.
    nonisolated(unsafe) let raw: OpaquePointer
    let head: HTTPRequest
    let hasBody: Bool
    let connectionID: UInt64
    /// The run's callbacks: the server's logger, for `logger`.
    let core: ServerCore
    private let state: Locked<State>
    /// The status the response started with (0: not started), and the
    /// response body bytes the handler has handed over. Atomics, not the
    /// state's lock: they are written on every response, which takes no
    /// lock today, and read only by whoever observes the request.
    let responseStatus = Atomic<Int>(0)
    let responseBodyBytes = Atomic<Int>(0)
    /// Request body bytes buffered in Swift before we ask the core to pause
    /// the body (backpressure), and the level at which we resume it.
    private static let bodyHighWater = 256 * 1024
    private static let bodyLowWater = 64 * 1024

    /// Continuations here are `Continuation`s (Continuation.swift): unsafe
    /// in release builds, checked in debug ones.
    private struct State {
        var reason: CancellationReason?
        var task: TaskHandle?
        var cancelInProgress = false
        var detachWaiter: Continuation<Void, Never>?
        var closeWaiters: [Int: Continuation<CancellationReason, any Error>] = [:]
        var nextWaiterID = 0
        var onCancel: [@Sendable (CancellationReason) -> Void] = []
        // body: the Swift stream over the core's body. Whether the request
        // has a body (`hasBody`) and whether the core took the connection
        // for a hijack (`vigil_request_hijacked`) are the core's, read. The
        // three flags below are kept here because they are not the core's
        // flags under another name, and the core's could not stand in for
        // them from a handler's thread:
        // - `bodyStarted` is the claim "this read starts the body", taken
        //   under this lock together with the hijack check (`beginHijack`);
        //   the core records a start (`body_public`) only once
        //   `vigil_request_body_start` has run, after the lock is released,
        //   so a hijack in between would find the core's flag still unset.
        // - `bodyPaused` is this buffer's high/low-water state: the core's
        //   pause lives in its connection, which only the loop thread
        //   touches (`vigil_conn_t`), and a core pause is not ours to undo.
        // - `bodyEnded` is this stream's end, with every chunk before it in
        //   `chunks`: set with the end under the lock that hands chunks to
        //   readers; after a hijack, also the raw stream's end, which the
        //   core keeps on the loop thread alone (`hijack_eof`).
        var chunks: [[UInt8]] = []
        var chunkIndex = 0
        var buffered = 0
        var bodyStarted = false
        var bodyPaused = false
        var bodyEnded = false
        var bodyWaiter: Continuation<[UInt8]?, any Error>?
        /// A `next()` is waiting: from its first look at the state until its
        /// continuation is taken out (`takeBodyWaiter`) or resumed at once.
        /// It alone may set `bodyWaiter`: one body, one reader at a time; a
        /// concurrent `next()` throws at once. Cleared when the waiter is
        /// taken, not when the reader runs again: a reader resumed but not
        /// yet scheduled is done (a handler that closed its hijacked
        /// connection may read the end at once).
        var bodyReading = false
        /// Numbers the waiting reads, so that a late cancellation handler of
        /// a read already resumed leaves the next reader's waiter alone.
        var bodyReadID = 0
        /// The iterator that owns the stream: the one whose `next()` came
        /// first. Any other iterator's `next()` throws, waiting or not: two
        /// iterators used in turn would split the bytes between them. Reset
        /// when a hijack restarts the stream as the connection's raw bytes.
        var bodyOwner: Int?
        var nextIteratorID = 0
        var hijack = HijackStep.none
        /// Request body bytes delivered by the core (after a hijack, the
        /// connection's raw bytes too): counted where they arrive, under
        /// the lock they already take.
        var bodyBytes = 0
        /// `id` and `logger`, made at the first ask: a handler that never
        /// asks pays one nil pointer.
        var identity: Identity?

        /// After a hijack, the body stream carries the connection's raw
        /// bytes: once `endHijack` saw the core take the connection (the
        /// core's flag, which never goes back once its hijack returned 0;
        /// read only outside `.pending`, while the core may still be
        /// deciding), or once the handler closed it.
        func isRaw(_ raw: OpaquePointer) -> Bool {
            switch hijack {
            case .none: vigil_request_hijacked(raw) != 0
            case .pending: false
            case .closed: true
            }
        }

        /// The next buffered chunk, taken out, and whether the core must now
        /// be told to go on (`vigil_request_body_start`): the body was paused
        /// for the buffer and the buffer fell under the low-water mark. Every
        /// path that takes a chunk goes through here: a path that took one
        /// without un-pausing could leave the next read waiting on a paused
        /// core for ever.
        mutating func takeChunk() -> (chunk: [UInt8], resume: Bool)? {
            guard chunkIndex < chunks.count else { return nil }
            let chunk = chunks[chunkIndex]
            chunkIndex += 1
            if chunkIndex == chunks.count {
                chunks.removeAll(keepingCapacity: true)
                chunkIndex = 0
            }
            buffered -= chunk.count
            guard bodyPaused && buffered < RequestContext.bodyLowWater else { return (chunk, false) }
            bodyPaused = false
            return (chunk, true)
        }

        /// The waiting body read, taken out (it no longer holds the reader
        /// slot).
        mutating func takeBodyWaiter() -> Continuation<[UInt8]?, any Error>? {
            guard let waiter = bodyWaiter else { return nil }
            bodyWaiter = nil
            bodyReading = false
            return waiter
        }

        /// Everything waiting on the request, taken out; nil if nothing
        /// (the usual request: no copies, no releases of empty tables).
        mutating func takeWork() -> CancelWork? {
            if closeWaiters.isEmpty && onCancel.isEmpty && bodyWaiter == nil { return nil }
            let work = CancelWork(
                waiters: Array(closeWaiters.values), callbacks: onCancel,
                bodyWaiter: takeBodyWaiter())
            closeWaiters = [:]
            onCancel = []
            return work
        }

        /// The handler returned: its reason, unless the request already
        /// ended, and what is left to resume.
        mutating func takeFinishWork() -> CancelWork? {
            guard reason == nil else {
                // Ended already: the waiters and callbacks had their
                // reason; only a body read still pending is left.
                return takeBodyWaiter().map { CancelWork(waiters: [], callbacks: [], bodyWaiter: $0) }
            }
            reason = .handlerFinished
            return takeWork()
        }
    }

    /// The Swift side of a hijack. Whether the core has the connection
    /// hijacked is the core's (`isRaw`).
    enum HijackStep {
        /// No `hijack()` under way or closed: not hijacked, or hijacked by
        /// a `hijack()` that returned.
        case none
        /// Between `beginHijack` and the core's answer: the body state is
        /// untouched until the core says yes, and no read may start the body.
        case pending
        /// `close()` was called: the stream is at its end. Kept here: the
        /// core's close runs on the loop, after `close()` may have returned,
        /// and from then on the stream must read as ended.
        case closed
    }

    /// The running handler's task. `UnsafeCurrentTask` may only be used while
    /// its task is alive, and a worker task goes on to other requests: the
    /// worker clears this under the lock (`detachTaskAndFinish`) when the handler
    /// returns, and waits (`waitForCancel`) while a cancel that already took
    /// the handle is still calling `cancel()` on it.
    private struct TaskHandle: @unchecked Sendable {
        let task: UnsafeCurrentTask
    }

    init(raw: OpaquePointer, head: HTTPRequest, core: ServerCore) {
        self.raw = raw
        vigil_request_retain(raw)  // ours, given back in deinit
        self.head = head
        self.hasBody = vigil_request_has_body(raw) != 0
        self.connectionID = vigil_request_connection_id(raw)
        self.core = core
        self.state = Locked(State())
    }

    deinit {
        vigil_request_release(raw)
    }

    var reason: CancellationReason? { state.withLock { $0.reason } }

    var bodyBytesReceived: Int { state.withLock { $0.bodyBytes } }

    // MARK: identity

    /// The request id and its logger, made together once.
    final class Identity: Sendable {
        let id: String
        let logger: Logger
        init(id: String, logger: Logger) {
            self.id = id
            self.logger = logger
        }
    }

    /// Made outside the lock (the id may be generated, the logger copied),
    /// kept by the first of two racing askers so that both see one id.
    var identity: Identity {
        if let made = state.withLock({ $0.identity }) { return made }
        let id = RequestID.from(head.headerFields[RequestID.field]) ?? RequestID.generate()
        var logger = core.logger
        logger[metadataKey: "request.id"] = .string(id)
        let fresh = Identity(id: id, logger: logger)
        return state.withLock { s in
            if let made = s.identity { return made }
            s.identity = fresh
            return fresh
        }
    }

    /// For tests: whether a body read is waiting, and how many close-notify
    /// waiters are registered.
    var waiters: (bodyRead: Bool, closeNotify: Int) {
        state.withLock { ($0.bodyWaiter != nil, $0.closeWaiters.count) }
    }

    // MARK: handler task

    /// Called first thing in the handler's task.
    func attachCurrentTask() {
        let already: Bool = withUnsafeCurrentTask { task in
            guard let task else { return false }
            return state.withLock { s in
                if let r = s.reason, r != .handlerFinished { return true }
                s.task = TaskHandle(task: task)
                return false
            }
        }
        if already {
            // Cancelled while the request waited to be scheduled.
            withUnsafeCurrentTask { $0?.cancel() }
        }
    }

    /// Called last in the handler's task, before it may end or serve
    /// another request: detaches the task and finishes the request
    /// (`finishHandler`) under the same lock. Returns false, having
    /// finished nothing, if a cancel still holds the task handle: then
    /// await `waitForCancel()` and call `finishHandler`. (Synchronous, so
    /// that the usual case costs no async call and one lock.)
    func detachTaskAndFinish(beforeCoreFinish: () -> Void) -> Bool {
        let (detached, work) = state.withLock { s -> (Bool, CancelWork?) in
            s.task = nil
            if s.cancelInProgress { return (false, nil) }
            return (true, s.takeFinishWork())
        }
        guard detached else { return false }
        finish(work, beforeCoreFinish)
        return true
    }

    /// After `detachTaskAndFinish` returned false: until the cancel is
    /// done with the task handle.
    nonisolated(nonsending) func waitForCancel() async {
        await withContinuation { (c: Continuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.cancelInProgress {
                    s.detachWaiter = c
                    return false
                }
                return true
            }
            if resumeNow { c.resume() }
        }
    }

    // MARK: ending

    /// The connection ended the request (loop thread, from on_request_done).
    /// Order matters: the reason is set first, under the lock, so that a
    /// waiter registering from now on returns it at once; then the task is
    /// cancelled; then the waiters taken out are resumed with the reason. A
    /// waiter in the handler's own task thus wakes with its task already
    /// cancelled, and its cancellation handler (which runs inside `cancel()`)
    /// finds it gone from the table and leaves it to us.
    func cancel(_ reason: CancellationReason) {
        let taken = state.withLock { s -> (CancelWork?, TaskHandle?)? in
            guard s.reason == nil else { return nil }
            s.reason = reason
            let work = s.takeWork()
            let task = s.task
            if task != nil { s.cancelInProgress = true }
            return (work, task)
        }
        guard let (work, task) = taken else { return }
        if let task {
            // The task cannot move on while cancelInProgress is set (it
            // waits in waitForCancel), so the handle is valid here, outside
            // the lock:
            // cancelling runs the task's cancellation handlers synchronously,
            // and they may take this lock.
            task.task.cancel()
            let waiter = state.withLock { s -> Continuation<Void, Never>? in
                s.cancelInProgress = false
                defer { s.detachWaiter = nil }
                return s.detachWaiter
            }
            waiter?.resume()
        }
        work?.run(reason, bodyError: RequestEndedError(reason: reason))
    }

    /// The handler returned (its own task). `beforeCoreFinish` runs after
    /// the request's own callbacks and right before the core is told, which
    /// may dispatch the connection's next request from inside the call.
    func finishHandler(beforeCoreFinish: () -> Void = {}) {
        finish(state.withLock { $0.takeFinishWork() }, beforeCoreFinish)
    }

    private func finish(_ work: CancelWork?, _ beforeCoreFinish: () -> Void) {
        work?.run(.handlerFinished, bodyError: RequestEndedError(reason: .handlerFinished))
        beforeCoreFinish()
        vigil_request_finish(raw)
    }

    private struct CancelWork {
        var waiters: [Continuation<CancellationReason, any Error>]
        var callbacks: [@Sendable (CancellationReason) -> Void]
        var bodyWaiter: Continuation<[UInt8]?, any Error>?

        func run(_ reason: CancellationReason, bodyError: RequestEndedError) {
            for w in waiters { w.resume(returning: reason) }
            bodyWaiter?.resume(throwing: bodyError)
            for cb in callbacks { cb(reason) }
        }
    }

    // MARK: close-notify and callbacks

    func connectionClosed() async throws -> CancellationReason {
        let id = state.withLock { s -> Int in
            s.nextWaiterID += 1
            return s.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withThrowingContinuation {
                (c: Continuation<CancellationReason, any Error>) in
                let action = state.withLock { s -> Result<CancellationReason, any Error>? in
                    if let r = s.reason { return .success(r) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.closeWaiters[id] = c
                    return nil
                }
                if let action { c.resume(with: action) }
            }
        } onCancel: {
            let c = state.withLock { $0.closeWaiters.removeValue(forKey: id) }
            c?.resume(throwing: CancellationError())
        }
    }

    func onCancel(_ body: @escaping @Sendable (CancellationReason) -> Void) {
        let now = state.withLock { s -> CancellationReason? in
            if let r = s.reason { return r }
            s.onCancel.append(body)
            return nil
        }
        if let now { body(now) }
    }

    // MARK: body

    /// A body piece from the loop thread.
    func bodyReceived(_ bytes: UnsafeRawBufferPointer, end: Bool) {
        let chunk = bytes.isEmpty ? nil : [UInt8](bytes)
        let (waiter, value, pause) = state.withLock {
            s -> (Continuation<[UInt8]?, any Error>?, [UInt8]?, Bool) in
            // Closed by the handler: what still arrives is nobody's.
            if s.hijack == .closed { return (nil, nil, false) }
            if end { s.bodyEnded = true }
            if s.bodyWaiter != nil, chunk != nil || end {
                let waiter = s.takeBodyWaiter()
                if let chunk {
                    s.bodyBytes += chunk.count
                    // Handing this one over; an end flag stays for the next call.
                    return (waiter, chunk, false)
                }
                return (waiter, nil, false)
            }
            if let chunk {
                s.bodyBytes += chunk.count
                s.chunks.append(chunk)
                s.buffered += chunk.count
            }
            if s.buffered > Self.bodyHighWater && !s.bodyPaused && !s.bodyEnded {
                s.bodyPaused = true
                return (nil, nil, true)
            }
            return (nil, nil, false)
        }
        waiter?.resume(returning: value)
        if pause { _ = vigil_request_body_pause(raw) }
    }

    /// First half of a hijack, before `vigil_request_hijack`: checks and
    /// marks it pending, changing nothing else, so that a hijack the core
    /// refuses (response started, request cancelled) leaves the body as it
    /// was (`endHijack(succeeded: false)`).
    func beginHijack() throws {
        try state.withLock { s in
            if s.hijack != .none || s.isRaw(raw) { throw VigilError.alreadySent }
            if s.bodyStarted && !(s.bodyEnded && s.chunkIndex >= s.chunks.count) {
                // Mid-body: raw bytes would mix with the body's framing.
                throw VigilError.bodyInProgress
            }
            s.hijack = .pending
        }
    }

    /// Second half: the core's answer. On success the body stream restarts
    /// as the connection's raw bytes. Nothing is delivered in between: the
    /// core delivers raw bytes only after `vigil_request_body_start`, which
    /// no `next()` calls while the hijack is pending.
    func endHijack(succeeded: Bool) {
        state.withLock { s in
            s.hijack = .none
            guard succeeded else { return }
            s.bodyOwner = nil
            s.bodyStarted = false
            s.bodyEnded = false
            s.bodyPaused = false
            s.chunks = []
            s.chunkIndex = 0
            s.buffered = 0
        }
    }

    /// The handler closed its hijacked connection (`vigil_hijack_close`
    /// accepted it). The stream ends: a waiting `next()` and every later one
    /// return nil. The request ends with `.handlerFinished`, as the core
    /// reports it, unless it ended already: close-notify waiters and
    /// `onCancel` callbacks get it now. Set here and not from
    /// `on_request_done`, which runs later when the close is posted to the
    /// loop from another thread: after `close()` returns, the reason is set.
    func hijackClosed() {
        let (bodyWaiter, work) = state.withLock {
            s -> (Continuation<[UInt8]?, any Error>?, CancelWork?) in
            s.hijack = .closed
            s.bodyEnded = true
            s.chunks = []
            s.chunkIndex = 0
            s.buffered = 0
            let waiter = s.takeBodyWaiter()
            guard s.reason == nil else { return (waiter, nil) }
            s.reason = .handlerFinished
            return (waiter, s.takeWork())
        }
        bodyWaiter?.resume(returning: nil)
        work?.run(.handlerFinished, bodyError: RequestEndedError(reason: .handlerFinished))
    }

    /// An identity for a new iterator of the body or hijacked stream
    /// (`makeAsyncIterator`): the first to call `next()` owns the stream.
    func makeIteratorID() -> Int {
        state.withLock { s in
            s.nextIteratorID += 1
            return s.nextIteratorID
        }
    }

    /// The next chunk for iterator `iterator` (`makeIteratorID`).
    func nextBodyChunk(iterator: Int) async throws -> [UInt8]? {
        enum Step { case value([UInt8]?), fail(any Error), wait }
        let (step, start, id) = state.withLock { s -> (Step, Bool, Int) in
            // Nothing to split: every iterator ends at once.
            if !hasBody && !s.isRaw(raw) { return (.value(nil), false, 0) }
            // Closed by the handler: the stream is at its end for every
            // iterator (close()'s contract), there is nothing left to split.
            if s.hijack == .closed { return (.value(nil), false, 0) }
            // Another iterator read first: the bytes are its own.
            if let owner = s.bodyOwner, owner != iterator {
                return (.fail(VigilError.bodyAlreadyIterated), false, 0)
            }
            // A copy of the owner waits already (another task): two readers
            // would share one waiter slot.
            if s.bodyReading { return (.fail(VigilError.bodyAlreadyIterated), false, 0) }
            s.bodyOwner = iterator
            var start = false
            if let (chunk, resume) = s.takeChunk() { return (.value(chunk), resume, 0) }
            if s.bodyEnded { return (.value(nil), false, 0) }
            if let r = s.reason { return (.fail(RequestEndedError(reason: r)), false, 0) }
            // Starting the body now could hand raw bytes to a hijack that is
            // about to reset the stream, or make the core refuse it.
            if s.hijack == .pending { return (.fail(VigilError.hijackInProgress), false, 0) }
            if !s.bodyStarted {
                s.bodyStarted = true
                start = true
            }
            s.bodyReading = true
            s.bodyReadID &+= 1
            return (.wait, start, s.bodyReadID)
        }
        if start { _ = vigil_request_body_start(raw) }
        switch step {
        case .value(let v): return v
        case .fail(let e): throw e
        case .wait: break
        }
        return try await withTaskCancellationHandler {
            try await withThrowingContinuation {
                (c: Continuation<[UInt8]?, any Error>) in
                // Chunks can arrive between the look above and this one (a
                // handler on the global executor; on its loop's executor the
                // loop is busy running it). Enough to pass the high-water
                // mark pauses the body, so taking one here must un-pause it
                // as above (takeChunk), or the next read waits on a paused
                // core for ever. Not reachable by a test at will: it needs
                // deliveries of over `bodyHighWater` bytes (several reads of
                // readBufferLimit, or one with a limit that large) within
                // that window of a few instructions.
                var resume = false
                let action = state.withLock { s -> Result<[UInt8]?, any Error>? in
                    let now: Result<[UInt8]?, any Error>
                    if let (chunk, r) = s.takeChunk() {
                        resume = r
                        now = .success(chunk)
                    } else if s.bodyEnded {
                        now = .success(nil)
                    } else if let r = s.reason {
                        now = .failure(RequestEndedError(reason: r))
                    } else if Task.isCancelled {
                        now = .failure(CancellationError())
                    } else {
                        s.bodyWaiter = c
                        return nil
                    }
                    s.bodyReading = false  // answered without waiting
                    return now
                }
                if resume { _ = vigil_request_body_start(raw) }
                if let action { c.resume(with: action) }
            }
        } onCancel: {
            // Only this call's waiter: once it was taken, the slot may hold
            // the next reader's.
            let c = state.withLock { s in s.bodyReadID == id ? s.takeBodyWaiter() : nil }
            c?.resume(throwing: CancellationError())
        }
    }
}
