import ModelRuntime
import Prometheus

/// The memory manager's metrics in the Prometheus text format. Counters and histograms follow
/// the manager's events; gauges are read from its state at each scrape, so they are never stale.
final class ModelMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    static let loadBuckets: [Duration] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map { .milliseconds(Int($0 * 1000)) }
    static let inferenceBuckets: [Duration] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500].map { .milliseconds($0) }

    // Names are exactly those the dashboards and alert rules use; units are part of the names.
    static var loadDuration: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "model_load_duration", unitName: "seconds", helpText: "Time to verify and compile a model")
    }
    static var inferenceDuration: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "model_inference_duration", unitName: "seconds",
            helpText: "Time of one inference call, batching wait included, admission wait excluded")
    }
    static var evictions: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "model_evictions_total", unitName: "", helpText: "Models unloaded, by reason")
    }
    static var fallbacks: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "model_fallback_total", unitName: "",
            helpText: "Loads placed on a later pool than the model's preferred one")
    }
    static var allocated: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "vram_allocated_bytes", unitName: "",
            helpText: "Bytes charged to a device pool by loaded models")
    }
    static var available: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "vram_available_bytes", unitName: "", helpText: "Budget left in a device pool")
    }
    static var loaded: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "model_loaded", unitName: "", helpText: "1 while the model is loaded")
    }
    static var queueLength: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "model_queue_length", unitName: "", helpText: "Requests waiting for a model's slots")
    }

    @Sendable
    func observe(_ event: ModelEvent) {
        switch event {
        case .loaded(let model, let device, _, let seconds):
            registry.makeDurationHistogram(
                descriptor: Self.loadDuration, labels: [("model", model), ("device", device)],
                buckets: Self.loadBuckets
            ).record(.nanoseconds(Int64(seconds * 1e9)))
        case .inference(let model, let device, let seconds):
            registry.makeDurationHistogram(
                descriptor: Self.inferenceDuration, labels: [("model", model), ("device", device)],
                buckets: Self.inferenceBuckets
            ).record(.nanoseconds(Int64(seconds * 1e9)))
        case .evicted(let model, let reason):
            registry.makeCounter(descriptor: Self.evictions, labels: [("model", model), ("reason", reason.rawValue)])
                .increment()
        case .fallback(let model, let from, let to):
            registry.makeCounter(descriptor: Self.fallbacks, labels: [("model", model), ("from", from), ("to", to)])
                .increment()
        }
    }

    /// Sets the gauges from the manager, then renders every metric.
    /// Starts the event counters at zero for every series that can occur (each eviction reason,
    /// each fallback along a model's placement order), so dashboards and alert rules see the
    /// metrics before the first event.
    func prepare(_ manager: ModelManager) async {
        for model in await manager.statuses() {
            for reason in [EvictionReason.capacity, .idleTTL, .manual] {
                _ = registry.makeCounter(
                    descriptor: Self.evictions, labels: [("model", model.id), ("reason", reason.rawValue)])
            }
            for target in model.placement.dropFirst() {
                _ = registry.makeCounter(
                    descriptor: Self.fallbacks,
                    labels: [("model", model.id), ("from", model.placement[0]), ("to", target)])
            }
        }
    }

    func scrape(_ manager: ModelManager) async -> String {
        for device in await manager.devices() {
            for pool in device.pools {
                let labels = [("device", device.name), ("pool", pool.name)]
                registry.makeGauge(descriptor: Self.allocated, labels: labels).set(Double(pool.usedBytes))
                registry.makeGauge(descriptor: Self.available, labels: labels).set(
                    Double(max(0, pool.budgetBytes - pool.usedBytes)))
            }
        }
        for model in await manager.statuses() {
            registry.makeGauge(descriptor: Self.loaded, labels: [("model", model.id)]).set(
                model.state == .loaded ? 1.0 : 0.0)
            registry.makeGauge(descriptor: Self.queueLength, labels: [("model", model.id)]).set(Double(model.queued))
        }
        var text = registry.emitToString()
        // With one pool per model (a CPU-only server) no fallback series can exist; the family is
        // still declared so rules and dashboards that read it find it, with no samples.
        if !text.contains("# TYPE model_fallback_total") {
            text +=
                "# HELP model_fallback_total \(Self.fallbacks.helpText ?? "")\n# TYPE model_fallback_total counter\n"
        }
        return text
    }
}
