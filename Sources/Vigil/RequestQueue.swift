// The hand-off of new requests from a loop thread to reused worker tasks.

/// New requests of one loop, from its thread to the tasks that run their
/// handlers.
///
/// Handlers run in *worker* tasks that are reused: a worker that finished a
/// request takes the next pending one, or parks until one comes, instead of
/// ending: a Task per request would cost its creation, a task-allocator
/// slab (malloc) for the handler's frames, and its teardown. A worker whose task was cancelled (its
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

    /// A parked worker or the waiting dispatcher: resumed with the request
    /// it is to serve, or nil when the queue finished.
    typealias Waiter = Continuation<RequestContext?, Never>
    /// A request handed to a waiter: resumed outside the lock.
    typealias Handoff = (Waiter, RequestContext)

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
        var parked: [Waiter] = []
        /// Workers between the end of a handler and `leave`: each will look
        /// at `pending` before it parks.
        var finishing = 0
        var dispatcher: Waiter?
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
        /// worker does, or the dispatcher (to start a worker). Who to
        /// resume with it, outside the lock; nil if nobody (the dispatcher
        /// is busy: it looks again before it waits).
        mutating func wake() -> Handoff? {
            guard finishing == 0, head < pending.count,
                let w = parked.popLast() ?? dispatcher.take()
            else { return nil }
            return (w, popPending()!)
        }
    }
    private let state = Locked(State())

    /// Loop thread. False once finished: nobody will take the request.
    func push(_ context: RequestContext) -> Bool {
        let (wake, ok) = state.withLock { s -> (Handoff?, Bool) in
            if s.finished { return (nil, false) }
            s.pending.append(context)
            return (s.wake(), true)
        }
        if let (w, c) = wake { w.resume(returning: c) }
        return ok
    }

    /// No more requests: parked workers end; the dispatcher gets what is
    /// still pending (a request a spent worker left), then ends.
    func finish() {
        let (workers, dispatcher) = state.withLock { s -> ([Waiter], (Waiter, RequestContext?)?) in
            s.finished = true
            defer { s.parked = [] }
            return (s.parked, s.dispatcher.take().map { ($0, s.popPending()) })
        }
        for w in workers { w.resume(returning: nil) }
        if let (d, c) = dispatcher { d.resume(returning: c) }
    }

    /// The dispatcher: the next request no worker took, for a new worker;
    /// nil once finished and drained.
    nonisolated(nonsending) func nextForNewWorker() async -> RequestContext? {
        await wait { $0.dispatcher = $1 }
    }

    /// Whether the dispatcher is waiting (for the tests, which cannot see
    /// otherwise which path a hand-off took).
    var dispatcherWaiting: Bool { state.withLock { $0.dispatcher != nil } }

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
        let (result, wake) = state.withLock { s -> (Leave, Handoff?) in
            s.finishing -= 1
            if !spent, let c = s.popPending() { return (.next(c), s.wake()) }
            if spent || s.finished || s.parked.count >= Self.maxParkedWorkers {
                return (.end, s.wake())
            }
            return (.wait, nil)
        }
        if let (w, c) = wake { w.resume(returning: c) }
        return result
    }

    /// After `.wait`: the next request, or nil when the queue finished.
    nonisolated(nonsending) func park() async -> RequestContext? {
        await wait { $0.parked.append($1) }
    }

    /// Takes a pending request, or waits (`register` stores the
    /// continuation under the lock) until `wake` or `finish` hands one over.
    nonisolated(nonsending) private func wait(
        _ register: (inout State, Waiter) -> Void
    ) async -> RequestContext? {
        var resumedHere = false
        let next = await withContinuation { (c: Waiter) in
            // Since the caller last looked, a request may have come or the
            // queue finished.
            let now = state.withLock { s -> RequestContext?? in
                if let p = s.popPending() { return .some(p) }
                if s.finished { return .some(nil) }
                register(&s, c)
                return nil
            }
            if let now {
                resumedHere = true
                c.resume(returning: now)
            }
        }
        if !resumedHere {
            // Resumed by another thread (`push` on the loop thread), after
            // its unlock. When that resume beats this task's own suspension,
            // the task goes on here without an executor hop, and the runtime
            // orders the two threads with atomics ThreadSanitizer does not
            // see (it reported the RequestContext's init racing our first
            // read). Taking the lock once makes the order one it sees.
            state.withLock { _ in }
        }
        return next
    }
}
