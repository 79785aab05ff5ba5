import Fluent
import Prometheus
import SQLKit

/// `db_pool_connections{database,state}` for the dashboard's database panel: each database's pool
/// capacity (`state="max"`), and on PostgreSQL the connections this instance holds open, by
/// server-side state (`active`, `idle`, …), read from `pg_stat_activity` at scrape time. Fluent's
/// pools keep their counts private, and the server's own view also shows connections that a pool
/// believes healthy but the server has dropped.
extension DatabaseRouter {
    static var poolConnections: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "db_pool_connections", unitName: "",
            helpText: "Database connections: the pool's capacity (state=max) and, on PostgreSQL, open ones by state")
    }
    /// States pg_stat_activity reports for client connections; each is set every scrape so a state
    /// that empties reads 0 instead of its last value.
    static let connectionStates = ["active", "idle", "idle in transaction", "idle in transaction (aborted)"]

    func exportPoolMetrics(to registry: PrometheusCollectorRegistry) async {
        let databases = [("primary", primaryID)] + replicaIDs.map { ($0.string, $0) }
        for (label, id) in databases {
            registry.makeGauge(descriptor: Self.poolConnections, labels: [("database", label), ("state", "max")])
                .set(Double(poolCapacity))
            guard kind == .postgres, let applicationName else { continue }
            var counts = Dictionary(uniqueKeysWithValues: Self.connectionStates.map { ($0, 0) })
            do {
                let rows = try await withTimeout(seconds: 1) {
                    try await (try self.database(id) as! any SQLDatabase).raw(
                        """
                        SELECT coalesce(state, 'unknown') AS state, count(*)::int AS n FROM pg_stat_activity \
                        WHERE application_name = \(bind: applicationName) GROUP BY 1
                        """
                    ).all()
                }
                for row in rows {
                    counts[try row.decode(column: "state", as: String.self)] = try row.decode(column: "n", as: Int.self)
                }
            } catch {
                // A database that cannot answer has no countable connections; its readiness and
                // the replica checks report why.
                logger.debug("pool metrics unavailable", metadata: ["database": .string(label)])
            }
            for (state, n) in counts {
                registry.makeGauge(descriptor: Self.poolConnections, labels: [("database", label), ("state", state)])
                    .set(Double(n))
            }
        }
    }
}
