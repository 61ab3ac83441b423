/**
 * A minimal Prometheus text-format registry (counters, gauges, histograms with labels).
 * Enough for the router's /metrics; no dependency needed.
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
}

interface Series {
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  buckets?: number[];
  values: Map<string, number>;
  hist: Map<string, { counts: number[]; sum: number; count: number }>;
}

export class Metrics {
  private readonly series = new Map<string, Series>();

  private get(name: string, type: Series['type'], help: string, buckets?: number[]): Series {
    let s = this.series.get(name);
    if (!s) {
      s = { help, type, buckets, values: new Map(), hist: new Map() };
      this.series.set(name, s);
    }
    return s;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const s = this.get(name, 'counter', help);
    const k = labelKey(labels);
    s.values.set(k, (s.values.get(k) ?? 0) + by);
  }

  set(name: string, help: string, labels: Labels, value: number): void {
    this.get(name, 'gauge', help).values.set(labelKey(labels), value);
  }

  /** Remove every gauge series of `name` (e.g. before re-publishing per-worker gauges). */
  resetGauge(name: string): void {
    this.series.get(name)?.values.clear();
  }

  observe(name: string, help: string, buckets: number[], value: number, labels: Labels = {}): void {
    const s = this.get(name, 'histogram', help, buckets);
    const k = labelKey(labels);
    let h = s.hist.get(k);
    if (!h) {
      h = { counts: new Array(buckets.length).fill(0), sum: 0, count: 0 };
      s.hist.set(k, h);
    }
    for (let i = 0; i < buckets.length; i++) if (value <= buckets[i]!) h.counts[i]! += 1;
    h.sum += value;
    h.count += 1;
  }

  render(): string {
    const out: string[] = [];
    for (const [name, s] of this.series) {
      out.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
      if (s.type === 'histogram') {
        for (const [k, h] of s.hist) {
          const sep = k ? ',' : '';
          s.buckets!.forEach((b, i) => out.push(`${name}_bucket{${k}${sep}le="${b}"} ${h.counts[i]}`));
          out.push(`${name}_bucket{${k}${sep}le="+Inf"} ${h.count}`, `${name}_sum${k ? `{${k}}` : ''} ${h.sum}`, `${name}_count${k ? `{${k}}` : ''} ${h.count}`);
        }
      } else {
        for (const [k, v] of s.values) out.push(`${name}${k ? `{${k}}` : ''} ${v}`);
      }
    }
    return out.join('\n') + '\n';
  }
}
