import Testing

@testable import dtr

@Suite("Humanize: durations, ages, sizes and numbers for tables")
struct HumanizeTests {
    @Test(
        "durations: milliseconds under 0.1 s, tenths under 10 s, then the two largest units",
        arguments: [
            (0.0, "0ms"), (0.0769, "76ms"), (0.1, "0.1s"), (0.41, "0.4s"), (0.99, "0.9s"), (9.96, "9.9s"), (10, "10s"),
            (59.9, "59s"), (60, "1m"),
            (192, "3m12s"), (599, "9m59s"), (600, "10m"), (2_519, "41m"), (3_600, "1h"), (7_500, "2h5m"),
            (86_399, "23h59m"), (86_400, "1d"), (190_800, "2d5h"), (-3, "0ms"),
        ])
    func durations(seconds: Double, expected: String) {
        #expect(Humanize.duration(seconds: seconds) == expected)
    }

    @Test("between two of the API's times, whole seconds only")
    func wholeSeconds() {
        #expect(Humanize.duration(seconds: 0, wholeSeconds: true) == "0s")
        #expect(Humanize.duration(seconds: 7.9, wholeSeconds: true) == "7s")
        #expect(Humanize.duration(seconds: 192, wholeSeconds: true) == "3m12s")
    }

    @Test("a duration that is not finite reads as a dash")
    func notFinite() {
        #expect(Humanize.duration(seconds: .nan) == "-")
        #expect(Humanize.duration(seconds: .infinity) == "-")
        #expect(Humanize.age(seconds: .nan) == "-")
    }

    @Test("ages say ago")
    func ages() {
        #expect(Humanize.age(seconds: 0.41) == "0.4s ago")
        #expect(Humanize.age(seconds: 180) == "3m ago")
    }

    @Test(
        "sizes in binary units, one decimal under 100",
        arguments: [
            (0.0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
            (102_348, "99.9 KiB"), (102_380, "100 KiB"), (511_705_088, "488 MiB"), (4_294_967_296, "4.0 GiB"),
            (-1, "-"),
        ])
    func sizes(bytes: Double, expected: String) {
        #expect(Humanize.bytes(bytes) == expected)
    }

    @Test("throughput")
    func rates() {
        #expect(Humanize.rate(bytesPerSecond: 512_000_000) == "488 MiB/s")
        #expect(Humanize.rate(bytesPerSecond: .nan) == "-")
    }

    @Test(
        "numbers: whole ones as they are, others with 4 significant digits",
        arguments: [
            (1200.0, "1200"), (0.0, "0"), (-3, "-3"), (0.31415926, "0.3142"), (12.3456, "12.35"),
            (123_456.7, "1.235e+05"), (.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf"),
        ])
    func numbers(value: Double, expected: String) {
        #expect(Humanize.number(value) == expected)
    }

    @Test("metrics: sorted, at most 4, nulls as n/a")
    func metrics() {
        #expect(Humanize.metrics([:]) == "-")
        #expect(Humanize.metrics(["loss": .double(0.31), "acc": .int(1), "grad": .null]) == "acc=1 grad=n/a loss=0.31")
        let many = Dictionary(uniqueKeysWithValues: (0..<6).map { ("m\($0)", JSON.int(Int64($0))) })
        #expect(Humanize.metrics(many) == "m0=0 m1=1 m2=2 m3=3 (+2 more)")
    }
}
