public import DataShard
import RuntimeCore

/// The binary form of a ``LedgerSnapshot`` in the `ledger_delta` table (kind `snapshot`): about one to two bytes a
/// shard, read back without recomputing any placement.
///
/// Integers are unsigned LEB128 varints, as in ``LedgerDeltaCoding``. In order: the format version (1); the shard
/// count; the slots (a count, then per slot its worker id as a length and UTF-8 bytes, `remaining`, `claimed`,
/// `gainedEpoch` and its positions); the members (a count, then slot indices); the unowned positions; the done
/// bitmap (a word count, then each word as 8 little-endian bytes); the started shards (a count, then per shard the
/// difference from the previous one, its lease epoch and cursor); the done count; the committed samples; and last an
/// 8-byte little-endian checksum of everything before it. A position list is its count, then each position as the
/// gap after the previous one (the first as the gap after -1): with `m` members the gaps are about `m`, so one or two
/// bytes each.
public enum LedgerSnapshotCoding {
    /// The format version this coordinator writes and reads.
    static let version: UInt64 = 1

    /// Encodes a snapshot.
    public static func encode(_ snapshot: LedgerSnapshot) -> [UInt8] {
        var writer = LedgerDeltaCoding.Writer()
        writer.bytes.reserveCapacity(snapshot.shardCount * 2 + snapshot.doneWords.count * 8 + 64)
        writer.varint(version)
        writer.varint(UInt64(snapshot.shardCount))
        writer.varint(UInt64(snapshot.slots.count))
        for slot in snapshot.slots {
            let utf8 = Array(slot.worker.rawValue.utf8)
            writer.varint(UInt64(utf8.count))
            writer.bytes += utf8
            writer.varint(UInt64(slot.remaining))
            writer.varint(UInt64(slot.claimed))
            writer.varint(slot.gainedEpoch)
            positions(slot.positions, into: &writer)
        }
        writer.varint(UInt64(snapshot.members.count))
        for member in snapshot.members { writer.varint(UInt64(member)) }
        positions(snapshot.unownedPositions, into: &writer)
        writer.varint(UInt64(snapshot.doneWords.count))
        for word in snapshot.doneWords { littleEndian(word, into: &writer) }
        writer.varint(UInt64(snapshot.started.count))
        var previous: Int64 = 0
        for entry in snapshot.started {
            writer.varint(UInt64(entry.shard - previous))
            previous = entry.shard
            writer.varint(entry.leaseEpoch)
            writer.varint(UInt64(entry.consumed))
        }
        writer.varint(UInt64(snapshot.doneCount))
        writer.varint(UInt64(snapshot.committedSamples))
        littleEndian(checksum(writer.bytes[...]), into: &writer)
        return writer.bytes
    }

