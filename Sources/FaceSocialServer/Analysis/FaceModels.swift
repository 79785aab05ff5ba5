import FaceKit
import Foundation
import ModelRuntime

/// The models the face pipelines run: each one's manifest id, its role, and the input its pipeline
/// feeds it (FaceKit's constants: one square NCHW tensor in a channel order and a value range). The ids are spelled here only.
/// `mismatches` holds a manifest to them at start, so an edited manifest fails with a message that
/// names the model instead of giving wrong answers at the first request.
struct FaceModel: Sendable, Equatable {
    let id: String
    let role: ModelManifest.ModelRole
    let inputName: String
    let inputSize: Int
    /// The manifest's `input.color`: RGB, BGR or GRAY.
    let color: String
    let channels: Int
    let normalization: Normalization

    init(
        id: String, role: ModelManifest.ModelRole, inputName: String, inputSize: Int, color: ChannelOrder,
        normalization: Normalization
    ) {
        self.init(
            id: id, role: role, inputName: inputName, inputSize: inputSize, color: color == .rgb ? "RGB" : "BGR",
            channels: 3, normalization: normalization)
    }

    init(
        id: String, role: ModelManifest.ModelRole, inputName: String, inputSize: Int, color: String, channels: Int,
        normalization: Normalization
    ) {
        self.id = id
        self.role = role
        self.inputName = inputName
        self.inputSize = inputSize
        self.color = color
        self.channels = channels
        self.normalization = normalization
    }

    static let yunet = FaceModel(
        id: "yunet", role: .detection, inputName: YuNet.inputName, inputSize: YuNet.inputSize,
        color: YuNet.channelOrder, normalization: YuNet.normalization)
    static let retinaface = FaceModel(
        id: "retinaface", role: .detection, inputName: RetinaFace.inputName, inputSize: RetinaFace.inputSize,
        color: RetinaFace.channelOrder, normalization: RetinaFace.normalization)
    static let sface = FaceModel(recognizer: .sface, id: "sface")
    static let w600kMBF = FaceModel(recognizer: .w600kMBF, id: "w600k_mbf")
    static let age = FaceModel(
        id: "age", role: .attributes, inputName: AgeEstimator.inputName, inputSize: AgeEstimator.inputSize,
        color: AgeEstimator.channelOrder, normalization: AgeEstimator.normalization)
    static let gender = FaceModel(
        id: "gender", role: .attributes, inputName: GenderClassifier.inputName,
        inputSize: GenderClassifier.inputSize,
        color: GenderClassifier.channelOrder, normalization: GenderClassifier.normalization)
    static let minifas = FaceModel(
        id: "minifas", role: .liveness, inputName: MiniFAS.inputName, inputSize: MiniFAS.inputSize,
        color: MiniFAS.channelOrder, normalization: MiniFAS.normalization)
    static let faceMesh = FaceModel(
        id: "face-mesh", role: .landmarks, inputName: FaceMesh.inputName, inputSize: FaceMesh.inputSize,
        color: FaceMesh.channelOrder, normalization: FaceMesh.normalization)

    static let emotion = FaceModel(
        id: "emotion", role: .attributes, inputName: EmotionClassifier.inputName,
        inputSize: EmotionClassifier.inputSize, color: "GRAY", channels: EmotionClassifier.channels,
        normalization: EmotionClassifier.normalization)

    static let all = [yunet, retinaface, sface, w600kMBF, age, gender, minifas, faceMesh, emotion]

    init(recognizer: FaceRecognizer, id: String) {
        self.init(
            id: id, role: .recognition, inputName: recognizer.inputName, inputSize: FaceRecognizer.inputSize,
            color: recognizer.channelOrder, normalization: recognizer.normalization)
    }

    /// What in a manifest does not fit the pipelines, one line per problem; empty when all fits.
    /// A pipeline model the manifest lacks is not a problem here: the routes that need it answer
    /// 503 `MODEL_UNAVAILABLE`. A deepfake entry needs a classifier spec (docs/models.md).
    static func mismatches(in manifest: ModelManifest) -> [String] {
        var problems: [String] = []
        for model in all {
            guard let entry = manifest.entry(model.id) else { continue }
            let name = "model \(model.id)"
            if entry.service != model.role {
                problems.append(
                    "\(name): service is \(entry.service.rawValue), but the \(model.role.rawValue) pipeline runs it")
            }
            if entry.input.name != model.inputName {
                problems.append("\(name): input is named \(entry.input.name), the pipeline feeds \(model.inputName)")
            }
            if entry.input.color != model.color {
                problems.append("\(name): input colour is \(entry.input.color), the pipeline feeds \(model.color)")
            }
            if entry.input.range != model.normalization.rangeText {
                problems.append(
                    "\(name): input range is \(entry.input.range), the pipeline feeds \(model.normalization.rangeText)")
            }
            let shape = [1, model.channels, model.inputSize, model.inputSize]
            if entry.input.shape != shape || entry.input.layout != "NCHW" {
                problems.append(
                    "\(name): input is \(entry.input.shape) \(entry.input.layout), the pipeline feeds \(shape) NCHW")
            }
        }
        for entry in manifest.models where entry.service == .deepfake && entry.classifier == nil {
            problems.append("model \(entry.id): a deepfake model needs a classifier spec")
        }
        return problems
    }
}
