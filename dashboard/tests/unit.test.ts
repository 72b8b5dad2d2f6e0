// Unit tests of the dashboard's pure parts, run by Node's test runner (scripts/build-dashboard.sh --test, part of
// `make test`): the live state's snapshot and event handling, validation, sorting, routing and formatting.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Checkpoint, Dashboard, Histogram, LiveEvent, Task, Worker } from "../src/api";
import { sortRows } from "../src/components/DataTable";
import type { Column } from "../src/components/DataTable";
import { coordinatorEnv } from "../src/components/StartWorkers";
import { formatAge, formatBytes, formatDuration, formatNumber, formatRate } from "../src/format";
import { href, parseHash } from "../src/router";
import { applyEvents, countBy, fromSnapshot, heartbeatAge, initialState, stepsPerSecond } from "../src/state";
import { fieldOfServerError, validateTaskForm, EMPTY_TASK_FORM } from "../src/taskForm";
import { histogramBars } from "../src/views/Barriers";
import { lowerIsBetter, marks } from "../src/views/Checkpoints";

// MARK: fixtures

function worker(id: string, fields: Partial<Worker> = {}): Worker {
  return {
    worker_id: id,
    task_id: "t",
    rank: 0,
    host: "127.0.0.1",
    port: 7000,
    gpu_count: 0,
    labels: {},
    status: "healthy",
    last_heartbeat_age_seconds: 0.2,
    step: 0,
    metrics: {},
    registered_at: "2026-12-01T00:00:00Z",
    departed_at: null,
    ...fields,
  };
}

function task(id: string, fields: Partial<Task> = {}): Task {
  return {
    task_id: id,
    name: id,
    status: "running",
    world_size: 0,
    workers: 1,
    membership_epoch: 1,
    dataset: null,
    epochs: null,
    config: {},
    created_by: "worker",
    created_at: "2026-12-01T00:00:00Z",
    started_at: null,
    ended_at: null,
    reason: null,
    ...fields,
  };
}

function histogram(counts: number[]): Histogram {
  let total = 0;
  const buckets = counts.map((count, i) => {
    total += count;
    return { le: i === counts.length - 1 ? null : 10 ** (i - 4), count: total };
  });
  return { count: total, sum_seconds: 0, mean_seconds: null, p50_seconds: null, p90_seconds: null, p99_seconds: null, max_seconds: 0, buckets };
}

function snapshot(workers: Worker[], fields: Partial<Dashboard> = {}): Dashboard {
  const empty = histogram([0]);
  return {
    status: {
      version: "0.1.0",
      host: "127.0.0.1",
      grpc_port: 50051,
      http_port: 51051,
      uptime_seconds: 1,
      heartbeat: { interval_ms: 1000, suspect_after_ms: 2000, dead_after_ms: 5000 },
      workers: { total: workers.length, healthy: workers.length, suspect: 0, dead: 0, left: 0 },
      sessions: 0,
      tasks: [],
    },
    workers: { workers },
    tasks: { tasks: [task("t")] },
    datasets: {
      datasets: [
        {
          name: "digits",
          total_samples: 100,
          shard_size: 10,
          num_shards: 10,
          shuffle: true,
          seed: 0,
          registered_at: "2026-12-01T00:00:00Z",
          tasks: [{ task_id: "t", current_epoch: 0, epochs: [{ epoch: 0, done_shards: 1, total_shards: 10, shards_per_worker: { w0: 9 }, unowned_shards: 0 }] }],
        },
      ],
    },
    barriers: {
      open: [{ task_id: "t", name: "b", generation: 3, arrived: 1, expected: 2, missing_ranks: [1], missing_workers: ["w1"], age_seconds: 1, timeout_in_seconds: 10 }],
      released: 2,
      failed: 0,
      wait_time: empty,
      release_latency: empty,
    },
    checkpoints: { store: null, checkpoints: [] },
    metrics: {
      uptime_seconds: 1,
      heartbeats_per_second: 2,
      heartbeats_total: 10,
      workers: { healthy: workers.length, suspect: 0, dead: 0, left: 0 },
      sessions: 0,
      tasks: { pending: 0, running: 1, stopping: 0, stopped: 0, completed: 0, failed: 0 },
      rpc: {},
      barriers: { open: 1, released: 2, failed: 0, wait_time: empty, release_latency: empty },
      checkpoints: { by_status: {}, commit_latency: empty },
    },
    logs: { logs: [], total: 0, capacity: 10000 },
    ...fields,
  };
}

