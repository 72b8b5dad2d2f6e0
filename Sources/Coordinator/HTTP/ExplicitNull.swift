// swift-format-ignore: UseSynthesizedInitializer
/// An optional body field that is encoded as an explicit `null` when absent (a synthesized `Encodable` leaves the key
/// out), so that every documented key is always present. Its initializer is written out: only a declared
/// `init(wrappedValue:)` lets `@ExplicitNull var x: T?` be initialized with a `T?` (memberwise initializers included).
@propertyWrapper
struct ExplicitNull<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue {
            try container.encode(wrappedValue)
        } else {
            try container.encodeNil()
        }
    }
}

extension ExplicitNull: Sendable where Value: Sendable {}
