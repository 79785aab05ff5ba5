import FaceKit
import Foundation
import Logging

/// The name the rest of the code base knew the manager by before it managed memory.
public typealias ModelRegistry = ModelManager

/// The memory manager: owns every model, places each in a memory pool of a device, loads lazily
/// (once, however many callers wait), evicts idle models of lower or equal priority when a load
/// does not fit, falls back along the model's placement order, unloads idle models after their
/// class's TTL, and admits inferences through a bounded per-model queue.
///
/// Every change of placement (load, eviction, unload) happens under one lock, so pool accounting
/// never races and each footprint measurement sees one load at a time.
public actor ModelManager {
    struct PoolKey: Hashable, Sendable {
        var device: String
        var pool: String
    }

    private typealias Pool = MemoryRules.PoolLedger

    private struct Record {
        var entry: ModelManifest.Entry
        var state: ModelState = .unloaded
        var session: (any InferenceSession)?
        var batcher: MicroBatcher?
        var pool: PoolKey?
        var pending: Task<Void, any Error>?
        var failure: String?
        var loadMilliseconds: Double?
        var bytes: Int?
        var bytesSource: String?
        var freedBytes: Int?
        var tuning: TuningRecord?
        var uses = 0
        var loads = 0
        var fallbacks = 0
        var evictions = 0
        var lastUsed: Date?
        var lastActive: ContinuousClock.Instant?
        var queue: AdmissionQueue
        var latency = LatencyWindow()
    }

    /// A compiled model and what its load measured.
    private struct Loaded: Sendable {
        var session: any InferenceSession
        var bytes: Int
        var source: String
        var seconds: Double
        var note: String?
        var tuning: TuningRecord?
    }

    public nonisolated let store: ModelStore
    public nonisolated let policy: MemoryPolicy
    public nonisolated let inventory: DeviceInventory
    public nonisolated let engine: any InferenceEngine
    private let sessionOptions: @Sendable (ModelManifest.Entry) -> SessionOptions
    /// Chooses precision and hint per model on the CPU by measurement (nil: the options as given).
    public nonisolated let tuner: SessionTuner?
    private var records: [String: Record]
    private var pools: [PoolKey: Pool] = [:]
    private var poolOrder: [PoolKey] = []
    private var deviceBudgets: [String: Int] = [:]
    /// Footprints measured at earlier loads: better priors than the manifest's estimates.
    private var learned: [String: Int] = [:]
    private let placementLock = SlotPool(count: 1)
    private static let measurementLock = SlotPool(count: 1)
    private var pinned: Set<String> = []
    private var warmedDevices: Set<String> = []
    /// Devices whose engine could not attach them, with the reason: later loads skip them.
    private var detached: [String: String] = [:]
    private var observer: (@Sendable (ModelEvent) -> Void)?
    private var nextToken: UInt64 = 0
    private var maintenance: Task<Void, Never>?
    private let logger = Logger(label: "facesocial.models")

    public init(
        store: ModelStore, engine: any InferenceEngine, policy: MemoryPolicy = MemoryPolicy(),
        tuner: SessionTuner? = nil,
        sessionOptions: @escaping @Sendable (ModelManifest.Entry) -> SessionOptions
    ) throws(MemoryPolicy.Invalid) {
        self.store = store
        self.tuner = tuner
        self.engine = engine
        self.policy = policy
        self.sessionOptions = sessionOptions
        self.inventory = try DeviceInventory.discover(engine: engine, wanted: policy.devices)
        self.records = Dictionary(
            uniqueKeysWithValues: store.manifest.models.map {
                ($0.id, Record(entry: $0, queue: AdmissionQueue(capacity: 1, limit: policy.queueLimit)))
            })

        let names = Set(inventory.devices.map(\.name))
        for device in policy.budgets.keys.sorted() where !names.contains(device) {
            throw MemoryPolicy.Invalid(variable: "FACESOCIAL_DEVICE_BUDGETS", reason: "unknown device \(device)")
        }
        for device in policy.pools.keys.sorted() where !names.contains(device) {
            throw MemoryPolicy.Invalid(variable: "FACESOCIAL_POOLS", reason: "unknown device \(device)")
        }
        var pools: [PoolKey: Pool] = [:]
        var order: [PoolKey] = []
        for device in inventory.devices {
            let fraction =
                device.kind == .cpu ? MemoryPolicy.defaultCPUFraction : MemoryPolicy.defaultAcceleratorFraction
            let budget =
                policy.budgets[device.name]?.resolve(of: device.totalBytes) ?? Int(Double(device.totalBytes) * fraction)
            deviceBudgets[device.name] = budget
            var assigned = 0
            for spec in policy.pools[device.name] ?? [] {
                let key = PoolKey(device: device.name, pool: spec.name)
                let bytes = spec.amount.resolve(of: budget)
                assigned += bytes
                pools[key] = Pool(budget: bytes)
                order.append(key)
            }
            guard assigned <= budget else {
                throw MemoryPolicy.Invalid(
                    variable: "FACESOCIAL_POOLS",
                    reason: "pools of \(device.name) need \(assigned) bytes, more than its budget of \(budget)")
            }
            // What the named pools leave is the device's default pool (the `CPU` in a placement).
            let key = PoolKey(device: device.name, pool: PlacementTarget.defaultPool)
            pools[key] = Pool(budget: budget - assigned)
            order.append(key)
        }
        self.pools = pools
        self.poolOrder = order
        for (model, targets) in policy.placement.sorted(by: { $0.key < $1.key }) {
            guard store.manifest.entry(model) != nil else {
                throw MemoryPolicy.Invalid(variable: "FACESOCIAL_MODEL_PLACEMENT", reason: "unknown model \(model)")
            }
            for target in targets where pools[PoolKey(device: target.device, pool: target.pool)] == nil {
                throw MemoryPolicy.Invalid(variable: "FACESOCIAL_MODEL_PLACEMENT", reason: "unknown pool \(target)")
            }
        }
    }

    // MARK: - Configuration

    /// Receives load, inference, eviction and fallback events (the server turns them into metrics).
    public func setObserver(_ observer: (@Sendable (ModelEvent) -> Void)?) { self.observer = observer }

    /// Preloaded models stay loaded through idle TTLs (capacity may still evict them).
    public func pin(_ ids: [String]) { pinned.formUnion(ids) }

    /// Unloads idle models past their TTL every `interval` until `stopMaintenance()`.
    public func startMaintenance(every interval: Duration = .seconds(15)) {
        guard maintenance == nil, !policy.idleTTL.isEmpty else { return }
        maintenance = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.sweepIdle()
            }
        }
    }

    public func stopMaintenance() {
        maintenance?.cancel()
        maintenance = nil
    }

    /// The placement order of a model: configured, or from its priority: on each placeable device
    /// in order, the pool of its class, then `flexible`, then the device's default pool.
    public nonisolated func placement(for entry: ModelManifest.Entry) -> [PlacementTarget] {
        MemoryRules.placement(
            priority: entry.priority, configured: policy.placement[entry.id],
            devices: inventory.devices.filter(\.placeable).map(\.name),
            pools: policy.pools.mapValues { $0.map(\.name) })
    }

    // MARK: - Sessions and inference

    /// A handle on `id` that runs every inference through admission (and batching), loading the
    /// model first when it is not resident. Holding a handle does not keep the model in memory.
    public func session(for id: String) async throws -> any InferenceSession {
        guard records[id] != nil else { throw ModelRegistryError.unknownModel(id) }
        if records[id]?.session == nil { try await ensureLoaded(id, target: nil) }
        return handle(id)
    }

    /// Loads `id` (on `target` when given, moving it there if it is elsewhere).
    @discardableResult
    public func load(_ id: String, on target: PlacementTarget? = nil) async throws -> any InferenceSession {
        guard let record = records[id] else { throw ModelRegistryError.unknownModel(id) }
        if let target {
            let key = PoolKey(device: target.device, pool: target.pool)
            guard pools[key] != nil else { throw ModelRegistryError.unknownTarget(target.description) }
            if record.session != nil, record.pool != key { try await unload(id, reason: .manual) }
        }
        if records[id]?.session == nil { try await ensureLoaded(id, target: target) }
        return handle(id)
    }

    /// Unloads `id` and gives its memory back. In-flight inferences finish on their own reference.
    /// A pinned model is refused: unloading it would take the server out of readiness until the
    /// next request loaded it again.
    public func unload(_ id: String) async throws {
        guard !pinned.contains(id) else { throw ModelRegistryError.pinned(id) }
        try await unload(id, reason: .manual)
    }

    private func unload(_ id: String, reason: EvictionReason) async throws {
        guard records[id] != nil else { throw ModelRegistryError.unknownModel(id) }
        if let pending = records[id]?.pending { _ = try? await pending.value }
        await locked { await evict(id, reason: reason) }
    }

    /// Runs one inference on `id` through its admission queue and, for batched models, its
    /// micro-batcher.
    public func infer(_ id: String, _ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        let (session, batcher) = try await admit(id)
        let started = ContinuousClock.now
        do {
            let outputs: [String: Tensor]
            if let batcher, batcher.accepts(inputs) {
                outputs = try await batcher.submit(inputs)
            } else {
                outputs = try await session.infer(inputs)
            }
            finish(id, device: session.device, since: started)
            return outputs
        } catch {
            finish(id, device: session.device, since: started)
            throw error
        }
    }

    private func handle(_ id: String) -> ManagedSession {
        let session = records[id]?.session
        return ManagedSession(
            manager: self, id: id,
            inputs: (session?.inputs ?? []).map {
                TensorInfo(name: $0.name, shape: $0.shape.map { $0 == -1 ? 1 : $0 })
            },
            outputs: session?.outputs ?? [], device: session?.device ?? "", concurrency: session?.concurrency ?? 1,
            flexibleSizeMultiple: session?.flexibleSizeMultiple)
    }

    private func admit(_ id: String) async throws -> (any InferenceSession, MicroBatcher?) {
        guard records[id] != nil else { throw ModelRegistryError.unknownModel(id) }
        while true {
            if records[id]!.session == nil { try await ensureLoaded(id, target: nil) }
            switch records[id]!.queue.enter() {
            case .admitted:
                break
            case .full:
                throw AdmissionError.queueFull(
                    model: id, queued: records[id]!.queue.queued, retryAfterSeconds: retryAfter(id))
            case .wait:
                nextToken += 1
                let token = nextToken
                let timeout = policy.queueTimeout
                let started = ContinuousClock.now
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    records[id]!.queue.enqueue(token: token, continuation)
                    Task { [weak self] in
                        try? await Task.sleep(for: timeout)
                        await self?.expire(id, token: token, since: started)
                    }
                }
            }
            // Admitted; an operator may have unloaded the model meanwhile: give the slot back and
            // load it again.
            guard let session = records[id]!.session else {
                records[id]!.queue.leave()
                continue
            }
            records[id]!.uses += 1
            records[id]!.lastUsed = Date()
            records[id]!.lastActive = .now
            return (session, records[id]!.batcher)
        }
    }

    private func expire(_ id: String, token: UInt64, since started: ContinuousClock.Instant) {
        guard let continuation = records[id]?.queue.expire(token: token) else { return }
        let waited = Int((ContinuousClock.now - started).milliseconds)
        continuation.resume(
            throwing: AdmissionError.timedOut(model: id, waitedMilliseconds: waited, retryAfterSeconds: retryAfter(id)))
    }

    private func finish(_ id: String, device: String, since started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        records[id]?.queue.leave()
        records[id]?.latency.add(elapsed.milliseconds)
        records[id]?.lastActive = .now
        observer?(.inference(model: id, device: device, seconds: elapsed.milliseconds / 1000))
    }

    /// Seconds until a slot is likely free: the queue ahead times the median inference time.
    private func retryAfter(_ id: String) -> Int {
        guard let record = records[id] else { return 1 }
        let median = record.latency.percentile(0.5) ?? 100
        let ahead = Double(record.queue.queued + record.queue.running) / Double(record.queue.capacity)
        return max(1, Int((median * ahead / 1000).rounded(.up)))
    }

    // MARK: - Loading

    /// One load per model: concurrent callers await the same task.
    private func ensureLoaded(_ id: String, target: PlacementTarget?) async throws {
        // A model under a restricted licence loads only after the operator's opt-in.
        if let entry = records[id]?.entry { try store.requireEnabled(entry) }
        if let pending = records[id]?.pending {
            try await pending.value
            return
        }
        let task = Task { try await self.place(id, forced: target) }
        records[id]?.pending = task
        defer { records[id]?.pending = nil }
        try await task.value
    }

    private func place(_ id: String, forced: PlacementTarget?) async throws {
        try await locked { try await placeLocked(id, forced: forced) }
    }

    private func placeLocked(_ id: String, forced: PlacementTarget?) async throws {
        guard records[id]?.session == nil, let entry = records[id]?.entry else { return }
        records[id]?.state = .loading
        let targets = forced.map { [$0] } ?? placement(for: entry)
        var reasons: [String] = []
        let need = prior(entry)
        for (index, target) in targets.enumerated() {
            let key = PoolKey(device: target.device, pool: target.pool)
            guard let pool = pools[key] else { continue }
            if let why = detached[target.device] {
                reasons.append("\(target): \(why)")
                continue
            }
            guard need <= pool.budget else {
                reasons.append("\(target) budget \(pool.budget) < \(need)")
                continue
            }
            guard await makeRoom(key, need: need, for: entry, excluding: id) else {
                reasons.append("\(target) has \(pools[key]!.free) free and not enough idle lower-priority models")
                continue
            }
            pools[key]?.reserved[id] = need
            // RSS is process-wide: loads of every manager in the process are measured one at a time.
            let slot = await Self.measurementLock.acquire()
            let result = await compile(entry, device: target.device, prior: need)
            await Self.measurementLock.release(slot)
            pools[key]?.reserved[id] = nil
            let loaded: Loaded
            switch result {
            case .failure(let error):
                records[id]?.state = .failed
                records[id]?.failure = "\(error)"
                throw error
            case .success(let value):
                loaded = value
            }
            let expected = inventory.engineDevice(target.device)
            if DeviceName(loaded.session.device).kind != DeviceName(expected).kind {
                // The engine could not attach the device (no driver, a missing CUDA library) and
                // served the model on its fallback instead: charge nothing here and move on to
                // the next target, so the model lands in a CPU pool and counts as a fallback.
                _ = await Self.release(SessionBox(loaded.session))
                detached[target.device] = "\(expected) unavailable; the engine served \(loaded.session.device)"
                reasons.append("\(target): \(detached[target.device]!)")
                continue
            }
            learned[id] = loaded.bytes
            pools[key]?.resident[id] = loaded.bytes
            if pools[key]!.free < 0, !(await makeRoom(key, need: 0, for: entry, excluding: id)) {
                // The measurement came out larger than the prior and the pool cannot absorb it.
                pools[key]?.resident[id] = nil
                _ = await Self.release(SessionBox(loaded.session))
                reasons.append("\(target): measured \(loaded.bytes) bytes exceed its budget \(pools[key]!.budget)")
                continue
            }
            var record = records[id]!
            record.session = loaded.session
            record.batcher =
                loaded.session.maxBatch > 1
                ? MicroBatcher(session: loaded.session, maxBatch: policy.maxBatch, maxWait: policy.batchWait) : nil
            record.pool = key
            record.state = .loaded
            record.failure = loaded.note
            record.bytes = loaded.bytes
            record.bytesSource = loaded.source
            record.tuning = loaded.tuning
            record.loadMilliseconds = loaded.seconds * 1000
            record.loads += 1
            record.lastActive = .now
            record.queue.resize(loaded.session.concurrency * max(1, record.batcher?.maxBatch ?? 1))
            if index > 0 {
                record.fallbacks += 1
                observer?(.fallback(model: id, from: targets[0].description, to: target.description))
                logger.notice(
                    "model placed on a fallback pool",
                    metadata: [
                        "model": .string(id), "preferred": .string(targets[0].description),
                        "pool": .string(target.description),
                    ])
            }
            records[id] = record
            observer?(.loaded(model: id, device: target.device, pool: target.pool, seconds: loaded.seconds))
            return
        }
        records[id]?.state = .unloaded
        let error = ModelRegistryError.insufficientMemory(id: id, neededBytes: need, reasons: reasons)
        records[id]?.failure = error.description
        throw error
    }

    private func prior(_ entry: ModelManifest.Entry) -> Int {
        MemoryRules.prior(learned: learned[entry.id], estimatedMB: entry.estimatedMemoryMB)
    }

    /// The loaded models of a pool (or of every pool) as the rules see them.
    private func residents(in key: PoolKey?, now: ContinuousClock.Instant = .now) -> [MemoryRules.Resident] {
        records.values.filter { $0.state == .loaded && (key == nil || $0.pool == key) }.map { record in
            MemoryRules.Resident(
                id: record.entry.id, priority: record.entry.priority,
                bytes: record.pool.flatMap { pools[$0]?.resident[record.entry.id] } ?? 0,
                idle: record.queue.isIdle && record.pending == nil, lastActive: record.lastActive ?? now,
                pinned: pinned.contains(record.entry.id))
        }
    }

    /// Frees `need` bytes in a pool by evicting idle models of lower or equal priority, lowest
    /// priority first and least recently used first within a class. Evicts nothing unless that is
    /// enough. Critical models and models with work in flight are never evicted.
    private func makeRoom(_ key: PoolKey, need: Int, for entry: ModelManifest.Entry, excluding: String) async -> Bool {
        guard let pool = pools[key] else { return false }
        let others = residents(in: key).filter { $0.id != excluding }
        guard let chosen = MemoryRules.evictions(need: need, free: pool.free, residents: others, for: entry.priority)
        else { return false }
        for id in chosen { await evict(id, reason: .capacity) }
        return (pools[key]?.free ?? 0) >= need
    }

    /// Compiles off the actor and measures the footprint: the device's memory counter where it has
    /// one, else the process RSS delta, else the prior.
    private func compile(_ entry: ModelManifest.Entry, device: String, prior: Int) async -> Result<Loaded, any Error> {
        let store = self.store
        let engine = self.engine
        let inventory = self.inventory
        var options = sessionOptions(entry)
        options.device = inventory.engineDevice(device)
        // Per-face models batch across requests; detectors see whole images one at a time.
        options.maxBatch = entry.batches && policy.maxBatch > 1 ? policy.maxBatch : 1
        // Image-shaped inputs on the CPU only: a GPU plugin compiles dynamic shapes slowly, if at all.
        options.flexibleSizeMultiple = DeviceName(options.device).kind == "CPU" ? entry.input.sizeMultiple : nil
        let untuned = options
        let tuner = self.tuner
        // Tuning applies where the hint and precision mean something: OpenVINO on the CPU.
        let cpuEngine = (engine as? EngineRouter)?.engine(for: "CPU")?.name ?? engine.name
        let tunes = tuner != nil && DeviceName(options.device).kind == "CPU" && cpuEngine == "openvino"
        // The first compile on a device also starts the plugin and its thread pools; that one-time
        // cost must not be charged to whichever model happens to load first.
        let measure = policy.measureFootprints
        let warmUp = !warmedDevices.contains(device)
        warmedDevices.insert(device)
        return await Task.detached(priority: .userInitiated) { () -> Result<Loaded, any Error> in
            let status = store.status(of: entry)
            guard status.isOK else {
                return .failure(
                    ModelRegistryError.unavailable(
                        id: entry.id, reason: "model file \(status.summary); run `facesocial models pull`"))
            }
            let path = store.url(for: entry).path
            var batchOptions = untuned
            var tuning: TuningRecord?
            if tunes, let tuner {
                (batchOptions, tuning) = await tuner.tune(
                    entry, base: untuned, path: path, engine: engine, engineName: cpuEngine)
            }
            if warmUp {
                var single = batchOptions
                single.maxBatch = 1
                if let session = try? engine.load(modelAt: path, options: single) {
                    _ = try? await session.infer(
                        Dictionary(uniqueKeysWithValues: session.inputs.map { ($0.name, Tensor(zeros: $0.shape)) }))
                }
            }
            ProcessMemory.trim()
            let rssBefore = ProcessMemory.residentBytes()
            let deviceBefore = inventory.usedBytes(device)
            let started = ContinuousClock.now
            var note: String?
            let session: any InferenceSession
            do {
                if batchOptions.maxBatch > 1 {
                    do {
                        let batched = try engine.load(modelAt: path, options: batchOptions)
                        try await Self.probeBatch(batched)
                        session = batched
                    } catch {
                        // Some graphs hard-code a batch of 1; those are served unbatched.
                        note = "batching off: \(error)"
                        var single = batchOptions
                        single.maxBatch = 1
                        session = try engine.load(modelAt: path, options: single)
                    }
                } else {
                    session = try engine.load(modelAt: path, options: batchOptions)
                }
            } catch {
                return .failure(ModelRegistryError.unavailable(id: entry.id, reason: "\(error)"))
            }
            let seconds = (ContinuousClock.now - started).milliseconds / 1000
            // Other threads' short-lived buffers (image decodes, tensors) inflate any one reading;
            // the lowest of a few trimmed readings keeps what the model holds.
            var rssAfter = Int.max
            for sample in 0..<3 {
                if sample > 0 { try? await Task.sleep(for: .milliseconds(5)) }
                ProcessMemory.trim()
                rssAfter = min(rssAfter, ProcessMemory.residentBytes())
            }
            let deviceAfter = inventory.usedBytes(device)
            let bytes: Int
            let source: String
            if !measure {
                (bytes, source) = (prior, "estimate")
            } else if let before = deviceBefore, let after = deviceAfter, after > before {
                (bytes, source) = (after - before, "device")
            } else if rssAfter > rssBefore {
                // Never below half the file: the compiled model keeps its weights (bf16 at the
                // least), and memory another thread returns during the compile (a periodic trim,
                // a freed buffer) can only make the delta read low. Seen: a 38 MB SFace at 9.9 MB.
                (bytes, source) = (max(rssAfter - rssBefore, entry.size / 2), "rss")
            } else {
                (bytes, source) = (prior, "estimate")
            }
            return .success(
                Loaded(session: session, bytes: bytes, source: source, seconds: seconds, note: note, tuning: tuning))
        }.value
    }

    /// Runs a batch of two zero inputs and checks every output comes back batch-first.
    private static func probeBatch(_ session: any InferenceSession) async throws {
        var inputs: [String: Tensor] = [:]
        for input in session.inputs {
            inputs[input.name] = Tensor(zeros: [2] + input.shape.dropFirst())
        }
        let outputs = try await session.infer(inputs)
        for (name, tensor) in outputs where tensor.shape.first != 2 {
            throw BatchingError.outputNotBatched(name, tensor.shape)
        }
    }

    // MARK: - Unloading

    /// Drops the manager's references and measures what the process gives back.
    private func evict(_ id: String, reason: EvictionReason) async {
        // No local copy of the record: it would hold the session past the release.
        guard records[id]?.session != nil, let key = records[id]?.pool else { return }
        records[id]?.state = .unloading
        let box = SessionBox(records[id]?.session)
        records[id]?.session = nil
        records[id]?.batcher = nil
        let freed = await Self.release(box, device: key.device, inventory: inventory)
        pools[key]?.resident[id] = nil
        records[id]?.pool = nil
        records[id]?.bytes = nil
        records[id]?.bytesSource = nil
        records[id]?.freedBytes = freed
        records[id]?.state = .unloaded
        records[id]?.evictions += 1
        observer?(.evicted(model: id, reason: reason))
        logger.info(
            "model unloaded",
            metadata: [
                "model": .string(id), "reason": .string(reason.rawValue), "freed_bytes": .stringConvertible(freed),
            ])
    }

    /// Releases the last reference off the actor, trims the heap, and returns what came back: the
    /// device counter's drop where the device has one (an NVIDIA GPU: releasing an ONNX Runtime
    /// session frees its CUDA arena), else the RSS drop.
    private static func release(_ box: SessionBox, device: String? = nil, inventory: DeviceInventory? = nil) async
        -> Int
    {
        await Task.detached {
            let deviceBefore = device.flatMap { inventory?.usedBytes($0) }
            ProcessMemory.trim()
            let before = ProcessMemory.residentBytes()
            box.session = nil
            // As at load: other threads' short-lived buffers inflate any one reading, so the lowest
            // of a few trimmed readings is what the process holds without the session.
            var after = Int.max
            for sample in 0..<3 {
                if sample > 0 { try? await Task.sleep(for: .milliseconds(5)) }
                ProcessMemory.trim()
                after = min(after, ProcessMemory.residentBytes())
            }
            let rssFreed = before - after
            if let deviceBefore, let after = device.flatMap({ inventory?.usedBytes($0) }) {
                return deviceBefore - after
            }
            return rssFreed
        }.value
    }

    /// Unloads models idle past their class's TTL; returns their ids.
    @discardableResult
    public func sweepIdle(now: ContinuousClock.Instant = .now) async -> [String] {
        await locked {
            let unloaded = MemoryRules.expired(residents(in: nil, now: now), ttl: policy.idleTTL, now: now)
            for id in unloaded { await evict(id, reason: .idleTTL) }
            return unloaded
        }
    }

    private func locked<T>(_ body: () async throws -> T) async rethrows -> T {
        let slot = await placementLock.acquire()
        do {
            let value = try await body()
            await placementLock.release(slot)
            return value
        } catch {
            await placementLock.release(slot)
            throw error
        }
    }

    // MARK: - Reports

    public func status(_ id: String) -> ModelStatus? {
        records[id].map(status)
    }

    public func statuses() -> [ModelStatus] {
        store.manifest.models.compactMap { records[$0.id].map(status) }
    }

    private func status(_ record: Record) -> ModelStatus {
        var status = ModelStatus(
            id: record.entry.id, service: record.entry.service, version: record.entry.version,
            state: record.state,
            device: record.pool?.device, pool: record.pool?.pool, priority: record.entry.priority,
            failure: record.failure, loadMilliseconds: record.loadMilliseconds, uses: record.uses,
            lastUsed: record.lastUsed, bytes: record.bytes, bytesSource: record.bytesSource,
            estimatedBytes: record.entry.estimatedMemoryMB * 1_048_576, freedBytes: record.freedBytes,
            loads: record.loads, fallbacks: record.fallbacks, evictions: record.evictions,
            placement: placement(for: record.entry).map(\.description), concurrency: record.session?.concurrency,
            maxBatch: record.session.map { _ in record.batcher?.maxBatch ?? 1 }, running: record.queue.running,
            queued: record.queue.queued, p50Milliseconds: record.latency.percentile(0.5),
            p95Milliseconds: record.latency.percentile(0.95), tuning: record.tuning)
        status.licence = record.entry.licence
        status.licenceOptIn = record.entry.licenceOptIn
        status.enabled = store.isEnabled(record.entry)
        return status
    }

    /// Every device with its budget, pools and a live reading.
    public func devices() -> [DeviceStatus] {
        inventory.devices.map { device in
            let devicePools = poolOrder.filter { $0.device == device.name }.compactMap { key in
                pools[key].map { pool in
                    PoolStatus(
                        name: key.pool, budgetBytes: pool.budget, usedBytes: pool.used,
                        reservedBytes: pool.reserved.values.reduce(0, +), models: pool.resident)
                }
            }
            return DeviceStatus(
                name: device.name, kind: device.kind, placeable: device.placeable, totalBytes: device.totalBytes,
                budgetBytes: deviceBudgets[device.name] ?? 0, pools: devicePools, reading: inventory.reading(device),
                unavailableReason: detached[device.name] ?? device.unavailableReason)
        }
    }
}

/// Carries the last reference to a session into the task that releases it.
private final class SessionBox: @unchecked Sendable {
    // Touched by one task at a time: created on the actor, emptied in the release task.
    var session: (any InferenceSession)?
    init(_ session: (any InferenceSession)?) { self.session = session }
}

/// What callers hold: a model id and the shapes it was loaded with. Each inference goes through
/// the manager, so a handle never pins a model in memory.
final class ManagedSession: InferenceSession {
    let manager: ModelManager
    let id: String
    let inputs: [TensorInfo]
    let outputs: [TensorInfo]
    let device: String
    let concurrency: Int
    /// The loaded session's, when the handle was made; should the model move to an engine that
    /// refuses other sizes meanwhile, the detector falls back to the declared shape.
    let flexibleSizeMultiple: Int?

    init(
        manager: ModelManager, id: String, inputs: [TensorInfo], outputs: [TensorInfo], device: String,
        concurrency: Int, flexibleSizeMultiple: Int?
    ) {
        self.flexibleSizeMultiple = flexibleSizeMultiple
        self.manager = manager
        self.id = id
        self.inputs = inputs
        self.outputs = outputs
        self.device = device
        self.concurrency = concurrency
    }

    func infer(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        try await manager.infer(id, inputs)
    }
}
