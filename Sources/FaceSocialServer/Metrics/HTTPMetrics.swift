import Prometheus
import Vapor

/// `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`,
/// the series the error-rate and latency alerts and the canary gate read. The route label is the
/// route's pattern (`/v1/collections/:id/identify`), never the raw path, so it stays bounded.
struct HTTPMetricsMiddleware: AsyncMiddleware {
    let registry: PrometheusCollectorRegistry

    static let buckets: [Duration] = [5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000].map { .milliseconds($0) }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let started = ContinuousClock.now
        let response = try await next.respond(to: request)
        let route = request.route.map { "/" + $0.path.map(\.description).joined(separator: "/") } ?? "unmatched"
        let method = request.method.rawValue
        registry.makeCounter(
            name: "http_requests_total",
            labels: [("method", method), ("route", route), ("status", String(response.status.code))]
        ).increment()
        registry.makeDurationHistogram(
            name: "http_request_duration_seconds", labels: [("method", method), ("route", route)],
            buckets: Self.buckets
        ).record(ContinuousClock.now - started)
        return response
    }
}
