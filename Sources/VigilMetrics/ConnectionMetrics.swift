// The server's connections as swift-metrics gauges, from its statistics.
import CoreMetrics
import Vigil

/// Connections by state, and the counters only the core sees, from
/// `Server.statistics`:
///
/// | label | type | dimensions |
/// |---|---|---|
/// | `vigil.server.connections` | gauge | `vigil.connection.state`: `active`, `idle`, `hijacked` |
/// | `vigil.server.connections.accepted` | counter | |
/// | `vigil.server.bad_requests` | counter | |
///
/// `active` is every open connection neither idle nor hijacked: reading a
/// request, serving one, or new. The sum over the states is the open
/// connections. `bad_requests` counts what never reached a handler: the
/// core's own 4xx/5xx answers and connections closed for a bad PROXY
/// header.
///
/// Polled, not updated on each state change: `onConnectionState` would run
/// Swift on the loop thread at every change (two on every keep-alive
/// request) and need a table of each connection's last state, while the
/// core keeps these counts already, summed on demand. Call `record(_:)`
/// when the metrics are read (a Prometheus scrape: exact then), or run
/// `poll(_:every:)` beside the server.
public final class ConnectionMetrics: Sendable {
    private let active: Gauge
    private let idle: Gauge
    private let hijacked: Gauge
    private let accepted: Counter
    private let badRequests: Counter
    /// The counters' values at the last `record`, to add what changed.
    private let last = Locked<(accepted: UInt64, badRequests: UInt64)>((0, 0))

    /// Records into `factory` (by default `MetricsSystem`'s, read now).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        func gauge(_ state: String) -> Gauge {
            Gauge(label: "vigil.server.connections", dimensions: [("vigil.connection.state", state)],
                  factory: factory)
        }
        active = gauge("active")
        idle = gauge("idle")
        hijacked = gauge("hijacked")
        accepted = Counter(label: "vigil.server.connections.accepted", factory: factory)
        badRequests = Counter(label: "vigil.server.bad_requests", factory: factory)
    }

    /// Sets the gauges from `statistics` and adds to the counters what grew
    /// since the last call. A server started anew counts from 0 again: a
    /// value below the last one is taken as that restart.
    public func record(_ statistics: Server.Statistics) {
        let open = statistics.connectionsOpen
        let quiet = statistics.connectionsIdle + statistics.connectionsHijacked
        active.record(Int64(clamping: open >= quiet ? open - quiet : 0))
        idle.record(Int64(clamping: statistics.connectionsIdle))
        hijacked.record(Int64(clamping: statistics.connectionsHijacked))
        let (newAccepted, newBad) = last.withLock { last in
            defer { last = (statistics.connectionsAccepted, statistics.badRequests) }
            return (grown(last.accepted, statistics.connectionsAccepted),
                    grown(last.badRequests, statistics.badRequests))
        }
        if newAccepted > 0 { accepted.increment(by: Int64(clamping: newAccepted)) }
        if newBad > 0 { badRequests.increment(by: Int64(clamping: newBad)) }
    }

    /// `record(server.statistics)` while the server runs; nothing otherwise.
    public func record(_ server: Server) {
        if let statistics = server.statistics { record(statistics) }
    }

    /// Records `server`'s statistics every `interval` until the calling
    /// task is cancelled.
    public func poll(_ server: Server, every interval: Duration = .seconds(5)) async {
        while !Task.isCancelled {
            record(server)
            try? await Task.sleep(for: interval)
        }
    }

    private func grown(_ before: UInt64, _ now: UInt64) -> UInt64 {
        now >= before ? now - before : now
    }
}
