#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex.
///
/// Not `Synchronization.Mutex`: on Linux that one is built on futexes in the
/// uninstrumented standard library, so ThreadSanitizer cannot see its
/// ordering and reports false races through it. TSan intercepts
/// `pthread_mutex_*`, and `make test` runs the suite under TSan.
///
/// `@unchecked Sendable`: `value` is only reached through `withLock`, under
/// the mutex.
package final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
