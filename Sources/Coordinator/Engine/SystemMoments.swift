import Foundation
public import RuntimeCore

/// Reads the real clocks into a ``Moment``: monotonic time since the coordinator started, and wall-clock time.
public struct SystemMoments: Sendable {
    private let origin = ContinuousClock.now

    /// Starts the monotonic clock at zero now.
    public init() {}

    /// The current moment.
    public func now() -> Moment {
        Moment(
            monotonic: ContinuousClock.now - origin,
            unixMillis: Int64((Date().timeIntervalSince1970 * 1000).rounded()))
    }
}
