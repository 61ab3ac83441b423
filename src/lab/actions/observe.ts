/** Looking inside: the router's and workers' metrics and logs. */
import { num, patternParam, str, type ActionDef } from './types.js';

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
      const re = patternParam(params.pattern);
      if (!(re instanceof RegExp)) return re;
      const tail = num(params.tail, 30);
      // component: a worker id, "router", "nats", or "workers" (default: every worker).
      const component = str(params.component, 'workers');
      const ids = component === 'workers' ? session.workers.map((w) => w.id) : [component];
      for (const id of ids) {
        const lines = session
          .logsOf(id)
          .filter((l) => re.test(l))
          .slice(-tail);
        out(`=== ${id} (${lines.length} matching line${lines.length === 1 ? '' : 's'})`);
        for (const l of lines) out(`  ${l}`);
        if (!lines.length) out('  (no matching lines yet)');
      }
      if (session.logFile) out(`Full logs: ${session.logFile}`);
      return { ok: true };
    },
  },
};

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
