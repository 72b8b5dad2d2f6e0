// The coordinator's HTTP API as the dashboard uses it: the shapes of docs/openapi.yaml (and the additions of issue
// #11's contract: steps_per_second, straggler, demo, in_progress_shards, metrics.history, event_id, the task metrics
// endpoint, /api/events and its tickets), and one small client that sends the admin token and turns every failure
// into an ApiError carrying the server's own words.
//
// The additions are typed optional (`?`): a coordinator from before them answers without those keys, and the views
// show what they can instead of failing.

// MARK: shapes

/** `{"error": {"code", "message"}}`: the body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export interface Health {
  status: "ok";
  version: string;
  uptime_seconds: number;
}

export interface WorkerCounts {
  total: number;
  healthy: number;
  suspect: number;
  dead: number;
  left: number;
}

export interface Status {
  version: string;
  host: string;
  grpc_port: number | null;
  http_port: number | null;
  uptime_seconds: number;
  heartbeat: { interval_ms: number; suspect_after_ms: number; dead_after_ms: number };
  workers: WorkerCounts;
  sessions: number;
  tasks: { task_id: string; membership_epoch: number; world_size: number }[];
}

export type WorkerHealth = "healthy" | "suspect" | "dead" | "left";
export const WORKER_HEALTHS: readonly WorkerHealth[] = ["healthy", "suspect", "dead", "left"];

export interface Worker {
  worker_id: string;
  task_id: string;
  rank: number | null;
  host: string;
  port: number;
  gpu_count: number;
  labels: Record<string, string>;
  status: WorkerHealth;
  last_heartbeat_age_seconds: number;
  step: number;
  metrics: Record<string, number | null>;
  registered_at: string;
  departed_at: string | null;
  steps_per_second?: number | null;
  straggler?: boolean;
  demo?: boolean;
}

export interface DatasetEpoch {
  epoch: number;
  done_shards: number;
  total_shards: number;
  shards_per_worker: Record<string, number>;
  unowned_shards: number;
  in_progress_shards?: number;
  committed_samples?: number;
  total_samples?: number;
}

export interface DatasetTask {
  task_id: string;
  current_epoch: number;
  epochs: DatasetEpoch[];
}

export interface Dataset {
  name: string;
  total_samples: number;
  shard_size: number;
  num_shards: number;
  shuffle: boolean;
  seed: number;
  registered_at: string;
  tasks: DatasetTask[];
}

export interface Histogram {
  count: number;
  sum_seconds: number;
  mean_seconds: number | null;
  p50_seconds: number | null;
  p90_seconds: number | null;
  p99_seconds: number | null;
  max_seconds: number;
  /** Cumulative counts; the last bucket's `le` is null (+∞). */
  buckets: { le: number | null; count: number }[];
}

export interface OpenBarrier {
  task_id: string;
  name: string;
  generation: number;
  arrived: number;
  expected: number;
  missing_ranks: number[];
  missing_workers: string[];
  age_seconds: number;
  timeout_in_seconds: number;
}

export interface Barriers {
  open: OpenBarrier[];
  released: number;
  failed: number;
  wait_time: Histogram;
  release_latency: Histogram;
}

export type TaskStatus = "pending" | "running" | "stopping" | "stopped" | "completed" | "failed";
export const TASK_STATUSES: readonly TaskStatus[] = ["pending", "running", "stopping", "stopped", "completed", "failed"];

export interface Task {
  task_id: string;
  name: string;
  status: TaskStatus;
  world_size: number;
  workers: number;
  membership_epoch: number;
  dataset: string | null;
  epochs: number | null;
  config: Record<string, unknown>;
  created_by: "api" | "worker";
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  reason: string | null;
}

export interface CreateTaskRequest {
  name: string;
  world_size?: number | null;
  dataset?: string | null;
  epochs?: number | null;
  config?: Record<string, unknown> | null;
}

export type LogLevel = "trace" | "debug" | "info" | "notice" | "warning" | "error" | "critical";
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "notice", "warning", "error", "critical"];

export interface LogEntry {
  sequence: number;
  timestamp: string;
  level: LogLevel;
  label: string;
  message: string;
  metadata: Record<string, string>;
}

export interface Logs {
  logs: LogEntry[];
  total: number;
  capacity: number;
}

export interface HistoryPoint {
  at: string;
  heartbeats_per_second: number;
  steps_per_second: number;
  workers: number;
}

export interface Metrics {
  uptime_seconds: number;
  heartbeats_per_second: number;
  heartbeats_total: number;
  workers: Omit<WorkerCounts, "total">;
  sessions: number;
  tasks: Record<TaskStatus, number>;
  rpc: Record<string, { count: number; errors: Record<string, number>; latency: Histogram }>;
  barriers: { open: number; released: number; failed: number; wait_time: Histogram; release_latency: Histogram };
  checkpoints: { by_status: Partial<Record<CheckpointStatus, number>>; commit_latency: Histogram };
  history?: { interval_seconds: number; points: HistoryPoint[] };
}

export type CheckpointStatus = "pending" | "committed" | "aborted" | "deleted";

export interface Checkpoint {
  checkpoint_id: string;
  task_id: string;
  step: number;
  epoch: number;
  attempt: number;
  status: CheckpointStatus;
  world_size: number;
  parts: number;
  missing_ranks: number[];
  total_bytes: number;
  created_at: string;
  committed_at: string | null;
  commit_latency_seconds: number | null;
  write_bytes_per_second: number | null;
  metrics: Record<string, number>;
  abort_reason: string | null;
  manifest_key: string | null;
}

