import Prometheus

/// What the transport does to connections, which no request metric sees:
/// `http_connections_open`, `http_connections_refused_total` (past FACESOCIAL_MAX_CONNECTIONS) and
/// `http_connections_timed_out_total{phase}` (idle, head, body: ConnectionClock's deadlines).
final class TransportMetrics: Sendable {
    let open: Gauge
    let refused: Counter
    private let timedOut: [ConnectionClock.Deadline: Counter]

    init(registry: PrometheusCollectorRegistry) {
        open = registry.makeGauge(name: "http_connections_open")
        refused = registry.makeCounter(name: "http_connections_refused_total")
        var timedOut: [ConnectionClock.Deadline: Counter] = [:]
        for (deadline, phase) in [(ConnectionClock.Deadline.idle, "idle"), (.head, "head"), (.body, "body")] {
            timedOut[deadline] = registry.makeCounter(
                name: "http_connections_timed_out_total", labels: [("phase", phase)])
        }
        self.timedOut = timedOut
    }

    func expired(_ deadline: ConnectionClock.Deadline) {
        timedOut[deadline]?.increment()
    }
}
