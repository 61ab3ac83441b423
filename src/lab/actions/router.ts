/** The embedded router in front of the workers. */
import { envPort } from '../../base/net.js';
import { configFromFlags, type RoutingMode } from '../../router/index.js';
import { checkServing } from './observe.js';
import { num, str, type ActionDef } from './types.js';

export const ROUTER_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'router.start': {
    describe: (p) =>
      `start the embedded router in ${str(p.mode, 'kv')} mode on 127.0.0.1 in front of the workers (KV events in-process)` +
      (p.kv_overlap_score_weight !== undefined ? `, --kv-overlap-score-weight ${String(p.kv_overlap_score_weight)}` : '') +
      (p.router_temperature !== undefined ? `, --router-temperature ${String(p.router_temperature)}` : ''),
    requires: ['workers'],
    provides: ['router'],
    async run(params, { session, out }) {
      const mode = str(params.mode, 'kv') as RoutingMode;
      const weight = params.kv_overlap_score_weight === undefined ? undefined : num(params.kv_overlap_score_weight, 1);
      const temperature = params.router_temperature === undefined ? undefined : num(params.router_temperature, 0);
      const config = configFromFlags({ kvOverlapScoreWeight: weight, temperature });
      const configKey = JSON.stringify(config);
      const port = envPort('DYNAMO_LAB_ROUTER_PORT');
      if (session.router) {
        if (session.routerConfigKey === configKey) {
          session.router.setMode(mode);
          out(`router already running at ${session.router.url}; mode set to ${mode}`);
          return { ok: true };
        }
        // New scoring parameters: restart with a fresh index, like redeploying the frontend. A new
        // port (unless pinned) so no client reuses a keep-alive connection to the old server.
        await session.router.close();
        session.router = undefined;
        out('restarting the router with the new scoring parameters');
      }
      const log = session.logger('router');
      // Loaded when a lab starts the router, not when the CLI starts.
      const { RouterServer } = await import('../../server/router-server.js');
      session.router = await RouterServer.start({
        workers: session.workers.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
        blockSize: session.blockSize,
        mode,
        port,
        config,
        seed: num(params.seed, 7),
        log,
      });
      session.routerConfigKey = configKey;
      session.endpoints.push({ id: 'router', url: session.router.url });
      out(
        `router  ${session.router.url}  mode=${mode}  overlap credit=${config.overlapScoreCredit} prefill load scale=${config.prefillLoadScale} temperature=${config.temperature}`,
      );
      out(`        try: curl -s ${session.router.url}/v1/models   ·   ${session.router.url}/debug/decisions`);
      return { ok: true };
    },
  },

  'router.healthy': {
    describe: () => "check the router answers GET /health and lists the workers' model",
    requires: ['router'],
    run: (_p, { session, out, signal }) => checkServing(session.router!.url, 'router', 'workers', out, signal),
  },
};
