/** The benchmark in virtual time, from a lab step. */
import type { RoutingMode } from '../../router/index.js';
import { num, str, type ActionDef } from './types.js';

export const BENCH_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'bench.run': {
    describe: (p) =>
      `replay the synthetic "${str(p.synthetic, 'multi-turn')}" workload in virtual time through ${num(p.workers, 8)} simulated workers with ${((p.modes as string[] | undefined) ?? ['round-robin', 'kv']).join(' vs ')} routing (the real router core; seconds, not minutes)`,
    async run(params, { out, emit, signal }) {
      const { generateWorkload } = await import('../../bench/generators.js');
      const { runBench } = await import('../../bench/run.js');
      const { renderReport } = await import('../../bench/report.js');
      const modes = ((params.modes as string[] | undefined) ?? ['round-robin', 'kv']) as RoutingMode[];
      let workload;
      try {
        workload = generateWorkload(str(params.synthetic, 'multi-turn'), num(params.seed, 1));
      } catch (err) {
        return { ok: false, error: `bad synthetic workload spec: ${(err as Error).message}` };
      }
      const { json } = await runBench(workload, {
        modes,
        workers: num(params.workers, 8),
        blockSize: num(params.block_size, 64),
        gpuBlocks: num(params.gpu_blocks, 16384),
        speedups: [num(params.speedup, 1)],
        seed: num(params.seed, 1),
        target: { kind: 'virtual' },
        signal,
        log: out,
      });
      for (const l of renderReport(json).split('\n')) out(l);
      // The A/B table as data (the TUI renders it, --json carries it): per mode TTFT, hit rate, oracle.
      const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '');
      const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : '');
      for (const sw of json.sweep) {
        emit({
          kind: 'table',
          title: `A/B in virtual time, ${json.workers} workers, arrival speedup ${sw.speedup}x (oracle hit rate ${pct(json.oracle_prefix_hit_rate)})`,
          columns: [
            { header: 'mode' },
            { header: 'TTFT avg ms', align: 'right' },
            { header: 'p50', align: 'right' },
            { header: 'p99', align: 'right' },
            { header: 'hit rate', align: 'right' },
            { header: 'oracle', align: 'right' },
            { header: 'hit / oracle', align: 'right' },
          ],
          rows: Object.entries(sw.modes).map(([m, r]) => [
            m,
            fmt(r.ttft_ms.avg),
            fmt(r.ttft_ms.p50),
            fmt(r.ttft_ms.p99),
            pct(r.prefix_hit_rate),
            pct(json.oracle_prefix_hit_rate),
            json.oracle_prefix_hit_rate > 0 ? pct(r.prefix_hit_rate / json.oracle_prefix_hit_rate) : '',
          ]),
        });
      }
      return { ok: true };
    },
  },
};
