// Training: for one task, every metric its workers report charted against step, a line per worker and their mean
// (from GET /api/tasks/:id/metrics, reloaded every 2 s, with each worker's newest report from the live state added),
// and the live step rate and metrics of each worker.

import { useMemo, useState } from "react";
import type { ApiError, MetricPoint, TaskMetrics, Worker } from "../api";
import { Badge } from "../components/Badge";
import { LineChart, PALETTE } from "../components/Charts";
import { DataTable } from "../components/DataTable";
import type { Column, Sort } from "../components/DataTable";
import type { Series } from "../components/Charts";
import { FilterBar, SelectFilter } from "../components/Filters";
import { StartWorkers } from "../components/StartWorkers";
import { Empty, ErrorNote, Loading } from "../components/States";
import { formatInt, formatNumber, formatRate, plural } from "../format";
import { useLiveState, usePolled, useStore } from "../hooks";
import { useRoute, useSetParams } from "../router";
import { stepsPerSecond } from "../state";
import { MetricsList } from "./Workers";

const RELOAD_MS = 2000;

const LIVE_COLUMNS: Column<Worker>[] = [
  { key: "rank", label: "Rank", numeric: true, value: (w) => w.rank, render: (w) => w.rank ?? "—" },
  {
    key: "id",
    label: "Worker",
    value: (w) => w.worker_id,
    render: (w) => (
      <>
        <code>{w.worker_id}</code>
        {w.straggler && <span className="flag">straggler</span>}
      </>
    ),
  },
  { key: "status", label: "Status", value: (w) => w.status, render: (w) => <Badge status={w.status} /> },
  { key: "step", label: "Step", numeric: true, value: (w) => w.step, render: (w) => formatInt(w.step) },
  { key: "rate", label: "Steps/s", numeric: true, value: (w) => w.steps_per_second, render: (w) => formatRate(w.steps_per_second, "/s") },
  { key: "metrics", label: "Metrics", className: "cell-wide", render: (w) => <MetricsList metrics={w.metrics} /> },
];

export function Training() {
  const store = useStore();
  const tasks = useLiveState((s) => s.tasks);
  const allWorkers = useLiveState((s) => s.workers);
  const { params } = useRoute();
  const setParams = useSetParams();
  const [sort, setSort] = useState<Sort>({ key: "rank", dir: "asc" });

  const candidates = tasks.filter((t) => t.workers > 0 || t.status === "running").map((t) => t.task_id);
  const taskIds = [...new Set([...candidates, ...tasks.map((t) => t.task_id), ...allWorkers.map((w) => w.task_id)])];
  const task = params.get("task") || candidates[0] || taskIds[0] || "";
  const workers = useMemo(() => allWorkers.filter((w) => w.task_id === task), [allWorkers, task]);
  const history = usePolled(`metrics:${task}`, (signal) => (task ? store.api.taskMetrics(task, signal) : Promise.resolve(null)), task ? RELOAD_MS : 0);

  if (taskIds.length === 0) return <StartWorkers />;
  const missingEndpoint = isMissingRoute(history.error);

  return (
    <>
      <FilterBar label="Choose the task">
        <SelectFilter id="training-task" label="Task" value={task} options={taskIds} onChange={(v) => setParams({ task: v })} />
        <p className="num filter-fact">
          {plural(workers.filter((w) => w.status === "healthy" || w.status === "suspect").length, "member")} ·{" "}
          {formatRate(stepsPerSecond(workers), "steps/s")}
        </p>
      </FilterBar>
      {history.error && !missingEndpoint ? (
        <ErrorNote message={history.error.message} />
      ) : missingEndpoint ? (
        <p className="note">
          This coordinator keeps no metric history (it has no <code>GET /api/tasks/:id/metrics</code>): the charts
          start from the workers' latest reports.
        </p>
      ) : null}
      {history.loading && !history.data && !missingEndpoint ? (
        <Loading what={`the metrics of ${task}`} />
      ) : (
        <MetricCharts task={task} history={history.data} workers={workers} />
      )}
      <section className="card" aria-labelledby="live-workers">
        <h2 id="live-workers">Workers of {task}, live</h2>
        {workers.length === 0 ? (
          <p className="muted">No worker of this task is known right now.</p>
        ) : (
          <DataTable
            caption={`Workers of ${task}`}
            columns={LIVE_COLUMNS}
            rows={workers}
            rowKey={(w) => w.worker_id}
            sort={sort}
            onSort={setSort}
            rowClass={(w) => (w.straggler ? "row-flagged" : undefined)}
            rowAttributes={(w) => ({ "data-worker-id": w.worker_id, "data-status": w.status })}
          />
        )}
      </section>
    </>
  );
}

