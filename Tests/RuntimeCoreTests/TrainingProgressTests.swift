import RuntimeCore
import Testing

@Suite("Step rates and stragglers")
struct StepRateTests {
    @Test("steps per second over the last ~30 s; none until the step changed and reports span a second")
    func rate() {
        var rate = StepRate()
        #expect(rate.perSecond == nil)
        rate.record(step: 0, at: .seconds(10))
        rate.record(step: 0, at: .seconds(11))
        #expect(rate.perSecond == nil, "a worker that never reports a step (the SDK sends 0) has no rate")
        rate.record(step: 10, at: .seconds(12))
        #expect(rate.perSecond == 5, "10 steps in the 2 s since the first report")
        for second in 13...100 { rate.record(step: Int64(second - 12) * 10 + 10, at: .seconds(Int64(second))) }
        // 10 steps per second throughout; the window covers about the last 30 s only.
        #expect(rate.perSecond == 10)
        // The worker slows down to 1 step per second: after a window, the rate shows only the slow pace.
        var step: Int64 = 890
        for second in 101...140 {
            step += 1
            rate.record(step: step, at: .seconds(Int64(second)))
        }
        #expect(rate.perSecond == 1)
        // It hangs: the rate falls to 0 (a straggler), not to nil (it does report steps).
        for second in 141...175 { rate.record(step: step, at: .seconds(Int64(second))) }
        #expect(rate.perSecond == 0)
    }

    @Test("the window: the oldest anchor is the newest one at least 30 s before the latest report")
    func window() throws {
        var rate = StepRate()
        // 100 steps/s for 60 s, then 20 steps/s for 20 s: a 30 s window holds 10 s of the fast pace.
        var step: Int64 = 0
        for second in 0...60 {
            rate.record(step: step, at: .seconds(Int64(second)))
            step += 100
        }
        step -= 100
        for second in 61...80 {
            step += 20
            rate.record(step: step, at: .seconds(Int64(second)))
        }
        let perSecond = try #require(rate.perSecond)
        // Anchors are 2 s apart, so the window is 30-32 s: between (10*100+20*20)/30 and (12*100+20*20)/32.
        #expect(perSecond >= 46 && perSecond <= 50.1, "got \(perSecond)")
    }

    @Test("a step that goes back (a job resumed from a checkpoint) starts the measurement over")
    func rollback() {
        var rate = StepRate()
        rate.record(step: 100, at: .seconds(0))
        rate.record(step: 200, at: .seconds(10))
        #expect(rate.perSecond == 10)
        rate.record(step: 50, at: .seconds(11))
        #expect(rate.perSecond == nil, "never a negative rate")
        rate.record(step: 60, at: .seconds(13))
        #expect(rate.perSecond == 5)
    }

    @Test("stragglers: below 2/3 of the median of the members that report steps; none with fewer than two")
    func stragglers() {
        #expect(StragglerRule.threshold([]) == nil)
        #expect(StragglerRule.threshold([10, nil, nil]) == nil, "one member reporting steps: nobody to compare with")
        let expected: Double = 7 * 2 / 3
        #expect(StragglerRule.threshold([10, 4]) == expected, "the median of two is their mean")
        let rates: [Double?] = [9, 10, 11, 6, nil, 6.7]
        let threshold = StragglerRule.threshold(rates)
        #expect(threshold == Double(6), "median of 6, 6.7, 9, 10, 11 is 9: the threshold is 6")
        let flagged = rates.map { StragglerRule.isStraggler(rate: $0, threshold: threshold) }
        #expect(flagged == [false, false, false, false, false, false], "6 is not below 6, nil never is")
        #expect(StragglerRule.isStraggler(rate: 5.99, threshold: threshold))
        #expect(StragglerRule.isStraggler(rate: 0, threshold: StragglerRule.threshold([0, 3, 3])))
        #expect(!StragglerRule.isStraggler(rate: 0, threshold: StragglerRule.threshold([0, 0, 3])), "median 0")
    }

