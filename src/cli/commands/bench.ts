/**
 * `dynamo-lab bench`: replay a Mooncake trace or a synthetic workload through kv / round-robin /
 * random routing, in virtual time (simulated workers + the router core in this process,
 * deterministic) or in real time against OpenAI URLs, and compare the modes.
 */
import { existsSync } from 'node:fs';
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { packagePath } from '../../base/paths.js';
import { ROUTING_MODES, type RoutingMode } from '../../router/index.js';
import { generateWorkload, SpecError } from '../../bench/generators.js';
import { BenchConfigError, HealthCheckError, runBench, type BenchConfig } from '../../bench/run.js';
import { renderReport } from '../../bench/report.js';
import { writeOutputs } from '../../bench/export.js';
import { loadMooncakeTrace, parseMooncakeTrace, TraceError } from '../../bench/trace.js';
import { MOCKER_DEFAULTS } from '../../bench/virtual.js';
import { takeRequests, type Workload } from '../../bench/workload.js';

/** The traces shipped in the package (src/bench/data/, gzip), by name. */
export const BUNDLED_TRACES = ['conversation', 'synthetic'] as const;

export function bundledTracePath(name: string): string {
  return packagePath('src', 'bench', 'data', `${name}_trace.jsonl.gz`);
}

/** The default trace: the Mooncake conversation trace shipped with the package. */
export function defaultTracePath(): string {
  return bundledTracePath('conversation');
}