interface MetricChart {
  metric: string;
  series: Series[];
  workers: number;
  /** The newest point of the mean (or, without one, of any worker). */
  latest: { step: number; value: number | null; mean: boolean } | null;
}

/** The charts' series: the coordinator's history, each worker's newest live report appended when it is newer. */
function buildCharts(history: TaskMetrics | null, workers: readonly Worker[]): MetricChart[] {
  const names = new Set(history?.metrics ?? []);
  for (const w of workers) for (const key of Object.keys(w.metrics)) names.add(key);
  const workerIds = [...new Set([...(history?.series.map((s) => s.worker_id) ?? []), ...workers.map((w) => w.worker_id)])].sort();
  const colour = (id: string) => PALETTE[workerIds.indexOf(id) % PALETTE.length];
  return [...names].sort().map((metric) => {
    const lines = new Map<string, MetricPoint[]>();
    for (const s of history?.series ?? []) if (s.metric === metric) lines.set(s.worker_id, s.points.slice());
    for (const w of workers) {
      if (!(metric in w.metrics)) continue;
      const points = lines.get(w.worker_id) ?? [];
      const last = points[points.length - 1];
      if (!last || w.step > last[0]) points.push([w.step, w.metrics[metric]]);
      lines.set(w.worker_id, points);
    }
    const series: Series[] = [...lines.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, points]) => ({ label: id, color: colour(id), points: points.map(([x, y]) => ({ x, y })) }));
    const mean = history?.mean.find((m) => m.metric === metric)?.points ?? [];
    if (mean.length > 0 && lines.size > 1) {
      series.push({ label: "mean", color: "fg", width: 2.5, points: mean.map(([x, y]) => ({ x, y })) });
    }
    const hasMean = mean.length > 0 && lines.size > 1;
    const latestLine = hasMean ? mean : [...lines.values()].flat().sort((a, b) => a[0] - b[0]);
    const last = latestLine[latestLine.length - 1];
    return { metric, series, workers: lines.size, latest: last ? { step: last[0], value: last[1], mean: hasMean } : null };
  });
}

function MetricCharts({ task, history, workers }: { task: string; history: TaskMetrics | null; workers: readonly Worker[] }) {
  const charts = useMemo(() => buildCharts(history, workers), [history, workers]);
  if (charts.length === 0) {
    return (
      <Empty title={`No metrics reported in ${task} yet.`}>
        <p>
          Workers report them with <code>worker.report(step=step, loss=loss)</code>; they are charted here against
          the step.
        </p>
      </Empty>
    );
  }
  return (
    <div className="chart-grid">
      {charts.map((chart) => {
        const latest = chart.latest
          ? `${chart.latest.mean ? "mean " : ""}${formatNumber(chart.latest.value, 4)} at step ${formatInt(chart.latest.step)}`
          : "no value yet";
        return (
          <figure className="card chart-card" key={chart.metric} data-metric={chart.metric} data-latest-step={chart.latest?.step ?? ""}>
            <figcaption>
              <span className="chart-title">{chart.metric}</span>
              <span className="muted num">
                {plural(chart.workers, "worker")} · {latest}
              </span>
            </figcaption>
            <LineChart
              metric={chart.metric}
              series={chart.series}
              xLabel="step"
              description={`${chart.metric} against step in task ${task}: a line per worker (${chart.series
                .filter((s) => s.label !== "mean")
                .map((s) => s.label)
                .join(", ")})${chart.series.some((s) => s.label === "mean") ? " and their mean" : ""}; latest ${latest}`}
            />
          </figure>
        );
      })}
    </div>
  );
}

/** Whether the coordinator lacks the route (it predates it), rather than the task. */
function isMissingRoute(error: ApiError | null): boolean {
  return error?.status === 404 && error.message.startsWith("no route");
}
