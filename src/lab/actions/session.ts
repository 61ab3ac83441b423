/** Ending a lab session. */
import type { ActionDef } from './types.js';

export const SESSION_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'session.stop': {
    describe: () => 'stop the embedded router and every simulated worker, releasing their ports',
    async run(_p, { session, out }) {
      const lines = await session.stop();
      for (const l of lines) out(l);
      if (!lines.length) out('nothing was running');
      return { ok: true };
    },
  },
};
