/** A local NATS server (JetStream) for the event-plane steps. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, portIsFree } from '../../base/net.js';
import type { ActionDef } from './types.js';

export const NATS_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'nats.start': {
    describe: () =>
      'start a local nats-server with JetStream on a free loopback port if one is installed; otherwise use the in-process event bus',
    async run(_p, { session, out, signal }) {
      if (session.nats) {
        out(`nats-server already running at ${session.nats.url}`);
        return { ok: true };
      }
      const { execa } = await import('execa');
      const found = await execa('nats-server', ['--version'], { reject: false, cancelSignal: signal }).catch(() => undefined);
      if (!found || found.exitCode !== 0) {
        out('nats-server is not installed: the simulated workers hand their KV events to the router in-process instead.');
        out('(On Debian/Ubuntu: apt-get install nats-server. On a cluster: helm install nats.)');
        return { ok: true };
      }
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-nats-'));
      const proc = execa('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
        reject: false,
        cleanup: true,
        stdin: 'ignore',
      });
      const log = session.logger('nats');
      proc.stderr?.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach(log));
      for (let i = 0; i < 50 && (await portIsFree(port)); i++) await new Promise((r) => setTimeout(r, 100));
      if (await portIsFree(port)) {
        proc.kill();
        return { ok: false, error: 'nats-server did not start listening within 5 s (see the log)' };
      }
      session.nats = {
        url: `nats://127.0.0.1:${port}`,
        stop: async () => {
          proc.kill('SIGTERM');
          await proc;
          rmSync(dir, { recursive: true, force: true });
        },
      };
      session.endpoints.push({ id: 'nats', url: `http://127.0.0.1:${port}` });
      out(`${found.stdout.trim()} listening on nats://127.0.0.1:${port} with JetStream (storage ${dir})`);
      out(
        'The simulated workers still hand their events to the router in-process; `dynamo-lab router --events nats://…` consumes Dynamo event envelopes from a NATS server.',
      );
      return { ok: true };
    },
  },
};
