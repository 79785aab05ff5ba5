import FaceKit

/// Default decision thresholds, chosen on measurements of the test identities
/// (`facesocial bench thresholds`; the tables and the reasoning are in docs/thresholds.md).
/// Every route takes a per-call override and the environment can change the defaults.
public enum Thresholds {
    /// Cosine similarity of two SFace embeddings at or above which they are the same person: the
    /// middle of the measured gap between the highest different-person pair (0.27) and the lowest
    /// same-person pair (0.64), which errs towards refusing a match rather than accepting a stranger.
    public static let verify: Float = 0.45
    /// The same for w600k_mbf embeddings (another scale): the middle of its measured gap.
    public static let verifyW600KMBF: Float = 0.39
    /// MiniFAS real − spoof logit margin at or above which a face is real: near the middle of the
    /// gap between the best-scoring false face (−0.72) and the worst-scoring real face (+2.27).
    public static let liveness: Float = MiniFAS.defaultThreshold
}
