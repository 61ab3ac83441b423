/**
 * Component logs with the labs' grep patterns. Pods are found by the operator's labels
 * (nvidia.com/dynamo-graph-deployment-name + nvidia.com/dynamo-component or -component-type),
 * or by any label selector. Following re-opens a stream that the server ended (kubelets and
 * client-node close long follows) from the last timestamp seen, until Ctrl+C.
 */
import * as k8s from '@kubernetes/client-node';
import { Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import type { Cluster } from './kube.js';
import { ClusterError, ClusterInputError } from './errors.js';
import { LABEL_COMPONENT, LABEL_COMPONENT_TYPE, LABEL_DGD } from './manifests.js';
import { decisionPattern } from './releases.js';

/**
 * The labs' log presets (`--pattern <name>`). `decisions` (alias `routing`) is the frontend's
 * routing-decision lines of the Dynamo release in use (releases.ts: the text and level differ
 * per release); without a release, every release's forms. The others match what vLLM and
 * Dynamo really print: vLLM's periodic stats line ("Engine 000: … GPU KV cache usage: …,
 * Prefix cache hit rate: …%", every ~10 s while busy, not one line per request), the KV event
 * lines of Dynamo's publisher/indexer (trace level) and NATS/NIXL start-up lines.
 */
export const LOG_PATTERNS: Readonly<Record<string, { regex: string | ((release?: string) => string); about: string }>> = {
  decisions: {
    regex: (release?: string) => decisionPattern(release),
    about: 'routing decisions: chosen worker, logit, cached blocks (per Dynamo release)',
  },
  routing: { regex: (release?: string) => decisionPattern(release), about: 'same as decisions' },
  cache: {
    regex: 'Prefix cache hit rate|KV cache usage|prefix.?cach|cache hit|cache miss',
    about: "vLLM's periodic prefix-cache hit rate and KV cache usage",
  },
  nats: { regex: 'nats|nixl', about: 'NATS/NIXL connections' },
  events: {
    regex: 'processing event: (?:Stored|Removed|Cleared)|received batch with \\d+ events|kv.?events?|KV.*(?:stored|removed)',
    about: 'KV events published/applied (Dynamo logs them at trace level)',
  },
};

/** The regex source of a preset for a release. */
function presetRegex(name: string, release?: string): string | undefined {
  const p = LOG_PATTERNS[name];
  if (!p) return undefined;
  return typeof p.regex === 'function' ? p.regex(release) : p.regex;
}

export function compileGrep(grep: string | undefined, pattern: string | undefined, release?: string): RegExp | undefined {
  const parts: string[] = [];
  if (pattern) {
    for (const name of pattern
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const p = presetRegex(name, release);
      if (p === undefined)
        throw new ClusterInputError(
          `unknown log pattern "${name}"`,
          'pattern',
          `Use one of: ${Object.keys(LOG_PATTERNS).join(', ')} (or a regular expression).`,
        );
      parts.push(p);
    }
  }
  if (grep) parts.push(grep);
  if (!parts.length) return undefined;
  try {
    return new RegExp(parts.map((p) => `(?:${p})`).join('|'), 'i');
  } catch (err) {
    throw new ClusterInputError(`not a valid regular expression: ${(err as Error).message}`, 'grep');
  }
}

/**
 * Does a log line match? Matched without its terminal colour codes: Dynamo's frontend colours
 * its structured fields even when writing to a pipe (`worker_id` ESC[0m ESC[2m= ESC[0m …),
 * which would hide `worker_id=…` from any pattern.
 */
export function logLineMatches(grep: RegExp, line: string): boolean {
  return grep.test(line.includes('\u001b') ? stripVTControlCharacters(line) : line);
}

export interface LogTarget {
  namespace: string;
  pod: string;
  container: string;
}

export interface SelectOptions {
  readonly namespace: string;
  /** DGD name (pods labelled nvidia.com/dynamo-graph-deployment-name=<name>). */
  readonly dgd?: string;
  /** Component name (e.g. VllmWorker, Frontend) or type (worker, frontend), case-insensitive. */
  readonly component?: string;
  /** A raw label selector instead of dgd/component. */
  readonly selector?: string;
}

export async function selectPods(cluster: Cluster, o: SelectOptions): Promise<LogTarget[]> {
  const labelSelector = o.selector ?? (o.dgd ? `${LABEL_DGD}=${o.dgd}` : undefined);
  const list = await cluster.call({ verb: 'list', resource: 'pods', namespace: o.namespace }, () =>
    cluster.core.listNamespacedPod({ namespace: o.namespace, labelSelector }),
  );
  let pods = list.items.filter((p) => !p.metadata?.deletionTimestamp);
  if (o.component) {
    const want = o.component.toLowerCase();
    const byName = pods.filter((p) => p.metadata?.labels?.[LABEL_COMPONENT]?.toLowerCase() === want);
    const byType = pods.filter((p) => p.metadata?.labels?.[LABEL_COMPONENT_TYPE]?.toLowerCase() === want);
    const byPodName = pods.filter((p) => p.metadata?.name?.toLowerCase().includes(want));
    pods = byName.length ? byName : byType.length ? byType : byPodName;
    if (!pods.length) {
      const names = [...new Set(list.items.map((p) => p.metadata?.labels?.[LABEL_COMPONENT]).filter(Boolean))];
      throw new ClusterError(
        `No pod of component "${o.component}"${labelSelector ? ` with ${labelSelector}` : ''} in namespace "${o.namespace}".`,
        names.length
          ? `Components found: ${names.join(', ')} (types: frontend, worker).`
          : 'Is the lab deployed? `dynamo-lab deploy`, then `dynamo-lab logs`.',
      );
    }
  }
  if (!pods.length) {
    throw new ClusterError(
      `No pods${labelSelector ? ` with ${labelSelector}` : ''} in namespace "${o.namespace}".`,
      'Is the lab deployed (`dynamo-lab deploy`) and is --namespace right?',
    );
  }
  return pods
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))
    .map((p) => {
      const containers = (p.spec?.containers ?? []).map((c) => c.name);
      return { namespace: o.namespace, pod: p.metadata!.name!, container: containers.includes('main') ? 'main' : (containers[0] ?? '') };
    });
}

