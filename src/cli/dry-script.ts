/**
 * The cluster dry run as a script a person can read and run without dynamo-lab. The lab's own
 * `dynamo-lab` commands are spelled out as what they do:
 * - `deploy` / `install`: the manifests as `kubectl apply -f - <<'EOF'` blocks, helm commands
 *   and their values file; secrets come from the environment and are never printed;
 * - `demo`: one streamed curl per scenario request with the scenario's exact messages (long
 *   texts in shell variables, follow-up turns carry the answer of the turn before), printing
 *   TTFT, total time and cached/prompt tokens;
 * - `traffic`: the same requests N at a time, then TTFT percentiles and the cached share;
 * - `logs`: `kubectl logs -l <the DGD's component> | sed <colour codes off> | grep -iE <the pattern>`;
 * - `check gpu`: allocatable GPUs per node and the pods holding them, compared with the need.
 * Only what has no plain equivalent (the virtual-time benchmark replays dynamo-lab's own
 * simulator) stays a dynamo-lab call, marked with the reason and run only when it is installed.
 * The helpers are bash functions (bash 5, curl, kubectl, awk) from manifests/script/, put at the
 * top of the script.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { packagePath } from '../base/paths.js';
import { stringify } from 'yaml';
import { quoteArg as shellQuote } from '../base/shell.js';
import type { CommandSpec } from '../lab/types.js';
import { messagesOf, type ChatTurn, type DemoRequest } from '../lab/demo.js';
import { loadRawScenarios } from '../lab/scenarios.js';
import { fillerText } from '../lab/filler.js';
import { DEFAULT_MODEL } from '../tokenizer/index.js';
import { compileGrep } from '../cluster/logs.js';
import { DEFAULT_DGD_NAME, DEFAULT_WORKERS, LABEL_COMPONENT, LABEL_DGD } from '../cluster/manifests.js';

interface PlanRequest {
  method: string;
  path: string;
  body?: {
    kind?: string;
    metadata?: { name?: string; namespace?: string };
    data?: Record<string, string>;
    stringData?: Record<string, string>;
  };
}

/** Run this CLI's own dry run of a sub-command and parse its JSON (argv array, no shell). */
function selfDryRun(args: readonly string[]): Record<string, unknown> | undefined {
  try {
    const out = execFileSync(process.execPath, [process.argv[1]!, ...args, '--dry-run', '--json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    });
    return JSON.parse(out) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function heredoc(text: string): string[] {
  // A delimiter that cannot occur in the text.
  let tag = 'EOF';
  while (text.split('\n').includes(tag)) tag += '_';
  return [`<<'${tag}'`, ...text.replace(/\n+$/, '').split('\n'), tag];
}

function expandDeploy(args: readonly string[]): string[] | undefined {
  const plan = selfDryRun(args);
  const requests = plan?.requests as PlanRequest[] | undefined;
  if (!requests) return undefined;
  const out: string[] = [];
  for (const r of requests) {
    const b = r.body;
    if (!b?.kind) continue;
    const ns = b.metadata?.namespace ?? 'default';
    if (b.kind === 'Secret') {
      // The value comes from the environment at run time; the script never holds it.
      const keys = Object.keys(b.data ?? b.stringData ?? {});
      out.push(
        `kubectl create secret generic ${shellQuote(b.metadata?.name ?? 'secret')} --namespace ${shellQuote(ns)} ${keys.map((k) => `--from-literal=${k}="\${${k}:?export ${k} first}"`).join(' ')} --dry-run=client -o yaml | kubectl apply --server-side --field-manager=dynamo-lab --force-conflicts -f -`,
      );
      continue;
    }
    const [first, ...rest] = heredoc(stringify(b));
    out.push(`kubectl apply --server-side --field-manager=dynamo-lab --force-conflicts -f - ${first}`, ...rest);
    if (b.kind === 'DynamoGraphDeployment') {
      out.push(
        `kubectl wait --for=condition=Ready dynamographdeployment/${shellQuote(b.metadata?.name ?? '')} --namespace ${shellQuote(ns)} --timeout=30m`,
      );
    }
  }
  return out;
}

/** `--flag value` pairs of a dynamo-lab command line; flags in `booleans` take no value. */
function flags(args: readonly string[], booleans: readonly string[] = []): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) continue;
    const name = a.slice(2);
    const value = booleans.includes(name) ? 'true' : (args[++i] ?? '');
    m.set(name, [...(m.get(name) ?? []), value]);
  }
  return m;
}

const one = (m: Map<string, string[]>, k: string): string | undefined => m.get(k)?.at(-1);

/** A JS regex source (the log patterns) as POSIX ERE for `grep -E`: no (?:…) groups, no \d \w \s \S classes. */
export function toEre(source: string): string {
  let out = '';
  let inBracket = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\' && i + 1 < source.length) {
      const n = source[++i]!;
      const cls: Record<string, [string, string]> = {
        d: ['0-9', '[0-9]'],
        w: ['[:alnum:]_', '[[:alnum:]_]'],
        s: ['[:space:]', '[[:space:]]'],
        S: ['', '[^[:space:]]'],
      };
      if (cls[n] && !(inBracket && n === 'S')) out += inBracket ? cls[n]![0] : cls[n]![1];
      else out += `\\${n}`;
      continue;
    }
    if (!inBracket && c === '(' && source.startsWith('?:', i + 1)) {
      out += '(';
      i += 2;
      continue;
    }
    if (c === '[' && !inBracket) inBracket = true;
    else if (c === ']' && inBracket && !out.endsWith('[') && !out.endsWith('[^')) inBracket = false;
    out += c;
  }
  return out;
}

