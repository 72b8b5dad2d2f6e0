/// Which workers of a task are stragglers: those whose step rate is below two thirds of the median step rate of the
/// task's members that report steps. With fewer than two such members there is nothing to compare: nobody is one.
public enum StragglerRule {
    /// The rate below which a member of a task with these members' rates (nil: reports no steps) is a straggler;
    /// nil when fewer than two members report steps.
    public static func threshold(_ rates: some Sequence<Double?>) -> Double? {
        let known = rates.compactMap { $0 }.sorted()
        guard known.count >= 2 else { return nil }
        let middle = known.count / 2
        let median = known.count % 2 == 1 ? known[middle] : (known[middle - 1] + known[middle]) / 2
        return median * 2 / 3
    }

    /// Whether a member with `rate` is a straggler under `threshold` (see ``threshold(_:)``).
    public static func isStraggler(rate: Double?, threshold: Double?) -> Bool {
        guard let rate, let threshold else { return false }
        return rate < threshold
    }
}
