// Workers: rank, id, host, GPUs, task, status (colour and words), heartbeat age, step, step rate and the last metrics,
// sortable by every column and filtered by task and status (all in the URL). Stragglers are flagged.

import { WORKER_HEALTHS } from "../api";
import type { Worker } from "../api";
import { Badge } from "../components/Badge";
import { DataTable, sortFromParams } from "../components/DataTable";
import type { Column } from "../components/DataTable";
import { FilterBar, SelectFilter } from "../components/Filters";
import { StartWorkers } from "../components/StartWorkers";
import { Empty } from "../components/States";
import { formatAge, formatInt, formatNumber, formatRate, plural } from "../format";
import { useLiveState, useNow } from "../hooks";
import { href, useRoute, useSetParams } from "../router";
import { heartbeatAge } from "../state";
import type { LiveState } from "../state";

const selectState = (s: LiveState) => s;

export function Workers() {
  const state = useLiveState(selectState);
  const { params } = useRoute();
  const setParams = useSetParams();
  const now = useNow(1000);
  const workers = state.workers;
  if (workers.length === 0) return <StartWorkers />;

  const task = params.get("task") ?? "";
  const status = params.get("status") ?? "";
  const query = (params.get("q") ?? "").toLowerCase();
  const stragglersOnly = params.get("stragglers") === "1";
  const tasks = [...new Set(workers.map((w) => w.task_id))].sort();
  const rows = workers.filter(
    (w) =>
      (!task || w.task_id === task) &&
      (!status || w.status === status) &&
      (!stragglersOnly || w.straggler === true) &&
      (!query || w.worker_id.toLowerCase().includes(query) || w.host.toLowerCase().includes(query)),
  );
  const stragglers = workers.filter((w) => w.straggler).length;

  const columns: Column<Worker>[] = [
    { key: "rank", label: "Rank", numeric: true, value: (w) => w.rank, render: (w) => (w.rank === null ? "—" : w.rank) },
    {
      key: "id",
      label: "Worker",
      value: (w) => w.worker_id,
      render: (w) => (
        <span className="worker-id">
          <code>{w.worker_id}</code>
          {w.straggler && (
            <span className="flag" title="Its step rate is below 2/3 of its task's median">
              straggler
            </span>
          )}
          {w.demo && <span className="flag flag-muted">demo</span>}
        </span>
      ),
    },
    { key: "host", label: "Host", className: "narrow-hide", value: (w) => w.host, render: (w) => `${w.host}:${w.port}` },
    { key: "gpus", label: "GPUs", numeric: true, className: "narrow-hide", value: (w) => w.gpu_count, render: (w) => formatInt(w.gpu_count) },
    {
      key: "task",
      label: "Task",
      value: (w) => w.task_id,
      render: (w) => <a href={href("training", { task: w.task_id })}>{w.task_id}</a>,
    },
    { key: "status", label: "Status", value: (w) => WORKER_HEALTHS.indexOf(w.status), render: (w) => <Badge status={w.status} /> },
    {
      key: "age",
      label: "Heartbeat",
      numeric: true,
      value: (w) => heartbeatAge(state, w, now),
      render: (w) => formatAge(heartbeatAge(state, w, now)) + " ago",
    },
    { key: "step", label: "Step", numeric: true, value: (w) => w.step, render: (w) => formatInt(w.step) },
    {
      key: "rate",
      label: "Steps/s",
      numeric: true,
      value: (w) => w.steps_per_second,
      render: (w) => formatRate(w.steps_per_second, "/s"),
    },
    {
      key: "metrics",
      label: "Last metrics",
      className: "cell-wide",
      render: (w) => <MetricsList metrics={w.metrics} />,
    },
  ];

  return (
    <>
      <FilterBar label="Filter workers">
        <SelectFilter id="filter-task" label="Task" value={task} options={tasks} allLabel="all tasks" onChange={(v) => setParams({ task: v })} />
        <SelectFilter
          id="filter-status"
          label="Status"
          value={status}
          options={WORKER_HEALTHS}
          allLabel="any status"
          onChange={(v) => setParams({ status: v })}
        />
        <div className="field field-inline">
          <label htmlFor="filter-query">Search</label>
          <input
            id="filter-query"
            type="search"
            placeholder="worker id or host"
            value={params.get("q") ?? ""}
            onChange={(e) => setParams({ q: e.target.value })}
          />
        </div>
        <div className="field field-inline field-check">
          <input
            id="filter-stragglers"
            type="checkbox"
            checked={stragglersOnly}
            onChange={(e) => setParams({ stragglers: e.target.checked ? "1" : null })}
          />
          <label htmlFor="filter-stragglers">stragglers only ({formatInt(stragglers)})</label>
        </div>
      </FilterBar>
      <p className="muted" aria-live="polite">
        {plural(rows.length, "worker")} shown of {formatInt(workers.length)}
      </p>
      {rows.length === 0 ? (
        <Empty title="No worker matches these filters.">
          <button type="button" onClick={() => setParams({ task: null, status: null, q: null, stragglers: null })}>
            Clear the filters
          </button>
        </Empty>
      ) : (
        <DataTable
          caption="Workers"
          columns={columns}
          rows={rows}
          rowKey={(w) => w.worker_id}
          sort={sortFromParams(params, { key: "task", dir: "asc" })}
          onSort={(s) => setParams({ sort: s.key, dir: s.dir })}
          rowClass={(w) => (w.straggler ? "row-flagged" : w.status === "dead" ? "row-dead" : undefined)}
          rowAttributes={(w) => ({ "data-worker-id": w.worker_id, "data-status": w.status })}
        />
      )}
    </>
  );
}

export function MetricsList({ metrics }: { metrics: Record<string, number | null> }) {
  const entries = Object.entries(metrics).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <span className="muted">none</span>;
  return (
    <span className="metrics-list">
      {entries.slice(0, 4).map(([key, value]) => (
        <span key={key} className="metric">
          <span className="metric-key">{key}</span> <span className="num">{value === null ? "NaN" : formatNumber(value, 4)}</span>
        </span>
      ))}
      {entries.length > 4 && <span className="muted">+{entries.length - 4}</span>}
    </span>
  );
}
