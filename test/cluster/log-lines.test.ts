/**
 * The labs' log-inspection steps and the `logs` presets against real log lines of each Dynamo
 * release (test/cluster/fixtures/log-lines.json, built from the upstream format strings and
 * levels): a preset that matches none of a release's decision lines fails (issue items 2, 3),
 * and so does a lab text that sends readers to debug level when the lines are info.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RELEASES, decisionPattern, releaseInfo } from '../../src/cluster/releases.js';
import { compileGrep, LOG_PATTERNS, logLineMatches } from '../../src/cluster/logs.js';
import { toEre } from '../../src/cli/dry-script.js';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT, flagValue, labClusterCommands, labTexts } from './real-parts.js';

interface Line {
  kind: 'decision' | 'cache' | 'events' | 'noise';
  level: 'info' | 'debug' | 'trace';
  text: string;
  /** The same line with the colour codes the frontend writes into a pipe. */
  ansi?: string;
}
const FIX = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'cluster', 'fixtures', 'log-lines.json'), 'utf8')) as Record<
  string,
  { lines: Line[] }
>;
const RELEASE_FIXTURES = ['0.8.0', '1.0.2', '1.6.1'] as const;
const levelRank = { trace: 0, debug: 1, info: 2 } as const;

describe('cluster: log presets against real log lines of each release', () => {
  for (const rel of RELEASE_FIXTURES) {
    const lines = FIX[rel]!.lines;
    it(`${rel}: the decisions preset matches every decision line and no other line`, () => {
      const re = compileGrep(undefined, 'decisions', rel)!;
      const decisions = lines.filter((l) => l.kind === 'decision');
      assert.ok(decisions.length >= 2);
      for (const l of decisions) assert.match(l.text, re, `${rel}: preset misses ${l.text}`);
      for (const l of lines.filter((x) => x.kind !== 'decision')) assert.doesNotMatch(l.text, re);
      // `routing` is the same preset (the old name).
      assert.equal(compileGrep(undefined, 'routing', rel)!.source, re.source);
    });

    it(`${rel}: each decision line has the level the release table says, and some are visible at the default info level`, () => {
      const info = releaseInfo(rel);
      for (const l of lines.filter((x) => x.kind === 'decision')) {
        const entry = info.decisionLines.find((d) => new RegExp(d.regex).test(l.text));
        assert.ok(entry, `${rel}: no table line for ${l.text}`);
        assert.equal(entry.level, l.level, `${rel}: ${entry.id} is logged at ${l.level}`);
      }
      const atInfo = lines.filter((l) => l.kind === 'decision' && levelRank[l.level] >= levelRank.info);
      assert.ok(atInfo.length > 0, `${rel}: no decision line at info`);
    });

    it(`${rel}: the seed's grep (routing|overlap|score) finds none of the decision lines`, () => {
      const seed = /(routing|overlap|score)/;
      assert.deepEqual(
        lines.filter((l) => l.kind === 'decision' && seed.test(l.text)).map((l) => l.text),
        [],
      );
    });
  }

  it('the release decides the form: 1.6 lines are not matched by the 0.8 preset and vice versa; without a release all forms match', () => {
    const v08 = compileGrep(undefined, 'decisions', '0.8.0')!;
    const v16 = compileGrep(undefined, 'decisions', '1.6.1')!;
    const sel08 = FIX['0.8.0']!.lines.find((l) => l.text.includes('Selected worker'))!.text;
    const sel16 = FIX['1.6.1']!.lines.find((l) => l.text.includes('Selected worker'))!.text;
    assert.doesNotMatch(sel16, v08);
    assert.doesNotMatch(sel08, v16);
    const any = compileGrep(undefined, 'decisions')!;
    for (const rel of RELEASE_FIXTURES) for (const l of FIX[rel]!.lines.filter((x) => x.kind === 'decision')) assert.match(l.text, any);
  });

  it("1.6.1: the line the released frontend prints, colour codes included, is found by `logs` and by the dry-run script's grep", () => {
    const l = FIX['1.6.1']!.lines.find((x) => x.ansi)!;
    assert.ok(l, 'fixture has the captured 1.6.1 line');
    const re = compileGrep(undefined, 'decisions', '1.6.1')!;
    assert.match(l.text, re);
    // The codes sit between each field name and its '=': matched raw, the pattern finds nothing.
    assert.doesNotMatch(l.ansi!, re);
    assert.ok(logLineMatches(re, l.ansi!), 'logs strips the codes before matching');
    const sh = spawnSync('bash', ['-c', `sed 's/\\x1b\\[[0-9;]*m//g' | grep -iE '${toEre(re.source)}'`], {
      input: `${l.ansi}\n`,
      encoding: 'utf8',
    });
    assert.equal(sh.status, 0, `dry-run pipeline: ${sh.stderr}`);
  });

  it('every decision-line pattern of every table entry matches some real line (none matches nothing)', () => {
    const all = RELEASE_FIXTURES.flatMap((r) => FIX[r]!.lines.filter((l) => l.kind === 'decision').map((l) => l.text));
    for (const r of RELEASES)
      for (const d of r.decisionLines)
        assert.ok(
          all.some((t) => new RegExp(d.regex).test(t)),
          `${r.id} ${d.id}: /${d.regex}/ matches no real line`,
        );
    assert.equal(decisionPattern('0.5.0'), decisionPattern('0.8.0'));
  });

  it("cache and events presets match vLLM's periodic stats line and Dynamo's KV event trace lines", () => {
    const w = FIX.worker!.lines;
    const cache = compileGrep(undefined, 'cache')!;
    const events = compileGrep(undefined, 'events')!;
    for (const l of w.filter((x) => x.kind === 'cache')) assert.match(l.text, cache);
    for (const l of w.filter((x) => x.kind === 'events')) assert.match(l.text, events);
    for (const l of w.filter((x) => x.kind === 'noise')) {
      assert.doesNotMatch(l.text, cache);
      assert.doesNotMatch(l.text, events);
    }
  });
});

