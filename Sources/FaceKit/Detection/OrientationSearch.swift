/// When to look for faces in the upload turned by quarter turns (`auto_rotate`): photos taken
/// with the phone sideways or upside down arrive that way when nothing says which way is up,
/// and detectors trained on upright faces find nothing in them.
public enum RotationSearch: String, Sendable, Equatable, CaseIterable {
    /// Only the upload as it is (`auto_rotate=false`).
    case never = "false"
    /// The turns only when the upload as it is shows no face scoring `turnedScoreFloor` and the
    /// file does not say which way is up (`auto_rotate=auto`, the default): a JPEG's EXIF
    /// orientation is trusted. YuNet finds some sideways and upside-down faces as they are, at
    /// lower scores and with their landmarks misplaced, so a weak face alone does not stop the
    /// search.
    case whenNoFace = "auto"
    /// Every turn, faces merged: also finds a sideways face beside an upright one
    /// (`auto_rotate=true`).
    case always = "true"
}

/// Detection at quarter turns, with every face mapped back into the upload's coordinates.
public enum OrientationSearch {
    /// Clockwise turns tried after the upload as it is: sideways first (the common case of a
    /// phone held sideways), upside down last.
    public static let turns = [90, 270, 180]
    /// The score a face found in a turned copy needs (or the caller's threshold if higher). A face
    /// keeps its score whichever way the photo was turned, but three more passes give a detector
    /// three more chances at a false face. On the test photos turned each way, the lowest true
    /// face found at a turn scored 0.83, the one false face (a hand) 0.65 (docs/thresholds.md,
    /// "Turned photos").
    public static let turnedScoreFloor: Float = 0.8

    /// Runs `detect` on the upload, then on turned copies as `options.rotation` says (`.whenNoFace`
    /// means `.never` when `orientationTagged`). `.whenNoFace` turns only when the upload as it is
    /// shows no face scoring `turnedScoreFloor`, and then takes the copy whose best face scores
    /// highest (YuNet finds some faces upside down too, at lower scores, so the first copy with a
    /// face is not always the right one). `.always` merges the faces of every copy by non-maximum
    /// suppression: the same face seen at two turns keeps its better score, which on the test
    /// photos is always the upright one. YuNet finds many upside-down faces as they are, at high
    /// scores but with its five points placed as on an upright face, so only `.always` is sure to
    /// turn an upside-down photo.
    public static func detect(
        _ image: RGBImage, options: DetectionOptions, orientationTagged: Bool,
        detect: (RGBImage) async throws -> [DetectedFace]
    ) async throws -> [DetectedFace] {
        let search = orientationTagged && options.rotation == .whenNoFace ? .never : options.rotation
        let asUploaded = try await detect(image)
        let floor = max(options.confidenceThreshold, turnedScoreFloor)
        func bestScore(_ faces: [DetectedFace]) -> Float { faces.map(\.score).max() ?? 0 }
        if search == .never || (search == .whenNoFace && bestScore(asUploaded) >= floor) { return asUploaded }
        var merged = asUploaded
        var best = asUploaded
        for degrees in turns {
            let turned = try await detect(image.turned(clockwise: degrees)).filter { $0.score >= floor }
                .map { $0.unturned(clockwise: degrees, width: image.width, height: image.height) }
            merged += turned
            if bestScore(turned) > bestScore(best) { best = turned }
        }
        return search == .always
            ? NonMaximumSuppression.apply(merged, threshold: options.nmsThreshold, limit: options.maxFaces) : best
    }
}

extension RGBImage {
    /// The image turned clockwise by 0, 90, 180 or 270 degrees, pixel for pixel.
    public func turned(clockwise degrees: Int) -> RGBImage {
        switch degrees {
        case 90: ExifOrientation.rotate90CW.apply(to: self)
        case 180: ExifOrientation.rotate180.apply(to: self)
        case 270: ExifOrientation.rotate270CW.apply(to: self)
        default: self
        }
    }
}

extension Point {
    /// A point of a copy turned clockwise by `degrees`, in the coordinates of the `width`×`height`
    /// original (pixel edges at integers: turning 90° maps x' = height − y, y' = x).
    public func unturned(clockwise degrees: Int, width: Int, height: Int) -> Point {
        let (w, h) = (Float(width), Float(height))
        switch degrees {
        case 90: return Point(x: y, y: h - x)
        case 180: return Point(x: w - x, y: h - y)
        case 270: return Point(x: w - y, y: x)
        default: return self
        }
    }
}

extension DetectedFace {
    /// The face found in a copy turned clockwise by `degrees`, in the original's coordinates. The
    /// landmarks keep their anatomical order, so alignment still makes upright chips.
    func unturned(clockwise degrees: Int, width: Int, height: Int) -> DetectedFace {
        let a = Point(x: box.x, y: box.y).unturned(clockwise: degrees, width: width, height: height)
        let b = Point(x: box.x + box.width, y: box.y + box.height)
            .unturned(clockwise: degrees, width: width, height: height)
        return DetectedFace(
            box: Box(x: min(a.x, b.x), y: min(a.y, b.y), width: abs(a.x - b.x), height: abs(a.y - b.y)), score: score,
            landmarks: landmarks.map { $0.unturned(clockwise: degrees, width: width, height: height) },
            rotation: degrees)
    }
}
