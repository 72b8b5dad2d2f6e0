// Chart.js charts (registered piecewise, so the bundle carries only what is drawn): a line chart of series against
// step, and a bar chart for latency histograms. Colours come from the page's CSS variables and follow
// prefers-color-scheme.

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  PointElement,
  Tooltip,
} from "chart.js";
import type { ChartConfiguration } from "chart.js";
import { useEffect, useRef } from "react";
import { cssVar, useColorScheme } from "../hooks";

Chart.register(LineController, LineElement, PointElement, LinearScale, BarController, BarElement, CategoryScale, Tooltip, Legend);
Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
Chart.defaults.animation = false;

/** Line colours for series (workers), distinguishable on both light and dark backgrounds. */
export const PALETTE = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#f97316", "#64748b"];

/** More lines than this and the legend would crowd out the chart: it is left out (the caption counts them). */
const MAX_LEGEND = 12;

export interface Series {
  label: string;
  points: { x: number; y: number | null }[];
  /** A palette colour, or "fg" for the page's text colour (the mean). */
  color: string;
  width?: number;
}

function themed(): { fg: string; muted: string; grid: string } {
  return { fg: cssVar("--fg") || "#111", muted: cssVar("--muted") || "#666", grid: cssVar("--grid") || "#ddd" };
}

function lineConfig(series: readonly Series[], xLabel: string): ChartConfiguration<"line"> {
  const theme = themed();
  return {
    type: "line",
    data: { datasets: toDatasets(series, theme.fg) },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      spanGaps: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      elements: { point: { radius: 0, hitRadius: 6 }, line: { tension: 0 } },
      scales: {
        x: {
          type: "linear",
          title: { display: true, text: xLabel, color: theme.muted },
          ticks: { color: theme.muted, maxTicksLimit: 8 },
          grid: { color: theme.grid },
        },
        y: { ticks: { color: theme.muted, maxTicksLimit: 6 }, grid: { color: theme.grid } },
      },
      plugins: {
        legend: { display: series.length <= MAX_LEGEND, position: "bottom", labels: { color: theme.fg, boxWidth: 12, boxHeight: 2 } },
        tooltip: { enabled: true },
      },
    },
  };
}

function toDatasets(series: readonly Series[], fg: string) {
  return series.map((s) => ({
    label: s.label,
    // Chart.js leaves a gap at NaN: a non-finite value (null in the API) is not drawn as a number.
    data: s.points.map((p) => ({ x: p.x, y: p.y ?? Number.NaN })),
    borderColor: s.color === "fg" ? fg : s.color,
    backgroundColor: s.color === "fg" ? fg : s.color,
    borderWidth: s.width ?? 1.5,
    // A line of one or two points would be invisible without its points.
    pointRadius: s.points.length < 3 ? 3 : 0,
  }));
}

/** Series against a linear x axis (steps). `description` is the chart's accessible name: say what it shows. */
export function LineChart(props: { series: readonly Series[]; xLabel: string; description: string; metric?: string }) {
  const { series, xLabel, description, metric } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<"line"> | null>(null);
  const scheme = useColorScheme();
  const latest = useRef(series);
  latest.current = series;

  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new Chart(canvas.current, lineConfig(latest.current, xLabel));
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, [scheme, xLabel]);

  useEffect(() => {
    const instance = chart.current;
    if (!instance) return;
    instance.data.datasets = toDatasets(series, themed().fg);
    if (instance.options.plugins?.legend) instance.options.plugins.legend.display = series.length <= MAX_LEGEND;
    instance.update("none");
  }, [series]);

  return (
    <div className="chart" data-metric={metric}>
      <canvas ref={canvas} role="img" aria-label={description} />
    </div>
  );
}

/** Counts per labelled bucket, as bars. */
export function BarChart(props: { labels: readonly string[]; counts: readonly number[]; xLabel: string; description: string }) {
  const { labels, counts, xLabel, description } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<"bar"> | null>(null);
  const scheme = useColorScheme();
  const latest = useRef({ labels, counts });
  latest.current = { labels, counts };

  useEffect(() => {
    if (!canvas.current) return;
    const theme = themed();
    const accent = cssVar("--accent") || PALETTE[0];
    chart.current = new Chart(canvas.current, {
      type: "bar",
      data: {
        labels: [...latest.current.labels],
        datasets: [{ label: "generations", data: [...latest.current.counts], backgroundColor: accent }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: xLabel, color: theme.muted }, ticks: { color: theme.muted }, grid: { display: false } },
          y: { beginAtZero: true, ticks: { color: theme.muted, precision: 0 }, grid: { color: theme.grid } },
        },
        plugins: { legend: { display: false } },
      },
    });
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, [scheme, xLabel]);

  useEffect(() => {
    const instance = chart.current;
    if (!instance) return;
    instance.data.labels = [...labels];
    instance.data.datasets[0].data = [...counts];
    instance.update("none");
  }, [labels, counts]);

  return (
    <div className="chart chart-short">
      <canvas ref={canvas} role="img" aria-label={description} />
    </div>
  );
}
