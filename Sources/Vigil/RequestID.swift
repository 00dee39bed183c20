// Request ids: the client's or proxy's X-Request-Id when it is safe to log,
// else one made here.
import HTTPTypes
import Synchronization

enum RequestID {
    static let field = HTTPField.Name("X-Request-Id")!

    /// The longest id taken from a request: ids in use (UUIDs, 32 hex
    /// digits, a proxy's "host-pid-counter") are far shorter, and a client
    /// must not make every log line of its request carry kilobytes.
    static let maxLength = 128

    /// `value` if it is 1...maxLength visible ASCII characters (no space,
    /// no control, no byte over 0x7E): it goes into logs and traces as is,
    /// so nothing may end a log line or pass for another field. Two
    /// X-Request-Id fields arrive joined with ", " and are refused by the
    /// space.
    static func from(_ value: String?) -> String? {
        guard let value else { return nil }
        var n = 0
        for b in value.utf8 {
            guard b > 0x20 && b < 0x7F else { return nil }
            n += 1
            if n > maxLength { return nil }
        }
        return n > 0 ? value : nil
    }

    /// A random prefix, drawn once per process, and a counter: unique
    /// within the process without a system call per id, and unlikely to
    /// repeat across processes sharing a log (64 random bits).
    private static let prefix: String = {
        var rng = SystemRandomNumberGenerator()
        let bits = rng.next() as UInt64
        let hex = String(bits, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }()
    private static let counter = Atomic<UInt64>(0)

    /// "<16 hex digits>-<counter in hex>", e.g. "3f9a0c1d22e4b871-1a".
    static func generate() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return prefix + "-" + String(n, radix: 16)
    }
}
