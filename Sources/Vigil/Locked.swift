// A value behind a pthread mutex: the lock the Swift layer uses, visible
// to ThreadSanitizer.

#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex, both in one allocation.
///
/// Not `Synchronization.Mutex`: on Linux that one is built on futexes in the
/// uninstrumented standard library, so ThreadSanitizer cannot see its
/// ordering and reports false races through it. TSan intercepts
/// `pthread_mutex_*`, and `make test` runs the suite under TSan.
///
/// The mutex lives in the tail of a `ManagedBuffer` whose header is the
/// value: a `RequestContext` is made per request, and a separately
/// allocated mutex cost a malloc/free each.
///
/// `@unchecked Sendable`: the value is only reached through `withLock`,
/// under the mutex; the mutex is initialized before the first `withLock`
/// and destroyed after the last (deinit).
package struct Locked<Value>: @unchecked Sendable {
    private final class Storage: ManagedBuffer<Value, pthread_mutex_t> {
        deinit {
            // The header (the value) is a stored property and goes by
            // itself; the tail element is ours.
            withUnsafeMutablePointerToElements { mutex in
                pthread_mutex_destroy(mutex)
                mutex.deinitialize(count: 1)
            }
        }
    }

    private let storage: Storage

    package init(_ value: consuming Value) {
        // Moved in, not copied: a copy of a large value (a request's state)
        // retains each of its references, and the original then releases
        // them.
        var moving = Optional(value)
        storage = unsafeDowncast(
            Storage.create(minimumCapacity: 1) { _ in moving.take()! }, to: Storage.self)
        storage.withUnsafeMutablePointerToElements { mutex in
            mutex.initialize(to: pthread_mutex_t())
            _ = pthread_mutex_init(mutex, nil)
        }
    }

    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try storage.withUnsafeMutablePointers { value, mutex in
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body(&value.pointee)
        }
    }
}
