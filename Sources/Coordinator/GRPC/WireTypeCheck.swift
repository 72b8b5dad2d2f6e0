import Foundation
import RuntimeCore
import RuntimeProto
import SwiftProtobuf

/// Names the field when a client sends a known field with the wrong wire type (say `port` as a string).
///
/// Protobuf decoders keep such a field as an *unknown* field and carry on, so the request would otherwise fail
/// validation on a symptom ("port must be between 1 and 65535 (got 0)") or, worse, pass with a default value. The
/// schema (embedded as a descriptor set by `scripts/generate-protos.sh`) tells which unknown fields are really known
/// ones sent with the wrong type. Unknown field numbers stay accepted: newer clients may send fields this
/// coordinator does not know yet.
enum WireTypeCheck {
    /// One field of the schema.
    struct Field {
        var name: String
        var typeDescription: String
        var wireTypes: Set<UInt64>
    }

    /// Fields by message full name (`dtruntime.v1.RegisterWorkerRequest`) and number.
    static let schema: [String: [Int: Field]] = {
        guard let data = Data(base64Encoded: WireDescriptors.fileDescriptorSetBase64),
            let set = try? Google_Protobuf_FileDescriptorSet(serializedBytes: data)
        else { return [:] }
        var schema: [String: [Int: Field]] = [:]
        var mapEntries: Set<String> = []
        func collectMaps(_ messages: [Google_Protobuf_DescriptorProto], prefix: String) {
            for message in messages {
                let name = "\(prefix).\(message.name)"
                if message.options.mapEntry { mapEntries.insert(name) }
                collectMaps(message.nestedType, prefix: name)
            }
        }
        func walk(_ messages: [Google_Protobuf_DescriptorProto], prefix: String) {
            for message in messages {
                let name = "\(prefix).\(message.name)"
                schema[name] = Dictionary(
                    uniqueKeysWithValues: message.field.map { field in
                        (Int(field.number), describe(field, mapEntries: mapEntries))
                    })
                walk(message.nestedType, prefix: name)
            }
        }
        for file in set.file { collectMaps(file.messageType, prefix: file.package) }
        for file in set.file { walk(file.messageType, prefix: file.package) }
        return schema
    }()

    /// Throws INVALID_ARGUMENT naming the first field of `message` that arrived with the wrong wire type.
    static func check(_ message: some SwiftProtobuf.Message) throws(CoreError) {
        let unknown = message.unknownFields.data
        guard !unknown.isEmpty, let fields = schema[type(of: message).protoMessageName] else { return }
        var reader = WireReader(bytes: [UInt8](unknown))
        while let (number, wireType) = reader.nextField() {
            if let field = fields[number], !field.wireTypes.contains(wireType) {
                throw .invalid(
                    "field \(field.name) (\(number)) of \(type(of: message).protoMessageName)",
                    "must be \(field.typeDescription)", got: "a value of wire type \(wireTypeName(wireType))")
            }
        }
    }

    /// Checks `message` and every message nested in it.
    static func checkAll(_ message: some SwiftProtobuf.Message) throws {
        try check(message)
        var visitor = NestedMessages()
        try message.traverse(visitor: &visitor)
    }

    private static func describe(_ field: Google_Protobuf_FieldDescriptorProto, mapEntries: Set<String>) -> Field {
        let typeName = String(field.typeName.drop { $0 == "." })
        let repeated = field.label == .repeated
        let (scalar, wire): (String, UInt64) =
            switch field.type {
            case .double: ("double", 1)
            case .fixed64: ("fixed64", 1)
            case .sfixed64: ("sfixed64", 1)
            case .float: ("float", 5)
            case .fixed32: ("fixed32", 5)
            case .sfixed32: ("sfixed32", 5)
            case .int32: ("int32", 0)
            case .int64: ("int64", 0)
            case .uint32: ("uint32", 0)
            case .uint64: ("uint64", 0)
            case .sint32: ("sint32", 0)
            case .sint64: ("sint64", 0)
            case .bool: ("bool", 0)
            case .enum: ("enum \(typeName)", 0)
            case .string: ("string", 2)
            case .bytes: ("bytes", 2)
            case .group: ("group \(typeName)", 3)
            default: (mapEntries.contains(typeName) ? "map" : "message \(typeName)", 2)
            }
        // Repeated scalars may also arrive packed, as one length-delimited value.
        let description = repeated && !mapEntries.contains(typeName) ? "repeated \(scalar)" : scalar
        return Field(name: field.name, typeDescription: description, wireTypes: repeated ? [wire, 2] : [wire])
    }