function checkpoint(step: number, fields: Partial<Checkpoint> = {}): Checkpoint {
  return {
    checkpoint_id: `t/step-${step}-a1`,
    task_id: "t",
    step,
    epoch: 0,
    attempt: 1,
    status: "committed",
    world_size: 1,
    parts: 1,
    missing_ranks: [],
    total_bytes: 10,
    created_at: "2026-12-01T00:00:00Z",
    committed_at: `2026-12-01T00:00:${String(step).padStart(2, "0")}Z`,
    commit_latency_seconds: 0.1,
    write_bytes_per_second: 100,
    metrics: {},
    abort_reason: null,
    manifest_key: null,
    ...fields,
  };
}

// MARK: live state

test("a snapshot replaces the coordinator's state and keeps the client's", () => {
  const before = { ...initialState(), recentBarriers: [{ change: "released" as const, task_id: "t", name: "b", generation: 1, participants: 2, missing_ranks: [], missing_workers: [], wait_seconds: 0, seen_at: 1 }] };
  const state = fromSnapshot(before, snapshot([worker("w0")]), 1000);
  assert.equal(state.loaded, true);
  assert.deepEqual(state.workers.map((w) => w.worker_id), ["w0"]);
  assert.equal(state.recentBarriers.length, 1, "what only the page saw survives a snapshot");
  assert.equal(state.historyFromServer, false);
  assert.equal(state.history.length, 1, "without server history, each snapshot adds a point");
});

test("the server's rate history is used when the coordinator has one", () => {
  const points = [{ at: "2026-12-01T00:00:00Z", heartbeats_per_second: 1, steps_per_second: 3, workers: 2 }];
  const base = snapshot([]);
  const state = fromSnapshot(initialState(), { ...base, metrics: { ...base.metrics, history: { interval_seconds: 5, points } } }, 0);
  assert.equal(state.historyFromServer, true);
  assert.deepEqual(state.history, points);
});

test("worker events update a worker in place or add it", () => {
  let state = fromSnapshot(initialState(), snapshot([worker("w0"), worker("w1", { rank: 1 })]), 0);
  const died: LiveEvent = { id: 5, type: "worker", data: { change: "died", worker: worker("w1", { rank: null, status: "dead" }) } };
  const joined: LiveEvent = { id: 6, type: "worker", data: { change: "joined", worker: worker("w2", { rank: 1 }) } };
  state = applyEvents(state, [died, joined], 2000);
  assert.deepEqual(state.workers.map((w) => [w.worker_id, w.status]), [["w0", "healthy"], ["w1", "dead"], ["w2", "healthy"]]);
  assert.equal(state.workersReceivedAt.w1, 2000);
  assert.equal(state.updatedAt, 2000);
});

test("dataset progress events move the epoch's bars; a new epoch is added", () => {
  let state = fromSnapshot(initialState(), snapshot([]), 0);
  const progress = (epoch: number, done: number): LiveEvent => ({
    id: 7,
    type: "dataset_progress",
    data: { dataset: "digits", task_id: "t", epoch, done_shards: done, in_progress_shards: 2, total_shards: 10, committed_samples: done * 10, total_samples: 100 },
  });
  state = applyEvents(state, [progress(0, 4), progress(1, 0)], 0);
  const epochs = state.datasets[0].tasks[0].epochs;
  assert.deepEqual(epochs.map((e) => [e.epoch, e.done_shards, e.in_progress_shards, e.committed_samples]), [[0, 4, 2, 40], [1, 0, 2, 0]]);
  assert.deepEqual(epochs[0].shards_per_worker, { w0: 9 }, "fields the event does not carry are kept");
  assert.equal(state.datasets[0].tasks[0].current_epoch, 1);
});

test("a barrier event closes the open generation and counts it", () => {
  let state = fromSnapshot(initialState(), snapshot([]), 0);
  const event: LiveEvent = {
    id: 8,
    type: "barrier",
    data: { change: "timed_out", task_id: "t", name: "b", generation: 3, participants: 1, missing_ranks: [1], missing_workers: ["w1"], wait_seconds: 0 },
  };
  state = applyEvents(state, [event], 5);
  assert.equal(state.barriers?.open.length, 0);
  assert.equal(state.barriers?.failed, 1);
  assert.equal(state.barriers?.released, 2);
  assert.equal(state.recentBarriers[0].seen_at, 5);
});

test("checkpoint events put new attempts first; task events update in place", () => {
  let state = fromSnapshot(initialState(), snapshot([]), 0);
  state = applyEvents(
    state,
    [
      { id: 9, type: "checkpoint", data: { change: "committed", checkpoint: checkpoint(1) } },
      { id: 10, type: "checkpoint", data: { change: "committed", checkpoint: checkpoint(2) } },
      { id: 11, type: "task", data: task("t", { status: "stopping" }) },
      { id: 12, type: "task", data: task("u") },
    ],
    0,
  );
  assert.deepEqual(state.checkpoints?.checkpoints.map((c) => c.step), [2, 1]);
  assert.deepEqual(state.tasks.map((t) => [t.task_id, t.status]), [["t", "stopping"], ["u", "running"]]);
});

