/// How the vectors sent to a barrier are combined.
public enum ReduceOp: String, Sendable, Hashable, CaseIterable {
    /// Elementwise sum, added in rank order (bit-identical for every participant and every run).
    case sum
    /// The sum divided by the number of participants.
    case mean
    /// Elementwise maximum.
    case max
    /// Elementwise minimum.
    case min
}

/// A vector of floating-point values to reduce.
public enum ReduceVector: Sendable, Hashable {
    /// 32-bit floats.
    case float32([Float])
    /// 64-bit floats.
    case float64([Double])

    /// Number of elements.
    public var count: Int {
        switch self {
        case .float32(let values): values.count
        case .float64(let values): values.count
        }
    }

    /// Size in bytes.
    public var byteCount: Int {
        switch self {
        case .float32(let values): values.count * 4
        case .float64(let values): values.count * 8
        }
    }

    /// "float32" or "float64".
    public var dtype: String {
        switch self {
        case .float32: "float32"
        case .float64: "float64"
        }
    }
}

/// One participant's contribution to a reduce.
public struct ReduceInput: Sendable, Hashable {
    /// The operation.
    public var op: ReduceOp
    /// The values.
    public var vector: ReduceVector

    /// Creates an input.
    public init(op: ReduceOp, vector: ReduceVector) {
        self.op = op
        self.vector = vector
    }

    /// What every participant of one barrier must agree on: operation, type and length.
    var shape: String { "\(op.rawValue.uppercased()) of \(vector.count) \(vector.dtype)" }
}

/// Reduces the participants' vectors, in the order given (rank order).
///
/// All inputs must have the same operation, type and length (the barrier checks this on arrival).
public func reduce(_ inputs: [ReduceInput]) -> ReduceVector? {
    guard let first = inputs.first else { return nil }
    switch first.vector {
    case .float32:
        let vectors: [[Float]] = inputs.map { if case .float32(let values) = $0.vector { values } else { [] } }
        return .float32(combine(vectors, op: first.op))
    case .float64:
        let vectors: [[Double]] = inputs.map { if case .float64(let values) = $0.vector { values } else { [] } }
        return .float64(combine(vectors, op: first.op))
    }
}

private func combine<T: BinaryFloatingPoint>(_ vectors: [[T]], op: ReduceOp) -> [T] {
    var result = vectors[0]
    for vector in vectors.dropFirst() {
        result.withUnsafeMutableBufferPointer { accumulator in
            vector.withUnsafeBufferPointer { values in
                switch op {
                case .sum, .mean:
                    for index in 0..<accumulator.count { accumulator[index] += values[index] }
                case .max:
                    for index in 0..<accumulator.count {
                        accumulator[index] = Swift.max(accumulator[index], values[index])
                    }
                case .min:
                    for index in 0..<accumulator.count {
                        accumulator[index] = Swift.min(accumulator[index], values[index])
                    }
                }
            }
        }
    }
    if op == .mean {
        let count = T(vectors.count)
        result.withUnsafeMutableBufferPointer { accumulator in
            for index in 0..<accumulator.count { accumulator[index] /= count }
        }
    }
    return result
}
