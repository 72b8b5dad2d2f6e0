// Barriers: the open generations with arrived/expected and who is missing, the counts, the release-latency histogram
// (a generation's last arrival to every waiter resumed), and the generations that ended while this page was open.

import { useState } from "react";
import type { Histogram, OpenBarrier } from "../api";
import { DataTable } from "../components/DataTable";
import type { Column, Sort } from "../components/DataTable";
import type { EndedBarrier } from "../state";
import { Badge } from "../components/Badge";
import { BarChart } from "../components/Charts";
import { formatDuration, formatInt, formatTime } from "../format";
import { useLiveState } from "../hooks";

const OPEN_COLUMNS: Column<OpenBarrier>[] = [
  { key: "task", label: "Task", value: (b) => b.task_id, render: (b) => b.task_id },
  { key: "name", label: "Barrier", value: (b) => b.name, render: (b) => <code>{b.name}</code> },
  { key: "generation", label: "Generation", numeric: true, value: (b) => b.generation, render: (b) => formatInt(b.generation) },
  {
    key: "arrived",
    label: "Arrived",
    numeric: true,
    value: (b) => b.arrived / Math.max(1, b.expected),
    render: (b) => `${formatInt(b.arrived)} / ${formatInt(b.expected)}`,
  },
  {
    key: "missing",
    label: "Missing ranks",
    className: "cell-wide",
    value: (b) => b.missing_ranks.length,
    render: (b) =>
      b.missing_ranks.length === 0
        ? "—"
        : b.missing_ranks.map((rank, i) => (
            <span key={rank} className="missing">
              {rank}
              {b.missing_workers[i] ? ` (${b.missing_workers[i]})` : ""}
            </span>
          )),
  },
  { key: "age", label: "Waiting", numeric: true, value: (b) => b.age_seconds, render: (b) => formatDuration(b.age_seconds) },
  {
    key: "timeout",
    label: "Times out in",
    numeric: true,
    className: "narrow-hide",
    value: (b) => b.timeout_in_seconds,
    render: (b) => formatDuration(b.timeout_in_seconds),
  },
];

const RECENT_COLUMNS: Column<EndedBarrier>[] = [
  { key: "seen", label: "Seen", numeric: true, value: (b) => b.seen_at, render: (b) => formatTime(new Date(b.seen_at).toISOString()) },
  { key: "task", label: "Task", value: (b) => b.task_id, render: (b) => b.task_id },
  { key: "name", label: "Barrier", value: (b) => b.name, render: (b) => <code>{b.name}</code> },
  { key: "generation", label: "Generation", numeric: true, value: (b) => b.generation, render: (b) => formatInt(b.generation) },
  { key: "outcome", label: "Outcome", value: (b) => b.change, render: (b) => <Badge status={b.change} /> },
  { key: "participants", label: "Participants", numeric: true, value: (b) => b.participants, render: (b) => formatInt(b.participants) },
  {
    key: "spread",
    label: "Arrival spread",
    numeric: true,
    value: (b) => b.wait_seconds,
    render: (b) => formatDuration(b.wait_seconds),
  },
  {
    key: "missing",
    label: "Missing",
    className: "cell-wide",
    render: (b) => (b.missing_ranks.length ? b.missing_ranks.map((r, i) => `${r} (${b.missing_workers[i] ?? "?"})`).join(", ") : "—"),
  },
];

