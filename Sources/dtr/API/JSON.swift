import Foundation

/// A JSON value, decoded loosely: the commands read the fields they show and ignore the rest, and a missing field
/// reads as `null`, so fields a newer coordinator adds (or an older one lacks) never break the CLI.
enum JSON: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Whole numbers beyond `Int64.max` (a dataset's `seed`), kept exact.
    case unsigned(UInt64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Decodes a document.
    init(data: Data) throws {
        self = try JSONDecoder().decode(JSON.self, from: data)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    // MARK: Reading fields

    /// The value under `key` of an object; `null` when absent or when this is not an object.
    subscript(key: String) -> JSON {
        if case .object(let object) = self { object[key] ?? .null } else { .null }
    }

    /// The string, if this is one.
    var string: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// The number, if this is one.
    var double: Double? {
        switch self {
        case .int(let value): Double(value)
        case .unsigned(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    /// The whole number, if this is one that fits an `Int`.
    var int: Int? {
        switch self {
        case .int(let value): Int(exactly: value)
        case .unsigned(let value): Int(exactly: value)
        case .double(let value): Int(exactly: value)
        default: nil
        }
    }

    /// The elements of an array; empty when this is not one.
    var array: [JSON] {
        if case .array(let value) = self { value } else { [] }
    }

    /// The members of an object; empty when this is not one.
    var object: [String: JSON] {
        if case .object(let value) = self { value } else { [:] }
    }

    /// An ISO 8601 time (`2026-11-29T08:00:00Z`), if this is one.
    var date: Date? {
        string.flatMap { try? Date($0, strategy: .iso8601) }
    }

    /// Whether this is `null` (absent fields included).
    var isNull: Bool { self == .null }

    // MARK: Writing

    /// One line of JSON with sorted keys: the stable form `--json` prints when it builds a document.
    var compactText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a value made of these cases cannot fail: no NaN or infinity ever comes out of a JSON parser.
        let data = (try? encoder.encode(self)) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
