/// Rules for every value a client can send, with messages that name the field and the rule.
///
/// The gRPC and HTTP edges call these before anything reaches the engine, so a bad request changes nothing.
public enum Validation {
    /// Largest accepted `gpu_count`.
    public static let maxGPUCount = 1024
    /// Largest number of labels on one worker.
    public static let maxLabels = 64
    /// Largest number of metrics in one heartbeat.
    public static let maxMetrics = 256

    // MARK: Scalars

    /// A TCP port a peer can connect to: 1...65535.
    public static func port(_ value: Int, field: String = "port") throws(CoreError) -> Int {
        guard (1...65_535).contains(value) else {
            throw .invalid(field, "must be between 1 and 65535", got: String(value))
        }
        return value
    }

    /// A GPU count: 0...1024.
    public static func gpuCount(_ value: Int, field: String = "gpu_count") throws(CoreError) -> Int {
        guard (0...maxGPUCount).contains(value) else {
            throw .invalid(field, "must be between 0 and \(maxGPUCount)", got: String(value))
        }
        return value
    }

    /// A training step: >= 0.
    public static func step(_ value: Int64, field: String = "step") throws(CoreError) -> Int64 {
        guard value >= 0 else { throw .invalid(field, "must be >= 0", got: String(value)) }
        return value
    }

    /// A host name or address: 1-253 printable ASCII characters without spaces.
    public static func host(_ value: String, field: String = "host") throws(CoreError) -> String {
        guard (1...253).contains(value.utf8.count), isPrintableToken(value) else {
            throw .invalid(field, "must be 1-253 printable ASCII characters without spaces", got: quoted(value))
        }
        return value
    }

    /// A process incarnation: empty (not said) or 1-128 printable ASCII characters without spaces.
    public static func incarnation(_ value: String, field: String = "incarnation") throws(CoreError) -> String {
        guard value.isEmpty || (value.utf8.count <= 128 && isPrintableToken(value)) else {
            throw .invalid(
                field, "must be empty or 1-128 printable ASCII characters without spaces", got: quoted(value))
        }
        return value
    }

    /// A name that may end up in paths and object keys (datasets, checkpoints): 1-128 characters of `[A-Za-z0-9._-]`,
    /// not `.` or `..`.
    public static func name(_ value: String, field: String = "name") throws(CoreError) -> String {
        guard (1...128).contains(value.utf8.count), value.utf8.allSatisfy(isNameByte), value != ".", value != ".."
        else {
            throw .invalid(field, "must be 1-128 characters of [A-Za-z0-9._-]", got: quoted(value))
        }
        return value
    }

    /// An epoch number: >= 0.
    public static func epoch(_ value: Int64, field: String = "epoch") throws(CoreError) -> Int64 {
        guard value >= 0 else { throw .invalid(field, "must be >= 0", got: String(value)) }
        return value
    }

    // MARK: Maps

    /// Worker labels: at most 64; keys 1-63 characters of `[A-Za-z0-9._/-]`, values 0-256 printable characters.
    public static func labels(_ value: [String: String], field: String = "labels") throws(CoreError) -> [String: String]
    {
        guard value.count <= maxLabels else {
            throw .invalid(field, "must have at most \(maxLabels) entries", got: String(value.count))
        }
        for (key, label) in value {
            guard (1...63).contains(key.utf8.count), key.utf8.allSatisfy({ isNameByte($0) || $0 == UInt8(ascii: "/") })
            else {
                throw .invalid("\(field) key", "must be 1-63 characters of [A-Za-z0-9._/-]", got: quoted(key))
            }
            guard label.utf8.count <= 256, label.unicodeScalars.allSatisfy(isPrintable) else {
                throw .invalid("\(field)[\(key)]", "must be at most 256 printable characters", got: quoted(label))
            }
        }
        return value
    }

    /// Heartbeat metrics: at most 256; keys 1-128 printable ASCII characters without spaces. Values may be any double,
    /// NaN and infinities included (a diverging loss is worth reporting).
    public static func metrics(_ value: [String: Double], field: String = "metrics") throws(CoreError) -> [String:
        Double]
    {
        guard value.count <= maxMetrics else {
            throw .invalid(field, "must have at most \(maxMetrics) entries", got: String(value.count))
        }
        for key in value.keys {
            guard (1...128).contains(key.utf8.count), isPrintableToken(key) else {
                throw .invalid(
                    "\(field) key", "must be 1-128 printable ASCII characters without spaces", got: quoted(key))
            }
        }
        return value
    }

    /// User metadata of a checkpoint: at most 64 entries; keys 1-128 printable ASCII characters without spaces,
    /// values at most 4096 bytes.
    public static func metadata(_ value: [String: String], field: String = "metadata") throws(CoreError) -> [String:
        String]
    {
        guard value.count <= 64 else { throw .invalid(field, "must have at most 64 entries", got: String(value.count)) }
        for (key, entry) in value {
            guard (1...128).contains(key.utf8.count), isPrintableToken(key) else {
                throw .invalid(
                    "\(field) key", "must be 1-128 printable ASCII characters without spaces", got: quoted(key))
            }
            guard entry.utf8.count <= 4096 else {
                throw .invalid("\(field)[\(key)]", "must be at most 4096 bytes", got: "\(entry.utf8.count) bytes")
            }
        }
        return value
    }

    // MARK: Character classes

    /// True when every byte is printable ASCII other than space (0x21...0x7E).
    public static func isPrintableToken(_ value: String) -> Bool {
        // Over the bytes in memory: every heartbeat's worker id and metric names come here, and the UTF-8 view's
        // iterator cost several times as many instructions a byte.
        var value = value
        return value.withUTF8 { bytes in bytes.allSatisfy { (0x21...0x7E).contains($0) } }
    }

    /// True for `[A-Za-z0-9._-]`, the characters of names that may end up in paths and object keys.
    public static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator:
            false
        default:
            true
        }
    }

    /// The value as it appears in an error message: quoted, escaped, and cut to a readable length.
    public static func quoted(_ value: String) -> String {
        let limit = 48
        let shown = value.count > limit ? String(value.prefix(limit)) : value
        let escaped = shown.unicodeScalars.map { $0.escaped(asASCII: true) }.joined()
        return value.count > limit ? "\"\(escaped)…\" (\(value.count) characters)" : "\"\(escaped)\""
    }
}
