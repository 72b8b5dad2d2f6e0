// The live state as plain immutable data, and the pure functions that build it from a snapshot of GET /api/dashboard
// and apply the events of GET /api/events on top. No I/O here: the store (store.ts) owns the connection.

import type {
  Barriers,
  BarrierEvent,
  Checkpoints,
  Dashboard,
  Dataset,
  DatasetProgressEvent,
  HistoryPoint,
  LiveEvent,
  LogEntry,
  Metrics,
  Status,
  Task,
  Worker,
} from "./api";

/** How the page is connected to the coordinator. */
export type Connection =
  | { phase: "loading" }
  /** Connected to the event stream (`live`), or polling a coordinator that has none. */
  | { phase: "live" | "polling" }
  /** Unreachable (or failing): the next attempt is at `retryAt` (ms since the epoch). */
  | { phase: "disconnected"; retryAt: number; message: string }
  /** The coordinator wants the admin token: `message` says why the last one (if any) was refused. */
  | { phase: "token"; message: string | null };

/** A barrier generation that ended, as the event stream reported it, with when it was seen. */
export interface EndedBarrier extends BarrierEvent {
  seen_at: number;
}

/** What the views render. */
export interface LiveState {
  connection: Connection;
  /** Whether a snapshot has been loaded at least once (until then views show their loading state). */
  loaded: boolean;
  /** When the state last changed from the coordinator (ms since the epoch). */
  updatedAt: number;
  status: Status | null;
  /** The worker objects, plus when each was received (to age the heartbeat of workers that stopped reporting). */
  workers: Worker[];
  workersReceivedAt: Record<string, number>;
  tasks: Task[];
  datasets: Dataset[];
  barriers: Barriers | null;
  checkpoints: Checkpoints | null;
  metrics: Metrics | null;
  logs: LogEntry[];
  /** The coordinator's rate history (metrics.history), or, from a coordinator without it, one built from snapshots. */
  history: HistoryPoint[];
  historyFromServer: boolean;
  recentBarriers: EndedBarrier[];
  /** Whether the coordinator has the event stream (false: it is polled). */
  streaming: boolean;
}

export const MAX_LOGS = 1000;
export const MAX_RECENT_BARRIERS = 50;
const CLIENT_HISTORY_POINTS = 120;

export function initialState(): LiveState {
  return {
    connection: { phase: "loading" },
    loaded: false,
    updatedAt: 0,
    status: null,
    workers: [],
    workersReceivedAt: {},
    tasks: [],
    datasets: [],
    barriers: null,
    checkpoints: null,
    metrics: null,
    logs: [],
    history: [],
    historyFromServer: false,
    recentBarriers: [],
    streaming: false,
  };
}

/** The state a snapshot describes; what only the client knows (recent barriers, client history) carries over. */
export function fromSnapshot(previous: LiveState, snapshot: Dashboard, now: number): LiveState {
  const workersReceivedAt: Record<string, number> = {};
  for (const worker of snapshot.workers.workers) workersReceivedAt[worker.worker_id] = now;
  const serverHistory = snapshot.metrics.history?.points;
  return {
    ...previous,
    loaded: true,
    updatedAt: now,
    status: snapshot.status,
    workers: snapshot.workers.workers,
    workersReceivedAt,
    tasks: snapshot.tasks.tasks,
    datasets: snapshot.datasets.datasets,
    barriers: snapshot.barriers,
    checkpoints: snapshot.checkpoints,
    metrics: snapshot.metrics,
    logs: mergeLogs(previous.logs, snapshot.logs.logs),
    history: serverHistory ?? clientHistory(previous.history, snapshot, now),
    historyFromServer: serverHistory !== undefined,
  };
}

/** A history point per snapshot, for coordinators that keep none (steps/s from the workers' rates when known). */
function clientHistory(history: HistoryPoint[], snapshot: Dashboard, now: number): HistoryPoint[] {
  const members = snapshot.workers.workers.filter((w) => w.status === "healthy" || w.status === "suspect");
  const point: HistoryPoint = {
    at: new Date(now).toISOString(),
    heartbeats_per_second: snapshot.metrics.heartbeats_per_second,
    steps_per_second: members.reduce((sum, w) => sum + (w.steps_per_second ?? 0), 0),
    workers: members.length,
  };
  return [...history, point].slice(-CLIENT_HISTORY_POINTS);
}

/** Appends the entries newer than those held (by sequence; a restarted coordinator starts again at 1). */
function mergeLogs(held: LogEntry[], incoming: LogEntry[]): LogEntry[] {
  if (incoming.length === 0) return held;
  const last = held.length ? held[held.length - 1].sequence : 0;
  const restarted = incoming[incoming.length - 1].sequence < last;
  const fresh = restarted ? incoming : incoming.filter((entry) => entry.sequence > last);
  if (fresh.length === 0) return held;
  return (restarted ? fresh : [...held, ...fresh]).slice(-MAX_LOGS);
}

/** Applies a batch of events (in stream order) to the state. */
export function applyEvents(state: LiveState, events: readonly LiveEvent[], now: number): LiveState {
  let next = state;
  for (const event of events) next = applyEvent(next, event, now);
  return next === state ? state : { ...next, updatedAt: now };
}

