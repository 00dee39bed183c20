// A connection endpoint's address, as a handler reads it from its request
// (Request.remoteAddress, .peerAddress, .proxyDestinationAddress,
// .localAddress).

/// An IPv4, IPv6 or Unix domain socket address.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case ipv4, ipv6, unix
    }

    public var family: Family
    /// The address in its usual text form (`203.0.113.7`, `2001:db8::7`),
    /// or the socket's path for `.unix` (empty when unnamed).
    public var host: String
    /// The port; 0 for `.unix`.
    public var port: Int

    public init(family: Family, host: String, port: Int) {
        self.family = family
        self.host = host
        self.port = port
    }

    /// `203.0.113.7:51234`, `[2001:db8::7]:443`, `unix:/run/app.sock`.
    public var description: String {
        switch family {
        case .ipv4: return "\(host):\(port)"
        case .ipv6: return "[\(host)]:\(port)"
        case .unix: return "unix:\(host)"
        }
    }
}
