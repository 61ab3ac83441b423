/**
 * The Python venv with the peers, under the user's cache dir (~/.cache/dynamo-lab/peers-venv or
 * $XDG_CACHE_HOME/dynamo-lab/peers-venv): pinned ai-dynamo 1.6.1, aiperf 0.13.0, sglang-router
 * 0.3.2. Only PyPI is needed.
 *
 * ai-dynamo 1.6.1 depends on `aisimulate==0.13.0`, a PyPI placeholder that downloads the real
 * wheel from NVIDIA's own index at install time (unreachable here). aisimulate is used only by the
 * planner/profiler and the mocker's optional AIC perf model, not by dynamo.frontend or the
 * mocker's default polynomial model, so: install ai-dynamo-runtime and ai-dynamo's other
 * requirements explicitly, then ai-dynamo itself with --no-deps.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { $ as zx$ } from 'zx';

const $ = zx$({ quiet: true, verbose: false });
const sayDefault = (s: string): void => {
  process.stderr.write(s + '\n');
};

/** ~/.cache/dynamo-lab (or $XDG_CACHE_HOME/dynamo-lab). */
export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME && process.env.XDG_CACHE_HOME !== '' ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'dynamo-lab');
}

export const PINS = { 'ai-dynamo': '1.6.1', 'ai-dynamo-runtime': '1.6.1', aiperf: '0.13.0', 'sglang-router': '0.3.2' } as const;

/** ai-dynamo 1.6.1's requirements except aisimulate (from its wheel metadata). */
export const DYNAMO_REQUIREMENTS = [
  `ai-dynamo-runtime==${PINS['ai-dynamo-runtime']}`,
  'aiohttp<4,>=3.14.3',
  'certifi>=2026.10.19',
  'kubernetes>=32.0.1,<33',
  'msgspec>=0.19',
  'prometheus-client>=0.23.1,<1',
  'pyzmq>=26',
  'redis>=6.2,<9',
  'tqdm',
  'transformers>=4.56',
  'typing-extensions>=4.10',
  'zstandard>=0.23,<1',
];

export interface Venv {
  dir: string;
  python: string;
  bin: (name: string) => string;
  versions: Record<string, string | null>;
}

export function venvDir(): string {
  return join(cacheDir(), 'peers-venv');
}

