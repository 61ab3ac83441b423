/**
 * The gate of the peers tier (test/peers): its tests need the Python venv that
 * `npm run bench:peers` creates (Dynamo 1.6.1, aiperf, sglang-router). Without it they are
 * skipped, with the reason; DYNAMO_LAB_REQUIRE_DYNAMO=1 turns a missing venv into a failure, and
 * DYNAMO_LAB_REQUIRE_DYNAMO=0 turns the tier off even where a venv exists (CI: a venv left on the
 * machine by hand must not decide what CI runs).
 */
import { ensureVenv, type Venv } from '../../src/engine/venv.js';

export async function peersVenv(): Promise<{ venv?: Venv; skip: string | false }> {
  if (process.env.DYNAMO_LAB_REQUIRE_DYNAMO === '0') return { skip: 'the peers tier is off (DYNAMO_LAB_REQUIRE_DYNAMO=0)' };
  try {
    return { venv: await ensureVenv({ create: false }), skip: false };
  } catch (e) {
    if (process.env.DYNAMO_LAB_REQUIRE_DYNAMO === '1') throw new Error(`DYNAMO_LAB_REQUIRE_DYNAMO=1 but ${(e as Error).message}`);
    return { skip: `no peers venv (run npm run bench:peers once to create it): ${(e as Error).message.split('\n')[0]}` };
  }
}
