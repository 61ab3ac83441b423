/**
 * `dynamo-lab router`: the embedded KV router in front of simulated or real workers — the piece
 * a user can run in place of Dynamo's frontend (OpenAI API on --host:--port).
 *
 * KV events (--events): inproc (sim workers in this process), zmq (each worker's vLLM PUB socket,
 * with replay from its ROUTER socket), nats://host:port (Dynamo RouterEvent envelopes on
 * namespace.{ns}.component.{comp}.kv-events; each event's u64 worker_id is mapped to a worker by
 * `--worker id=NAME,url=URL,worker_id=N`, or by a worker whose id is that number), or none
 * (approximate mode). Interactive runs show a live dashboard; otherwise one log line per decision.
 */
import chalk from 'chalk';
import React from 'react';
import type { Command } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { PortInUseError } from '../../base/net.js';
import { RouterServer, type WorkerEndpoint } from '../../server/router-server.js';
import { NatsConnectError, NatsKvPublisher } from '../../server/nats-events.js';
import { ThreadedSimWorker } from '../../sim/index.js';
import { loadChatTokenizer, TokenizerError, type ChatTokenizer } from '../../tokenizer/index.js';
import type { PortForwardHandle } from '../../cluster/index.js';
import { parseRouterFlags, ROUTER_OPTIONS } from './router-flags.js';
import { tokenizerHint } from '../tokenizer-hint.js';

/** Dynamo worker ids given to simulated workers when they publish on NATS (worker i -> base + i). */
const SIM_DYNAMO_WORKER_ID_BASE = 1000n;

