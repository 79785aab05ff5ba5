import FaceKit

/// The recognizers the server runs, by manifest id: the network, and the cosine similarity at or
/// above which two of its embeddings are the same person. Each model's threshold is measured on
/// its own scores (docs/thresholds.md) and never carried over: an SFace 0.45 means something else
/// for w600k_mbf. A collection names one at creation and keeps it; verify and embed take `model`.
public struct RecognitionModel: Sendable, Equatable {
    let model: FaceModel
    public let network: FaceRecognizer
    /// The default verification threshold; `FACESOCIAL_VERIFY_THRESHOLD` replaces SFace's.
    public let defaultThreshold: Float

    public var id: String { model.id }

    public static let sface = RecognitionModel(model: .sface, network: .sface, defaultThreshold: Thresholds.verify)
    public static let w600kMBF = RecognitionModel(
        model: .w600kMBF, network: .w600kMBF, defaultThreshold: Thresholds.verifyW600KMBF)

    public static let all = [sface, w600kMBF]
    public static let standard = sface

    public static func named(_ id: String) -> RecognitionModel? { all.first { $0.id == id } }

    /// The threshold a call uses when it sends none.
    func threshold(_ config: AppConfig) -> Float { self == .sface ? config.verifyThreshold : defaultThreshold }
}
