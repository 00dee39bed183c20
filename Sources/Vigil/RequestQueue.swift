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
/// Who takes a pending request (`State.wake`), in order: a worker finishing
/// a request on this queue, which looks here before it parks (the next
/// pipelined request of a connection is dispatched from inside the previous
/// request's finish, and so costs no wake-up at all); else a parked worker,
/// resumed with it; else the dispatcher, which starts a new worker. Pending
/// requests and parked workers coexist only while a worker is finishing.
final class RequestQueue: Sendable {
    /// Parked workers kept per loop; one finding this many parked ends
    /// instead. Bounds the memory of a burst that is over. A soft bound:
    /// `leave` counts the parked workers and `park` joins them under a
    /// second lock, so workers leaving at the same moment may each see
    /// room and park a few past it.
    static let maxParkedWorkers = 256

    typealias Worker = Continuation<RequestContext?, Never>

    /// Who to resume, outside the lock.
    enum Wake {
        case none
        case worker(Worker, RequestContext)
        case dispatcher(Continuation<Void, Never>)

        func run() {
            switch self {
            case .none: break
            case .worker(let w, let c): w.resume(returning: c)
            case .dispatcher(let d): d.resume()
            }
        }
    }

    private struct State {
        /// pending[head...] are waiting; the slots before `head` are nil.
        /// A request taken out must not stay referenced here: under
        /// pipelined load the array does not empty for a whole loop
        /// iteration (a finishing worker's next request is appended while
        /// older ones are taken), and every request of the iteration (64
        /// connections × 16 pipelined) then stayed alive until it did —
        /// thousands of live objects that pushed malloc off its per-thread
        /// cache onto its slow path for 7 allocations in 10.
        var pending: [RequestContext?] = []
        var head = 0
        var parked: [Worker] = []
        /// Workers between the end of a handler and `leave`: each will look
        /// at `pending` before it parks.
        var finishing = 0
        var dispatcher: Continuation<Void, Never>?
        var finished = false

        mutating func popPending() -> RequestContext? {
            guard head < pending.count else { return nil }
            let c = pending[head].take()
            head += 1
            if head == pending.count {
                pending.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= pending.count {
                // Never empty under a load that never drains: drop the
                // taken slots (amortized O(1) per request).
                pending.removeFirst(head)
                head = 0
            }
            return c
        }

        /// A request waits and no finishing worker will take it: a parked
        /// worker does, or the dispatcher starts one.
        mutating func wake() -> Wake {
            guard finishing == 0, head < pending.count else { return .none }
            if let w = parked.popLast() { return .worker(w, popPending()!) }
            guard let d = dispatcher else { return .none }  // it is busy: it looks again
            dispatcher = nil
            return .dispatcher(d)
        }
    }
    private let state = Locked(State())

    /// Loop thread. False once finished: nobody will take the request.
    func push(_ context: RequestContext) -> Bool {
        let (wake, ok) = state.withLock { s -> (Wake, Bool) in
            if s.finished { return (.none, false) }
            s.pending.append(context)
            return (s.wake(), true)
        }
        wake.run()
        return ok
    }

    /// No more requests: parked workers end, the dispatcher ends once it
    /// has handed out what is pending.
    func finish() {
        let (workers, dispatcher) = state.withLock {
            s -> ([Worker], Continuation<Void, Never>?) in
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
    nonisolated(nonsending) func nextForNewWorker() async -> RequestContext? {
        while true {
            var taken: RequestContext??
            await withContinuation { (c: Continuation<Void, Never>) in
                taken = state.withLock { s -> RequestContext?? in
                    if let p = s.popPending() { return .some(p) }
                    if s.finished { return .some(nil) }
                    s.dispatcher = c
                    return nil
                }
                if taken != nil { c.resume() }
            }
            if let taken { return taken }
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
        let (result, wake) = state.withLock { s -> (Leave, Wake) in
            s.finishing -= 1
            if !spent, let c = s.popPending() { return (.next(c), s.wake()) }
            if spent || s.finished || s.parked.count >= Self.maxParkedWorkers {
                return (.end, s.wake())
            }
            return (.wait, .none)
        }
        wake.run()
        return result
    }

    /// After `.wait`: the next request, or nil when the queue finished.
    nonisolated(nonsending) func park() async -> RequestContext? {
        var resumedHere = false
        let next = await withContinuation { (c: Worker) in
            // Since `leave` a request may have come (it went to the
            // dispatcher or another worker) or the queue finished.
            let now = state.withLock { s -> RequestContext?? in
                if let p = s.popPending() { return .some(p) }
                if s.finished { return .some(nil) }
                s.parked.append(c)
                return nil
            }
            if let now {
                resumedHere = true
                c.resume(returning: now)
            }
        }
        if !resumedHere {
            // Resumed by `push` on the loop thread, after its unlock. When
            // that resume beats this task's own suspension, the task goes on
            // here without an executor hop, and the runtime orders the two
            // threads with atomics ThreadSanitizer does not see (it reported
            // the RequestContext's init racing our first read). Taking the
            // lock once makes the order one it sees.
            state.withLock { _ in }
        }
        return next
    }
}