test("log entries are appended once, in order, and a restarted coordinator's start again", () => {
  const entry = (sequence: number) => ({ sequence, timestamp: "2026-12-01T00:00:00Z", level: "info" as const, label: "dtr", message: `m${sequence}`, metadata: {} });
  let state = fromSnapshot(initialState(), snapshot([], { logs: { logs: [entry(1), entry(2)], total: 2, capacity: 10 } }), 0);
  state = applyEvents(state, [{ id: 1, type: "log", data: entry(2) }, { id: 2, type: "log", data: entry(3) }], 0);
  assert.deepEqual(state.logs.map((e) => e.sequence), [1, 2, 3]);
  state = fromSnapshot(state, snapshot([], { logs: { logs: [entry(1)], total: 1, capacity: 10 } }), 0);
  assert.deepEqual(state.logs.map((e) => e.sequence), [1], "a lower sequence means a new run");
});

test("derived figures: heartbeat age, counts, steps/s", () => {
  const state = fromSnapshot(initialState(), snapshot([worker("a"), worker("b", { status: "dead", last_heartbeat_age_seconds: 6 })]), 1000);
  assert.equal(heartbeatAge(state, state.workers[0], 4000), 0.2, "a healthy worker's age is the coordinator's");
  assert.equal(heartbeatAge(state, state.workers[1], 4000), 9, "a silent worker ages on the page");
  assert.deepEqual(countBy(state.workers, (w) => w.status, ["healthy", "dead", "left"] as const), { healthy: 1, dead: 1, left: 0 });
  assert.equal(stepsPerSecond([worker("a")]), null, "no rate reported: unknown, not 0");
  assert.equal(stepsPerSecond([worker("a", { steps_per_second: 2 }), worker("b", { steps_per_second: 3 }), worker("c", { status: "dead", steps_per_second: 9 })]), 5);
});

// MARK: task form

test("the task form checks the API's rules before sending", () => {
  assert.deepEqual(validateTaskForm({ ...EMPTY_TASK_FORM, name: "mnist", world_size: "4", dataset: "digits", epochs: "3", config: '{"lr": 0.1}' }), {
    request: { name: "mnist", world_size: 4, dataset: "digits", epochs: 3, config: { lr: 0.1 } },
    errors: {},
  });
  assert.deepEqual(validateTaskForm({ ...EMPTY_TASK_FORM, name: " job " }).request, { name: "job" }, "optional fields are left out");
  const bad = validateTaskForm({ name: "a b", world_size: "70000", dataset: "..", epochs: "0", config: "[1]" });
  assert.equal(bad.request, null);
  assert.match(bad.errors.name ?? "", /letters, digits/);
  assert.match(bad.errors.world_size ?? "", /between 0 and 65536 \(got 70000\)/);
  assert.match(bad.errors.dataset ?? "", /cannot be '\.' or '\.\.'/);
  assert.match(bad.errors.epochs ?? "", /between 1 and 1000000/);
  assert.match(bad.errors.config ?? "", /must be a JSON object/);
  assert.match(validateTaskForm({ ...EMPTY_TASK_FORM, name: "x", config: "{" }).errors.config ?? "", /not valid JSON/);
  assert.match(validateTaskForm({ ...EMPTY_TASK_FORM, name: "x", world_size: "1.5" }).errors.world_size ?? "", /whole number/);
  assert.match(validateTaskForm(EMPTY_TASK_FORM).errors.name ?? "", /needs a name/);
  const big = JSON.stringify({ blob: "x".repeat(70 * 1024) });
  assert.match(validateTaskForm({ ...EMPTY_TASK_FORM, name: "x", config: big }).errors.config ?? "", /64 KiB/);
});

test("a server error goes to the field it names", () => {
  assert.equal(fieldOfServerError("already_exists", "task mnist already exists"), "name");
  assert.equal(fieldOfServerError("invalid_argument", "world_size must be between 0 and 65536 (got -1)"), "world_size");
  assert.equal(fieldOfServerError("invalid_argument", "config must be a JSON object"), "config");
  assert.equal(fieldOfServerError("unavailable", "the coordinator is shutting down"), "form");
});

// MARK: tables, routes, figures