    @Test("table: the threshold is 2/3 of the median, for odd and even counts", arguments: 2...40)
    func medians(count: Int) throws {
        let rates = (0..<count).map { Double(($0 * 7919) % 101) }
        let sorted = rates.sorted()
        let median =
            count % 2 == 1 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2
        let threshold = try #require(StragglerRule.threshold(rates.map { $0 }))
        #expect(abs(threshold - median * 2 / 3) < 1e-9)
        let below = rates.filter { StragglerRule.isStraggler(rate: $0, threshold: threshold) }
        #expect(below.allSatisfy { $0 < median * 2 / 3 })
        #expect(rates.filter { $0 < median * 2 / 3 }.count == below.count)
    }
}

@Suite("Training history")
struct TrainingHistoryTests {
    @Test("a series adds a point when the step or the value changes; a new value at the same step replaces it")
    func points() {
        var series = MetricSeries(capacity: 10)
        series.record(step: 1, value: 0.9)
        series.record(step: 1, value: 0.9)
        series.record(step: 2, value: 0.9)
        series.record(step: 2, value: 0.8)
        series.record(step: 3, value: .nan)
        series.record(step: 3, value: .nan)
        #expect(series.points.map(\.step) == [1, 2, 3])
        #expect(series.points[1].value == 0.8)
        #expect(series.points[2].value.isNaN, "NaN is kept (shown as null), and a repeated NaN adds nothing")
    }

    @Test("when full, every second point is dropped, the newest always kept", arguments: [2, 3, 10, 500])
    func downsampling(capacity: Int) throws {
        var series = MetricSeries(capacity: capacity)
        for step in 1...(capacity * 20) {
            series.record(step: Int64(step), value: Double(step))
            #expect(series.points.count <= capacity)
            #expect(series.points.last?.step == Int64(step), "the newest is always kept")
        }
        let steps = series.points.map(\.step)
        #expect(steps == steps.sorted(), "oldest first")
        #expect(series.points.count >= capacity / 2, "downsampling halves, it does not empty")
        if capacity % 2 == 0 {
            // A full series of an even capacity halves from an odd count: the oldest point is kept too.
            #expect(steps.first == 1, "the whole run stays covered, coarser")
        }
    }

    @Test("exactly: 500 points, then the 501st halves the series to 251 (every second one, newest kept)")
    func halving() {
        var series = MetricSeries(capacity: 500)
        for step in 0..<500 { series.record(step: Int64(step), value: 0) }
        #expect(series.points.count == 500)
        series.record(step: 500, value: 0)
        #expect(series.points.map(\.step) == Array(stride(from: 0, through: 500, by: 2)))
    }

    @Test("per task and worker; a worker moving to another task takes nothing along; forget drops its series")
    func perTask() throws {
        var history = TrainingHistory()
        let (a, b) = (try TaskID("a"), try TaskID("b"))
        let (w0, w1) = (try WorkerID("w0"), try WorkerID("w1"))
        history.record(task: a, worker: w0, step: 1, metrics: ["loss": 1.0, "acc": 0.1])
        history.record(task: a, worker: w1, step: 1, metrics: ["loss": 3.0])
        history.record(task: a, worker: w0, step: 2, metrics: [:])
        history.record(task: a, worker: w0, step: 3, metrics: ["loss": 0.5])
        var charts = history.charts(of: a)
        #expect(charts.metrics == ["acc", "loss"])
        #expect(charts.series.map { "\($0.metric)/\($0.worker)" } == ["acc/w0", "loss/w0", "loss/w1"])
        #expect(charts.series[1].points.map(\.step) == [1, 3], "an empty report (nothing new) adds no point")
        #expect(charts.mean.map(\.metric) == ["acc", "loss"])
        #expect(charts.mean[1].points == [.init(step: 1, value: 2.0)], "only steps several workers reported")
        #expect(charts.mean[0].points == [.init(step: 1, value: 0.1)], "one series: its own points")
        #expect(history.charts(of: b).series.isEmpty)

        history.record(task: b, worker: w1, step: 5, metrics: ["loss": 9])
        charts = history.charts(of: a)
        #expect(charts.series.map(\.worker) == [w0, w0], "w1's series of task a went when it moved")
        history.forget(w0)
        #expect(history.charts(of: a).series.isEmpty)
        #expect(history.charts(of: b).series.count == 1)
    }

