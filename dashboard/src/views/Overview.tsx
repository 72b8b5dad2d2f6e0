// Overview: health, version and uptime; tasks and workers by status; steps/s and heartbeats/s with sparklines of the
// last minutes; the running tasks.

import { TASK_STATUSES, WORKER_HEALTHS } from "../api";
import { Badge } from "../components/Badge";
import { Sparkline } from "../components/Sparkline";
import { StartWorkers } from "../components/StartWorkers";
import { formatDuration, formatInt, formatNumber, formatRate, plural } from "../format";
import { useLiveState, useNow } from "../hooks";
import { href } from "../router";
import { countBy, stepsPerSecond } from "../state";

export function Overview() {
  const status = useLiveState((s) => s.status);
  const metrics = useLiveState((s) => s.metrics);
  const workers = useLiveState((s) => s.workers);
  const tasks = useLiveState((s) => s.tasks);
  const history = useLiveState((s) => s.history);
  const fromServer = useLiveState((s) => s.historyFromServer);
  const updatedAt = useLiveState((s) => s.updatedAt);
  const now = useNow(1000);
  if (!status || !metrics) return null;

  const byStatus = countBy(workers, (w) => w.status, WORKER_HEALTHS);
  const tasksByStatus = countBy(tasks, (t) => t.status, TASK_STATUSES);
  const steps = stepsPerSecond(workers);
  const uptime = status.uptime_seconds + Math.max(0, now - updatedAt) / 1000;
  const span = history.length > 1 ? formatDuration((Date.parse(history[history.length - 1].at) - Date.parse(history[0].at)) / 1000) : null;
  const sparkNote = span ? `last ${span}${fromServer ? "" : " (since this page opened)"}` : "collecting history";
  const members = byStatus.healthy + byStatus.suspect;
  const active = tasks.filter((t) => t.status === "running" || t.status === "stopping" || t.status === "pending");

  return (
    <>
      <section className="tiles" aria-label="Summary">
        <article className="tile tile-wide">
          <h2>Coordinator</h2>
          <p className="tile-value">
            <Badge status="ok" label="healthy" />
          </p>
          <dl className="facts">
            <dt>version</dt>
            <dd>{status.version}</dd>
            <dt>uptime</dt>
            <dd className="num">{formatDuration(uptime)}</dd>
            <dt>sessions</dt>
            <dd className="num">{formatInt(status.sessions)}</dd>
            <dt>heartbeats</dt>
            <dd className="num">every {formatDuration(status.heartbeat.interval_ms / 1000)}</dd>
            <dt>dead after</dt>
            <dd className="num">{formatDuration(status.heartbeat.dead_after_ms / 1000)} of silence</dd>
          </dl>
        </article>

        <article className="tile tile-wide" data-tile="workers">
          <h2>
            <a href={href("workers")}>Workers</a>
          </h2>
          <p className="tile-value num">
            {formatInt(members)} <span className="unit">{members === 1 ? "member" : "members"}</span>
          </p>
          <ul className="counts">
            {WORKER_HEALTHS.map((health) => (
              <li key={health}>
                <a href={href("workers", { status: health })}>
                  <Badge status={health} /> <span className="num">{formatInt(byStatus[health])}</span>
                </a>
              </li>
            ))}
          </ul>
          <Sparkline values={history.map((p) => p.workers)} label={`Members over the ${sparkNote}`} />
        </article>

        <article className="tile" data-tile="tasks">
          <h2>
            <a href={href("tasks")}>Tasks</a>
          </h2>
          <p className="tile-value num">
            {formatInt(tasks.length)} <span className="unit">{tasks.length === 1 ? "task" : "tasks"}</span>
          </p>
          <ul className="counts">
            {TASK_STATUSES.filter((s) => tasksByStatus[s] > 0 || s === "running").map((s) => (
              <li key={s}>
                <Badge status={s} /> <span className="num">{formatInt(tasksByStatus[s])}</span>
              </li>
            ))}
          </ul>
        </article>

        <article className="tile" data-tile="steps">
          <h2>Training steps</h2>
          <p className="tile-value num">
            <Value value={steps ?? (fromServer ? history[history.length - 1]?.steps_per_second : null)} unit="steps/s" />
          </p>
          <p className="muted">summed over the members</p>
          <Sparkline values={history.map((p) => p.steps_per_second)} label={`Steps per second over the ${sparkNote}`} />
          <p className="tile-foot muted">{sparkNote}</p>
        </article>

        <article className="tile" data-tile="heartbeats">
          <h2>Heartbeats</h2>
          <p className="tile-value num">
            <Value value={metrics.heartbeats_per_second} unit="per second" />
          </p>
          <p className="muted">{formatInt(metrics.heartbeats_total)} since start-up</p>
          <Sparkline values={history.map((p) => p.heartbeats_per_second)} label={`Heartbeats per second over the ${sparkNote}`} />
          <p className="tile-foot muted">{sparkNote}</p>
        </article>
      </section>

      {workers.length === 0 ? (
        <StartWorkers />
      ) : (
        <section className="card" aria-labelledby="active-tasks">
          <h2 id="active-tasks">Active tasks</h2>
          {active.length === 0 ? (
            <p className="muted">No task is running.</p>
          ) : (
            <ul className="task-list">
              {active.map((task) => {
                const taskWorkers = workers.filter((w) => w.task_id === task.task_id);
                const rate = stepsPerSecond(taskWorkers);
                return (
                  <li key={task.task_id}>
                    <a href={href("training", { task: task.task_id })} className="task-link">
                      {task.task_id}
                    </a>{" "}
                    <Badge status={task.status} />{" "}
                    <span className="num">
                      {plural(task.workers, "worker")}
                      {task.world_size ? ` of ${formatInt(task.world_size)}` : ""}
                    </span>
                    {rate !== null && <span className="num"> · {formatRate(rate, "steps/s")}</span>}
                  </li>
                );
              })}
            </ul>
          )}
        </section>
      )}
    </>
  );
}

/** A figure in the tile's large type, its unit smaller beside it. */
function Value({ value, unit }: { value: number | null | undefined; unit: string }) {
  if (value === null || value === undefined) return <span className="muted">—</span>;
  return (
    <>
      {formatNumber(value, value >= 100 ? 4 : 3)} <span className="unit">{unit}</span>
    </>
  );
}
