// A Swift task executor over a libuv loop thread, for handlers that run
// where their connection is served.

/// Runs tasks on one of the server's libuv loop threads.
///
/// With `Server.Configuration.handlers = .onEventLoop`, each handler prefers
/// the executor of the loop that owns its connection: the handler's response
/// calls then run inline on the loop (no queue, no wake-up), and a batch of
/// pipelined requests is answered within one loop iteration and leaves in one
/// write. Jobs are collected in a queue; one `vigil_server_post` drains a
/// whole batch. Once the loop has exited, jobs go to the global executor, so
/// no task is ever stranded.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `queue` is a lock; `server` and `index` are immutable;
    // `batch` is touched by `drain` alone, which runs on the loop thread
    // only and never inside itself (a job enqueuing work posts a new drain,
    // run after this one returns).
    private let server: CServer
    private let index: UInt32
    private let queue = Locked<(jobs: [UnownedJob], scheduled: Bool)>(([], false))
    /// The jobs being run, swapped with the queue's array: no allocation
    /// per drained batch.
    private var batch: [UnownedJob] = []

    init(server: CServer, index: Int) {
        self.server = server
        self.index = UInt32(index)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let post = queue.withLock { q -> Bool in
            q.jobs.append(job)
            if q.scheduled { return false }
            q.scheduled = true
            return true
        }
        guard post else { return }
        if !server.post(loop: index, drain: self) {
            // The loop is gone: hand everything queued to the global executor.
            let jobs = queue.withLock { q -> [UnownedJob] in
                defer {
                    q.jobs = []
                    q.scheduled = false
                }
                return q.jobs
            }
            for j in jobs { globalConcurrentExecutor.enqueue(ExecutorJob(j)) }
        }
    }

    /// On the loop thread (posted by `CServer.post`).
    func drain() {
        var jobs = batch
        batch = []
        defer { batch = jobs }
        while true {
            jobs.removeAll(keepingCapacity: true)
            queue.withLock { q in
                if q.jobs.isEmpty {
                    q.scheduled = false
                } else {
                    swap(&q.jobs, &jobs)
                }
            }
            if jobs.isEmpty { return }
            for j in jobs { j.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}