const FILLER_RE = /\{\{filler:([a-z0-9-]+):(\d+)\}\}/g;
/** Stand-ins in a request body for what the shell fills in: a long text, an earlier answer. */
const MARK = '\u0001';

/** A helper of the dry-run script (manifests/script/*.sh), inlined at the top of the script once. */
function helper(name: string): string[] {
  return readFileSync(packagePath('manifests', 'script', name), 'utf8')
    .replace(/\n+$/, '')
    .split('\n')
    .concat('');
}

/** Builds the script lines of a lab's commands and the helpers they need. */
export class ClusterScript {
  private needsChat = false;
  private needsGpu = false;
  /** Whether a step writes a file on the way (Helm values, load results): they go in $lab_tmp. */
  private needsTemp = false;
  private readonly fillers = new Map<string, string>();

  /** Helper functions and long texts the commands use; goes right after `set -euo pipefail`. */
  preamble(): string[] {
    const out: string[] = [];
    if (this.needsTemp)
      out.push(
        '# Files the steps write on the way go in one directory, removed when the script exits.',
        'lab_tmp=$(mktemp -d)',
        `trap 'rm -rf "$lab_tmp"' EXIT`,
        '',
      );
    if (this.needsChat) out.push(...helper('lab-requests.sh'));
    if (this.needsGpu) out.push(...helper('lab-gpu-check.sh'));
    if (this.fillers.size) {
      out.push("# The long shared texts of the long-prefix scenarios (generated from the project's sentences), JSON-escaped.");
      for (const [v, text] of this.fillers) out.push(`${v}=${shellQuote(text)}`);
      out.push('');
    }
    return out;
  }

  private filler(name: string, words: number): string {
    const v = `lab_text_${name.replaceAll('-', '_')}_${words}`;
    if (!this.fillers.has(v)) this.fillers.set(v, JSON.stringify(fillerText(name, words)).slice(1, -1));
    return v;
  }