    private static func wireTypeName(_ wireType: UInt64) -> String {
        switch wireType {
        case 0: "varint"
        case 1: "64-bit"
        case 2: "length-delimited"
        case 3, 4: "group"
        case 5: "32-bit"
        default: String(wireType)
        }
    }
}

/// Reads field tags out of protobuf wire-format bytes, skipping their values.
private struct WireReader {
    var bytes: [UInt8]
    var offset = 0

    /// The next field's number and wire type, or nil at the end (or at anything it cannot skip).
    mutating func nextField() -> (Int, UInt64)? {
        guard let tag = varint(), tag >> 3 > 0 else { return nil }
        let wireType = tag & 7
        let skipped: Bool
        switch wireType {
        case 0: skipped = varint() != nil
        case 1: skipped = skip(8)
        case 2: skipped = varint().map { skip(Int(clamping: $0)) } ?? false
        case 5: skipped = skip(4)
        case 3:
            // A group: report its tag, but do not read its insides as fields of this message.
            offset = bytes.count
            skipped = true
        default: skipped = false
        }
        return skipped ? (Int(clamping: tag >> 3), wireType) : nil
    }

    private mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    private mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, count <= bytes.count - offset else { return false }
        offset += count
        return true
    }
}

/// Visits a message's fields and checks each nested message (``WireTypeCheck/checkAll(_:)``); scalar fields are
/// skipped. Maps of this API hold no messages.
private struct NestedMessages: SwiftProtobuf.Visitor {
    mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int) throws {
        try WireTypeCheck.checkAll(value)
    }

    mutating func visitRepeatedMessageField<M: SwiftProtobuf.Message>(value: [M], fieldNumber: Int) throws {
        for message in value { try WireTypeCheck.checkAll(message) }
    }

    mutating func visitSingularGroupField<G: SwiftProtobuf.Message>(value: G, fieldNumber: Int) throws {
        try WireTypeCheck.checkAll(value)
    }

    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {}
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {}
    mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws {}
    mutating func visitRepeatedDoubleField(value: [Double], fieldNumber: Int) throws {}
    mutating func visitRepeatedInt64Field(value: [Int64], fieldNumber: Int) throws {}
    mutating func visitRepeatedUInt64Field(value: [UInt64], fieldNumber: Int) throws {}
    mutating func visitRepeatedBoolField(value: [Bool], fieldNumber: Int) throws {}
    mutating func visitRepeatedStringField(value: [String], fieldNumber: Int) throws {}
    mutating func visitRepeatedBytesField(value: [Data], fieldNumber: Int) throws {}
    mutating func visitPackedDoubleField(value: [Double], fieldNumber: Int) throws {}
    mutating func visitPackedFloatField(value: [Float], fieldNumber: Int) throws {}
    mutating func visitPackedInt32Field(value: [Int32], fieldNumber: Int) throws {}
    mutating func visitPackedInt64Field(value: [Int64], fieldNumber: Int) throws {}
    mutating func visitPackedUInt32Field(value: [UInt32], fieldNumber: Int) throws {}
    mutating func visitPackedUInt64Field(value: [UInt64], fieldNumber: Int) throws {}

    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {}

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {}

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {
        for message in value.values { try WireTypeCheck.checkAll(message) }
    }

    mutating func visitUnknown(bytes: Data) throws {}
}
