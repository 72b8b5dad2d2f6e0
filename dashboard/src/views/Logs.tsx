// Logs: the coordinator's recent entries with a minimum level and a worker filter, and a follow mode that keeps the
// newest in view. At `info` and above for every worker, entries arrive live over the event stream; other filters
// ask GET /api/logs (again every 2 s while following).

import { useEffect, useMemo, useRef } from "react";
import { LOG_LEVELS } from "../api";
import type { LogEntry, LogLevel } from "../api";
import { FilterBar, SelectFilter } from "../components/Filters";
import { Empty, ErrorNote, Loading } from "../components/States";
import { formatInt, formatTime } from "../format";
import { useLiveState, usePolled, useStore } from "../hooks";
import { useRoute, useSetParams } from "../router";

const LIMIT = 500;

export function Logs() {
  const store = useStore();
  const live = useLiveState((s) => s.logs);
  const workers = useLiveState((s) => s.workers);
  const { params } = useRoute();
  const setParams = useSetParams();

  const levelParam = params.get("level") as LogLevel | null;
  const level: LogLevel = levelParam && LOG_LEVELS.includes(levelParam) ? levelParam : "info";
  const worker = params.get("worker") ?? "";
  const follow = params.get("follow") !== "0";
  const query = (params.get("q") ?? "").toLowerCase();
  const liveOnly = LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf("info");

  // Below `info`, or for one worker, the server filters (entries below info never come over the stream).
  const fetched = usePolled(
    `logs:${level}:${worker}:${liveOnly}`,
    (signal) => (liveOnly && !worker ? Promise.resolve(null) : store.api.logs({ level, worker: worker || undefined, limit: LIMIT }, signal)),
    liveOnly && !worker ? 0 : follow ? 2000 : 0,
  );

  const entries = useMemo(() => {
    const minimum = LOG_LEVELS.indexOf(level);
    const matches = (e: LogEntry) => LOG_LEVELS.indexOf(e.level) >= minimum && (!worker || e.metadata.worker_id === worker);
    let list: LogEntry[];
    if (fetched.data) {
      const last = fetched.data.logs.length ? fetched.data.logs[fetched.data.logs.length - 1].sequence : 0;
      list = [...fetched.data.logs, ...live.filter((e) => e.sequence > last && matches(e))];
    } else {
      list = live.filter(matches);
    }
    if (query) list = list.filter((e) => e.message.toLowerCase().includes(query) || JSON.stringify(e.metadata).toLowerCase().includes(query));
    return list.slice(-LIMIT);
  }, [fetched.data, live, level, worker, query]);

  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [entries, follow]);

  const workerIds = [...new Set(workers.map((w) => w.worker_id))].sort();
  if (worker && !workerIds.includes(worker)) workerIds.push(worker);

  return (
    <>
      <FilterBar label="Filter logs">
        <SelectFilter id="logs-level" label="Level at least" value={level} options={LOG_LEVELS} onChange={(v) => setParams({ level: v === "info" ? null : v })} />
        <SelectFilter id="logs-worker" label="Worker" value={worker} options={workerIds} allLabel="all workers" onChange={(v) => setParams({ worker: v })} />
        <div className="field field-inline">
          <label htmlFor="logs-query">Search</label>
          <input id="logs-query" type="search" placeholder="message or field" value={params.get("q") ?? ""} onChange={(e) => setParams({ q: e.target.value })} />
        </div>
        <div className="field field-inline field-check">
          <input id="logs-follow" type="checkbox" checked={follow} onChange={(e) => setParams({ follow: e.target.checked ? null : "0" })} />
          <label htmlFor="logs-follow">follow</label>
        </div>
      </FilterBar>
      {fetched.error && <ErrorNote message={fetched.error.message} />}
      {fetched.loading && !fetched.data && !(liveOnly && !worker) ? (
        <Loading what="the logs" />
      ) : entries.length === 0 ? (
        <Empty title="No log entry matches these filters." />
      ) : (
        <>
          <p className="muted num">
            {formatInt(entries.length)} entries{follow ? ", following the newest" : ""}
          </p>
          <div
            ref={box}
            className="log-box"
            tabIndex={0}
            role="log"
            aria-label="Coordinator log"
            aria-live={follow ? "polite" : "off"}
            onScroll={(e) => {
              const el = e.currentTarget;
              const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
              if (follow && !atBottom) setParams({ follow: "0" });
            }}
          >
            <ol className="log">
              {entries.map((entry) => (
                <li key={entry.sequence} className={`log-entry entry-${entry.level}`}>
                  <time className="num" dateTime={entry.timestamp}>
                    {formatTime(entry.timestamp)}
                  </time>
                  <span className={`level level-${entry.level}`}>{entry.level}</span>
                  <span className="log-message">{entry.message}</span>
                  {Object.keys(entry.metadata).length > 0 && (
                    <span className="log-meta">
                      {Object.entries(entry.metadata)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(" ")}
                    </span>
                  )}
                </li>
              ))}
            </ol>
          </div>
        </>
      )}
    </>
  );
}
