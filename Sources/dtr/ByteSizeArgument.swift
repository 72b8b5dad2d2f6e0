/// Parses sizes as people write them on command lines: `1048576`, `512KiB`, `64MiB`, `1GiB`.
enum ByteSizeArgument {
    /// The size in bytes, or nil when `text` is not a positive whole number with an optional KiB/MiB/GiB suffix.
    static func parse(_ text: String) -> Int? {
        let units: [(suffix: String, scale: Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("", 1)]
        for unit in units where text.hasSuffix(unit.suffix) {
            guard let value = Int(text.dropLast(unit.suffix.count)), value > 0 else { continue }
            let (bytes, overflow) = value.multipliedReportingOverflow(by: unit.scale)
            return overflow ? nil : bytes
        }
        return nil
    }
}
