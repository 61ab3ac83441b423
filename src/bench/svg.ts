/**
 * Minimal self-contained SVG charts (no dependencies): grouped bar charts and line charts
 * with axes, ticks, a legend and a title. Output is plain SVG 1.1 text.
 */

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const W = 820;
const H = 440;
const M = { left: 80, right: 190, top: 50, bottom: 60 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

function label(v: number): string {
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

function frame(title: string, body: string[], legend: Array<{ name: string; color: string }>, xLabel: string, yLabel: string): string {
  const lg = legend.map(
    (l, i) =>
      `<rect x="${W - M.right + 20}" y="${M.top + i * 20}" width="12" height="12" fill="${l.color}"/><text x="${W - M.right + 38}" y="${M.top + i * 20 + 10}" font-size="12">${esc(l.name)}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 14}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`,
    `<text transform="translate(18 ${M.top + (H - M.top - M.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`,
    ...body,
    ...lg,
    '</svg>',
    '',
  ].join('\n');
}

export interface BarChartSpec {
  title: string;
  yLabel: string;
  groups: Array<{ label: string; bars: Array<{ series: string; value: number }> }>;
}

export function barChart(spec: BarChartSpec): string {
  const series = [...new Set(spec.groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const color = (s: string) => PALETTE[series.indexOf(s) % PALETTE.length]!;
  const max = Math.max(1e-9, ...spec.groups.flatMap((g) => g.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0))));
  const step = niceStep(max, 5);
  const top = Math.ceil(max / step) * step;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const y = (v: number) => M.top + ph - (v / top) * ph;
  const body: string[] = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    body.push(`<line x1="${M.left}" y1="${y(v)}" x2="${M.left + pw}" y2="${y(v)}" stroke="#e0e0e0"/>`);
    body.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${label(v)}</text>`);
  }
  const gw = pw / Math.max(1, spec.groups.length);
  spec.groups.forEach((g, gi) => {
    const n = Math.max(1, g.bars.length);
    const bw = Math.min(48, (gw * 0.8) / n);
    const x0 = M.left + gi * gw + (gw - bw * n) / 2;
    g.bars.forEach((b, bi) => {
      const v = Number.isFinite(b.value) ? b.value : 0;
      body.push(
        `<rect x="${x0 + bi * bw}" y="${y(v)}" width="${bw - 2}" height="${M.top + ph - y(v)}" fill="${color(b.series)}"><title>${esc(`${g.label} ${b.series}: ${label(v)}`)}</title></rect>`,
      );
      body.push(`<text x="${x0 + bi * bw + (bw - 2) / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${label(v)}</text>`);
    });
    body.push(`<text x="${M.left + gi * gw + gw / 2}" y="${M.top + ph + 18}" text-anchor="middle" font-size="12">${esc(g.label)}</text>`);
  });
  body.push(`<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="#333"/>`);
  body.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#333"/>`);
  return frame(
    spec.title,
    body,
    series.map((s) => ({ name: s, color: color(s) })),
    '',
    spec.yLabel,
  );
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  series: Array<{ name: string; points: Array<{ x: number; y: number }> }>;
}

export function lineChart(spec: LineChartSpec): string {
  const pts = spec.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!spec.logY || p.y > 0));
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y);
  const xmin = Math.min(...xs, 0);
  const xmax = Math.max(...xs, xmin + 1);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const body: string[] = [];
  let y: (v: number) => number;
  if (spec.logY) {
    const lo = Math.floor(Math.log10(Math.max(1e-3, Math.min(...ys, 1))));
    const hi = Math.ceil(Math.log10(Math.max(...ys, 10)));
    const span = Math.max(1, hi - lo);
    y = (v) => M.top + ph - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / span) * ph;
    for (let e = lo; e <= hi; e++) {
      body.push(`<line x1="${M.left}" y1="${y(10 ** e)}" x2="${M.left + pw}" y2="${y(10 ** e)}" stroke="#e0e0e0"/>`);
      body.push(`<text x="${M.left - 6}" y="${y(10 ** e) + 4}" text-anchor="end" font-size="11">${label(10 ** e)}</text>`);
    }
  } else {
    const top = Math.max(...ys, 1e-9);
    const step = niceStep(top, 5);
    const t = Math.ceil(top / step) * step;
    y = (v) => M.top + ph - (v / t) * ph;
    for (let v = 0; v <= t + step / 2; v += step) {
      body.push(`<line x1="${M.left}" y1="${y(v)}" x2="${M.left + pw}" y2="${y(v)}" stroke="#e0e0e0"/>`);
      body.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${label(v)}</text>`);
    }
  }
  const x = (v: number) => M.left + ((v - xmin) / (xmax - xmin)) * pw;
  const xt = [...new Set(xs)].sort((a, b) => a - b);
  for (const v of xt) body.push(`<text x="${x(v)}" y="${M.top + ph + 18}" text-anchor="middle" font-size="11">${label(v)}</text>`);
  spec.series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length]!;
    const ps = s.points.filter((p) => Number.isFinite(p.y) && (!spec.logY || p.y > 0)).sort((a, b) => a.x - b.x);
    if (ps.length > 1)
      body.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${ps.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ')}"/>`,
      );
    for (const p of ps)
      body.push(
        `<circle cx="${x(p.x).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="4" fill="${c}"><title>${esc(`${s.name} ${p.x}: ${label(p.y)}`)}</title></circle>`,
      );
  });
  body.push(`<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="#333"/>`);
  body.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#333"/>`);
  return frame(
    spec.title,
    body,
    spec.series.map((s, i) => ({ name: s.name, color: PALETTE[i % PALETTE.length]! })),
    spec.xLabel,
    spec.yLabel,
  );
}
