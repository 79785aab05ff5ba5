/// A point in image pixel coordinates (x right, y down).
public struct Point: Sendable, Equatable, Codable {
    public var x: Float
    public var y: Float
    public init(x: Float, y: Float) {
        self.x = x
        self.y = y
    }
}

/// An axis-aligned box in image pixel coordinates.
public struct Box: Sendable, Equatable, Codable {
    public var x: Float
    public var y: Float
    public var width: Float
    public var height: Float

    public init(x: Float, y: Float, width: Float, height: Float) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var area: Float { max(0, width) * max(0, height) }
    public var center: Point { Point(x: x + width / 2, y: y + height / 2) }

    public func contains(_ p: Point) -> Bool {
        p.x >= x && p.x <= x + width && p.y >= y && p.y <= y + height
    }

    /// Intersection over union, the overlap measure used by non-maximum suppression.
    public func iou(_ other: Box) -> Float {
        let left = max(x, other.x)
        let top = max(y, other.y)
        let right = min(x + width, other.x + other.width)
        let bottom = min(y + height, other.y + other.height)
        let inter = max(0, right - left) * max(0, bottom - top)
        let union = area + other.area - inter
        return union > 0 ? inter / union : 0
    }

    /// The box clipped to an image of the given size.
    public func clipped(width w: Int, height h: Int) -> Box {
        let left = min(max(x, 0), Float(w))
        let top = min(max(y, 0), Float(h))
        let right = min(max(x + width, 0), Float(w))
        let bottom = min(max(y + height, 0), Float(h))
        return Box(x: left, y: top, width: right - left, height: bottom - top)
    }
}