export const routerCommand: Command = {
  name: 'router',
  summary: 'Run the KV-aware router (OpenAI API) in front of simulated or real workers',
  usage:
    'dynamo-lab router [--sim <n> | --worker <url|spec>... | --discover <k8s-label-selector>] [--mode kv|kv-ttft|round-robin|random|least-loaded|power-of-two|direct|device-aware-weighted] [--host 127.0.0.1] [--port 8000] [--events inproc|none|zmq|zmq://host:port[+replay][,..]|nats://host:port] [--block-size <n>] [--kv-overlap-score-weight <w>] [--router-temperature <t>] [--router-policy-config <yaml>] [--router-ttl-secs <s>] [--router-approximate-cache-policy ttl|lru] [--router-queue-threshold <frac>] [--router-replica-sync [--nats nats://host:port]] [--dynamo-direct]',
  examples: [
    'dynamo-lab router --sim 4',
    'dynamo-lab router --sim 4 --events zmq',
    'dynamo-lab router --discover app.kubernetes.io/name=dynamo-lab-worker --namespace dynamo',
    'dynamo-lab router --worker http://10.0.0.5:8000 --worker http://10.0.0.6:8000 --events zmq://10.0.0.5:5557+5558,10.0.0.6:5557+5558',
    'dynamo-lab router --worker id=a,url=http://10.0.0.5:8000,worker_id=7587889123 --events nats://10.0.0.2:4222',
    'dynamo-lab router --worker http://10.0.0.5:8000 --events none --active-prefill-tokens-threshold 16000',
    'dynamo-lab router --sim 4 --mode direct   # clients name the worker: nvext.backend_instance_id or x-dynamo-lab-target-worker',
    'dynamo-lab router --worker id=g,url=http://10.0.0.5:8000 --worker id=c,url=http://10.0.0.6:8000,device=cpu --mode device-aware-weighted',
    'dynamo-lab router --worker id=a,url=http://127.0.0.1:8080,worker_id=7587889123 --worker id=b,url=http://127.0.0.1:8080,worker_id=7587889124 --events nats://127.0.0.1:4222 --dynamo-direct',
  ],
  options: ROUTER_OPTIONS,
  async run(values, _p, ctx) {
    const f = await parseRouterFlags(values, process.env);
    for (const w of f.warnings) ctx.stderr.write(chalk.yellow(`warning: ${w}\n`));
    const { mode, sim, discover, discoverPorts, inCluster, discoverInterval, specs, events, blockSize, apiKey, replicaSync, speedup } = f;

    const dashboard = ctx.interactive && !ctx.globals.json;
    const notices: string[] = [];
    const say = (s: string) => ctx.stderr.write(s + '\n');
    const log = ctx.globals.json
      ? undefined
      : dashboard
        ? (l: string) => {
            if (l.startsWith('route ')) return;
            notices.push(l);
            if (notices.length > 5) notices.shift();
          }
        : say;
    const tokenizerSource = f.tokenizer;
    const promptLimits = f.maxPromptTokens !== undefined ? { maxTokens: f.maxPromptTokens } : undefined;
    let tokenizer: ChatTokenizer;
    try {
      tokenizer = await loadChatTokenizer(tokenizerSource, { limits: promptLimits });
    } catch (err) {
      if (err instanceof TokenizerError) throw new UserError(err.message, tokenizerHint(err));
      throw err;
    }
    const started: ThreadedSimWorker[] = [];
    let bridge: NatsKvPublisher | undefined;
    let server: RouterServer | undefined;
    let forwarded: PortForwardHandle | undefined;
    let rediscover: NodeJS.Timeout | undefined;
    let ink: { rerender(el: React.ReactElement): void; unmount(): void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const workers: WorkerEndpoint[] = [];
      if (sim !== undefined) {
        if (events.kind === 'nats')
          bridge = await NatsKvPublisher.start({
            servers: events.nats!,
            namespace: f.natsNamespace,
            component: f.natsComponent,
          });
        // Each simulated engine (and its HTTP server and streams) runs on its own worker thread,
        // so it cannot starve this router's event loop. The threads stream the engine's output
        // ids [1000, 2000) with this table and load a tokenizer only for direct text requests.
        const outputIds = Array.from({ length: 1000 }, (_, k) => 1000 + k);
        await tokenizer.warmTokenTexts(outputIds);
        const tokenTexts = new Map(outputIds.map((id) => [id, tokenizer.tokenText(id)]));
        const threads = await Promise.allSettled(
          Array.from({ length: sim }, (_, i) =>
            ThreadedSimWorker.start({
              id: `worker-${i}`,
              blockSize,
              port: 0,
              speedup,
              tokenizer: tokenizerSource,
              promptLimits,
              tokenTexts,
              zmq: events.kind === 'zmq' ? { pubPort: 0, replayPort: 0 } : undefined,
              log: ctx.globals.verbose ? (l) => say(chalk.dim(l)) : undefined, // sim lines carry their worker id
            }),
          ),
        );
        for (const t of threads) if (t.status === 'fulfilled') started.push(t.value);
        const failed = threads.find((t) => t.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
        for (let i = 0; i < sim; i++) {
          const w = started[i]!;
          const dynamoWorkerId = SIM_DYNAMO_WORKER_ID_BASE + BigInt(i);
          if (bridge) bridge.attach(w, dynamoWorkerId);
          workers.push({
            id: w.id,
            url: w.url,
            onKvEvent: (l) => w.onKvEvent(l),
            zmq: w.zmqEndpoint,
            replay: w.zmqReplayEndpoint,
            dynamoWorkerId: bridge ? dynamoWorkerId.toString() : undefined,
            totalKvBlocks: w.numGpuBlocks,
            provideTokens: (id, ids) => w.provideTokens(id, ids),
          });
        }
      } else if (discover !== undefined && inCluster) {
        const { connect, discoverWorkers, podWorkerEndpoints } = await import('../../cluster/index.js');
        const cluster = await connect({ context: ctx.globals.context, namespace: ctx.globals.namespace }, ctx.signal);
        const list = async () =>
          podWorkerEndpoints(await discoverWorkers(discover, { cluster, signal: ctx.signal }), [discoverPorts[0]!, discoverPorts[1]!]);
        for (const p of await list()) {
          workers.push({ id: p.pod, url: p.httpUrl, zmq: events.kind === 'zmq' ? p.zmqUrl : undefined });
          if (!ctx.globals.json)
            say(chalk.dim(`discovered ${p.namespace}/${p.pod}: ${p.httpUrl}${events.kind === 'zmq' ? `, KV events ${p.zmqUrl}` : ''}`));
        }
        // Pods come and go: re-list and add / remove workers (by pod name; a changed IP is a new worker).
        let busy = false;
        rediscover = setInterval(() => {
          if (busy || !server) return;
          busy = true;
          void list()
            .then((pods) => {
              const srv = server!;
              const want = new Map(pods.map((p) => [p.pod, p]));
              const have = new Map(srv.workersView().workers.map((w) => [w.id, w.url]));
              for (const [id, url] of have) {
                const p = want.get(id);
                if (!p || p.httpUrl !== url) {
                  srv.removeWorker(id);
                  log?.(`worker pod ${id} gone or moved: removed`);
                }
              }
              for (const p of pods) {
                if (have.get(p.pod) === p.httpUrl) continue;
                srv.addWorker({ id: p.pod, url: p.httpUrl, zmq: events.kind === 'zmq' ? p.zmqUrl : undefined });
                log?.(`discovered ${p.namespace}/${p.pod}: ${p.httpUrl}`);
              }
            })
            .catch((e: Error) => log?.(`pod listing failed: ${e.message}`))
            .finally(() => (busy = false));
        }, discoverInterval * 1000);
        rediscover.unref();
      } else if (discover !== undefined) {
        const { forwardWorkers } = await import('../../cluster/index.js');
        forwarded = await forwardWorkers(discover, {
          context: ctx.globals.context,
          namespace: ctx.globals.namespace,
          signal: ctx.signal,
          ports: discoverPorts,
          onError: (pod, p, e) => log?.(`port-forward ${pod}:${p}: ${e.message}`),
        });
        for (const f of forwarded.workers) {
          workers.push({ id: f.pod, url: f.httpUrl, zmq: events.kind === 'zmq' ? f.zmqUrl : undefined });
          if (!ctx.globals.json)
            say(chalk.dim(`discovered ${f.namespace}/${f.pod}: ${f.httpUrl}${f.zmqUrl ? `, KV events ${f.zmqUrl}` : ''}`));
        }
      } else {
        specs.forEach((s, i) => {
          workers.push({ ...s, id: s.id ?? `worker-${i}` });
        });
        const ids = new Set<string>();
        for (const w of workers) {
          if (ids.has(w.id)) throw new UsageError(`two --worker entries have the id "${w.id}".`);
          ids.add(w.id);
        }
      }
      try {
        server = await RouterServer.start({
          workers,
          blockSize,
          mode,
          host: f.host,
          port: f.port,
          config: f.config,
          seed: f.seed,
          apiKey,
          decisionHistory: f.decisionHistory,
          maxSessions: f.maxSessions,
          bodyLimitBytes: f.maxBodyBytes,
          events: events.kind,
          nats: events.nats ? { servers: events.nats, namespace: f.natsNamespace, component: f.natsComponent } : undefined,
          busy: f.busy,
          dynamoDirect: f.dynamoDirect,
          sessionAffinityTtlMs: f.sessionAffinityTtlS * 1000,
          queue: f.queue,
          nonCpuToCpuRatio: f.nonCpuToCpuRatio,
          replicaSync: replicaSync ? { servers: replicaSync, namespace: f.natsNamespace, component: f.natsComponent } : undefined,
          health: f.healthIntervalS > 0 ? { intervalMs: f.healthIntervalS * 1000 } : false,
          tokenizer: tokenizerSource,
          promptLimits,
          log,
        });
      } catch (err) {
        if (err instanceof NatsConnectError)
          throw new UserError(
            (err as Error).message,
            'Start a NATS server (nats-server -js) or fix the nats://host:port in --events / --nats.',
          );
        throw err;
      }
      const s = server;
      if (ctx.globals.json) {
        ctx.stdout.write(
          JSON.stringify({
            url: s.url,
            mode,
            block_size: blockSize,
            events: events.kind,
            tokenizer: tokenizer.backend.name,
            ...(replicaSync ? { replica_sync: { servers: replicaSync, router_id: s.replicaSyncStats()?.router_id } } : {}),
            workers: workers.map((w) => ({
              id: w.id,
              url: w.url,
              ...(w.zmq ? { zmq: w.zmq } : {}),
              ...(w.replay ? { replay: w.replay } : {}),
              ...(w.dynamoWorkerId ? { worker_id: w.dynamoWorkerId } : {}),
              ...(w.device ? { device: w.device } : {}),
            })),
          }) + '\n',
        );
      } else if (dashboard) {
        const { render } = await import('ink');
        const { RouterDashboard } = await import('../../ui/RouterDashboard.js');
        const view = () =>
          React.createElement(RouterDashboard, {
            ...s.dashboardState(8),
            notices: [...notices],
            columns: process.stdout.columns,
            rows: process.stdout.rows,
          });
        ink = render(view(), { exitOnCtrlC: false });
        timer = setInterval(() => ink!.rerender(view()), 500);
      } else {
        say(
          chalk.green(
            `router listening on ${s.url}  (mode ${mode}, block size ${blockSize}, events ${events.kind}${events.nats ? ` ${events.nats.join(',')}` : ''}${replicaSync ? `, replica sync ${replicaSync.join(',')} as router ${s.replicaSyncStats()?.router_id}` : ''}${apiKey ? ', API key required' : ''})`,
          ),
        );
        for (const w of workers) {
          say(
            `  ${w.id}  ${w.url}${w.zmq ? `  kv-events ${w.zmq}` : ''}${w.replay ? ` replay ${w.replay}` : ''}${w.dynamoWorkerId ? `  worker_id ${w.dynamoWorkerId}` : ''}`,
          );
        }
        say(
          chalk.dim(
            `  OpenAI base URL: ${s.url}/v1   decisions: ${s.url}/debug/decisions   workers: ${s.url}/debug/workers   metrics: ${s.url}/metrics`,
          ),
        );
        say(chalk.dim(`  add / remove workers: POST ${s.url}/admin/workers {"url":...}, DELETE ${s.url}/admin/workers/<id>`));
        say(chalk.dim('  Ctrl+C to stop.'));
      }
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } catch (err) {
      if (err instanceof PortInUseError) throw new UserError((err as Error).message, 'Pick another --port, or stop the program using it.');
      throw err;
    } finally {
      if (timer) clearInterval(timer);
      if (rediscover) clearInterval(rediscover);
      ink?.unmount();
      await server?.close();
      await bridge?.close();
      await forwarded?.close();
      await Promise.all(started.map((w) => w.close()));
      if (!ctx.globals.json) say(chalk.dim('router and workers stopped'));
    }
    return 0;
  },
};