export function Barriers() {
  const [openSort, setOpenSort] = useState<Sort>({ key: "age", dir: "desc" });
  const [recentSort, setRecentSort] = useState<Sort>({ key: "seen", dir: "desc" });
  const barriers = useLiveState((s) => s.barriers);
  const recent = useLiveState((s) => s.recentBarriers);
  const streaming = useLiveState((s) => s.streaming);
  if (!barriers) return null;
  return (
    <>
      <section className="tiles" aria-label="Barrier counts">
        <article className="tile">
          <h2>Open</h2>
          <p className="tile-value num">{formatInt(barriers.open.length)}</p>
        </article>
        <article className="tile">
          <h2>Released</h2>
          <p className="tile-value num">{formatInt(barriers.released)}</p>
        </article>
        <article className="tile">
          <h2>Failed</h2>
          <p className="tile-value num">{formatInt(barriers.failed)}</p>
          <p className="muted">aborted or timed out</p>
        </article>
        <article className="tile">
          <h2>Wait at a barrier</h2>
          <p className="tile-value num">{formatDuration(barriers.wait_time.p50_seconds)}</p>
          <p className="muted num">
            median · p99 {formatDuration(barriers.wait_time.p99_seconds)}
          </p>
        </article>
      </section>

      <section className="card" aria-labelledby="open-barriers">
        <h2 id="open-barriers">Open barriers</h2>
        {barriers.open.length === 0 ? (
          <p className="muted">No barrier is waiting for anyone.</p>
        ) : (
          <DataTable
            caption="Open barriers"
            columns={OPEN_COLUMNS}
            rows={barriers.open}
            rowKey={(b) => `${b.task_id}/${b.name}/${b.generation}`}
            sort={openSort}
            onSort={setOpenSort}
            rowAttributes={(b) => ({ "data-barrier": `${b.task_id}/${b.name}` })}
          />
        )}
      </section>

      <section className="card" aria-labelledby="release-latency">
        <h2 id="release-latency">Release latency</h2>
        <p className="muted">From a generation's last arrival to every waiter resumed.</p>
        <HistogramChart histogram={barriers.release_latency} what="released generations" />
      </section>

      <section className="card" aria-labelledby="recent-barriers">
        <h2 id="recent-barriers">Ended while this page was open</h2>
        {recent.length === 0 ? (
          <p className="muted">
            {streaming ? "None yet." : "This coordinator sends no barrier events (it has no /api/events)."}
          </p>
        ) : (
          <DataTable
            caption="Recently ended barriers"
            columns={RECENT_COLUMNS}
            rows={recent}
            rowKey={(b) => `${b.task_id}/${b.name}/${b.generation}/${b.seen_at}`}
            sort={recentSort}
            onSort={setRecentSort}
          />
        )}
      </section>
    </>
  );
}

/** Bucket label: `≤ 100 µs`, or `> 100 s` for the last (+∞) bucket. */
function bucketLabel(le: number | null, previous: number | null): string {
  return le === null ? `> ${formatDuration(previous)}` : `≤ ${formatDuration(le)}`;
}

/** The non-empty range of a cumulative histogram, as per-bucket counts. */
export function histogramBars(histogram: Histogram): { labels: string[]; counts: number[] } {
  const counts = histogram.buckets.map((b, i) => b.count - (i > 0 ? histogram.buckets[i - 1].count : 0));
  let first = counts.findIndex((c) => c > 0);
  let last = counts.length - 1 - [...counts].reverse().findIndex((c) => c > 0);
  if (first < 0) return { labels: [], counts: [] };
  first = Math.max(0, first - 1);
  last = Math.min(counts.length - 1, last + 1);
  const labels = histogram.buckets.map((b, i) => bucketLabel(b.le, i > 0 ? histogram.buckets[i - 1].le : null));
  return { labels: labels.slice(first, last + 1), counts: counts.slice(first, last + 1) };
}

function HistogramChart({ histogram, what }: { histogram: Histogram; what: string }) {
  if (histogram.count === 0) return <p className="muted">No {what} yet.</p>;
  const { labels, counts } = histogramBars(histogram);
  const summary = `${formatInt(histogram.count)} ${what}: median ${formatDuration(histogram.p50_seconds)}, p90 ${formatDuration(
    histogram.p90_seconds,
  )}, p99 ${formatDuration(histogram.p99_seconds)}, max ${formatDuration(histogram.max_seconds)}`;
  return (
    <>
      <p>{summary}</p>
      <BarChart labels={labels} counts={counts} xLabel="latency" description={`Histogram of ${summary}`} />
    </>
  );
}
