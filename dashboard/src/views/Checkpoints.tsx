// Checkpoints: every attempt with step, epoch, status, parts, size, write throughput and commit latency; per task the
// latest committed one and the best by a chosen metric are marked.

import type { Checkpoint } from "../api";
import { Badge } from "../components/Badge";
import { DataTable, sortFromParams } from "../components/DataTable";
import type { Column } from "../components/DataTable";
import { FilterBar, SelectFilter } from "../components/Filters";
import { Command, Empty } from "../components/States";
import { formatBytes, formatDuration, formatInt, formatNumber, formatThroughput, formatTime, plural } from "../format";
import { useLiveState } from "../hooks";
import { useRoute, useSetParams } from "../router";

/** Whether lower values of a metric are better, guessed from its name (accuracy-like metrics are maximised). */
export function lowerIsBetter(metric: string): boolean {
  return !/acc|precision|recall|f1|auc|score|reward|bleu|iou/i.test(metric);
}

/** Whether `a` was committed after `b` (times have whole seconds: then the higher step, then the later attempt). */
function committedLater(a: Checkpoint, b: Checkpoint): boolean {
  const at = a.committed_at ?? "";
  const bt = b.committed_at ?? "";
  if (at !== bt) return at > bt;
  return a.step !== b.step ? a.step > b.step : a.attempt > b.attempt;
}

/** Per task: the id of the latest committed checkpoint and of the best by `metric`. */
export function marks(checkpoints: readonly Checkpoint[], metric: string, mode: "min" | "max"): { latest: Set<string>; best: Set<string> } {
  const latest = new Map<string, Checkpoint>();
  const best = new Map<string, Checkpoint>();
  for (const c of checkpoints) {
    if (c.status !== "committed") continue;
    const current = latest.get(c.task_id);
    if (!current || committedLater(c, current)) latest.set(c.task_id, c);
    const value = c.metrics[metric];
    if (typeof value !== "number") continue;
    const held = best.get(c.task_id);
    const better = !held || (mode === "min" ? value < held.metrics[metric] : value > held.metrics[metric]);
    if (better) best.set(c.task_id, c);
  }
  return {
    latest: new Set([...latest.values()].map((c) => c.checkpoint_id)),
    best: new Set([...best.values()].map((c) => c.checkpoint_id)),
  };
}

