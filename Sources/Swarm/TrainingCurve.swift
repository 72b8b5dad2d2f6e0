import Foundation

/// The metrics a simulated worker reports at a step: a loss that falls towards a floor and an accuracy that rises,
/// with a little noise per worker, as a real run's curves look on the dashboard.
public struct TrainingCurve: Sendable {
    /// How many steps the loss takes to fall by a factor e above its floor.
    public var scale: Double
    /// The worker's own offset, so that workers' curves are told apart.
    public var offset: Double

    /// A curve; `seed` varies the worker's offset.
    public init(scale: Double = 400, seed: Int = 0) {
        self.scale = scale
        offset = Double(seed % 7) * 0.01
    }

    /// The metrics at `step` (`loss`, `accuracy`, `lr`).
    public func metrics(at step: Int64) -> [String: Double] {
        let progress = exp(-Double(step) / scale)
        let noise = Double.random(in: -0.02...0.02)
        return [
            "loss": 0.08 + offset + 2.2 * progress * (1 + noise),
            "accuracy": min(0.99, 0.1 + 0.88 * (1 - progress) + noise / 4),
            "lr": 0.1 * (Double(step) < scale ? 1 : 0.5),
        ]
    }
}