export async function readLogs(cluster: Cluster, t: LogTarget, tailLines: number, grep?: RegExp): Promise<string[]> {
  const text = await cluster.call({ verb: 'get', resource: 'pods/log', name: t.pod, namespace: t.namespace }, () =>
    cluster.core.readNamespacedPodLog({ name: t.pod, namespace: t.namespace, container: t.container, tailLines }),
  );
  const lines = String(text ?? '').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return grep ? lines.filter((l) => logLineMatches(grep, l)) : lines;
}

const TS = /^(\d{4}-\d{2}-\d{2}T\S+)\s(.*)$/;

/**
 * Follow logs of several pods until the signal aborts. Each line goes to onLine (already
 * filtered). A stream that ends is re-opened from the last timestamp seen.
 */
export async function followLogs(
  cluster: Cluster,
  targets: LogTarget[],
  o: {
    tailLines: number;
    grep?: RegExp;
    signal: AbortSignal;
    onLine: (t: LogTarget, line: string) => void;
    onNote?: (msg: string) => void;
  },
): Promise<void> {
  const log = new k8s.Log(cluster.ctx.kc);
  await Promise.all(
    targets.map(async (t) => {
      let since: string | undefined;
      let first = true;
      let failures = 0;
      while (!o.signal.aborted) {
        let partial = '';
        let lastLine = '';
        const ended = new Promise<void>((resolve) => {
          const sink = new Writable({
            write(chunk: Buffer, _enc, cb) {
              partial += chunk.toString('utf8');
              const lines = partial.split('\n');
              partial = lines.pop() ?? '';
              for (const raw of lines) {
                const m = TS.exec(raw);
                const ts = m?.[1];
                const line = m ? m[2]! : raw;
                // After a reconnect with sinceTime the last line may repeat once.
                if (ts && since && ts === since && raw === lastLine) continue;
                if (ts) since = ts;
                lastLine = raw;
                if (!o.grep || logLineMatches(o.grep, line)) o.onLine(t, line);
              }
              cb();
            },
            final(cb) {
              resolve();
              cb();
            },
          });
          sink.on('close', () => resolve());
          const onAbort = () => resolve();
          o.signal.addEventListener('abort', onAbort, { once: true });
          log
            .log(t.namespace, t.pod, t.container, sink, {
              follow: true,
              timestamps: true,
              ...(first ? { tailLines: o.tailLines } : since ? { sinceTime: since } : {}),
            })
            .then((ctrl) => {
              failures = 0;
              o.signal.addEventListener('abort', () => ctrl.abort(), { once: true });
              if (o.signal.aborted) ctrl.abort();
            })
            .catch((err: unknown) => {
              failures += 1;
              if (failures === 1 || failures % 10 === 0)
                o.onNote?.(`${t.pod}: log stream failed (${(err as Error).message?.split('\n')[0]}); retrying`);
              setTimeout(resolve, Math.min(5000, 500 * failures));
            });
        });
        await ended;
        first = false;
        if (!o.signal.aborted) await new Promise((r) => setTimeout(r, 300));
      }
    }),
  );
}
