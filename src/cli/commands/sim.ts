/**
 * `dynamo-lab sim`: run N simulated vLLM-like workers standalone (OpenAI API on ports
 * P..P+N-1, optional vLLM-format ZMQ KV events on Z..Z+N-1) until Ctrl+C.
 */
import type { Command, OptionSpec, ParsedValues } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { PortInUseError } from '../../base/net.js';
import { startSimWorkers, type SimWorker } from '../../sim/index.js';
import { TokenizerError } from '../../tokenizer/index.js';
import { tokenizerHint } from '../tokenizer-hint.js';

const options = {
  workers: { type: 'string', short: 'w', valueName: 'n', description: 'Number of workers (default 2)' },
  port: {
    type: 'string',
    short: 'p',
    valueName: 'first',
    description: 'HTTP port of the first worker; worker i uses first+i (default 8100; 0 = ephemeral ports)',
  },
  host: { type: 'string', valueName: 'addr', description: 'Listen address (default 127.0.0.1)' },
  'block-size': { type: 'string', valueName: 'n', description: 'Tokens per KV block (default 16)' },
  'gpu-blocks': { type: 'string', valueName: 'n', description: 'KV cache capacity per worker in blocks (default 16384)' },
  speedup: { type: 'string', valueName: 'x', description: 'Divide simulated pass times by x (default 1; 0 = no delays)' },
  'decode-speedup': { type: 'string', valueName: 'x', description: 'Further divide decode time by x (default 1)' },
  'max-num-seqs': { type: 'string', valueName: 'n', description: 'Max running requests per worker (default 256)' },
  'max-num-batched-tokens': { type: 'string', valueName: 'n', description: 'Token budget per scheduler pass (default 8192)' },
  'zmq-port': {
    type: 'string',
    valueName: 'first',
    description: 'Publish vLLM-format KV events on ZMQ PUB ports first..first+N-1 (0 = ephemeral)',
  },
  'replay-port': {
    type: 'string',
    valueName: 'first',
    description: 'ZMQ ROUTER replay sockets on first..first+N-1 (needs --zmq-port; 0 = ephemeral)',
  },
  model: { type: 'string', valueName: 'id', description: 'Served model name (default Qwen/Qwen2.5-1.5B-Instruct)' },
  seed: { type: 'string', valueName: 'n', description: 'Seed of the output-token RNG (worker i uses seed+i)' },
  'preemption-mode': {
    type: 'string',
    valueName: 'lifo|fifo',
    description: 'Which running request to preempt when KV blocks run out (default lifo)',
  },
  'no-prefix-caching': { type: 'boolean', description: 'Disable the prefix cache' },
  quiet: { type: 'boolean', short: 'q', description: 'No per-request log lines on stderr' },
  tokenizer: {
    type: 'string',
    valueName: 'dir|tokenizer.json',
    description:
      "The model's HF tokenizer (a directory with tokenizer.json + tokenizer_config.json chat template, or the tokenizer.json); default: the bundled Qwen tokenizer and ChatML template",
  },
} satisfies Record<string, OptionSpec>;

function intOpt(values: ParsedValues, name: string, def: number | undefined, min: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return def;
  const s = String(raw);
  if (!/^\d+$/.test(s)) throw new UsageError(`--${name} must be a whole number, got "${s}".`);
  const n = Number(s);
  if (n < min) throw new UsageError(`--${name} must be >= ${min}, got ${n}.`);
  return n;
}

