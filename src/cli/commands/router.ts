/** `dynamo-lab router`: the embedded KV router in front of simulated or real workers. */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError, UserError } from '../errors.js';
import { RouterServer, ROUTING_MODES, type WorkerEndpoint } from '../../server/router-server.js';
import { configFromFlags, type RoutingMode } from '../../router/index.js';
import { SimWorker } from '../../sim/index.js';

function numberFlag(values: Record<string, unknown>, name: string, check: (n: number) => boolean, what: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} must be ${what}, got "${String(raw)}".`);
  return n;
}

export const routerCommand: Command = {
  name: 'router',
  summary: 'Run the KV-aware router (OpenAI API) in front of simulated or real workers',
  usage:
    'dynamo-lab router [--sim <n> | --worker <url>...] [--mode kv|round-robin|random|least-loaded] [--host 127.0.0.1] [--port 8000] [--events inproc|none] [--block-size <n>] [--kv-overlap-score-weight <w>] [--router-temperature <t>]',
  examples: ['dynamo-lab router --sim 4', 'dynamo-lab router --worker http://10.0.0.5:8000 --worker http://10.0.0.6:8000 --events none', 'dynamo-lab router --sim 2 --mode round-robin --port 9000'],
  options: {
    sim: { type: 'string', valueName: 'n', description: 'Start n simulated workers in this process (KV events in-process)' },
    worker: { type: 'string', valueName: 'url', multiple: true, description: 'A worker\'s OpenAI base URL (repeatable)' },
    mode: { type: 'string', valueName: 'mode', default: 'kv', description: `Routing policy: ${ROUTING_MODES.join(', ')}` },
    host: { type: 'string', valueName: 'addr', default: '127.0.0.1', description: 'Address to listen on' },
    port: { type: 'string', valueName: 'port', default: '8000', description: 'Port to listen on (0 = any free port)' },
    events: { type: 'string', valueName: 'source', description: 'KV events: inproc (with --sim) or none (approximate mode: the router remembers its own decisions for 120 s)' },
    'block-size': { type: 'string', valueName: 'n', default: '16', description: 'KV block size in tokens; must match the workers' },
    'kv-overlap-score-weight': { type: 'string', valueName: 'w', description: 'Legacy Dynamo weight (maps to the prefill load scale; 0 disables cache credit)' },
    'router-temperature': { type: 'string', valueName: 't', description: 'Softmax temperature over worker costs (0 = always the cheapest)' },
    'api-key': { type: 'string', valueName: 'key', description: 'Require `Authorization: Bearer <key>` on /v1/*' },
    seed: { type: 'string', valueName: 'n', description: 'Seed for tie-breaks and sampling (reproducible choices)' },
  },
  async run(values, _p, ctx) {
    const mode = values.mode as RoutingMode;
    if (!ROUTING_MODES.includes(mode)) throw new UsageError(`--mode must be one of ${ROUTING_MODES.join(', ')}, not "${mode}".`);
    const sim = numberFlag(values, 'sim', (n) => Number.isInteger(n) && n >= 1 && n <= 64, 'a whole number from 1 to 64');
    const urls = (values.worker as string[] | undefined) ?? [];
    if (sim === undefined && urls.length === 0) throw new UsageError('the router needs workers.', 'Pass --sim <n> for simulated workers or --worker <url> (repeatable) for real ones.');
    if (sim !== undefined && urls.length) throw new UsageError('use either --sim or --worker, not both.');
    for (const u of urls) {
      try {
        new URL(u);
      } catch {
        throw new UsageError(`--worker "${u}" is not a URL.`, 'Give a base URL such as http://10.0.0.5:8000');
      }
    }
    const events = (values.events as string | undefined) ?? (sim !== undefined ? 'inproc' : 'none');
    if (events !== 'inproc' && events !== 'none') {
      throw new UserError(`--events ${events} is not available in this version yet.`, 'Use --events inproc with --sim, or --events none (approximate mode).');
    }
    if (events === 'inproc' && sim === undefined) throw new UsageError('--events inproc needs --sim: only simulated workers in this process can hand over events in-process.');
    const blockSize = numberFlag(values, 'block-size', (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1')!;
    const port = numberFlag(values, 'port', (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'a port number')!;
    const config = configFromFlags({
      kvOverlapScoreWeight: numberFlag(values, 'kv-overlap-score-weight', (n) => n >= 0, 'a number >= 0'),
      temperature: numberFlag(values, 'router-temperature', (n) => n >= 0, 'a number >= 0'),
    });
    if (events === 'none') config.useKvEvents = false;

    const say = (s: string) => ctx.stderr.write(s + '\n');
    const started: SimWorker[] = [];
    let server: RouterServer | undefined;
    try {
      const workers: WorkerEndpoint[] = [];
      if (sim !== undefined) {
        for (let i = 0; i < sim; i++) {
          const w = await SimWorker.start({ id: `worker-${i}`, blockSize, port: 0, log: ctx.globals.verbose ? (l) => say(chalk.dim(`[worker-${i}] ${l}`)) : undefined });
          started.push(w);
          workers.push({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) });
        }
      } else {
        urls.forEach((u, i) => workers.push({ id: `worker-${i}`, url: u.replace(/\/$/, '') }));
      }
      server = await RouterServer.start({
        workers,
        blockSize,
        mode,
        host: values.host as string,
        port,
        config,
        seed: values.seed !== undefined ? Number(values.seed) : undefined,
        apiKey: values['api-key'] as string | undefined,
        log: ctx.globals.json ? undefined : (l) => say(l),
      });
      if (ctx.globals.json) {
        ctx.stdout.write(JSON.stringify({ url: server.url, mode, block_size: blockSize, events, workers: workers.map((w) => ({ id: w.id, url: w.url })) }) + '\n');
      } else {
        say(chalk.green(`router listening on ${server.url}  (mode ${mode}, block size ${blockSize}, events ${events})`));
        for (const w of workers) say(`  ${w.id}  ${w.url}`);
        say(chalk.dim(`  OpenAI base URL: ${server.url}/v1   decisions: ${server.url}/debug/decisions   metrics: ${server.url}/metrics`));
        say(chalk.dim('  Ctrl+C to stop.'));
      }
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } catch (err) {
      if ((err as Error).message?.includes('already in use')) throw new UserError((err as Error).message, 'Pick another --port, or stop the program using it.');
      throw err;
    } finally {
      await server?.close();
      await Promise.all(started.map((w) => w.close()));
      if (!ctx.globals.json) say(chalk.dim('router and workers stopped'));
    }
    return 0;
  },
};
