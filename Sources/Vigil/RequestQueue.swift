/// New requests of one loop, from its thread to the tasks that run their
/// handlers.
///
/// Handlers run in *worker* tasks that are reused: a worker that finished a
/// request takes the next pending one, or parks until one comes, instead of
/// ending. A Task per request cost its creation, a task-allocator slab
/// (malloc) for the handler's frames, and its teardown: ~15% of the loop
/// thread in the pipelined profile. A worker whose task was cancelled (its
/// request was) is spent: cancellation cannot be undone, so it ends and a
/// new worker takes its place.
///
/// Who takes a request, in order: a parked worker (resumed with it); a worker
/// finishing a request on this queue (it looks here before parking, so the
/// next pipelined request of a connection, dispatched from inside the
/// previous request's finish, costs no wake-up at all); else the dispatcher,
/// which starts a new worker for it. Under the lock, pending requests and
/// parked workers never coexist.
final class RequestQueue: Sendable {
    /// Parked workers kept per loop; one finding this many parked ends
    /// instead. Bounds the memory of a burst that is over.
    static let maxParkedWorkers = 256

    private struct State {
        var pending: [RequestContext] = []
        var head = 0  // pending[head...] are waiting
        var parked: [CheckedContinuation<RequestContext?, Never>] = []
        /// Workers between the end of a handler and `leave`: each will look
        /// at `pending` before it parks.
        var finishing = 0
        var dispatcher: CheckedContinuation<Void, Never>?
        var finished = false

        var hasPending: Bool { head < pending.count }

        mutating func popPending() -> RequestContext? {
            guard head < pending.count else { return nil }
            let c = pending[head]
            head += 1
            if head == pending.count {
                pending.removeAll(keepingCapacity: true)
                head = 0
            }
            return c
        }

        /// The dispatcher, if it must start a worker: requests wait, and no
        /// finishing worker will take them.
        mutating func dispatcherToWake() -> CheckedContinuation<Void, Never>? {
            guard hasPending, finishing == 0, let d = dispatcher else { return nil }
            dispatcher = nil
            return d
        }
    }
    private let state = Locked(State())

    /// Loop thread. False once finished: nobody will take the request.
    func push(_ context: RequestContext) -> Bool {
        let (worker, dispatcher, ok) = state.withLock {
            s -> (CheckedContinuation<RequestContext?, Never>?, CheckedContinuation<Void, Never>?, Bool) in
            if s.finished { return (nil, nil, false) }
            if let w = s.parked.popLast() { return (w, nil, true) }
            s.pending.append(context)
            return (nil, s.dispatcherToWake(), true)
        }
        worker?.resume(returning: context)
        dispatcher?.resume()
        return ok
    }

    /// No more requests: parked workers end, the dispatcher ends once it
    /// has handed out what is pending.
    func finish() {
        let (workers, dispatcher) = state.withLock {
            s -> ([CheckedContinuation<RequestContext?, Never>], CheckedContinuation<Void, Never>?) in
            s.finished = true
            defer {
                s.parked = []
                s.dispatcher = nil
            }
            return (s.parked, s.dispatcher)
        }
        for w in workers { w.resume(returning: nil) }
        dispatcher?.resume()
    }

    /// The dispatcher: the next request no worker took, for a new worker;
    /// nil once finished and drained.
    func nextForNewWorker() async -> RequestContext? {
        while true {
            let now = state.withLock { s -> RequestContext?? in
                if let c = s.popPending() { return .some(c) }
                return s.finished ? .some(nil) : nil
            }
            if let now { return now }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let wait = state.withLock { s -> Bool in
                    if s.hasPending || s.finished { return false }
                    s.dispatcher = c
                    return true
                }
                if !wait { c.resume() }
            }
        }
    }

    /// A worker's handler returned; call before finishing the request, then
    /// call `leave` (with no suspension point in between).
    func workerFinishing() {
        state.withLock { $0.finishing += 1 }
    }

    enum Leave {
        case next(RequestContext)
        case end
        case wait
    }

    /// A worker is done with its request (after `workerFinishing` and the
    /// finish): its next request, or `.end` if the worker should end (it is
    /// `spent`, too many are parked, or the queue finished), or `.wait`:
    /// then `park()`. Synchronous: a pipelined request waiting here costs
    /// no suspension.
    func leave(spent: Bool) -> Leave {
        let (result, dispatcher) = state.withLock {
            s -> (Leave, CheckedContinuation<Void, Never>?) in
            s.finishing -= 1
            if !spent, let c = s.popPending() { return (.next(c), s.dispatcherToWake()) }
            if spent || s.finished || s.parked.count >= Self.maxParkedWorkers {
                return (.end, s.dispatcherToWake())
            }
            return (.wait, nil)
        }
        dispatcher?.resume()
        return result
    }

    /// After `.wait`: the next request, or nil when the queue finished.
    func park() async -> RequestContext? {
        let next = await withCheckedContinuation { (c: CheckedContinuation<RequestContext?, Never>) in
            // Since `leave` a request may have come (it went to the
            // dispatcher or another worker) or the queue finished.
            let now = state.withLock { s -> RequestContext?? in
                if let p = s.popPending() { return .some(p) }
                if s.finished { return .some(nil) }
                s.parked.append(c)
                return nil
            }
            if let now { c.resume(returning: now) }
        }
        // The request was made on the loop thread, which resumed us after
        // its unlock in `push`. When that resume beats this task's own
        // suspension, the task goes on here without an executor hop, and
        // the runtime orders the two threads with atomics ThreadSanitizer
        // does not see (it reported the RequestContext's init racing our
        // first read). Taking the lock once makes the order one it sees;
        // uncontended, it costs a few ns per parked hand-over.
        state.withLock { _ in }
        return next
    }
}