function numOpt(values: ParsedValues, name: string, def: number): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number >= 0, got "${String(raw)}".`);
  return n;
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export const simCommand: Command = {
  name: 'sim',
  summary: 'Run simulated vLLM-like workers (OpenAI API, prefix cache, KV events) without a GPU',
  usage: 'dynamo-lab sim [--workers <n>] [--port <first>] [--block-size <n>] [--speedup <x>] [--zmq-port <first>] [--gpu-blocks <n>]',
  options,
  examples: [
    'dynamo-lab sim --workers 2 --port 8100',
    'dynamo-lab sim --workers 4 --port 8100 --zmq-port 5557 --block-size 64 --speedup 10',
    'dynamo-lab sim --workers 2 --port 0 --json',
  ],
  async run(values, _positionals, ctx) {
    const n = intOpt(values, 'workers', 2, 1)!;
    if (n > 256) throw new UsageError(`--workers ${n} is too many for one process (max 256).`);
    const basePort = intOpt(values, 'port', 8100, 0)!;
    if (basePort > 0 && basePort + n - 1 > 65535) throw new UsageError(`--port ${basePort} + ${n} workers goes past port 65535.`);
    const zmqPort = intOpt(values, 'zmq-port', undefined, 0);
    const replayPort = intOpt(values, 'replay-port', undefined, 0);
    if (replayPort !== undefined && zmqPort === undefined) throw new UsageError('--replay-port needs --zmq-port.');
    const mode = values['preemption-mode'] === undefined ? 'lifo' : String(values['preemption-mode']);
    if (mode !== 'lifo' && mode !== 'fifo') throw new UsageError(`--preemption-mode must be lifo or fifo, got "${mode}".`);
    const host = values.host === undefined ? '127.0.0.1' : String(values.host);
    const quiet = Boolean(values.quiet);
    const log = quiet ? undefined : (line: string) => ctx.stderr.write(line + '\n');

    let workers: SimWorker[];
    try {
      workers = await startSimWorkers(n, {
        host,
        basePort,
        model: values.model === undefined ? undefined : String(values.model),
        blockSize: intOpt(values, 'block-size', 16, 1),
        numGpuBlocks: intOpt(values, 'gpu-blocks', 16384, 1),
        maxNumSeqs: intOpt(values, 'max-num-seqs', 256, 1),
        maxNumBatchedTokens: intOpt(values, 'max-num-batched-tokens', 8192, 1),
        speedup: numOpt(values, 'speedup', 1),
        decodeSpeedup: numOpt(values, 'decode-speedup', 1) || 1,
        preemptionMode: mode,
        enablePrefixCaching: !values['no-prefix-caching'],
        seed: intOpt(values, 'seed', undefined, 0),
        zmq: zmqPort === undefined ? undefined : { pubPort: zmqPort, replayPort, host },
        tokenizer: values.tokenizer === undefined ? undefined : String(values.tokenizer),
        log,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e instanceof PortInUseError) {
        throw new UserError(
          `A port in the range is already in use (${e.message}).`,
          'Stop whatever uses it, pick another --port / --zmq-port, or pass --port 0 for free ports.',
        );
      }
      if (e?.code === 'EACCES') throw new UserError(`Not allowed to listen there (${e.message}).`, 'Use a port above 1024.');
      if (err instanceof TokenizerError) throw new UserError(err.message, tokenizerHint(err));
      throw err;
    }

    const closeAll = () => Promise.allSettled(workers.map((w) => w.close()));
    try {
      if (ctx.globals.json) {
        ctx.stdout.write(
          JSON.stringify(
            workers.map((w) => ({ id: w.id, url: w.url, zmq: w.zmqEndpoint ?? null, zmq_replay: w.zmqReplayEndpoint ?? null })),
          ) + '\n',
        );
      } else {
        for (const w of workers) {
          ctx.stdout.write(
            `${w.id}  ${w.url}${w.zmqEndpoint ? `  kv-events ${w.zmqEndpoint}` : ''}${w.zmqReplayEndpoint ? `  replay ${w.zmqReplayEndpoint}` : ''}\n`,
          );
        }
      }
      ctx.stderr.write(
        `${n} simulated worker${n === 1 ? '' : 's'} running (block size ${workers[0]!.engine.blockSize}, speedup ${workers[0]!.engine.speedup}). Ctrl+C to stop.\n`,
      );
      await waitForAbort(ctx.signal);
    } finally {
      await closeAll();
    }
    ctx.stderr.write('Simulated workers stopped.\n');
    return 0;
  },
};