function applyEvent(state: LiveState, event: LiveEvent, now: number): LiveState {
  switch (event.type) {
    case "worker":
      return upsertWorker(state, event.data.worker, now);
    case "task":
      return { ...state, tasks: upsert(state.tasks, event.data, (t) => t.task_id, "end") };
    case "dataset_progress":
      return { ...state, datasets: applyProgress(state.datasets, event.data) };
    case "barrier":
      return applyBarrier(state, event.data, now);
    case "checkpoint": {
      if (!state.checkpoints) return state;
      const checkpoints = upsert(state.checkpoints.checkpoints, event.data.checkpoint, (c) => c.checkpoint_id, "start");
      return { ...state, checkpoints: { ...state.checkpoints, checkpoints } };
    }
    case "log":
      return { ...state, logs: mergeLogs(state.logs, [event.data]) };
    case "hello":
    case "reset":
      return state; // the store acts on these (a new run or a reset means: load a snapshot)
  }
}

function upsertWorker(state: LiveState, worker: Worker, now: number): LiveState {
  return {
    ...state,
    workers: upsert(state.workers, worker, (w) => w.worker_id, "end"),
    workersReceivedAt: { ...state.workersReceivedAt, [worker.worker_id]: now },
  };
}

/** Replaces the item with the same key, or adds it at one end. */
export function upsert<T>(items: readonly T[], item: T, key: (item: T) => string, where: "start" | "end"): T[] {
  const id = key(item);
  const index = items.findIndex((existing) => key(existing) === id);
  if (index >= 0) {
    const copy = items.slice();
    copy[index] = item;
    return copy;
  }
  return where === "start" ? [item, ...items] : [...items, item];
}

function applyProgress(datasets: Dataset[], progress: DatasetProgressEvent): Dataset[] {
  const index = datasets.findIndex((d) => d.name === progress.dataset);
  if (index < 0) return datasets; // a dataset this snapshot does not know yet: the next snapshot brings it
  const dataset = datasets[index];
  const epochFields = {
    epoch: progress.epoch,
    done_shards: progress.done_shards,
    total_shards: progress.total_shards,
    in_progress_shards: progress.in_progress_shards,
    committed_samples: progress.committed_samples,
    total_samples: progress.total_samples,
  };
  let tasks = dataset.tasks;
  const taskIndex = tasks.findIndex((t) => t.task_id === progress.task_id);
  if (taskIndex < 0) {
    const epoch = { ...epochFields, shards_per_worker: {}, unowned_shards: 0 };
    tasks = [...tasks, { task_id: progress.task_id, current_epoch: progress.epoch, epochs: [epoch] }];
  } else {
    const task = tasks[taskIndex];
    const epochIndex = task.epochs.findIndex((e) => e.epoch === progress.epoch);
    const epochs =
      epochIndex >= 0
        ? task.epochs.map((e, i) => (i === epochIndex ? { ...e, ...epochFields } : e))
        : [...task.epochs, { ...epochFields, shards_per_worker: {}, unowned_shards: 0 }].sort((a, b) => a.epoch - b.epoch);
    tasks = tasks.slice();
    tasks[taskIndex] = { ...task, current_epoch: Math.max(task.current_epoch, progress.epoch), epochs };
  }
  const copy = datasets.slice();
  copy[index] = { ...dataset, tasks };
  return copy;
}

function applyBarrier(state: LiveState, event: BarrierEvent, now: number): LiveState {
  const recentBarriers = [{ ...event, seen_at: now }, ...state.recentBarriers].slice(0, MAX_RECENT_BARRIERS);
  const barriers = state.barriers;
  if (!barriers) return { ...state, recentBarriers };
  const open = barriers.open.filter(
    (b) => !(b.task_id === event.task_id && b.name === event.name && b.generation === event.generation),
  );
  const released = barriers.released + (event.change === "released" ? 1 : 0);
  const failed = barriers.failed + (event.change === "released" ? 0 : 1);
  return { ...state, recentBarriers, barriers: { ...barriers, open, released, failed } };
}

// MARK: derived figures

/** A worker's heartbeat age now: what the coordinator said, plus the time since, for a worker no longer heartbeating
 * (a healthy one is refreshed by every snapshot and event, so its last figure stands). */
export function heartbeatAge(state: LiveState, worker: Worker, now: number): number {
  if (worker.status === "healthy") return worker.last_heartbeat_age_seconds;
  const receivedAt = state.workersReceivedAt[worker.worker_id] ?? now;
  return worker.last_heartbeat_age_seconds + Math.max(0, now - receivedAt) / 1000;
}

/** Counts per value of `key`, for every value in `all` (zeros included). */
export function countBy<T, K extends string>(items: readonly T[], key: (item: T) => K, all: readonly K[]): Record<K, number> {
  const counts = Object.fromEntries(all.map((k) => [k, 0])) as Record<K, number>;
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

/** The sum of the members' step rates (null when no member reports one). */
export function stepsPerSecond(workers: readonly Worker[]): number | null {
  let sum: number | null = null;
  for (const w of workers) {
    if ((w.status === "healthy" || w.status === "suspect") && typeof w.steps_per_second === "number") {
      sum = (sum ?? 0) + w.steps_per_second;
    }
  }
  return sum;
}

/** Whether a worker is a current member (it has a rank). */
export function isMember(worker: Worker): boolean {
  return worker.status === "healthy" || worker.status === "suspect";
}
