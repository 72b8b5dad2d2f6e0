import Foundation

/// Durations, ages, sizes and numbers as people read them in a table: `0.4s`, `3m12s`, `2h5m`, `4.0 GiB`.
enum Humanize {
    /// A duration: `76ms` under 0.1 second, `0.4s` and `9.9s` under 10 seconds, `42s` under a minute, `3m12s` under
    /// 10 minutes, `42m` under an hour, `3h12m` under a day, `2d5h` beyond; units that are zero are left out (`3m`,
    /// `2h`, `1d`). Negative durations (clocks of two machines that disagree) read as zero; a value that is not finite
    /// reads as `-`.
    ///
    /// With `wholeSeconds`, for durations between two of the API's times (which have whole seconds), nothing finer
    /// than a second is shown: `0s`, `7s`.
    static func duration(seconds: Double, wholeSeconds: Bool = false) -> String {
        guard seconds.isFinite else { return "-" }
        let seconds = max(0, seconds)
        if wholeSeconds, seconds < 10 { return "\(Int(seconds.rounded(.down)))s" }
        // A commit of 76 ms would read 0.0s.
        if seconds < 0.1 { return "\(Int((seconds * 1000).rounded(.down)))ms" }
        let tenths = (seconds * 10).rounded(.down) / 10
        if tenths < 10 { return String(format: "%.1fs", tenths) }
        let whole = Int(seconds.rounded(.down))
        let (days, hours, minutes, rest) = (whole / 86_400, whole / 3_600 % 24, whole / 60 % 60, whole % 60)
        switch whole {
        case ..<60: return "\(whole)s"
        case ..<600: return rest == 0 ? "\(minutes)m" : "\(minutes)m\(rest)s"
        case ..<3_600: return "\(minutes)m"
        case ..<86_400: return minutes == 0 ? "\(hours)h" : "\(hours)h\(minutes)m"
        default: return hours == 0 ? "\(days)d" : "\(days)d\(hours)h"
        }
    }

    /// How long ago something happened: `0.4s ago`, `3m ago`.
    static func age(seconds: Double) -> String {
        let text = duration(seconds: seconds)
        return text == "-" ? text : text + " ago"
    }

    /// A size in bytes with binary units: `0 B`, `512 B`, `1.5 KiB`, `488 MiB`, `4.0 GiB` (one decimal under 100).
    static func bytes(_ count: Double) -> String {
        guard count.isFinite, count >= 0 else { return "-" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = count
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(Int(value)) B" }
        // 99.96 KiB would print as "100.0 KiB": switch to whole numbers where the rounded value has three digits.
        let digits = (value * 10).rounded() / 10 < 100 ? "%.1f" : "%.0f"
        return String(format: digits, value) + " " + units[unit]
    }

    /// A throughput: `488 MiB/s`.
    static func rate(bytesPerSecond: Double) -> String {
        let text = bytes(bytesPerSecond)
        return text == "-" ? text : text + "/s"
    }

    /// A metric value: whole numbers as they are (`1200`), others with 4 significant digits (`0.3142`, `12.35`,
    /// `1.235e+05`).
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : value > 0 ? "inf" : "-inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.4g", value)
    }

    /// A worker's or checkpoint's metrics as `key=value` pairs sorted by key, at most `limit` of them and then
    /// `(+N more)`; the API's `null` (a value that was not finite) reads `n/a`.
    static func metrics(_ metrics: [String: JSON], limit: Int = 4) -> String {
        let keys = metrics.keys.sorted()
        var pairs = keys.prefix(limit).map { key in "\(key)=\(metrics[key]?.double.map(number) ?? "n/a")" }
        if keys.count > limit { pairs.append("(+\(keys.count - limit) more)") }
        return pairs.isEmpty ? "-" : pairs.joined(separator: " ")
    }
}