/** Load a trace by bundled name or path; `.gz` files are decompressed. */
async function loadTrace(spec: string, seed: number): Promise<Workload> {
  const bundled = (BUNDLED_TRACES as readonly string[]).includes(spec);
  const path = bundled ? bundledTracePath(spec) : spec;
  if (!path.endsWith('.gz')) return loadMooncakeTrace(path, { seed });
  const { readFile } = await import('node:fs/promises');
  const { gunzipSync } = await import('node:zlib');
  let text: string;
  try {
    text = gunzipSync(await readFile(path)).toString('utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TraceError(e.code === 'ENOENT' ? `trace file ${path} does not exist` : `cannot read trace file ${path}: ${e.message}`);
  }
  return parseMooncakeTrace(text, { seed, name: bundled ? `${spec}_trace.jsonl` : path });
}

function int(values: Record<string, unknown>, name: string, min: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number >= ${min}, got "${String(raw)}".`);
  return n;
}

function parseModes(raw: string): RoutingMode[] {
  const modes = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean) as RoutingMode[];
  if (modes.length === 0) throw new UsageError('--modes needs at least one mode.');
  for (const m of modes)
    if (!ROUTING_MODES.includes(m)) throw new UsageError(`unknown mode "${m}" in --modes.`, `Modes: ${ROUTING_MODES.join(', ')}.`);
  if (modes.includes('direct'))
    throw new UsageError(
      'the bench cannot replay --modes direct: a trace names no worker per request.',
      `Compare the routing policies: ${ROUTING_MODES.filter((m) => m !== 'direct').join(', ')}.`,
    );
  if (new Set(modes).size !== modes.length) throw new UsageError('--modes lists a mode twice.');
  return modes;
}

function parseSpeedups(raw: string): number[] {
  const out = raw
    .split(',')
    .map((s) => s.trim().replace(/x$/i, ''))
    .filter(Boolean)
    .map(Number);
  if (out.length === 0 || out.some((x) => !Number.isFinite(x) || x <= 0))
    throw new UsageError(`--speedup must be a number > 0 or a comma list (e.g. 1,2,4), got "${raw}".`);
  return out;
}

function checkUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new UsageError(
      `--url "${u}" is not an http(s) URL.`,
      'Give a base URL such as http://127.0.0.1:8000 or kv=http://127.0.0.1:8000',
    );
  }
  return u.replace(/\/+$/, '');
}

/** `--url` values -> mode -> URL. Either `mode=url` per mode, or one plain URL for one mode. */
function parseUrls(raw: string[], modes: RoutingMode[], modesGiven: boolean): { urls: Record<string, string>; modes: RoutingMode[] } {
  const labelled = raw
    .flatMap((r) => r.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  const plain = labelled.filter((s) => !/^[a-z-]+=/.test(s));
  if (plain.length > 0) {
    if (labelled.length > 1)
      throw new UsageError('with several --url values, label each with its mode: --url kv=http://a:8000 --url round-robin=http://b:8000');
    if (modesGiven && modes.length > 1) {
      throw new UsageError(
        `one URL cannot be measured as ${modes.length} modes: a router routes with one mode.`,
        'Run one router per mode and label them: --url kv=http://127.0.0.1:8000 --url round-robin=http://127.0.0.1:8001 (or pass a single --modes).',
      );
    }
    const m = modesGiven ? modes[0]! : ('kv' as RoutingMode);
    return { urls: { [m]: checkUrl(plain[0]!) }, modes: [m] };
  }
  const urls: Record<string, string> = {};
  for (const s of labelled) {
    const eq = s.indexOf('=');
    const m = s.slice(0, eq) as RoutingMode;
    if (!ROUTING_MODES.includes(m)) throw new UsageError(`unknown mode "${m}" in --url ${s}.`, `Modes: ${ROUTING_MODES.join(', ')}.`);
    urls[m] = checkUrl(s.slice(eq + 1));
  }
  const urlModes = Object.keys(urls) as RoutingMode[];
  if (modesGiven) {
    const missing = modes.filter((m) => !urls[m]);
    if (missing.length)
      throw new UsageError(
        `no --url for mode ${missing.join(', ')}.`,
        `Add --url ${missing[0]}=http://host:port, or leave it out of --modes.`,
      );
    return { urls, modes };
  }
  return { urls, modes: urlModes };
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'Replay a trace or synthetic workload against kv / round-robin / random routing and compare',
  usage:
    'dynamo-lab bench [--trace <jsonl> | --synthetic <spec>] [--modes kv,round-robin,random] [--workers <n>] [--block-size <n>] [--gpu-blocks <n>] [--speedup <x>[,<x>..]] [--requests <n>] [--virtual-time | --url [<mode>=]<base>...] [--json] [--out <dir>]',
  examples: [
    'dynamo-lab bench --virtual-time --workers 8 --modes kv,round-robin,random --speedup 1,4,8 --out bench-out',
    'dynamo-lab bench --synthetic shared-prefix:groups=32,prompts=32,rate=20 --virtual-time --json',
    'dynamo-lab bench --url kv=http://127.0.0.1:8000 --url round-robin=http://127.0.0.1:8001 --requests 500 --speedup 4',
  ],
  options: {
    trace: {
      type: 'string',
      valueName: 'jsonl',
      description: 'Mooncake JSONL trace: conversation or synthetic (bundled), or a .jsonl / .jsonl.gz file (default: conversation)',
    },
    synthetic: {
      type: 'string',
      valueName: 'spec',
      description:
        'Generated workload instead of a trace: prefix-ratio[:ratio=0.5,isl=14000,osl=200,groups=20,requests=200,rate=2] | shared-prefix[:groups=32,prompts=32,system=2048,question=256,output=256,rate=10] | multi-turn[:sessions=64,turns=5,system=1024,user=256,output=128,delay=1000,rate=2]',
    },
    modes: { type: 'string', valueName: 'list', description: 'Routing modes to compare (default kv,round-robin,random)' },
    workers: {
      type: 'string',
      valueName: 'n',
      description: 'Workers (virtual time: simulated engines, default 8; with --url: the healthy worker count every target must have)',
    },
    'block-size': {
      type: 'string',
      valueName: 'n',
      default: String(MOCKER_DEFAULTS.blockSize),
      description: 'KV block size in tokens (engines and router; Dynamo mocker default 64)',
    },
    'gpu-blocks': {
      type: 'string',
      valueName: 'n',
      default: String(MOCKER_DEFAULTS.gpuBlocks),
      description: 'KV blocks per worker (Dynamo mocker default 16384); also sizes the oracle',
    },
    speedup: {
      type: 'string',
      valueName: 'x[,x..]',
      default: '1',
      description: 'Arrival speedup: trace timestamps are divided by it; a list runs a load sweep',
    },
    requests: { type: 'string', valueName: 'n', description: 'Use only the first n requests' },
    'virtual-time': {
      type: 'boolean',
      description: 'Simulated workers and the router core in this process, no sleeping (the default without --url)',
    },
    url: {
      type: 'string',
      valueName: '[mode=]base',
      multiple: true,
      description: 'Real time against an OpenAI base URL; one per mode as mode=url (repeatable)',
    },
    model: { type: 'string', valueName: 'id', description: 'Model name for --url requests (default: the first of GET /v1/models)' },
    prompt: {
      type: 'string',
      valueName: 'tokens|text',
      default: 'tokens',
      description: 'Send prompts as token-id arrays (default, exact blocks) or as decoded text (server re-tokenizes)',
    },
    'skip-health-check': { type: 'boolean', description: 'Do not run the equal-health checkpoint before each mode (not recommended)' },
    'api-key': { type: 'string', valueName: 'key', description: 'Bearer token for --url targets' },
    seed: {
      type: 'string',
      valueName: 'n',
      default: '0',
      description: 'Seed for prompt synthesis, generators, router tie-breaks and random mode',
    },
    out: {
      type: 'string',
      valueName: 'dir',
      description: 'Write bench.json, summary.csv, aiperf-style CSV/JSONL per run and SVG charts here',
    },
  },
  async run(values, _p, ctx) {
    const say = (s: string) => ctx.stderr.write(s + '\n');
    const seed = int(values, 'seed', 0) ?? 0;
    if (values.trace !== undefined && values.synthetic !== undefined) throw new UsageError('use either --trace or --synthetic, not both.');
    const urlsRaw = (values.url as string[] | undefined) ?? [];
    if (values['virtual-time'] && urlsRaw.length)
      throw new UsageError(
        '--virtual-time and --url exclude each other.',
        'Drop --url to simulate, or drop --virtual-time to measure the URL in real time.',
      );
    const modesGiven = values.modes !== undefined;
    let modes = parseModes((values.modes as string | undefined) ?? 'kv,round-robin,random');
    const speedups = parseSpeedups(values.speedup as string);
    const blockSize = int(values, 'block-size', 1)!;
    const gpuBlocks = int(values, 'gpu-blocks', 1)!;
    const requests = int(values, 'requests', 1);
    const workersFlag = int(values, 'workers', 1);
    const prompt = values.prompt as string;
    if (prompt !== 'tokens' && prompt !== 'text') throw new UsageError(`--prompt must be tokens or text, got "${prompt}".`);

    let target: BenchConfig['target'] = { kind: 'virtual' };
    if (urlsRaw.length) {
      const parsed = parseUrls(urlsRaw, modes, modesGiven);
      modes = parsed.modes;
      target = {
        kind: 'http',
        urls: parsed.urls,
        model: values.model as string | undefined,
        prompt,
        apiKey: values['api-key'] as string | undefined,
        skipHealthCheck: Boolean(values['skip-health-check']),
      };
    } else if (workersFlag !== undefined && workersFlag > 256) {
      throw new UsageError('--workers is limited to 256 in virtual time.');
    }

    let w: Workload;
    try {
      if (values.synthetic !== undefined) {
        w = generateWorkload(values.synthetic as string, seed);
      } else {
        const spec = (values.trace as string | undefined) ?? 'conversation';
        if (values.trace === undefined && !existsSync(defaultTracePath())) {
          throw new UserError(
            `the bundled trace ${defaultTracePath()} is missing from this installation.`,
            'Pass --trace <file.jsonl> (Mooncake format) or --synthetic <spec>, or reinstall dynamo-lab.',
          );
        }
        w = await loadTrace(spec, seed);
      }
    } catch (err) {
      if (err instanceof TraceError)
        throw new UserError(
          err.message,
          'Each line must be a JSON object with timestamp (ms), input_length, output_length and hash_ids of 512-token blocks.',
        );
      if (err instanceof SpecError) throw new UsageError(err.message, 'Example: --synthetic shared-prefix:groups=16,system=4096,rate=20');
      throw err;
    }
    w = takeRequests(w, requests);

    const cfg: BenchConfig = {
      modes,
      workers: target.kind === 'virtual' ? (workersFlag ?? 8) : (workersFlag ?? 0),
      blockSize,
      gpuBlocks,
      speedups,
      seed,
      target,
      signal: ctx.signal,
      log: ctx.globals.json && !ctx.globals.verbose ? undefined : (l) => say(chalk.dim(l)),
    };
    let result;
    try {
      result = await runBench(w, cfg);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      if (err instanceof HealthCheckError) {
        throw new UserError(
          `${err.message}:\n  ${err.problems.join('\n  ')}`,
          'Wait until every worker is up and all targets have the same number of healthy workers (e.g. `kubectl get pods -l nvidia.com/dynamo-component-type=worker`), or pass --workers <n> to state the expected count.',
        );
      }
      if (err instanceof BenchConfigError) throw new UsageError(err.message);
      throw err;
    }
    const { json, outcomes } = result;
    if (values.out !== undefined) {
      const written = await writeOutputs(values.out as string, json, outcomes);
      say(
        chalk.dim(
          `wrote ${written.length} files to ${values.out as string} (bench.json, summary.csv, per-run aiperf CSV/JSONL, SVG charts)`,
        ),
      );
    }
    if (ctx.globals.json) {
      ctx.stdout.write(JSON.stringify(json, null, 2) + '\n');
    } else {
      ctx.stdout.write(renderReport(json) + '\n');
    }
    return 0;
  },
};