export interface Checkpoints {
  store: { uri: string; endpoint: string; region: string } | null;
  checkpoints: Checkpoint[];
}

/** GET /api/dashboard: each key is the body of the endpoint of that name. */
export interface Dashboard {
  status: Status;
  workers: { workers: Worker[] };
  tasks: { tasks: Task[] };
  datasets: { datasets: Dataset[] };
  barriers: Barriers;
  checkpoints: Checkpoints;
  metrics: Metrics;
  logs: Logs;
  /** The newest event's id when the snapshot was taken (absent before /api/events existed). */
  event_id?: number;
}

/** `[step, value]`; a non-finite value is null. */
export type MetricPoint = [number, number | null];

/** GET /api/tasks/:id/metrics */
export interface TaskMetrics {
  task_id: string;
  metrics: string[];
  series: { metric: string; worker_id: string; points: MetricPoint[] }[];
  mean: { metric: string; points: MetricPoint[] }[];
}

export interface Ticket {
  ticket: string;
  expires_in_seconds: number;
}

// MARK: events of GET /api/events

export interface HelloEvent {
  run_id: string;
  version: string;
  last_event_id: number;
}

export interface WorkerEvent {
  change: "joined" | "left" | "failed" | "restarted" | "died" | "suspected" | "recovered" | "metrics";
  worker: Worker;
}

export interface DatasetProgressEvent {
  dataset: string;
  task_id: string;
  epoch: number;
  done_shards: number;
  in_progress_shards: number;
  total_shards: number;
  committed_samples: number;
  total_samples: number;
}

export interface BarrierEvent {
  change: "released" | "aborted" | "timed_out";
  task_id: string;
  name: string;
  generation: number;
  participants: number;
  missing_ranks: number[];
  missing_workers: string[];
  wait_seconds: number;
}

export interface CheckpointEvent {
  change: "committed" | "aborted";
  checkpoint: Checkpoint;
}

/** One event of the stream, with its id (null for `hello`). */
export type LiveEvent = { id: number | null } & (
  | { type: "hello"; data: HelloEvent }
  | { type: "reset"; data: { reason: string } }
  | { type: "worker"; data: WorkerEvent }
  | { type: "task"; data: Task }
  | { type: "dataset_progress"; data: DatasetProgressEvent }
  | { type: "barrier"; data: BarrierEvent }
  | { type: "checkpoint"; data: CheckpointEvent }
  | { type: "log"; data: LogEntry }
);

export const EVENT_TYPES: readonly LiveEvent["type"][] = [
  "hello",
  "reset",
  "worker",
  "task",
  "dataset_progress",
  "barrier",
  "checkpoint",
  "log",
];

// MARK: client

/** Why a request failed: `status` 0 means the coordinator could not be reached at all. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  get unreachable(): boolean {
    return this.status === 0;
  }

  get unauthenticated(): boolean {
    return this.status === 401;
  }
}

/** Talks to the coordinator that served the page (same origin), with the admin token when one is set. */
export class ApiClient {
  constructor(
    public token: string | null = null,
    private readonly base = "",
  ) {}

  private headers(json: boolean): HeadersInit {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (json) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  async request<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        signal,
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", "the coordinator cannot be reached (is `dtr serve` running?)");
    }
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = (parsed as ErrorBody | null)?.error;
      throw new ApiError(
        response.status,
        error?.code ?? "http_" + response.status,
        error?.message ?? `${method} ${path} answered HTTP ${response.status}`,
      );
    }
    if (parsed === null) throw new ApiError(response.status, "bad_response", `${method} ${path} did not answer JSON`);
    return parsed as T;
  }

  dashboard(signal?: AbortSignal): Promise<Dashboard> {
    return this.request("GET", "/api/dashboard", undefined, signal);
  }

  status(signal?: AbortSignal): Promise<Status> {
    return this.request("GET", "/api/status", undefined, signal);
  }

  health(signal?: AbortSignal): Promise<Health> {
    return this.request("GET", "/api/health", undefined, signal);
  }

  logs(query: { level?: LogLevel; worker?: string; limit?: number }, signal?: AbortSignal): Promise<Logs> {
    const params = new URLSearchParams();
    if (query.level) params.set("level", query.level);
    if (query.worker) params.set("worker", query.worker);
    if (query.limit) params.set("limit", String(query.limit));
    return this.request("GET", `/api/logs?${params}`, undefined, signal);
  }

  taskMetrics(taskId: string, signal?: AbortSignal): Promise<TaskMetrics> {
    return this.request("GET", `/api/tasks/${encodeURIComponent(taskId)}/metrics`, undefined, signal);
  }

  createTask(request: CreateTaskRequest): Promise<Task> {
    return this.request("POST", "/api/tasks", request);
  }

  stopTask(taskId: string): Promise<Task> {
    return this.request("POST", `/api/tasks/${encodeURIComponent(taskId)}/stop`, {});
  }

  eventsTicket(signal?: AbortSignal): Promise<Ticket> {
    return this.request("POST", "/api/events/ticket", {}, signal);
  }

  /** The URL of the event stream, resuming after `since` when given. */
  eventsURL(ticket: string | null, since: number | null): string {
    const params = new URLSearchParams();
    if (since !== null) params.set("since", String(since));
    if (ticket !== null) params.set("ticket", ticket);
    const query = params.toString();
    return this.base + "/api/events" + (query ? "?" + query : "");
  }
}
