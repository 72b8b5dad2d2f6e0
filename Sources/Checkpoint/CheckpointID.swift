public import RuntimeCore

/// The identity of one checkpoint attempt: its task, its training step, and the attempt number (a step whose first
/// attempt was aborted can be saved again). Written `task/step-000000001000-a1`, which is also the object-key prefix
/// of its parts and manifest.
public struct CheckpointID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The task the checkpoint belongs to.
    public var task: TaskID
    /// The training step (>= 0).
    public var step: Int64
    /// 1 for the first attempt at this step, then 2, ...
    public var attempt: Int

    /// Creates an id.
    public init(task: TaskID, step: Int64, attempt: Int) {
        self.task = task
        self.step = step
        self.attempt = attempt
    }

    /// Parses an id a client sent back.
    public init(parsing text: String, field: String = "checkpoint_id") throws(CheckpointError) {
        let rule = "must be a checkpoint id as SaveCheckpoint returned it, e.g. \"default/step-000000001000-a1\""
        let invalid = CheckpointError(.invalidArgument, "\(field) \(rule) (got \(Validation.quoted(text)))")
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].hasPrefix("step-"), let task = try? TaskID(String(parts[0])),
            !parts[0].isEmpty
        else { throw invalid }
        let fields = parts[1].dropFirst("step-".count).split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count == 2, fields[1].hasPrefix("a"), fields[0].utf8.allSatisfy(Self.isDigit),
            fields[1].dropFirst().utf8.allSatisfy(Self.isDigit), let step = Int64(fields[0]), step >= 0,
            let attempt = Int(fields[1].dropFirst()), attempt >= 1
        else { throw invalid }
        self.init(task: task, step: step, attempt: attempt)
        guard description == text else { throw invalid }
    }

    public var description: String {
        "\(task.rawValue)/step-\(Self.padded(step, width: 12))-a\(attempt)"
    }

    /// The key of a rank's part: `task/step-000000001000-a1/rank-00003.part`.
    public func partKey(rank: Int) -> ObjectKey {
        // Segments are made only of [A-Za-z0-9._-] from validated parts, so the key is valid by construction.
        try! ObjectKey("\(description)/rank-\(Self.padded(Int64(rank), width: 5)).part")
    }

    /// The key of the manifest: `task/step-000000001000-a1/manifest.json`.
    public var manifestKey: ObjectKey {
        try! ObjectKey("\(description)/manifest.json")
    }

    /// The key prefix under which everything of this checkpoint is stored.
    public var prefix: ObjectKey {
        try! ObjectKey(description)
    }

    public static func < (a: CheckpointID, b: CheckpointID) -> Bool {
        (a.task, a.step, a.attempt) < (b.task, b.step, b.attempt)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }

    private static func padded(_ value: Int64, width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

extension CheckpointID: Codable {
    /// Decodes the textual form, validating it.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text)
    }

    /// Encodes the textual form.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