test("sorting is stable and puts missing values last both ways", () => {
  const rows = [{ id: "a", v: 2 }, { id: "b", v: null }, { id: "c", v: 1 }, { id: "d", v: 2 }];
  const columns: Column<(typeof rows)[number]>[] = [{ key: "v", label: "V", value: (r) => r.v, render: (r) => r.v }];
  assert.deepEqual(sortRows(rows, columns, { key: "v", dir: "asc" }).map((r) => r.id), ["c", "a", "d", "b"]);
  assert.deepEqual(sortRows(rows, columns, { key: "v", dir: "desc" }).map((r) => r.id), ["a", "d", "c", "b"]);
  assert.deepEqual(sortRows(rows, columns, null).map((r) => r.id), ["a", "b", "c", "d"]);
  const names = [{ id: "w10" }, { id: "w9" }];
  const byName: Column<(typeof names)[number]>[] = [{ key: "id", label: "Id", value: (r) => r.id, render: (r) => r.id }];
  assert.deepEqual(sortRows(names, byName, { key: "id", dir: "asc" }).map((r) => r.id), ["w9", "w10"], "numbers in names sort as numbers");
});

test("hash routes name a view and its parameters", () => {
  assert.equal(parseHash("").view, "overview");
  assert.equal(parseHash("#/").view, "overview");
  const route = parseHash("#/workers?task=mnist&status=dead");
  assert.equal(route.view, "workers");
  assert.equal(route.params.get("task"), "mnist");
  assert.equal(parseHash("#/nope").view, null);
  assert.equal(href("workers", { task: "a b", status: "" }), "#/workers?task=a+b");
  assert.equal(href("overview"), "#/");
});

test("numbers carry their units", () => {
  assert.equal(formatDuration(0.00042), "420 µs");
  assert.equal(formatDuration(0.0125), "12.5 ms");
  assert.equal(formatDuration(1.84), "1.8 s");
  assert.equal(formatDuration(192), "3 min 12 s");
  assert.equal(formatDuration(7500), "2 h 05 min");
  assert.equal(formatDuration(null), "—");
  assert.equal(formatAge(0.41), "0.4 s");
  assert.equal(formatAge(125), "2 min");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(4 * 1024 ** 3), "4.00 GiB");
  assert.equal(formatRate(12.345, "steps/s"), "12.3 steps/s");
  assert.equal(formatNumber(1234567), "1,234,567");
  assert.equal(formatNumber(0.000012), "1.20e-5");
});

test("the start commands point at a coordinator off the default address", () => {
  assert.equal(coordinatorEnv("127.0.0.1", 50051), "");
  assert.equal(coordinatorEnv("127.0.0.1", 50151), "DTR_COORDINATOR=127.0.0.1:50151 ");
  assert.equal(coordinatorEnv("0.0.0.0", 50151), "DTR_COORDINATOR=127.0.0.1:50151 ");
  assert.equal(coordinatorEnv("10.0.0.5", 50051), "DTR_COORDINATOR=10.0.0.5:50051 ");
  assert.equal(coordinatorEnv("::1", 50051), "DTR_COORDINATOR=[::1]:50051 ");
});

test("a histogram's bars cover its non-empty buckets and one either side", () => {
  const bars = histogramBars(histogram([0, 0, 3, 0, 2, 0, 0, 0]));
  assert.deepEqual(bars.counts, [0, 3, 0, 2, 0]);
  assert.equal(bars.labels.length, 5);
  assert.match(bars.labels[1], /^≤ /);
  assert.deepEqual(histogramBars(histogram([0, 0])), { labels: [], counts: [] });
  const open = histogramBars(histogram([0, 0, 1])).labels;
  assert.match(open[open.length - 1], /^> /, "the last bucket is open-ended");
});

test("checkpoints: the latest committed and the best by a metric, per task", () => {
  const list = [
    checkpoint(3, { metrics: { loss: 0.5 } }),
    checkpoint(2, { metrics: { loss: 0.2 } }),
    checkpoint(4, { status: "aborted", metrics: { loss: 0.1 } }),
    checkpoint(1, { task_id: "u", checkpoint_id: "u/1", metrics: { loss: 0.9 } }),
  ];
  const { latest, best } = marks(list, "loss", "min");
  assert.deepEqual([...latest].sort(), ["t/step-3-a1", "u/1"]);
  assert.deepEqual([...best].sort(), ["t/step-2-a1", "u/1"], "aborted attempts are never best");
  assert.deepEqual([...marks(list, "loss", "max").best].sort(), ["t/step-3-a1", "u/1"]);
  assert.equal(lowerIsBetter("loss"), true);
  assert.equal(lowerIsBetter("val_accuracy"), false);
});
