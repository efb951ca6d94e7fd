// Small dependency-free SVG charts: a multi-series line chart and a bar chart.

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777"];

export interface Series {
  name: string;
  points: Array<[number, number]>; // x (e.g. time ms), y
}

export function LineChart(props: {
  series: Series[];
  height?: number;
  width?: number;
  yMax?: number;
  yFormat?: (v: number) => string;
  title: string;
}) {
  const width = props.width ?? 360;
  const height = props.height ?? 120;
  const pad = { l: 36, r: 8, t: 8, b: 18 };
  const all = props.series.flatMap((s) => s.points);
  if (!all.length) return <div className="chart-empty">No samples yet</div>;
  const xs = all.map((p) => p[0]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const yMax = props.yMax ?? Math.max(1e-9, ...all.map((p) => p[1]));
  const fmt = props.yFormat ?? ((v: number) => String(Math.round(v * 100) / 100));
  const sx = (x: number) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - (y / yMax) * (height - pad.t - pad.b);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" role="img" aria-label={props.title}>
        <line x1={pad.l} x2={width - pad.r} y1={sy(0)} y2={sy(0)} className="axis" />
        <line x1={pad.l} x2={width - pad.r} y1={sy(yMax)} y2={sy(yMax)} className="grid" />
        <text x={pad.l - 4} y={sy(yMax) + 4} textAnchor="end" className="tick">
          {fmt(yMax)}
        </text>
        <text x={pad.l - 4} y={sy(0)} textAnchor="end" className="tick">
          {fmt(0)}
        </text>
        {props.series.map((s, i) => (
          <polyline
            key={s.name}
            fill="none"
            stroke={COLORS[i % COLORS.length]}
            strokeWidth={2}
            points={s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")}
          />
        ))}
      </svg>
      <figcaption className="legend">
        {props.series.map((s, i) => (
          <span key={s.name}>
            <i style={{ background: COLORS[i % COLORS.length] }} />
            {s.name}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

export function BarChart(props: {
  bars: Array<{ label: string; value: number }>;
  title: string;
  format?: (v: number) => string;
}) {
  const fmt = props.format ?? ((v: number) => v.toFixed(2));
  const max = Math.max(1e-9, ...props.bars.map((b) => b.value));
  const rowH = 22;
  const width = 640;
  const labelW = 180;
  const height = Math.max(rowH, props.bars.length * rowH);
  if (!props.bars.length) return <div className="chart-empty">No usage in this period</div>;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" role="img" aria-label={props.title}>
        {props.bars.map((b, i) => {
          const w = ((width - labelW - 70) * b.value) / max;
          return (
            <g key={b.label} transform={`translate(0 ${i * rowH})`}>
              <text x={labelW - 6} y={15} textAnchor="end" className="tick">
                {b.label}
              </text>
              <rect x={labelW} y={3} width={Math.max(1, w)} height={rowH - 6} fill={COLORS[0]} />
              <text x={labelW + w + 6} y={15} className="tick">
                {fmt(b.value)}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