    /// Decodes a snapshot of a ledger of `spec` and checks it (``LedgerSnapshot/problem(spec:)``).
    ///
    /// - Throws: a `StorageError` naming what is wrong for a short, damaged or inconsistent row.
    public static func decode(_ bytes: [UInt8], spec: DatasetSpec) throws(StorageError) -> LedgerSnapshot {
        guard bytes.count >= 9 else { throw LedgerDeltaCoding.Reader.corrupt("a snapshot cut short") }
        let body = bytes[..<(bytes.count - 8)]
        var stored: UInt64 = 0
        for (index, byte) in bytes.suffix(8).enumerated() { stored |= UInt64(byte) << UInt64(8 * index) }
        guard checksum(body) == stored else {
            throw LedgerDeltaCoding.Reader.corrupt("a snapshot whose checksum does not match (cut short or damaged)")
        }
        var reader = LedgerDeltaCoding.Reader(bytes: Array(body))
        let found = try reader.varint()
        guard found == version else {
            throw StorageError(
                .internal,
                "a ledger snapshot in the state database has format \(found), this coordinator reads \(version): "
                    + "run the coordinator version that wrote it")
        }
        let count = Int(spec.shardCount)
        let shardCount = try reader.count(limit: Int(DatasetSpec.maxShards))
        var slots: [LedgerSnapshot.Slot] = []
        for _ in 0..<(try reader.count(limit: body.count)) {
            let length = try reader.count(limit: body.count - reader.offset)
            let text = String(decoding: reader.bytes[reader.offset..<reader.offset + length], as: UTF8.self)
            reader.offset += length
            guard let worker = try? WorkerID(text) else {
                throw LedgerDeltaCoding.Reader.corrupt("an invalid worker id")
            }
            let remaining = try reader.count(limit: count)
            let claimed = try reader.count(limit: count)
            let gained = try reader.varint()
            slots.append(
                LedgerSnapshot.Slot(
                    worker: worker, positions: try positions(&reader, limit: count), remaining: remaining,
                    claimed: claimed, gainedEpoch: gained))
        }
        var members: [Int32] = []
        for _ in 0..<(try reader.count(limit: slots.count)) {
            members.append(Int32(try reader.count(limit: max(0, slots.count - 1))))
        }
        let unowned = try positions(&reader, limit: count)
        let wordCount = try reader.count(limit: (count + 63) / 64)
        guard reader.bytes.count - reader.offset >= wordCount * 8 else {
            throw LedgerDeltaCoding.Reader.corrupt("a snapshot cut short")
        }
        var words = [UInt64](repeating: 0, count: wordCount)
        for index in 0..<wordCount {
            var word: UInt64 = 0
            for byte in 0..<8 { word |= UInt64(reader.bytes[reader.offset + byte]) << UInt64(8 * byte) }
            words[index] = word
            reader.offset += 8
        }
        var started: [LedgerSnapshot.Started] = []
        var shard: Int64 = 0
        for _ in 0..<(try reader.count(limit: count)) {
            shard += Int64(try reader.varint(limit: UInt64(count)))
            guard shard < count else { throw LedgerDeltaCoding.Reader.corrupt("a shard beyond the dataset") }
            let lease = try reader.varint()
            let consumed = Int64(try reader.varint(limit: UInt64(spec.totalSamples)))
            started.append(LedgerSnapshot.Started(shard: shard, leaseEpoch: lease, consumed: consumed))
        }
        let doneCount = try reader.count(limit: count)
        let committed = Int64(try reader.varint(limit: UInt64(spec.totalSamples)))
        guard reader.offset == reader.bytes.count else {
            throw LedgerDeltaCoding.Reader.corrupt("a snapshot with bytes after its end")
        }
        let snapshot = LedgerSnapshot(
            shardCount: shardCount, slots: slots, members: members, unownedPositions: unowned, doneWords: words,
            started: started, doneCount: doneCount, committedSamples: committed)
        if let problem = snapshot.problem(spec: spec) {
            throw LedgerDeltaCoding.Reader.corrupt("a snapshot with \(problem)")
        }
        return snapshot
    }

    private static func positions(_ positions: [UInt32], into writer: inout LedgerDeltaCoding.Writer) {
        writer.varint(UInt64(positions.count))
        var next: UInt32 = 0
        for position in positions {
            writer.varint(UInt64(position - next))
            next = position + 1
        }
    }

    private static func positions(_ reader: inout LedgerDeltaCoding.Reader, limit: Int) throws(StorageError)
        -> [UInt32]
    {
        let count = try reader.count(limit: limit)
        // The bulk of a snapshot (millions of numbers): decoded in one tight loop over the bytes.
        var offset = reader.offset
        var failure: String?
        let positions = [UInt32](unsafeUninitializedCapacity: count) { buffer, initialized in
            reader.bytes.withUnsafeBufferPointer { bytes in
                var next: UInt64 = 0
                for index in 0..<count {
                    var gap: UInt64 = 0
                    var shift: UInt64 = 0
                    while true {
                        guard offset < bytes.count, shift < 35 else {
                            failure = "a position list cut short"
                            return
                        }
                        let byte = bytes[offset]
                        offset += 1
                        gap |= UInt64(byte & 0x7F) << shift
                        if byte < 0x80 { break }
                        shift += 7
                    }
                    let position = next + gap
                    guard position < UInt64(limit) else {
                        failure = "a position beyond the dataset"
                        return
                    }
                    buffer[index] = UInt32(position)
                    initialized = index + 1
                    next = position + 1
                }
            }
        }
        if let failure { throw LedgerDeltaCoding.Reader.corrupt(failure) }
        reader.offset = offset
        return positions
    }

    private static func littleEndian(_ value: UInt64, into writer: inout LedgerDeltaCoding.Writer) {
        for byte in 0..<8 { writer.bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * byte))) }
    }

    /// A 64-bit checksum of the bytes, eight at a time through SplitMix64's mixer: it catches a row cut short or
    /// damaged (it is no defence against someone forging rows, who could write any state anyway).
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash = UInt64(bytes.count) ^ 0x6474_722E_736E_6170
        var index = bytes.startIndex
        while index < bytes.endIndex {
            var word: UInt64 = 0
            for byte in 0..<min(8, bytes.endIndex - index) { word |= UInt64(bytes[index + byte]) << UInt64(8 * byte) }
            hash = EpochShuffle.mix(hash ^ word)
            index += 8
        }
        return hash
    }
}
