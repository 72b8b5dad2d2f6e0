/// A latency histogram with fixed logarithmic buckets (four per power of ten, from 10 µs to 100 s), cheap to record
/// into and to read percentiles from.
public struct LatencyHistogram: Sendable, Hashable {
    /// Upper bounds of the buckets in seconds; a last bucket holds everything above the last bound.
    public static let bounds: [Double] = (-20...8).map { pow10($0) }

    /// Observations per bucket (`bounds.count + 1` entries).
    public private(set) var counts = [Int](repeating: 0, count: bounds.count + 1)
    /// Number of observations.
    public private(set) var count = 0
    /// Sum of the observations, in seconds.
    public private(set) var sum = 0.0
    /// Largest observation, in seconds.
    public private(set) var max = 0.0

    /// An empty histogram.
    public init() {}

    /// Records one observation.
    public mutating func record(_ duration: Duration) {
        let seconds = Swift.max(0, duration.seconds)
        var low = 0
        var high = Self.bounds.count
        while low < high {
            let middle = (low + high) / 2
            if Self.bounds[middle] < seconds { low = middle + 1 } else { high = middle }
        }
        counts[low] += 1
        count += 1
        sum += seconds
        max = Swift.max(max, seconds)
    }

    /// The upper bound of the bucket holding the `quantile` (0...1) observation, in seconds (the largest observation
    /// for the top bucket); nil when empty.
    public func percentile(_ quantile: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = Swift.max(1, Int((quantile * Double(count)).rounded(.up)))
        var seen = 0
        for (index, bucket) in counts.enumerated() {
            seen += bucket
            if seen >= rank { return index < Self.bounds.count ? Swift.min(Self.bounds[index], max) : max }
        }
        return max
    }

    /// The mean observation in seconds; nil when empty.
    public var mean: Double? { count > 0 ? sum / Double(count) : nil }

    /// `10^(exponent/4)` seconds, times 10^-5: bucket bounds 10 µs, 17.8 µs, 31.6 µs, 56.2 µs, 100 µs, ...
    private static func pow10(_ quarter: Int) -> Double {
        var value = 1e-5
        let whole = (quarter + 20) / 4
        for _ in 0..<whole { value *= 10 }
        let steps = [1.0, 1.778_279_410_038_922_8, 3.162_277_660_168_379_5, 5.623_413_251_903_491]
        return value * steps[(quarter + 20) % 4]
    }
}
