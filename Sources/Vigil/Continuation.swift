// The continuation type Vigil keeps in its state: unsafe in release
// builds, checked in debug ones.

/// The continuations Vigil keeps in its own state (a request's waiters in
/// `RequestContext`, parked workers and the dispatcher in `RequestQueue`).
///
/// Release builds use `UnsafeContinuation`: `CheckedContinuation` is not
/// frozen, so its layout is known only at run time, and every state or enum
/// holding one is created, copied and destroyed through runtime metadata
/// and value witnesses on each request. Debug builds — what `make test` runs, plain and
/// under AddressSanitizer and ThreadSanitizer — use `CheckedContinuation`,
/// so that a continuation resumed twice traps and one never resumed is
/// reported, as they would be everywhere without this split. Each is resumed
/// exactly once by construction: whoever resumes it takes it out of the
/// state under the state's lock.
#if DEBUG
typealias Continuation<T, E: Error> = CheckedContinuation<T, E>
#else
typealias Continuation<T, E: Error> = UnsafeContinuation<T, E>
#endif

/// `withCheckedContinuation` or `withUnsafeContinuation`, as above.
@inline(__always)
nonisolated(nonsending) func withContinuation<T: Sendable>(
    _ body: (Continuation<T, Never>) -> Void
) async -> T {
    #if DEBUG
    await withCheckedContinuation(body)
    #else
    await withUnsafeContinuation(body)
    #endif
}

/// `withCheckedThrowingContinuation` or `withUnsafeThrowingContinuation`.
@inline(__always)
nonisolated(nonsending) func withThrowingContinuation<T: Sendable>(
    _ body: (Continuation<T, any Error>) -> Void
) async throws -> T {
    #if DEBUG
    try await withCheckedThrowingContinuation(body)
    #else
    try await withUnsafeThrowingContinuation(body)
    #endif
}
