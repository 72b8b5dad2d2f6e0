public import DataShard
import RuntimeCore

/// The binary form of a ledger's changes in the `ledger_delta` table: a few bytes per shard, so a move of millions of
/// shards is one row of a few megabytes instead of millions of rows.
///
/// Both kinds start with a table of worker ids (a varint count, then each id as a varint length and its UTF-8 bytes);
/// owners are varints indexing it, 0 meaning none. Integers are unsigned LEB128 varints; shard ids are ascending and
/// stored as the difference from the previous one.
/// - records: the count, then per record: the shard difference, `owner << 2 | state` (state 0 pending, 1 leased,
///   2 done) and, for a leased shard only, its lease epoch and cursor (a done shard's cursor is its length, a pending
///   one's 0).
/// - moved: the owner, the membership epoch, the count, then the shard differences.
public enum LedgerDeltaCoding {
    /// Encodes records (any order: they are sorted by shard).
    public static func encode(_ records: [ShardRecord]) -> [UInt8] {
        var writer = Writer()
        let sorted = records.sorted { $0.shard < $1.shard }
        var owners: [WorkerID: UInt64] = [:]
        var names: [WorkerID] = []
        for owner in sorted.compactMap(\.owner) where owners[owner] == nil {
            names.append(owner)
            owners[owner] = UInt64(names.count)
        }
        writer.names(names)
        writer.varint(UInt64(sorted.count))
        var previous: Int64 = 0
        for record in sorted {
            writer.varint(UInt64(record.shard - previous))
            previous = record.shard
            let owner = record.owner.flatMap { owners[$0] } ?? 0
            let state: UInt64 =
                switch record.state {
                case .pending: 0
                case .leased: 1
                case .done: 2
                }
            writer.varint(owner << 2 | state)
            if record.state == .leased {
                writer.varint(record.leaseEpoch)
                writer.varint(UInt64(record.consumed))
            }
        }
        return writer.bytes
    }

    /// Encodes a move.
    public static func encode(_ move: ShardMove) -> [UInt8] {
        var writer = Writer()
        writer.names(move.owner.map { [$0] } ?? [])
        writer.varint(move.owner == nil ? 0 : 1)
        writer.varint(move.membershipEpoch)
        writer.varint(UInt64(move.shards.count))
        var previous: Int64 = 0
        for shard in move.shards {
            writer.varint(UInt64(shard - previous))
            previous = shard
        }
        return writer.bytes
    }

    /// Decodes records; `spec` gives done shards their cursor.
    public static func decodeRecords(_ bytes: [UInt8], spec: DatasetSpec) throws(StorageError) -> [ShardRecord] {
        var reader = Reader(bytes: bytes)
        let names = try reader.names()
        let count = try reader.count(limit: Int(spec.shardCount))
        var records: [ShardRecord] = []
        records.reserveCapacity(count)
        var shard: Int64 = 0
        for _ in 0..<count {
            shard += Int64(try reader.varint(limit: UInt64(spec.shardCount)))
            guard shard < spec.shardCount else { throw Reader.corrupt("a shard beyond the dataset") }
            let packed = try reader.varint()
            let owner = try reader.name(packed >> 2, in: names)
            switch packed & 3 {
            case 0:
                records.append(ShardRecord(shard: shard, owner: owner, leaseEpoch: 0, consumed: 0, state: .pending))
            case 1:
                let lease = try reader.varint()
                let length = UInt64(spec.sampleRange(ofShard: shard).count)
                let consumed = Int64(try reader.varint(limit: length - 1))
                records.append(
                    ShardRecord(shard: shard, owner: owner, leaseEpoch: lease, consumed: consumed, state: .leased))
            case 2:
                let length = Int64(spec.sampleRange(ofShard: shard).count)
                records.append(ShardRecord(shard: shard, owner: owner, leaseEpoch: 0, consumed: length, state: .done))
            default:
                throw Reader.corrupt("an unknown shard state")
            }
        }
        return records
    }

