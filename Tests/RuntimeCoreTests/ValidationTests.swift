import Testing

@testable import RuntimeCore

@Suite("Validation: every field names itself and its rule")
struct ValidationTests {
    @Test(
        "bad worker ids are rejected",
        arguments: ["", String(repeating: "x", count: 129), "has space", "tab\t", "nul\u{0}", "é-unicode", "\u{7f}"])
    func badWorkerIDs(raw: String) {
        let error = #expect(throws: CoreError.self) { try WorkerID(raw) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix("worker_id must be 1-128 printable ASCII characters") == true)
    }

    @Test(
        "good worker ids are accepted", arguments: ["w", "host-1:gpu0", "a.b_c@d", String(repeating: "x", count: 128)])
    func goodWorkerIDs(raw: String) throws {
        #expect(try WorkerID(raw).rawValue == raw)
    }

    @Test("task ids: empty means default; path-like ones are rejected")
    func taskIDs() throws {
        #expect(try TaskID("") == .default)
        #expect(try TaskID("resnet-50.v2_a").rawValue == "resnet-50.v2_a")
        for bad in ["..", ".", "a/b", "a b", String(repeating: "t", count: 65), "%2e%2e"] {
            #expect(throws: CoreError.self, "\(bad)") { try TaskID(bad) }
        }
    }

    @Test("ports, gpu counts and steps have ranges")
    func ranges() throws {
        #expect(try Validation.port(1) == 1)
        #expect(try Validation.port(65_535) == 65_535)
        #expect(try Validation.gpuCount(0) == 0)
        #expect(try Validation.gpuCount(1024) == 1024)
        for (value, message) in [
            (0, "port must be between 1 and 65535 (got 0)"), (65_536, "port must be between 1 and 65535 (got 65536)"),
        ] {
            #expect(throws: CoreError(.invalidArgument, message)) { try Validation.port(value) }
        }
        #expect(throws: CoreError(.invalidArgument, "gpu_count must be between 0 and 1024 (got -1)")) {
            try Validation.gpuCount(-1)
        }
        #expect(throws: CoreError(.invalidArgument, "gpu_count must be between 0 and 1024 (got 1025)")) {
            try Validation.gpuCount(1025)
        }
        #expect(throws: CoreError(.invalidArgument, "step must be >= 0 (got -5)")) { try Validation.step(-5) }
    }

    @Test("hosts, labels and metrics")
    func maps() throws {
        #expect(throws: CoreError.self) { try Validation.host("") }
        #expect(throws: CoreError.self) { try Validation.host("two words") }
        #expect(try Validation.labels(["zone": "eu-1", "k8s.io/node": "n1"]).count == 2)
        #expect(throws: CoreError.self) { try Validation.labels(["": "x"]) }
        #expect(throws: CoreError.self) { try Validation.labels(["ok": "line\nbreak"]) }
        let tooMany = Dictionary(uniqueKeysWithValues: (0...64).map { ("k\($0)", "v") })
        #expect(throws: CoreError.self) { try Validation.labels(tooMany) }
        #expect(try Validation.metrics(["loss": .nan, "lr": 0.1]).count == 2, "NaN is worth reporting")
        #expect(throws: CoreError.self) { try Validation.metrics(["a b": 1]) }
    }

    @Test("long values are cut in messages")
    func quoting() {
        let long = String(repeating: "y", count: 300)
        #expect(Validation.quoted(long).hasSuffix("…\" (300 characters)"))
        #expect(Validation.quoted("a\u{1}") == "\"a\\u{01}\"")
    }

    @Test("membership timeouts must be ordered")
    func configOrder() {
        #expect(throws: CoreError.self) {
            try MembershipConfig(heartbeatInterval: .seconds(2), suspectAfter: .seconds(2))
        }
        #expect(throws: CoreError.self) { try MembershipConfig(suspectAfter: .seconds(5), deadAfter: .seconds(5)) }
        #expect(throws: CoreError.self) { try MembershipConfig(heartbeatInterval: .milliseconds(1)) }
        #expect(MembershipConfig.defaults.tickInterval == .milliseconds(250))
    }
}
