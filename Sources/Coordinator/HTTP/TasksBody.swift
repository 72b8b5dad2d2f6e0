import Foundation
import Hummingbird
import RuntimeCore

/// Any JSON value: a task's `config` is kept as the client sent it.
enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// How deeply arrays and objects nest in it (a scalar is 0). Bounded on the way in (see ``maxDepth``), so a
    /// stored config can always be written back out.
    var depth: Int {
        switch self {
        case .null, .bool, .number, .string: 0
        case .array(let values): 1 + (values.map(\.depth).max() ?? 0)
        case .object(let values): 1 + (values.values.map(\.depth).max() ?? 0)
        }
    }

    /// The deepest nesting a task's config may have: far beyond any real configuration, and far below what the JSON
    /// coders refuse (a config nested 508 levels deep was stored, and every read of the task list failed after it).
    static let maxDepth = 32

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// The body of `POST /api/tasks`.
struct CreateTaskRequest: Decodable {
    var name: String
    var worldSize: Int?
    var minWorldSize: Int?
    var dataset: String?
    var epochs: Int?
    var config: [String: JSONValue]?

    enum CodingKeys: String, CodingKey {
        case name, dataset, epochs, config
        case worldSize = "world_size"
        case minWorldSize = "min_world_size"
    }

    /// The validated spec (`name` is the task id workers register with).
    func spec() throws(CoreError) -> TaskSpec {
        let config: String
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            config = String(decoding: try encoder.encode(self.config ?? [:]), as: UTF8.self)
        } catch {
            throw CoreError.invalid("config", "must be a JSON object of finite values")
        }
        let depth = JSONValue.object(self.config ?? [:]).depth
        guard depth <= JSONValue.maxDepth else {
            throw CoreError.invalid(
                "config", "must nest at most \(JSONValue.maxDepth) levels of arrays and objects", got: "\(depth) levels"
            )
        }
        // Unlike a worker's task_id, an empty name does not mean `default`: it is a mistake.
        guard !name.isEmpty else {
            throw CoreError.invalid("name", "must be 1-64 characters of [A-Za-z0-9._-]", got: Validation.quoted(name))
        }
        return try TaskSpec(
            id: TaskID(name, field: "name"), worldSize: worldSize ?? 0, minWorldSize: minWorldSize ?? 0,
            dataset: dataset, epochs: epochs, configJSON: config)
    }
}

/// One task, as `GET /api/tasks` lists it.
struct TaskBody: ResponseEncodable {
    var taskID: String
    var name: String
    var status: String
    var worldSize: Int
    var minWorldSize: Int
    var workers: Int
    var membershipEpoch: UInt64
    @ExplicitNull var dataset: String?
    @ExplicitNull var epochs: Int?
    var config: [String: JSONValue]
    var createdBy: String
    var createdAt: Date
    @ExplicitNull var startedAt: Date?
    @ExplicitNull var endedAt: Date?
    @ExplicitNull var reason: String?

    enum CodingKeys: String, CodingKey {
        case name, status, workers, dataset, epochs, config, reason
        case taskID = "task_id"
        case worldSize = "world_size"
        case minWorldSize = "min_world_size"
        case membershipEpoch = "membership_epoch"
        case createdBy = "created_by"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case endedAt = "ended_at"
    }

    init(_ task: (record: TaskRecord, members: Int, membershipEpoch: UInt64)) {
        let record = task.record
        taskID = record.id
        name = record.id
        status = record.status.rawValue
        worldSize = record.worldSize
        minWorldSize = record.effectiveMinWorldSize
        workers = task.members
        membershipEpoch = task.membershipEpoch
        dataset = record.dataset
        epochs = record.epochs
        // A config stored before its depth was bounded is left out rather than failing every read of the task list.
        let stored = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(record.configJSON.utf8))) ?? [:]
        config = JSONValue.object(stored).depth <= JSONValue.maxDepth ? stored : [:]
        createdBy = record.explicit ? "api" : "worker"
        createdAt = Self.date(record.createdAtMs)
        startedAt = record.startedAtMs.map(Self.date)
        endedAt = record.endedAtMs.map(Self.date)
        reason = record.reason
    }

    private static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }
}

/// `GET /api/tasks`.
struct TasksBody: ResponseEncodable {
    var tasks: [TaskBody]
}