    /// Decodes a move.
    public static func decodeMove(_ bytes: [UInt8], spec: DatasetSpec) throws(StorageError) -> ShardMove {
        var reader = Reader(bytes: bytes)
        let names = try reader.names()
        let owner = try reader.name(try reader.varint(), in: names)
        let epoch = try reader.varint()
        let count = try reader.count(limit: Int(spec.shardCount))
        var shards: [Int64] = []
        shards.reserveCapacity(count)
        var shard: Int64 = 0
        for _ in 0..<count {
            shard += Int64(try reader.varint(limit: UInt64(spec.shardCount)))
            guard shard < spec.shardCount else { throw Reader.corrupt("a shard beyond the dataset") }
            shards.append(shard)
        }
        return ShardMove(shards: shards, owner: owner, membershipEpoch: epoch)
    }

    /// The changes that restore the same ledger as `deltas` replayed in order on its initial placement: the last
    /// record of every shard they touch (a moved shard with no record yet is a pending one with a new owner), then,
    /// per owner, an empty move at the newest epoch it was given shards (the fence of its stale claims).
    public static func fold(_ deltas: [LedgerDelta]) -> [LedgerDelta] {
        var latest: [Int64: ShardRecord] = [:]
        var gained: [WorkerID: UInt64] = [:]
        for delta in deltas {
            switch delta {
            case .records(let records):
                for record in records { latest[record.shard] = record }
            case .moved(let move):
                if let owner = move.owner { gained[owner] = max(gained[owner] ?? 0, move.membershipEpoch) }
                for shard in move.shards {
                    var record =
                        latest[shard]
                        ?? ShardRecord(shard: shard, owner: nil, leaseEpoch: 0, consumed: 0, state: .pending)
                    guard record.state != .done else { continue }
                    record.owner = move.owner
                    if record.state == .leased { record.leaseEpoch = move.membershipEpoch }
                    latest[shard] = record
                }
            }
        }
        return [.records(Array(latest.values))]
            + gained.sorted { $0.key < $1.key }.map {
                .moved(ShardMove(shards: [], owner: $0.key, membershipEpoch: $0.value))
            }
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(value & 0x7F) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }

        mutating func names(_ names: [WorkerID]) {
            varint(UInt64(names.count))
            for name in names {
                let utf8 = Array(name.rawValue.utf8)
                varint(UInt64(utf8.count))
                bytes += utf8
            }
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        static func corrupt(_ what: String) -> StorageError {
            StorageError(
                .internal,
                "a ledger change in the state database holds \(what): the database is damaged; restore it from a "
                    + "backup (docs/DEPLOYMENT.md)")
        }

        mutating func varint(limit: UInt64 = .max) throws(StorageError) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < bytes.count, shift < 64 else { throw Self.corrupt("a truncated number") }
                let byte = bytes[offset]
                offset += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            guard value <= limit else { throw Self.corrupt("a number out of range") }
            return value
        }

        mutating func count(limit: Int) throws(StorageError) -> Int {
            Int(try varint(limit: UInt64(limit)))
        }

        mutating func names() throws(StorageError) -> [WorkerID] {
            let count = try self.count(limit: bytes.count)
            var names: [WorkerID] = []
            for _ in 0..<count {
                let length = try self.count(limit: bytes.count - offset)
                let text = String(decoding: bytes[offset..<offset + length], as: UTF8.self)
                offset += length
                guard let id = try? WorkerID(text) else { throw Self.corrupt("an invalid worker id") }
                names.append(id)
            }
            return names
        }

        func name(_ index: UInt64, in names: [WorkerID]) throws(StorageError) -> WorkerID? {
            guard index > 0 else { return nil }
            guard index <= UInt64(names.count) else { throw Self.corrupt("an owner out of range") }
            return names[Int(index - 1)]
        }
    }
}
