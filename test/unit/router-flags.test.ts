/**
 * `dynamo-lab router`'s flag checks without starting anything: each mistake is a UsageError
 * naming the flag and what it takes; good flags come back typed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/base/errors.js';
import type { ParsedValues } from '../../src/cli/command.js';
import { parseRouterFlags, ROUTER_OPTIONS } from '../../src/cli/commands/router-flags.js';
import { optionDefaults } from '../helpers/command-context.js';

/** What node:util parseArgs hands the command: the given flags over the table's defaults. */
const values = (given: ParsedValues): ParsedValues => ({ ...optionDefaults(ROUTER_OPTIONS), ...given });

const usage = (re: RegExp) => (err: unknown) => err instanceof UsageError && re.test(err.message);

test('whole-number flags say their range', async () => {
  await assert.rejects(parseRouterFlags(values({ sim: '65' }), {}), usage(/^--sim must be a whole number from 1 to 64, got "65"/));
  await assert.rejects(parseRouterFlags(values({ sim: '1.5' }), {}), usage(/^--sim must be a whole number from 1 to 64/));
  await assert.rejects(
    parseRouterFlags(values({ sim: '2', 'decision-history': '0' }), {}),
    usage(/^--decision-history must be a whole number from 1 to 100000, got "0"/),
  );
  await assert.rejects(parseRouterFlags(values({ sim: '2', 'block-size': '0' }), {}), usage(/^--block-size must be a whole number >= 1/));
  await assert.rejects(
    parseRouterFlags(values({ sim: '2', 'router-queue-max': '-1' }), {}),
    usage(/^--router-queue-max must be a whole number >= 0/),
  );
});

test('the workers come from exactly one of --sim, --worker, --discover', async () => {
  await assert.rejects(parseRouterFlags(values({}), {}), usage(/needs workers/));
  await assert.rejects(parseRouterFlags(values({ sim: '2', worker: ['http://127.0.0.1:9'] }), {}), usage(/one of --sim, --worker/));
});

test('good flags come back typed, with the defaults of the table', async () => {
  const f = await parseRouterFlags(values({ sim: '3', 'router-queue-threshold': '0.5', 'active-prefill-tokens-threshold': '100' }), {});
  assert.equal(f.sim, 3);
  assert.equal(f.mode, 'kv');
  assert.equal(f.host, '127.0.0.1');
  assert.equal(f.port, 8000);
  assert.equal(f.blockSize, 16);
  assert.equal(f.events.kind, 'inproc');
  assert.deepEqual(f.queue, { threshold: 0.5, maxQueued: 1024 });
  assert.equal(f.busy?.activePrefillTokensThreshold, 100);
  assert.equal(f.decisionHistory, 256);
  assert.equal(f.apiKey, undefined);
  assert.deepEqual(f.warnings, []);
});

test('NATS events from a worker without worker_id= is a warning, not an error', async () => {
  const f = await parseRouterFlags(values({ worker: ['id=a,url=http://127.0.0.1:9'], events: 'nats://127.0.0.1:4222' }), {});
  assert.equal(f.events.kind, 'nats');
  assert.equal(f.warnings.length, 1);
  assert.match(f.warnings[0]!, /worker a has no worker_id=/);
});

test('the API key comes from DYNAMO_LAB_API_KEY when no flag gives it', async () => {
  const f = await parseRouterFlags(values({ sim: '1' }), { DYNAMO_LAB_API_KEY: 'k' });
  assert.equal(f.apiKey, 'k');
});
