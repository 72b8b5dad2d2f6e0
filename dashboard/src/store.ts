// The one store of the live state: loads GET /api/dashboard, follows GET /api/events on top of it (or polls a
// coordinator without the stream), reconnects with a countdown when the coordinator goes away, and asks for the
// admin token when the coordinator wants one. Views read it through useLive(); nothing else holds coordinator state.

import { useSyncExternalStore } from "react";
import { ApiClient, ApiError, EVENT_TYPES } from "./api";
import type { Dashboard, LiveEvent, Task } from "./api";
import { applyEvents, fromSnapshot, initialState, upsert } from "./state";
import type { LiveState } from "./state";

/** How often the snapshot is reloaded while the stream runs: it carries what no event does (rates, open barriers'
 * arrivals, heartbeat ages), and heals anything an event could not say. */
const REFRESH_MS = 3000;
/** How often a coordinator without the event stream is polled. */
const POLL_MS = 1000;
/** Delays before successive reconnection attempts (the last one repeats). */
const RETRY_SECONDS = [1, 2, 3, 5];
/** Events kept to re-apply on top of a snapshot taken before them. */
const EVENT_LOG_LIMIT = 4096;
const TOKEN_KEY = "dtruntime.admin-token";

type Listener = () => void;

export class Store {
  readonly api: ApiClient;
  private state: LiveState = initialState();
  private readonly listeners = new Set<Listener>();
  private source: EventSource | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private pending: LiveEvent[] = [];
  /** Events applied on top of the last snapshot, to re-apply when a snapshot taken before them arrives. */
  private eventLog: LiveEvent[] = [];
  /** The newest event in the state (from the snapshot's event_id, then the stream): events up to it are skipped,
   * and a reconnection resumes after it. null until a snapshot with an event id is loaded. */
  private appliedEventId: number | null = null;
  private runId: string | null = null;
  /** null: not known yet; false: the coordinator has no /api/events (it is polled). */
  private streaming: boolean | null = null;
  private failures = 0;
  /** Bumped by every (re)start of the connection, so the answers of an abandoned attempt are ignored. */
  private generation = 0;
  private snapshotInFlight = false;

  constructor(private readonly storage: Storage | null) {
    this.api = new ApiClient(storage?.getItem(TOKEN_KEY) ?? null);
  }

  // MARK: React

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getState = (): LiveState => this.state;

  private set(next: LiveState): void {
    if (next === this.state) return;
    this.state = next;
    for (const listener of this.listeners) listener();
  }

  private setConnection(connection: LiveState["connection"]): void {
    this.set({ ...this.state, connection });
  }

  // MARK: lifecycle

  /** Loads the snapshot and follows the coordinator from then on. */
  start(): void {
    void this.connect();
  }

  /** Closes the stream and stops every timer. */
  stop(): void {
    this.generation += 1;
    this.closeStream();
    this.clearTimer();
  }

  /** Tries again at once (the "retry now" button). */
  retryNow(): void {
    void this.connect();
  }

  /** Shows a task the API just answered (created or stopped) before its event arrives. */
  noteTask(task: Task): void {
    this.set({ ...this.state, tasks: upsert(this.state.tasks, task, (t) => t.task_id, "end") });
  }

  /** Whether the page holds a token (to offer "forget token"). */
  get hasToken(): boolean {
    return this.api.token !== null;
  }

  /** Uses `token` from now on if the coordinator accepts it (kept in sessionStorage for this tab); returns an error
   * message otherwise. */
  async submitToken(token: string): Promise<string | null> {
    const trimmed = token.trim();
    if (!trimmed) return "enter the coordinator's admin token (its --admin-token or DTR_ADMIN_TOKEN)";
    const candidate = new ApiClient(trimmed);
    try {
      await candidate.status();
    } catch (error) {
      if (error instanceof ApiError && error.unauthenticated) {
        return `the coordinator refused this token (${error.message}): check it and try again`;
      }
      return error instanceof ApiError ? error.message : String(error);
    }
    this.api.token = trimmed;
    this.storage?.setItem(TOKEN_KEY, trimmed);
    void this.connect();
    return null;
  }

  /** Drops the token from this tab. */
  forgetToken(): void {
    this.api.token = null;
    this.storage?.removeItem(TOKEN_KEY);
    void this.connect();
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.closeStream();
    this.clearTimer();
    // The snapshot about to load is newer than every event received so far (or from another run): start from it.
    this.eventLog = [];
    this.pending = [];
    this.appliedEventId = null;
    if (this.state.connection.phase === "disconnected") this.setConnection({ phase: "loading" });
    if (!(await this.loadSnapshot(generation))) return;
    if (this.streaming === false) {
      this.failures = 0;
      this.setConnection({ phase: "polling" });
      this.schedule(generation, POLL_MS);
      return;
    }
    await this.openStream(generation);
  }

  /** Loads GET /api/dashboard into the state; false (having handled the failure) when it could not. */
  private async loadSnapshot(generation: number): Promise<boolean> {
    this.snapshotInFlight = true;
    try {
      const snapshot = await this.api.dashboard();
      if (generation !== this.generation) return false;
      this.applySnapshot(snapshot);
      return true;
    } catch (error) {
      if (generation === this.generation) this.fail(error);
      return false;
    } finally {
      this.snapshotInFlight = false;
    }
  }

