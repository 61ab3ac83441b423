/**
 * The router's Prometheus metrics, on prom-client: one Registry per server instance (two routers
 * in one process do not share series). Call sites name the metric where they update it; its type
 * is declared by the method (inc: counter, set: gauge, observe: histogram) and its label names by
 * the first update. prom-client escapes HELP and label values and writes the exposition.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

type Labels = Record<string, string>;
type Metric = Counter | Gauge | Histogram;

/** Label names in a fixed (sorted) order, so series print the same way whatever the call site. */
function sorted(labels: Labels): Labels {
  const keys = Object.keys(labels);
  if (keys.length < 2) return labels; // most updates: nothing to order (and no copy on the request path)
  const out: Labels = {};
  for (const k of keys.sort()) out[k] = labels[k]!;
  return out;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly metrics = new Map<string, Metric>();

  private get<M extends Metric>(name: string, kind: new (cfg: never) => M, make: () => M): M {
    let m = this.metrics.get(name);
    if (!m) this.metrics.set(name, (m = make()));
    if (!(m instanceof kind)) throw new TypeError(`metric ${name} is a ${m.constructor.name}, not a ${kind.name}`);
    return m;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const l = sorted(labels);
    this.get(name, Counter, () => new Counter({ name, help, labelNames: Object.keys(l), registers: [this.registry] })).inc(l, by);
  }

  set(name: string, help: string, labels: Labels, value: number): void {
    const l = sorted(labels);
    this.get(name, Gauge, () => new Gauge({ name, help, labelNames: Object.keys(l), registers: [this.registry] })).set(l, value);
  }

  /** Remove every series of gauge `name` (e.g. before re-publishing per-worker gauges). */
  resetGauge(name: string): void {
    const m = this.metrics.get(name);
    if (m instanceof Gauge) m.reset();
  }

  observe(name: string, help: string, buckets: number[], value: number, labels: Labels = {}): void {
    const l = sorted(labels);
    this.get(name, Histogram, () => new Histogram({ name, help, buckets, labelNames: Object.keys(l), registers: [this.registry] })).observe(
      l,
      value,
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
