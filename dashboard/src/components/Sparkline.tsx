// A sparkline: the shape of a short series as a small SVG line (no axes), with its meaning in the accessible name.

const WIDTH = 120;
const HEIGHT = 32;

export function Sparkline({ values, label }: { values: readonly (number | null)[]; label: string }) {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (finite.length < 2) {
    return (
      <svg className="sparkline" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${label}: not enough history yet`}>
        <line x1="0" x2={WIDTH} y1={HEIGHT - 1} y2={HEIGHT - 1} className="sparkline-empty" />
      </svg>
    );
  }
  const max = Math.max(...finite);
  const min = Math.min(0, ...finite);
  const span = max - min || 1;
  const step = WIDTH / (values.length - 1);
  const points: string[] = [];
  values.forEach((value, index) => {
    if (value === null || !Number.isFinite(value)) return;
    const x = index * step;
    const y = HEIGHT - 2 - ((value - min) / span) * (HEIGHT - 4);
    points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  const area = `0,${HEIGHT} ${points.join(" ")} ${WIDTH},${HEIGHT}`;
  return (
    <svg className="sparkline" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={label}>
      <polygon points={area} className="sparkline-area" />
      <polyline points={points.join(" ")} className="sparkline-line" vectorEffect="non-scaling-stroke" />
    </svg>
  );
}