describe("cluster: the labs' log steps use the presets for their release", () => {
  it('every `dynamo-lab logs` command uses a known preset; decisions always with the lab release', () => {
    const cmds = labClusterCommands().filter((c) => c.argv[0] === 'dynamo-lab' && c.argv[1] === 'logs');
    assert.ok(cmds.length >= 5);
    let decisions = 0;
    for (const c of cmds) {
      const p = flagValue(c.argv, '--pattern');
      if (p) for (const name of p.split(',')) assert.ok(LOG_PATTERNS[name], `${c.lab}/${c.step}: unknown preset ${name}`);
      if (p === 'decisions' || p === 'routing') {
        decisions++;
        assert.equal(
          flagValue(c.argv, '--release'),
          c.release,
          `${c.lab}/${c.step}: the decisions preset needs --release \${RELEASE_VERSION}`,
        );
      }
    }
    assert.ok(decisions >= 1);
  });

  it('every `dynamo-lab logs` of the Frontend finds the decision lines of its release (no pattern that matches nothing)', () => {
    // The lab's release picks the fixture: 0.5/0.7 have no fixture of their own (the table
    // infers their lines from 0.8.0), so they are checked against 0.8.0.
    const fixtureOf = (release: string) =>
      RELEASE_FIXTURES.find((f) => releaseInfo(f).id === releaseInfo(release).id) ??
      (releaseInfo(release).decisionLines === releaseInfo('0.8.0').decisionLines ? '0.8.0' : undefined);
    const cmds = labClusterCommands().filter(
      (c) => c.argv[0] === 'dynamo-lab' && c.argv[1] === 'logs' && /^frontend$/i.test(flagValue(c.argv, '--component') ?? ''),
    );
    assert.ok(cmds.length >= 2, `found ${cmds.length} frontend log commands`);
    for (const c of cmds) {
      const fixture = fixtureOf(c.release);
      assert.ok(fixture, `${c.lab}/${c.step}: no log fixture for release ${c.release}`);
      const re = compileGrep(flagValue(c.argv, '--grep'), flagValue(c.argv, '--pattern'), flagValue(c.argv, '--release'))!;
      assert.ok(re, `${c.lab}/${c.step}: shows every frontend line (no pattern)`);
      for (const l of FIX[fixture]!.lines.filter((x) => x.kind === 'decision'))
        assert.match(l.text, re, `${c.lab}/${c.step}: /${re.source}/ misses the ${c.release} decision line ${l.text}`);
    }
  });

  it("a decisions step's text names its release's lines and their levels, and no hint sends readers to debug for info lines", () => {
    const steps = new Set(
      labClusterCommands()
        .filter((c) => c.argv[1] === 'logs' && flagValue(c.argv, '--pattern') === 'decisions')
        .map((c) => `${c.lab}/${c.step}`),
    );
    for (const t of labTexts().filter((x) => steps.has(`${x.lab}/${x.step}`))) {
      const rel = releaseInfo(t.release);
      for (const d of rel.decisionLines) {
        const prefix = d.id === 'formula' ? 'Formula for worker_id' : 'Selected worker';
        assert.ok(t.text.includes(prefix), `${t.lab}/${t.step}: text does not show the ${d.id} line`);
        assert.ok(
          t.text.includes(`\`${d.level}\``) || t.text.includes(` ${d.level} `),
          `${t.lab}/${t.step}: text does not say the ${d.id} line is ${d.level}`,
        );
      }
      if (rel.decisionLines.every((d) => d.level === 'info'))
        assert.doesNotMatch(t.text, /decisions at debug level|only at debug/i, `${t.lab}/${t.step}`);
    }
  });
});
