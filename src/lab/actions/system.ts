/** Checks of the machine and of what the lab started: GPUs, health of every part, free ports. */
import { portIsFree } from '../../base/net.js';
import { num, type ActionDef } from './types.js';

export const SYSTEM_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'gpu.check': {
    describe: () => 'look for NVIDIA GPUs with nvidia-smi (the local target runs on the CPU, so none are required)',
    async run(params, { out, signal }) {
      const need = num(params.need, 0);
      const { execa } = await import('execa');
      try {
        const r = await execa('nvidia-smi', ['--query-gpu=index,name,memory.used,memory.total', '--format=csv,noheader'], {
          cancelSignal: signal,
          timeout: 10_000,
          reject: false,
        });
        if (r.exitCode === 0) {
          const gpus = r.stdout.split('\n').filter(Boolean);
          out(`${gpus.length} GPU(s) found:`);
          for (const g of gpus) out(`  ${g}`);
          if (gpus.length < need) return { ok: false, error: `${gpus.length} GPU(s) found, the lab needs ${need}` };
          return { ok: true };
        }
      } catch {
        /* nvidia-smi missing */
      }
      out('nvidia-smi not found: no local GPU. That is fine here — the workers are simulated on the CPU.');
      return need > 0 ? { ok: false, error: `this step needs ${need} GPU(s) and none were found` } : { ok: true };
    },
  },

  'health.check': {
    describe: () => 'check the workers, the router and the local NATS server (if any) answer',
    async run(_p, { session, out, signal }) {
      const problems: string[] = [];
      for (const w of session.workers) {
        const r = await fetch(`${w.url}/health`, { signal }).catch(() => undefined);
        out(`${r?.ok ? '✓' : '✗'} ${w.id} ${w.url}/health`);
        if (!r?.ok) problems.push(w.id);
      }
      if (session.router) {
        const r = await fetch(`${session.router.url}/health`, { signal }).catch(() => undefined);
        out(`${r?.ok ? '✓' : '✗'} router ${session.router.url}/health`);
        if (!r?.ok) problems.push('router');
      }
      if (session.nats) {
        const port = Number(new URL(session.nats.url.replace('nats:', 'http:')).port);
        const up = !(await portIsFree(port));
        out(`${up ? '✓' : '✗'} nats ${session.nats.url}`);
        if (!up) problems.push('nats');
      }
      if (!session.workers.length && !session.router) out('nothing is running in this session yet');
      return problems.length ? { ok: false, error: `not healthy: ${problems.join(', ')}` } : { ok: true };
    },
  },

  'ports.free': {
    describe: () => 'check that every port the lab used is free again',
    async run(_p, { session, out }) {
      const ports = session.endpoints.map((e) => Number(new URL(e.url).port));
      for (const port of ports) {
        if (!(await portIsFree(port))) return { ok: false, error: `port ${port} is still in use` };
      }
      out(ports.length ? `ports ${ports.join(', ')} are free` : 'no ports were used');
      return { ok: true };
    },
  },
};