export function Checkpoints() {
  const checkpoints = useLiveState((s) => s.checkpoints);
  const { params } = useRoute();
  const setParams = useSetParams();
  if (!checkpoints) return null;
  const all = checkpoints.checkpoints;
  const storeLine = checkpoints.store ? (
    <p className="muted">
      Store: <code>{checkpoints.store.uri}</code>
      {checkpoints.store.endpoint && (
        <>
          {" "}
          at <code>{checkpoints.store.endpoint}</code>
        </>
      )}
    </p>
  ) : (
    <p className="muted">This coordinator has no checkpoint store.</p>
  );
  if (all.length === 0) {
    return (
      <>
        {storeLine}
        <Empty title="No checkpoint yet.">
          <p>Training scripts save them through the SDK; each rank writes its part and the coordinator commits them together:</p>
          <Command>{`from dtruntime import CheckpointManager\nmanager = CheckpointManager(worker)\nmanager.save(step, model.state_dict(), metrics={"loss": loss})`}</Command>
        </Empty>
      </>
    );
  }
  const task = params.get("task") ?? "";
  const status = params.get("status") ?? "";
  const metricNames = [...new Set(all.flatMap((c) => Object.keys(c.metrics)))].sort();
  const metric = params.get("best") ?? (metricNames.includes("loss") ? "loss" : metricNames[0] ?? "");
  const modeParam = params.get("mode");
  const mode = modeParam === "max" || modeParam === "min" ? modeParam : lowerIsBetter(metric) ? "min" : "max";
  const { latest, best } = marks(all, metric, mode);
  const rows = all.filter((c) => (!task || c.task_id === task) && (!status || c.status === status));
  const tasks = [...new Set(all.map((c) => c.task_id))].sort();

  const columns: Column<Checkpoint>[] = [
    { key: "task", label: "Task", value: (c) => c.task_id, render: (c) => c.task_id },
    { key: "step", label: "Step", numeric: true, value: (c) => c.step, render: (c) => formatInt(c.step) },
    { key: "epoch", label: "Epoch", numeric: true, value: (c) => c.epoch, render: (c) => formatInt(c.epoch) },
    {
      key: "status",
      label: "Status",
      value: (c) => c.status,
      render: (c) => (
        <span className="marks">
          <Badge status={c.status} />
          {latest.has(c.checkpoint_id) && <span className="flag flag-info">latest</span>}
          {best.has(c.checkpoint_id) && <span className="flag flag-ok">best {metric}</span>}
          {c.abort_reason && <span className="muted abort-reason">{c.abort_reason}</span>}
        </span>
      ),
    },
    {
      key: "parts",
      label: "Parts",
      numeric: true,
      value: (c) => c.parts,
      render: (c) => (
        <>
          {formatInt(c.parts)} / {formatInt(c.world_size)}
          {c.missing_ranks.length > 0 && (
            <span className="muted">
              {" "}
              (waiting for {c.missing_ranks.length === 1 ? "rank" : "ranks"} {c.missing_ranks.join(", ")})
            </span>
          )}
        </>
      ),
    },
    { key: "size", label: "Size", numeric: true, value: (c) => c.total_bytes, render: (c) => formatBytes(c.total_bytes) },
    {
      key: "throughput",
      label: "Write",
      numeric: true,
      value: (c) => c.write_bytes_per_second,
      render: (c) => formatThroughput(c.write_bytes_per_second),
    },
    {
      key: "latency",
      label: "Commit latency",
      numeric: true,
      value: (c) => c.commit_latency_seconds,
      render: (c) => formatDuration(c.commit_latency_seconds),
    },
    {
      key: "created",
      label: "Created",
      numeric: true,
      className: "narrow-hide",
      value: (c) => c.created_at,
      render: (c) => formatTime(c.created_at),
    },
    {
      key: "metrics",
      label: "Metrics",
      className: "narrow-hide cell-wide",
      render: (c) =>
        Object.keys(c.metrics).length === 0 ? (
          <span className="muted">none</span>
        ) : (
          Object.entries(c.metrics)
            .map(([k, v]) => `${k} ${formatNumber(v, 4)}`)
            .join(" · ")
        ),
    },
  ];

  return (
    <>
      {storeLine}
      <FilterBar label="Filter checkpoints">
        <SelectFilter id="checkpoints-task" label="Task" value={task} options={tasks} allLabel="all tasks" onChange={(v) => setParams({ task: v })} />
        <SelectFilter
          id="checkpoints-status"
          label="Status"
          value={status}
          options={["pending", "committed", "aborted", "deleted"]}
          allLabel="any status"
          onChange={(v) => setParams({ status: v })}
        />
        {metricNames.length > 0 && (
          <>
            <SelectFilter id="checkpoints-best" label="Best by" value={metric} options={metricNames} onChange={(v) => setParams({ best: v, mode: null })} />
            <SelectFilter
              id="checkpoints-mode"
              label="Better is"
              value={mode}
              options={[
                { value: "min", label: "lower" },
                { value: "max", label: "higher" },
              ]}
              onChange={(v) => setParams({ mode: v })}
            />
          </>
        )}
      </FilterBar>
      <p className="muted">{plural(rows.length, "checkpoint attempt")} shown, newest first</p>
      {rows.length === 0 ? (
        <Empty title="No checkpoint matches these filters." />
      ) : (
        <DataTable
          caption="Checkpoints"
          columns={columns}
          rows={rows}
          rowKey={(c) => c.checkpoint_id}
          sort={params.get("sort") ? sortFromParams(params, { key: "created", dir: "desc" }) : null}
          onSort={(s) => setParams({ sort: s.key, dir: s.dir })}
          rowAttributes={(c) => ({ "data-checkpoint-id": c.checkpoint_id })}
        />
      )}
    </>
  );
}