/** The exact commands that create the venv (printed in errors so a person can run them). */
export function installCommands(python = 'python3', dir = venvDir()): string[] {
  const pip = join(dir, 'bin', 'pip');
  const q = (a: string) => (/^[\w./=:@-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return [
    `${python} -m venv ${q(dir)}`,
    [pip, 'install', ...DYNAMO_REQUIREMENTS, `aiperf==${PINS.aiperf}`, `sglang-router==${PINS['sglang-router']}`].map(q).join(' '),
    [pip, 'install', '--no-deps', `ai-dynamo==${PINS['ai-dynamo']}`].map(q).join(' '),
  ];
}

async function pythonVersion(py: string): Promise<[number, number] | undefined> {
  try {
    const out = (await $`${py} -c ${'import sys; print(sys.version_info[0], sys.version_info[1])'}`).stdout.trim();
    const [a, b] = out.split(' ').map(Number);
    return a !== undefined && b !== undefined ? [a, b] : undefined;
  } catch {
    return undefined;
  }
}

/** A Python >= 3.10 on PATH (or $DYNAMO_LAB_PYTHON). */
export async function findPython(): Promise<string> {
  const candidates = [process.env.DYNAMO_LAB_PYTHON, 'python3.12', 'python3.11', 'python3.10', 'python3.13', 'python3'].filter(
    (x): x is string => !!x,
  );
  const seen: string[] = [];
  for (const c of candidates) {
    const v = await pythonVersion(c);
    if (v) seen.push(`${c} ${v.join('.')}`);
    if (v && (v[0] > 3 || (v[0] === 3 && v[1] >= 10))) return c;
  }
  throw new Error(
    `The peers need Python >= 3.10 with the venv module; found ${seen.length ? seen.join(', ') : 'no python3 on PATH'}.\n` +
      `Install one (Debian/Ubuntu: apt-get install python3 python3-venv) or point DYNAMO_LAB_PYTHON at it, then run:\n  ${installCommands().join('\n  ')}`,
  );
}

async function installedVersions(python: string): Promise<Record<string, string | null>> {
  const code = [
    'import json, importlib.metadata as m',
    'out = {}',
    `for n in ${JSON.stringify(Object.keys(PINS))}:`,
    '    try: out[n] = m.version(n)',
    '    except Exception: out[n] = None',
    'print(json.dumps(out))',
  ].join('\n');
  try {
    return JSON.parse((await $`${python} -c ${code}`).stdout) as Record<string, string | null>;
  } catch {
    return Object.fromEntries(Object.keys(PINS).map((k) => [k, null]));
  }
}

function pinned(v: Record<string, string | null>): boolean {
  return Object.entries(PINS).every(([k, want]) => v[k] === want);
}

/** Run pip with its progress lines shown (Collecting / Downloading / Installing / Successfully). */
async function pip(python: string, args: string[], progress: (line: string) => void): Promise<void> {
  const p = $({ quiet: true, nothrow: true })`${python} -m pip install --progress-bar off ${args}`;
  let err = '';
  p.stdout.on('data', (d: Buffer) => {
    for (const line of d.toString('utf8').split('\n'))
      if (/^(Collecting|Downloading|Installing|Successfully|Requirement already)/.test(line.trim())) progress(line.trim());
  });
  p.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const out = await p;
  if (out.exitCode !== 0) {
    const offline =
      /Could not find a version|No matching distribution|NewConnectionError|Failed to establish|Temporary failure in name resolution|ProxyError|ConnectTimeout/i.test(
        err,
      );
    throw new Error(
      `pip install failed (exit ${out.exitCode})${offline ? ': PyPI is not reachable from this machine (or the pinned version is missing)' : ''}.\n` +
        `${err.split('\n').slice(-12).join('\n')}\nThe commands that create the peers venv:\n  ${installCommands(python).join('\n  ')}`,
    );
  }
}

/**
 * Create or reuse the venv. Reuse when every pinned version is installed; otherwise create it and
 * install (about 4 minutes on a fresh machine; pip's cache makes later installs fast).
 */
export async function ensureVenv(
  opts: { progress?: (line: string) => void; create?: boolean; say?: (line: string) => void } = {},
): Promise<Venv> {
  const say = opts.say ?? sayDefault;
  const dir = venvDir();
  const python = join(dir, 'bin', 'python');
  const bin = (name: string) => join(dir, 'bin', name);
  const progress = opts.progress ?? ((l: string) => say(`  pip: ${l}`));
  if (existsSync(python)) {
    const v = await installedVersions(python);
    if (pinned(v)) return { dir, python, bin, versions: v };
  }
  if (opts.create === false)
    throw new Error(`The peers venv ${dir} is missing or incomplete. Create it with:\n  ${installCommands().join('\n  ')}`);
  const base = await findPython();
  if (!existsSync(python)) {
    say(`creating the peers venv ${dir} with ${base}`);
    const r = await $({ nothrow: true })`${base} -m venv ${dir}`;
    if (r.exitCode !== 0)
      throw new Error(`${base} -m venv ${dir} failed: ${r.stderr.trim()}\n(Debian/Ubuntu: apt-get install python3-venv)`);
  }
  say(
    `installing ai-dynamo ${PINS['ai-dynamo']} (without the aisimulate placeholder), aiperf ${PINS.aiperf}, sglang-router ${PINS['sglang-router']} into ${dir}`,
  );
  await pip(python, [...DYNAMO_REQUIREMENTS, `aiperf==${PINS.aiperf}`, `sglang-router==${PINS['sglang-router']}`], progress);
  await pip(python, ['--no-deps', `ai-dynamo==${PINS['ai-dynamo']}`], progress);
  const v = await installedVersions(python);
  if (!pinned(v)) throw new Error(`the peers venv ${dir} has ${JSON.stringify(v)} after installing; expected ${JSON.stringify(PINS)}`);
  return { dir, python, bin, versions: v };
}
