// Status shown in colour and in words (never colour alone), so it reads without colour vision and in screen readers.

export type Tone = "ok" | "warn" | "bad" | "muted" | "info";

const TONES: Record<string, Tone> = {
  healthy: "ok",
  running: "ok",
  committed: "ok",
  released: "ok",
  ok: "ok",
  suspect: "warn",
  stopping: "warn",
  pending: "info",
  dead: "bad",
  failed: "bad",
  aborted: "bad",
  timed_out: "bad",
  left: "muted",
  stopped: "muted",
  completed: "muted",
  deleted: "muted",
};

export function toneOf(status: string): Tone {
  return TONES[status] ?? "muted";
}

export function Badge({ status, label }: { status: string; label?: string }) {
  return (
    <span className={`badge tone-${toneOf(status)}`} data-status={status}>
      <span className="badge-dot" aria-hidden="true" />
      {label ?? status.replace("_", " ")}
    </span>
  );
}
