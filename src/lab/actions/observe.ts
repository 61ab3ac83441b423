/** Looking inside: the router's and workers' metrics and logs. */
import { num, patternParam, str, type ActionDef, type ActionResult } from './types.js';

export const OBSERVE_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'metrics.show': {
    describe: (p) => `read the router's and workers' /metrics and show lines matching /${str(p.pattern, '.')}/`,
    requires: ['workers'],
    async run(params, { session, out, signal }) {
      const re = patternParam(params.pattern, '');
      if (!(re instanceof RegExp)) return re;
      const targets = [
        ...(session.router ? [{ id: 'router', url: session.router.url }] : []),
        ...session.workers.map((w) => ({ id: w.id, url: w.url })),
      ];
      await showMetrics(targets, re, num(params.max_lines, 20), out, signal);
      return { ok: true };
    },
  },

  'logs.grep': {
    describe: (p) =>
      `show ${str(p.component, 'workers') === 'workers' ? "each worker's" : `${str(p.component, '')}'s`} log lines matching /${str(p.pattern, '.')}/i (last ${num(p.tail, 30)})`,
    requires: ['workers'],
    async run(params, { session, out }) {
      const p = logsGrepParams(params);
      if (!('re' in p)) return p;
      const ids = p.component === 'workers' ? session.workers.map((w) => w.id) : [p.component];
      for (const id of ids)
        showLogLines(
          out,
          id,
          session
            .logsOf(id)
            .filter((l) => p.re.test(l))
            .slice(-p.tail),
        );
      if (session.logFile) out(`Full logs: ${session.logFile}`);
      return { ok: true };
    },
  },
};

/**
 * logs.grep's parameters, the same for both engines: `pattern` (case-insensitive), `tail` (lines
 * per log, default 30) and `component` (a worker id, "router", "nats", or "workers": every worker).
 */
export function logsGrepParams(
  params: Readonly<Record<string, unknown>>,
): { re: RegExp; tail: number; component: string } | { ok: false; error: string } {
  const re = patternParam(params.pattern);
  if (!(re instanceof RegExp)) return re;
  return { re, tail: num(params.tail, 30), component: str(params.component, 'workers') };
}

/** One log's lines under a heading that counts them (`none` when there are none). */
export function showLogLines(
  out: (line: string) => void,
  id: string,
  lines: readonly string[],
  render: (line: string) => string = (l) => l,
  none = '(no matching lines yet)',
): void {
  out(`=== ${id} (${lines.length} matching line${lines.length === 1 ? '' : 's'})`);
  for (const l of lines) out(`  ${render(l)}`);
  if (!lines.length) out(`  ${none}`);
}

/** Each target's /metrics sample lines that match `re` (at most `maxLines` each), under a heading. */
export async function showMetrics(
  targets: ReadonlyArray<{ id: string; url: string }>,
  re: RegExp,
  maxLines: number,
  out: (line: string) => void,
  signal: AbortSignal,
): Promise<void> {
  for (const t of targets) {
    const text = await (await fetch(`${t.url}/metrics`, { signal })).text();
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#') && re.test(l));
    out(`=== ${t.id} ${t.url}/metrics (${lines.length} matching)`);
    for (const l of lines.slice(0, maxLines)) out(`  ${l}`);
  }
}

/**
 * `router.healthy` for either engine: `name` answers GET /health and lists at least one model on
 * /v1/models (none: are the `upstream` up?).
 */
export async function checkServing(
  url: string,
  name: string,
  upstream: string,
  out: (line: string) => void,
  signal: AbortSignal,
): Promise<ActionResult> {
  const h = await fetch(`${url}/health`, { signal });
  if (!h.ok) return { ok: false, error: `${name} /health answered ${h.status}` };
  const models = (await (await fetch(`${url}/v1/models`, { signal })).json()) as { data?: Array<{ id: string }> };
  const ids = (models.data ?? []).map((m) => m.id);
  if (!ids.length) return { ok: false, error: `the ${name} lists no models: are the ${upstream} up?` };
  out(`${name} healthy; serving ${ids.join(', ')}`);
  return { ok: true };
}
