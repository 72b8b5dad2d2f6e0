/// One worker's values of one metric against its step, bounded: when it holds ``capacity`` points and another
/// comes, every second point is dropped (the newest always kept), so it covers the whole run at a coarser and coarser
/// resolution in constant memory.
public struct MetricSeries: Sendable, Hashable {
    /// One reported value.
    public struct Point: Sendable, Hashable {
        /// The worker's step when it reported the value.
        public var step: Int64
        /// The value (any double: NaN and infinities are kept, and shown as null).
        public var value: Double

        /// Creates a point.
        public init(step: Int64, value: Double) {
            self.step = step
            self.value = value
        }

        /// Equal steps and bit-identical values (so that NaN equals NaN, and a repeated report adds nothing).
        static func same(_ a: Point, _ b: Point) -> Bool {
            a.step == b.step && a.value.bitPattern == b.value.bitPattern
        }
    }

    /// Most points kept.
    public let capacity: Int
    /// Oldest first.
    public private(set) var points: [Point] = []

    /// An empty series of at most `capacity` (at least 2) points.
    public init(capacity: Int = 500) {
        self.capacity = max(2, capacity)
    }

    /// A report of `value` at `step`: a new point when the step changed, the last point's value replaced when only
    /// the value did (a chart against step has one value per step), nothing when neither did.
    public mutating func record(step: Int64, value: Double) {
        record(step: step, value: value, limit: capacity)
    }

    /// ``record(step:value:)``, keeping at most `limit` points (and at most ``capacity``, at least 2): a series over
    /// the limit halves as many times as it takes.
    public mutating func record(step: Int64, value: Double, limit: Int) {
        let limit = max(2, min(limit, capacity))
        let point = Point(step: step, value: value)
        if let last = points.last {
            if Point.same(last, point) { return }
            if last.step == step {
                points[points.count - 1] = point
                return
            }
        }
        points.append(point)
        while points.count > limit { downsample(keeping: limit) }
    }

    /// Keeps every second point counting back from the newest, in room for `limit` (the series fills up to it again
    /// without a reallocation, and holds no more memory than its limit asks).
    private mutating func downsample(keeping limit: Int) {
        let newest = points.count - 1
        var kept: [Point] = []
        kept.reserveCapacity(limit)
        for index in stride(from: newest % 2, through: newest, by: 2) { kept.append(points[index]) }
        points = kept
    }
}
