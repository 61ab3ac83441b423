/**
 * The cluster dry run as a script a person can read and run without dynamo-lab: the lab's own
 * `dynamo-lab deploy` / `install` commands are expanded into what they would do (manifests as
 * `kubectl apply -f - <<'EOF'` blocks, helm commands and their values file), secrets come from
 * the environment and are never printed. Other `dynamo-lab` helpers (demo, logs, check) run only
 * when dynamo-lab is installed.
 */
import { execFileSync } from 'node:child_process';
import { stringify } from 'yaml';
import { quoteArg as shellQuote } from '../base/shell.js';
import type { CommandSpec } from '../lab/types.js';

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

function expandInstall(args: readonly string[]): string[] | undefined {
  const plan = selfDryRun(args) as { commands?: Array<{ shell: string }>; valuesFile?: string; values?: string } | undefined;
  if (!plan?.commands) return undefined;
  const out: string[] = [];
  let valuesRef: string | undefined;
  if (plan.valuesFile && plan.values !== undefined) {
    valuesRef = '"$values_file"';
    const [first, ...rest] = heredoc(plan.values);
    out.push('values_file=$(mktemp)', `cat > "$values_file" ${first}`, ...rest);
  }
  for (const c of plan.commands) out.push(valuesRef && plan.valuesFile ? c.shell.split(plan.valuesFile).join(valuesRef) : c.shell);
  return out;
}

/** Script lines for one lab command. */
export function scriptLines(cmd: CommandSpec, display: string): string[] {
  if (cmd.manual) return [`# run by hand: ${display}`];
  const [bin, sub, ...rest] = cmd.argv;
  if (bin === 'dynamo-lab') {
    const expanded =
      sub === 'deploy' ? expandDeploy(['deploy', ...rest]) : sub === 'install' ? expandInstall(['install', ...rest]) : undefined;
    if (expanded) return [`# ${display}, spelled out:`, ...expanded];
    return [
      `if command -v dynamo-lab >/dev/null; then ${display}; else echo ${shellQuote(`skipped (needs dynamo-lab): ${display}`)} >&2; fi`,
    ];
  }
  return [display];
}
