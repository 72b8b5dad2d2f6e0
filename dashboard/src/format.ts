// Numbers as people read them: always with their unit, a sensible number of digits, and an explicit "—" for values
// the coordinator does not know (null). The CSS shows them with tabular digits so columns line up.

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** The dash shown for an unknown value. */
export const NONE = "—";

/** `1,234` */
export function formatInt(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? NONE : integer.format(value);
}

/** A number with about `digits` significant digits, e.g. `0.0123`, `12.3`, `1,234`. */
export function formatNumber(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined) return NONE;
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 10 ** digits) return integer.format(value);
  if (magnitude < 1e-4) return value.toExponential(digits - 1);
  return Number(value.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 20 });
}

/** A duration in seconds: `850 µs`, `12.5 ms`, `1.8 s`, `3 min 12 s`, `2 h 05 min`, `3 d 4 h`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return NONE;
  const s = Math.max(0, seconds);
  if (s === 0) return "0 s";
  if (s < 1e-3) return `${formatNumber(s * 1e6, 3)} µs`;
  if (s < 1) return `${formatNumber(s * 1e3, 3)} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** An age in seconds, short: `0.4 s`, `12 s`, `3 min`, `2 h`. */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return NONE;
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units: `512 B`, `1.5 KiB`, `4.00 GiB`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return NONE;
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ${BYTE_UNITS[unit]}`;
}

/** A throughput: `120 MiB/s`. */
export function formatThroughput(bytesPerSecond: number | null | undefined): string {
  const bytes = formatBytes(bytesPerSecond);
  return bytes === NONE ? NONE : `${bytes}/s`;
}

/** A rate with its unit, e.g. `12.5 steps/s`. */
export function formatRate(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return NONE;
  return `${formatNumber(value, value >= 100 ? 4 : 3)} ${unit}`;
}

/** A percentage of a whole: `41.0 %`. */
export function formatPercent(part: number, whole: number): string {
  if (!whole) return NONE;
  return `${((100 * part) / whole).toFixed(1)} %`;
}

/** An ISO time as local `HH:MM:SS` (today) or `YYYY-MM-DD HH:MM:SS`. */
export function formatTime(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return NONE;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** Seconds since an ISO time (null when unknown). */
export function secondsSince(iso: string | null | undefined, now = Date.now()): number | null {
  if (!iso) return null;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? null : Math.max(0, (now - at) / 1000);
}

/** `1 worker`, `3 workers` */
export function plural(count: number, singular: string, pluralForm = singular + "s"): string {
  return `${formatInt(count)} ${count === 1 ? singular : pluralForm}`;
}