  /** A JSON body with MARK…MARK stand-ins as a shell word: literal parts single-quoted, stand-ins as "$var". */
  private shellBody(body: unknown, vars: (mark: string) => string): string {
    const json = JSON.stringify(body);
    const parts = json.split(/\\u0001([^\\]*)\\u0001/);
    return parts.map((p, i) => (i % 2 === 0 ? (p ? shellQuote(p) : '') : `"$${vars(p)}"`)).join('');
  }

  private chatBody(model: string, messages: readonly ChatTurn[], maxTokens: number): Record<string, unknown> {
    return { model, messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } };
  }

  private demo(args: readonly string[]): string[] {
    const f = flags(args);
    const url = one(f, 'url') ?? 'http://127.0.0.1:8000';
    const model = one(f, 'model') ?? DEFAULT_MODEL;
    const names = f.get('scenario') ?? ['shared-prefix', 'system-prompt'];
    const all = loadRawScenarios();
    this.needsChat = true;
    const out: string[] = [];
    for (const name of names) {
      const sc = all[name];
      if (!sc) return [`echo ${shellQuote(`unknown scenario ${name}`)} >&2; exit 1`];
      out.push(`echo ${shellQuote(`${name}: ${sc.description}`)}`);
      let prev: ChatTurn[] | undefined;
      sc.requests.forEach((raw, i) => {
        const mark = (s: string) => s.replace(FILLER_RE, (_m, n: string, w: string) => `${MARK}F${n}:${w}${MARK}`);
        const r: DemoRequest = { ...raw, prompt: mark(raw.prompt), ...(raw.system ? { system: mark(raw.system) } : {}) };
        const history = r.follow_up && prev ? [...prev, { role: 'assistant', content: `${MARK}A${i}${MARK}` }] : [];
        const messages = messagesOf(r, history);
        prev = messages;
        const body = this.shellBody(this.chatBody(model, messages, r.max_tokens ?? 50), (m) => {
          if (m.startsWith('A')) return `lab_answer_${m.slice(1)}`;
          const [n, w] = m.slice(1).split(':');
          return this.filler(n!, Number(w));
        });
        out.push(`lab_chat ${shellQuote(url)} ${shellQuote(`${i + 1}  ${r.label ?? r.prompt}`)} ${body}`);
        if (sc.requests[i + 1]?.follow_up) out.push(`lab_answer_${i + 1}=$lab_answer`);
      });
    }
    return out;
  }

  private traffic(args: readonly string[]): string[] {
    const f = flags(args);
    const url = one(f, 'url') ?? 'http://127.0.0.1:8000';
    const model = one(f, 'model') ?? DEFAULT_MODEL;
    const n = Number(one(f, 'requests') ?? 30);
    const c = Number(one(f, 'concurrency') ?? 3);
    const maxTokens = Number(one(f, 'max-tokens') ?? 20);
    const prompt = one(f, 'prompt') ?? 'Request {i}: explain one idea from distributed systems in two sentences.';
    this.needsChat = true;
    this.needsTemp = true;
    const I = `${MARK}i${MARK}`;
    const body = this.shellBody(this.chatBody(model, [{ role: 'user', content: prompt.replaceAll('{i}', I) }], maxTokens), () => 'i');
    return [
      'lab_out=$(mktemp "$lab_tmp/traffic.XXXXXX")',
      `for i in $(seq 1 ${n}); do`,
      `  while (( $(jobs -rp | wc -l) >= ${c} )); do wait -n; done`,
      `  lab_chat ${shellQuote(url)} "request $i" ${body} >>"$lab_out" &`,
      'done',
      'while (( $(jobs -rp | wc -l) > 0 )); do wait -n; done',
      'cat "$lab_out"',
      'lab_summary "$lab_out"',
      '# Which worker served each request: the frontend logs its routing decisions (see the logs steps).',
    ];
  }

  private logs(args: readonly string[], manual: boolean): string[] {
    const f = flags(args, ['follow']);
    const ns = one(f, 'namespace');
    const selector =
      one(f, 'selector') ??
      [
        `${LABEL_DGD}=${one(f, 'name') ?? DEFAULT_DGD_NAME}`,
        ...(one(f, 'component') ? [`${LABEL_COMPONENT}=${one(f, 'component')}`] : []),
      ].join(',');
    const re = compileGrep(one(f, 'grep'), one(f, 'pattern'), one(f, 'release'));
    const follow = f.has('follow');
    const kubectl = [
      'kubectl',
      'logs',
      ...(ns ? ['--namespace', ns] : []),
      '-l',
      selector,
      '--all-containers',
      '--prefix',
      ...(follow ? ['--follow', '--max-log-requests', '20'] : [`--tail=${one(f, 'tail') ?? 100}`]),
    ]
      .map(shellQuote)
      .join(' ');
    // Colour codes off first (Dynamo colours its log fields even into a pipe), then the pattern.
    const grep = re
      ? ` | sed ${follow ? '-u ' : ''}${shellQuote('s/\\x1b\\[[0-9;]*m//g')} | grep ${follow ? '--line-buffered ' : ''}-iE ${shellQuote(toEre(re.source))}`
      : '';
    const line = `${kubectl}${grep}${!follow && re ? ` || echo ${shellQuote(`(no lines match in the last ${one(f, 'tail') ?? 100} of each container)`)}` : ''}`;
    return [manual ? `# run by hand: ${line}` : line];
  }

  private install(args: readonly string[]): string[] | undefined {
    const plan = selfDryRun(args) as { commands?: Array<{ shell: string }>; valuesFile?: string; values?: string } | undefined;
    if (!plan?.commands) return undefined;
    const out: string[] = [];
    let valuesRef: string | undefined;
    if (plan.valuesFile && plan.values !== undefined) {
      valuesRef = '"$values_file"';
      this.needsTemp = true;
      const [first, ...rest] = heredoc(plan.values);
      out.push('values_file=$(mktemp "$lab_tmp/values.XXXXXX")', `cat > "$values_file" ${first}`, ...rest);
    }
    for (const c of plan.commands) out.push(valuesRef ? c.shell.split(plan.valuesFile!).join(valuesRef) : c.shell);
    return out;
  }

  private gpuCheck(args: readonly string[]): string[] {
    const f = flags(args);
    this.needsGpu = true;
    return [`lab_gpu_check ${shellQuote(one(f, 'need') ?? String(DEFAULT_WORKERS))} ${shellQuote(one(f, 'name') ?? DEFAULT_DGD_NAME)}`];
  }

  /** Script lines for one lab command. */
  lines(cmd: CommandSpec, display: string): string[] {
    const [bin, sub, ...rest] = cmd.argv;
    if (bin !== 'dynamo-lab') return [cmd.manual ? `# run by hand: ${display}` : display];
    if (sub === 'logs') return [`# ${display}, spelled out:`, ...this.logs(rest, Boolean(cmd.manual))];
    if (cmd.manual) return [`# run by hand: ${display}`];
    const expanded =
      sub === 'deploy'
        ? expandDeploy(['deploy', ...rest])
        : sub === 'install'
          ? this.install(['install', ...rest])
          : sub === 'demo'
            ? this.demo(rest)
            : sub === 'traffic'
              ? this.traffic(rest)
              : sub === 'check' && rest[0] === 'gpu'
                ? this.gpuCheck(rest.slice(1))
                : undefined;
    if (expanded) return [`# ${display}, spelled out:`, ...expanded];
    return [
      `# needs dynamo-lab: ${sub === 'bench' ? "the virtual-time benchmark replays dynamo-lab's own simulated workers and router core; nothing on the cluster does that" : 'no plain equivalent'}`,
      `if command -v dynamo-lab >/dev/null; then ${display}; else echo ${shellQuote(`skipped (needs dynamo-lab): ${display}`)} >&2; fi`,
    ];
  }
}