    @Test("at most 64 metric names per task: later ones are not kept")
    func metricLimit() throws {
        var history = TrainingHistory()
        let task = try TaskID("t")
        for index in 0..<100 {
            history.record(task: task, worker: try WorkerID("w\(index % 3)"), step: 1, metrics: ["m\(index)": 1])
        }
        let charts = history.charts(of: task)
        #expect(charts.metrics.count == TrainingHistory.maxMetrics)
        #expect(Set(charts.series.map(\.metric)).count == TrainingHistory.maxMetrics)
        #expect(charts.metrics.contains("m0") && !charts.metrics.contains("m99"))
        // A worker reporting only names past the limit keeps nothing: once the others are forgotten, the task's
        // history goes, and its names start over.
        history.record(task: task, worker: try WorkerID("late"), step: 1, metrics: ["m100": 1])
        for index in 0..<3 { history.forget(try WorkerID("w\(index)")) }
        #expect(history.charts(of: task).metrics.isEmpty)
        history.record(task: task, worker: try WorkerID("late"), step: 2, metrics: ["m100": 2])
        #expect(history.charts(of: task).metrics == ["m100"])
    }

    @Test("the mean averages the workers that reported each step; a non-finite value makes it non-finite")
    func mean() throws {
        var history = TrainingHistory()
        let task = try TaskID("t")
        for (worker, values) in [("a", [1.0, 2.0, 3.0]), ("b", [3.0, .infinity, 5.0]), ("c", [5.0, 6.0])] {
            for (step, value) in values.enumerated() {
                history.record(task: task, worker: try WorkerID(worker), step: Int64(step), metrics: ["x": value])
            }
        }
        let mean = history.charts(of: task).mean[0].points
        #expect(mean.map(\.step) == [0, 1, 2])
        #expect(mean[0].value == 3 && mean[1].value.isInfinite && mean[2].value == 4)
    }
}

@Suite("Activity history")
struct ActivityHistoryTests {
    @Test("a point every 5 s: heartbeats per second since the previous point; the last 120 kept")
    func points() {
        var history = ActivityHistory()
        var clock = ManualClock()
        history.sample(at: clock.now, heartbeatsTotal: 0, stepsPerSecond: 0, workers: 0)
        #expect(history.points.isEmpty, "the first call sets the baseline")
        clock.advance(.seconds(4))
        #expect(!history.isDue(at: clock.now.monotonic))
        clock.advance(.seconds(1))
        #expect(history.isDue(at: clock.now.monotonic))
        history.sample(at: clock.now, heartbeatsTotal: 50, stepsPerSecond: 12.5, workers: 3)
        #expect(
            history.points == [
                .init(atMillis: clock.now.unixMillis, heartbeatsPerSecond: 10, stepsPerSecond: 12.5, workers: 3)
            ])
        for index in 0..<200 {
            clock.advance(.seconds(5))
            history.sample(at: clock.now, heartbeatsTotal: 50 + index * 5, stepsPerSecond: 0, workers: index)
        }
        #expect(history.points.count == ActivityHistory.capacity)
        #expect(history.points.last?.workers == 199 && history.points.first?.workers == 80)
        #expect(history.points.dropFirst().allSatisfy { $0.heartbeatsPerSecond == 1 })
    }
}

