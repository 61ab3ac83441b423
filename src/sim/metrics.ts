/** Minimal Prometheus text exposition helpers (counters, gauges, histograms). */

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }
}

/** vLLM's buckets for time to first token (seconds). */
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
/** vLLM's buckets for inter-token latency (seconds). */
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];

export type Labels = Readonly<Record<string, string>>;

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function fmtLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  if (extra) parts.push(`${extra[0]}="${esc(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function fmtNum(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

export class PromText {
  private lines: string[] = [];

  constructor(private readonly labels: Labels) {}

  private head(name: string, type: string, help: string): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  gauge(name: string, help: string, value: number): this {
    this.head(name, 'gauge', help);
    this.lines.push(`${name}${fmtLabels(this.labels)} ${fmtNum(value)}`);
    return this;
  }

  counter(name: string, help: string, value: number): this {
    this.head(name, 'counter', help);
    this.lines.push(`${name}${fmtLabels(this.labels)} ${fmtNum(value)}`);
    return this;
  }

  histogram(name: string, help: string, h: Histogram): this {
    this.head(name, 'histogram', help);
    h.buckets.forEach((b, i) => this.lines.push(`${name}_bucket${fmtLabels(this.labels, ['le', fmtNum(b)])} ${h.counts[i]}`));
    this.lines.push(`${name}_bucket${fmtLabels(this.labels, ['le', '+Inf'])} ${h.count}`);
    this.lines.push(`${name}_sum${fmtLabels(this.labels)} ${fmtNum(h.sum)}`);
    this.lines.push(`${name}_count${fmtLabels(this.labels)} ${h.count}`);
    return this;
  }

  toString(): string {
    return this.lines.join('\n') + '\n';
  }
}
