/// A dense float32 tensor in row-major order. Model inputs are built into one of these directly by
/// the preprocessing code, and engine outputs come back as these, so no layer needs to know
/// another's buffer types.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "tensor shape \(shape) does not match \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }

    /// Concatenates tensors of equal shape [1, ...] into one batch [N, ...].
    public static func batch(_ items: [Tensor]) -> Tensor {
        precondition(!items.isEmpty)
        var shape = items[0].shape
        shape[0] = items.reduce(0) { $0 + $1.shape[0] }
        var data = [Float]()
        data.reserveCapacity(shape.reduce(1, *))
        for item in items { data.append(contentsOf: item.data) }
        return Tensor(shape: shape, data: data)
    }

    /// The `index`-th item of the leading (batch) dimension as a [1, ...] tensor.
    public func item(_ index: Int) -> Tensor {
        let stride = data.count / shape[0]
        var itemShape = shape
        itemShape[0] = 1
        return Tensor(shape: itemShape, data: Array(data[index * stride..<(index + 1) * stride]))
    }
}