@Suite("Training history: point budget")
struct TrainingHistoryBudgetTests {
    @Test("many series share the point budget: each keeps fewer points, still covering the whole run")
    func sharedBudget() throws {
        // 1,000 points for 10 series: 100 each (within 16...500).
        var history = TrainingHistory(pointBudget: 1_000)
        let task = try TaskID("t")
        let workers = try (0..<10).map { try WorkerID("w\($0)") }
        #expect(history.pointsPerSeriesNow == 500, "no series yet: the most a series keeps")
        for step in 0..<300 {
            for worker in workers {
                history.record(task: task, worker: worker, step: Int64(step), metrics: ["loss": Double(step)])
            }
        }
        #expect(history.pointsPerSeriesNow == 100)
        let charts = history.charts(of: task)
        #expect(charts.series.count == 10)
        for series in charts.series {
            #expect(series.points.count <= 100 && series.points.count >= 50)
            #expect(series.points.first?.step == 0 && series.points.last?.step == 299, "the whole run, coarser")
        }
        // A worker moving to another task takes nothing along and starts one series there: still 10 series.
        history.record(task: try TaskID("other"), worker: workers[9], step: 0, metrics: ["loss": 1])
        #expect(history.pointsPerSeriesNow == 100)
        // A new value at the same step, and names past the per-task limit, start no series.
        history.record(task: task, worker: workers[0], step: 299, metrics: ["loss": -1])
        #expect(history.pointsPerSeriesNow == 100)
        // Forgetting workers gives their share back: the survivors' series may grow again.
        for worker in workers[5...] { history.forget(worker) }
        #expect(history.pointsPerSeriesNow == 200, "5 series left: 1,000 / 5")
        for worker in workers[1..<5] { history.forget(worker) }
        #expect(history.pointsPerSeriesNow == 500)
        for step in 300..<700 {
            history.record(task: task, worker: workers[0], step: Int64(step), metrics: ["loss": 0])
        }
        let survivor = try #require(history.charts(of: task).series.first)
        #expect(survivor.points.count > 100 && survivor.points.count <= 500)
    }

    @Test("a series already over a lower limit is trimmed when it records next; never below the minimum")
    func trimmedLazily() throws {
        var history = TrainingHistory(pointBudget: 600)
        let task = try TaskID("t")
        let first = try WorkerID("first")
        for step in 0..<400 { history.record(task: task, worker: first, step: Int64(step), metrics: ["a": 1]) }
        #expect(history.charts(of: task).series[0].points.count == 400)
        // 100 more series: 600 / 101 = 5 points each, below the minimum of 16.
        for index in 0..<100 {
            history.record(task: task, worker: try WorkerID("w\(index)"), step: 0, metrics: ["a": 1])
        }
        #expect(history.pointsPerSeriesNow == TrainingHistory.minPointsPerSeries)
        history.record(task: task, worker: first, step: 400, metrics: ["a": 1])
        let trimmed = try #require(history.charts(of: task).series.first { $0.worker == first })
        #expect(trimmed.points.count <= 16 && trimmed.points.count >= 8)
        #expect(trimmed.points.last?.step == 400)
    }
}

@Suite("Training history: series count")
struct TrainingHistorySeriesCountTests {
    @Test("the count follows series started and dropped, however workers come, move and go")
    func counted() throws {
        // A budget of 64 points: the share a series gets tells how many series are counted.
        var history = TrainingHistory(pointBudget: 64 * 16)
        let (a, b) = (try TaskID("a"), try TaskID("b"))
        let (w0, w1) = (try WorkerID("w0"), try WorkerID("w1"))
        history.record(task: a, worker: w0, step: 1, metrics: ["loss": 1, "acc": 0.1])
        history.record(task: a, worker: w1, step: 1, metrics: ["loss": 2])
        #expect(history.pointsPerSeriesNow == 64 * 16 / 3)
        history.record(task: a, worker: w1, step: 2, metrics: ["acc": 0.2])
        #expect(history.pointsPerSeriesNow == 64 * 16 / 4)
        // Moving w0 (2 series) to task b, reporting one metric there: 3 series.
        history.record(task: b, worker: w0, step: 3, metrics: ["loss": 1])
        #expect(history.pointsPerSeriesNow == 64 * 16 / 3)
        // 64 names are kept per task; more start no series.
        let many = Dictionary(uniqueKeysWithValues: (0..<70).map { ("m\($0)", Double($0)) })
        history.record(task: a, worker: w1, step: 4, metrics: many)
        #expect(history.pointsPerSeriesNow == 16, "64 series of w1 in task a (2 before + 62 new) + 1 in b: the floor")
        history.forget(w1)
        #expect(history.pointsPerSeriesNow == 500, "1 series left")
        history.forget(w0)
        history.forget(w0)
        #expect(history.pointsPerSeriesNow == 500)
        history.record(task: a, worker: w1, step: 5, metrics: ["x": 1, "y": 2, "z": 3])
        #expect(history.pointsPerSeriesNow == 64 * 16 / 3, "counted from zero again, not below it")
    }
}
