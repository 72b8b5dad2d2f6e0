// Barriers: the open generations with arrived/expected and who is missing, the counts, the release-latency histogram
// (a generation's last arrival to every waiter resumed), and the generations that ended while this page was open.

import type { Histogram } from "../api";
import { Badge } from "../components/Badge";
import { BarChart } from "../components/Charts";
import { formatDuration, formatInt, formatTime } from "../format";
import { useLiveState } from "../hooks";

export function Barriers() {
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
          <div className="table-scroll" tabIndex={0} role="region" aria-label="Open barriers">
            <table>
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">Barrier</th>
                  <th scope="col" className="num">
                    Generation
                  </th>
                  <th scope="col" className="num">
                    Arrived
                  </th>
                  <th scope="col">Missing ranks</th>
                  <th scope="col" className="num">
                    Waiting
                  </th>
                  <th scope="col" className="num narrow-hide">
                    Times out in
                  </th>
                </tr>
              </thead>
              <tbody>
                {barriers.open.map((b) => (
                  <tr key={`${b.task_id}/${b.name}/${b.generation}`}>
                    <td>{b.task_id}</td>
                    <td>
                      <code>{b.name}</code>
                    </td>
                    <td className="num">{formatInt(b.generation)}</td>
                    <td className="num">
                      {formatInt(b.arrived)} / {formatInt(b.expected)}
                    </td>
                    <td>
                      {b.missing_ranks.length === 0
                        ? "—"
                        : b.missing_ranks.map((rank, i) => (
                            <span key={rank} className="missing" title={b.missing_workers[i]}>
                              {rank}
                              {b.missing_workers[i] ? ` (${b.missing_workers[i]})` : ""}
                            </span>
                          ))}
                    </td>
                    <td className="num">{formatDuration(b.age_seconds)}</td>
                    <td className="num narrow-hide">{formatDuration(b.timeout_in_seconds)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
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
          <div className="table-scroll" tabIndex={0} role="region" aria-label="Recently ended barriers">
            <table>
              <thead>
                <tr>
                  <th scope="col">Seen</th>
                  <th scope="col">Task</th>
                  <th scope="col">Barrier</th>
                  <th scope="col" className="num">
                    Generation
                  </th>
                  <th scope="col">Outcome</th>
                  <th scope="col" className="num">
                    Participants
                  </th>
                  <th scope="col" className="num">
                    Arrival spread
                  </th>
                  <th scope="col">Missing</th>
                </tr>
              </thead>
              <tbody>
                {recent.map((b) => (
                  <tr key={`${b.task_id}/${b.name}/${b.generation}/${b.seen_at}`}>
                    <td className="num">{formatTime(new Date(b.seen_at).toISOString())}</td>
                    <td>{b.task_id}</td>
                    <td>
                      <code>{b.name}</code>
                    </td>
                    <td className="num">{formatInt(b.generation)}</td>
                    <td>
                      <Badge status={b.change} />
                    </td>
                    <td className="num">{formatInt(b.participants)}</td>
                    <td className="num">{formatDuration(b.wait_seconds)}</td>
                    <td>{b.missing_ranks.length ? b.missing_ranks.map((r, i) => `${r} (${b.missing_workers[i] ?? "?"})`).join(", ") : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
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
      <p className="num">{summary}</p>
      <BarChart labels={labels} counts={counts} xLabel="latency" description={`Histogram of ${summary}`} />
    </>
  );
}
