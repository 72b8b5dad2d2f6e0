/// Parses durations as people write them on command lines: `500ms`, `1s`, `1.5s`, `2m`.
enum DurationArgument {
    /// The duration, or nil when `text` is not a positive number followed by `ms`, `s` or `m`.
    static func parse(_ text: String) -> Duration? {
        let units: [(suffix: String, scale: Double)] = [("ms", 1e-3), ("s", 1), ("m", 60)]
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            // "5ms" also ends in "s": only accept the unit whose number part parses.
            guard let value = Double(number), value.isFinite, value > 0 else { continue }
            return .milliseconds(Int64((value * unit.scale * 1000).rounded()))
        }
        return nil
    }
}
