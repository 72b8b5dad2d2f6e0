// A progress bar of up to three parts (done, in progress, rest) with the figures in words beside it.

export function ProgressBar(props: { label: string; total: number; done: number; inProgress?: number | null }) {
  const { label, total, done } = props;
  const inProgress = props.inProgress ?? 0;
  const pct = (part: number) => (total > 0 ? Math.min(100, (100 * part) / total) : 0);
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={total}
      aria-valuenow={done}
      aria-valuetext={`${done} of ${total} done${inProgress ? `, ${inProgress} in progress` : ""}`}
    >
      <span className="progress-done" style={{ width: `${pct(done)}%` }} />
      <span className="progress-active" style={{ width: `${pct(inProgress)}%` }} />
    </div>
  );
}