  private applySnapshot(snapshot: Dashboard): void {
    const now = Date.now();
    this.flush();
    let next = fromSnapshot(this.state, snapshot, now);
    if (typeof snapshot.event_id === "number") {
      const base = snapshot.event_id;
      this.eventLog = this.eventLog.filter((event) => event.id !== null && event.id > base);
      next = applyEvents(next, this.eventLog, now);
      this.appliedEventId = this.eventLog.length ? (this.eventLog[this.eventLog.length - 1].id ?? base) : base;
    }
    this.set({ ...next, streaming: this.streaming === true });
  }

  private async openStream(generation: number): Promise<void> {
    let ticket: string;
    try {
      ticket = (await this.api.eventsTicket()).ticket;
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof ApiError && error.status === 404) {
        // A coordinator from before /api/events: poll it instead.
        this.streaming = false;
        this.failures = 0;
        this.set({ ...this.state, streaming: false, connection: { phase: "polling" } });
        this.schedule(generation, POLL_MS);
        return;
      }
      this.fail(error);
      return;
    }
    if (generation !== this.generation) return;
    this.streaming = true;
    const source = new EventSource(this.api.eventsURL(ticket, this.appliedEventId));
    this.source = source;
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        if (this.source === source) this.receive(type, message as MessageEvent<string>);
      });
    }
    source.onerror = () => {
      if (this.source !== source) return;
      // EventSource would reconnect by itself, but with the old (maybe expired) ticket: do it here instead.
      this.closeStream();
      this.fail(new ApiError(0, "unreachable", "the event stream of the coordinator closed"));
    };
  }

  private receive(type: LiveEvent["type"], message: MessageEvent<string>): void {
    let data: unknown;
    try {
      data = JSON.parse(message.data);
    } catch {
      return; // not JSON: nothing this page can apply
    }
    const id = message.lastEventId ? Number(message.lastEventId) : null;
    const event = { type, data, id: type === "hello" || Number.isNaN(id) ? null : id } as LiveEvent;
    if (event.type === "hello") {
      // A new run id: the coordinator restarted after the snapshot was taken, and its event ids started again.
      const newRun = this.runId !== null && this.runId !== event.data.run_id;
      this.runId = event.data.run_id;
      this.failures = 0;
      this.setConnection({ phase: "live" });
      this.schedule(this.generation, REFRESH_MS);
      if (newRun) this.resync();
      return;
    }
    if (event.type === "reset") {
      this.resync();
      return;
    }
    this.pending.push(event);
    this.flushTimer ??= setTimeout(() => this.flush(), 50);
  }

  /** Forgets the events seen (of another run, or past the server's buffer) and reloads the snapshot; the stream's
   * next events apply meanwhile, and again on top of the snapshot if they are newer than it. */
  private resync(): void {
    this.pending = [];
    this.eventLog = [];
    this.appliedEventId = null;
    void this.refresh(this.generation);
  }

  /** Applies the events received since the last flush (those the state already has are skipped). */
  private flush(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.pending.length === 0) return;
    const events: LiveEvent[] = [];
    for (const event of this.pending) {
      if (event.id === null) continue;
      if (this.appliedEventId !== null && event.id <= this.appliedEventId) continue;
      this.appliedEventId = event.id;
      events.push(event);
    }
    this.pending = [];
    this.eventLog.push(...events);
    if (this.eventLog.length > EVENT_LOG_LIMIT) this.eventLog.splice(0, this.eventLog.length - EVENT_LOG_LIMIT);
    this.set(applyEvents(this.state, events, Date.now()));
  }

  /** Reloads the snapshot (the periodic refresh and the poll), then schedules the next one. */
  private async refresh(generation: number): Promise<void> {
    if (!this.snapshotInFlight && !(await this.loadSnapshot(generation))) return;
    if (generation !== this.generation) return;
    if (this.streaming === false) this.schedule(generation, POLL_MS);
    else if (this.source !== null) this.schedule(generation, REFRESH_MS);
  }

  private schedule(generation: number, delay: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (generation === this.generation) void this.refresh(generation);
    }, delay);
  }

  /** A request failed: ask for the token, or show the countdown to the next attempt. */
  private fail(error: unknown): void {
    this.closeStream();
    this.clearTimer();
    if (error instanceof ApiError && error.unauthenticated) {
      const message = this.api.token ? `the coordinator refused the token this tab held (${error.message})` : null;
      if (this.api.token) {
        this.api.token = null;
        this.storage?.removeItem(TOKEN_KEY);
      }
      this.setConnection({ phase: "token", message });
      return;
    }
    const message = error instanceof ApiError ? error.message : String(error);
    this.streaming = null; // the coordinator that comes back may be another version: probe the stream again
    const delay = RETRY_SECONDS[Math.min(this.failures, RETRY_SECONDS.length - 1)];
    this.failures += 1;
    const generation = ++this.generation;
    this.setConnection({ phase: "disconnected", retryAt: Date.now() + delay * 1000, message });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (generation === this.generation) void this.connect();
    }, delay * 1000);
  }

  private closeStream(): void {
    this.source?.close();
    this.source = null;
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** The part of the live state `select` picks; re-renders when it changes (select must return stored values, not
 * new objects). */
export function useLive<T>(store: Store, select: (state: LiveState) => T): T {
  return useSyncExternalStore(store.subscribe, () => select(store.getState()));
}
