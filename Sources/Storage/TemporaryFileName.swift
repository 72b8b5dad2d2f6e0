/// The naming convention for a write in progress in a local checkpoint directory: `<final name>.tmp-<random hex>`,
/// in the final file's own directory, renamed over the final name once complete.
///
/// The Python SDK writes checkpoint parts the same way, so a file named like this is, by definition, an incomplete
/// write: listings hide it and ``LocalBlobStore/removeIncompleteWrites(under:startedBefore:)`` may delete it.
public enum TemporaryFileName {
    /// The marker between the final name and the random suffix.
    public static let marker = ".tmp-"

    /// A fresh temporary name for `finalName`, unique enough that concurrent writers of the same key never share one.
    public static func make(for finalName: String) -> String {
        // 64 random bits: collisions between writers of one key are not a practical concern.
        let suffix = String(UInt64.random(in: .min ... .max), radix: 16)
        return finalName + marker + suffix
    }

    /// True when a file name follows the temporary pattern (`*.tmp-*`).
    public static func isTemporary<Name: StringProtocol>(_ name: Name) -> Bool {
        name.contains(marker)
    }
}
