/// New requests of one loop, from its thread to the task that starts their
/// handlers. The consumer takes everything pending at once: the requests a
/// loop iteration dispatched (one per ready connection) cost one wake-up.
/// Replaces an `AsyncStream`, whose per-element cost showed in profiles.
final class RequestQueue: Sendable {
    private struct State {
        var pending: [RequestContext] = []
        var waiter: CheckedContinuation<[RequestContext]?, Never>?
        var finished = false
    }
    private let state = Locked(State())

    /// False once finished: nobody will take the request.
    func push(_ context: RequestContext) -> Bool {
        let (waiter, ok) = state.withLock { s -> (CheckedContinuation<[RequestContext]?, Never>?, Bool) in
            if s.finished { return (nil, false) }
            s.pending.append(context)
            guard let w = s.waiter else { return (nil, true) }
            s.waiter = nil
            return (w, true)
        }
        if let waiter { waiter.resume(returning: take()) }
        return ok
    }

    private func take() -> [RequestContext] {
        state.withLock { s in
            defer { s.pending = [] }
            return s.pending
        }
    }

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[RequestContext]?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next batch, or nil once finished and drained.
    func next() async -> [RequestContext]? {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> [RequestContext]?? in
                if !s.pending.isEmpty {
                    defer { s.pending = [] }
                    return .some(s.pending)
                }
                if s.finished { return .some(nil) }
                s.waiter = c
                return .none
            }
            if let now { c.resume(returning: now) }
        }
    }
}
