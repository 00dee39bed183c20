// Values the server side hands the test (requests started, requests
// ended), taken in order with a bounded wait.
import Vigil

/// A queue whose `take` suspends until a value comes, the timeout passes,
/// or the waiting task is cancelled; no polling.
final class Mailbox<T: Sendable>: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<T?, Never>
    }

    private struct State {
        var items: [T] = []
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
        /// Waits that expired (timeout or cancellation) before their
        /// continuation was registered: it then resumes at once.
        var expired: Set<UInt64> = []
    }

    private let state = Locked(State())

    func put(_ value: T) {
        let waiter = state.withLock { s -> Waiter? in
            if s.waiters.isEmpty {
                s.items.append(value)
                return nil
            }
            return s.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: value)
    }

    /// The oldest value not taken yet, or nil once `timeout` passed or the
    /// task was cancelled.
    func take(timeout: Duration) async -> T? {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        let timer = Task { [self] in
            do {
                try await Task.sleep(for: timeout)
                expire(id)
            } catch {}  // cancelled: the wait ended first
        }
        let value = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
                // .some(value or nil): resume now; nil: waiting.
                let now = state.withLock { s -> T?? in
                    if !s.items.isEmpty { return .some(s.items.removeFirst()) }
                    if s.expired.remove(id) != nil { return .some(nil) }
                    s.waiters.append(Waiter(id: id, continuation: c))
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            expire(id)
        }
        // The timer may have marked the wait just as a value came: once it
        // is done, no mark of this id is left behind.
        timer.cancel()
        await timer.value
        state.withLock { _ = $0.expired.remove(id) }
        return value
    }

    /// Ends the wait `id` with nil: resumes it if it waits, else marks it
    /// so that it does not start waiting. A wait already ended is left.
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { s -> Waiter? in
            if let i = s.waiters.firstIndex(where: { $0.id == id }) {
                return s.waiters.remove(at: i)
            }
            // Not registered yet, or already resumed with a value: only
            // the first leaves a mark (ids above nextID never come).
            s.expired.insert(id)
            return nil
        }
        waiter?.continuation.resume(returning: nil)
    }
}
