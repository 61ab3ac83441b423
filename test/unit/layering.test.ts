import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importSpecifiers, scanSources, srcRoot, violations, type ImportEdge } from '../../scripts/layers.js';

test('src/ imports go down only (cli -> ui -> lab -> cluster/server/sim/bench -> router/tokenizer -> base)', () => {
  const edges = scanSources(srcRoot());
  // The scan sees the real graph: the server imports the router core, the CLI imports the lab.
  assert.ok(edges.some((e) => e.from.startsWith('server/') && e.to?.startsWith('router/')));
  assert.ok(edges.some((e) => e.from.startsWith('cli/') && e.to?.startsWith('lab/')));
  assert.ok(edges.length > 200, `only ${edges.length} import edges found`);
  assert.deepEqual(violations(edges), []);
});

test('the import parser finds static, export-from, side-effect, type-only and dynamic imports', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from '../b/index.js';",
    "export { c } from './c.js';",
    "export * from './d.js';",
    "import './e.js';",
    "const m = await import('../f/g.js');",
    'const n = await import(name);',
    "// import { x } from '../commented.js';",
  ].join('\n');
  assert.deepEqual(importSpecifiers(src), [
    { spec: './a.js' },
    { spec: '../b/index.js' },
    { spec: './c.js' },
    { spec: './d.js' },
    { spec: './e.js' },
    { spec: '../f/g.js' },
    { spec: 'name', computed: true },
  ]);
});

test('the checker fails on upward, sideways, hidden and impure imports (synthetic graph)', () => {
  const edges: ImportEdge[] = [
    { from: 'cluster/logs.ts', spec: '../cli/errors.js', to: 'cli/errors.ts' }, // upward
    { from: 'server/app.ts', spec: '../sim/index.js', to: 'sim/index.ts' }, // sideways between peers
    { from: 'router/router.ts', spec: '../tokenizer/index.js', to: 'tokenizer/index.ts' }, // peers: the core stays tokenizer-free
    { from: 'router/indexer.ts', spec: 'node:fs' }, // I/O in the pure core
    { from: 'lab/target.ts', spec: 'clusterModule', computed: true }, // hidden edge
    { from: 'lab/runner.ts', spec: '../base/paths.js', to: 'base/paths.ts' }, // fine
    { from: 'bench/virtual.ts', spec: '../sim/engine.js', to: 'sim/engine.ts' }, // allowed peer edge
    { from: 'server/proxy.ts', spec: 'undici' }, // fine outside the core
  ];
  const v = violations(edges);
  assert.equal(v.length, 5, v.join('\n'));
  assert.match(v[0]!, /cluster\/logs\.ts: imports \.\.\/cli\/errors\.js, but cluster is below cli/);
  assert.match(v[1]!, /server and sim are peers/);
  assert.match(v[2]!, /router and tokenizer are peers/);
  assert.match(v[3]!, /router core must stay pure, but imports node:fs/);
  assert.match(v[4]!, /computed/);
});
