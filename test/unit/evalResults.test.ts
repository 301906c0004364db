/**
 * Evaluation results as stored data: the per-subject / per-level breakdown (hand-computed from a few fake greedy
 * trajectories), its round trip through the store with the run kind, the upgrade of a version-1 database, and the
 * validation `mathagent eval` and `run/start {kind: "eval"}` apply before anything runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { EvalBreakdown, RunConfig, RunGetResult, RunSummary } from '@mathagent/shared';
import { MIGRATIONS, openStore } from '../../daemon/src/store';
import { breakdownBy, evalBreakdown, summarizeEval } from '../../daemon/src/pipeline/stats';
import { checkEvalConfig } from '../../daemon/src/pipeline/runManager';
import { evalRunConfig, formatBreakdown, type EvalOptions } from '../../daemon/src/cli/eval';

// Six MATH-like problems and their greedy results.
//   p1 Algebra L1 ✓   p2 Algebra L2 ✗   p3 Geometry L2 ✓   p4 Geometry L10 ✓   p5 Number Theory L10 ✗
//   p6 (no subject, level 2) ✗          and a trajectory of a prompt that is not among the problems (ignored).
const problems: Array<{ id: string; meta: Record<string, string | number> }> = [
  { id: 'p1', meta: { subject: 'Algebra', level: 1 } },
  { id: 'p2', meta: { subject: 'Algebra', level: 2 } },
  { id: 'p3', meta: { subject: 'Geometry', level: 2 } },
  { id: 'p4', meta: { subject: 'Geometry', level: 10 } },
  { id: 'p5', meta: { subject: 'Number Theory', level: 10 } },
  { id: 'p6', meta: { level: 2 } },
];
const noObs = [{ observation: null }];
const greedy = [
  { promptId: 'p1', reward: 1, turns: noObs },
  { promptId: 'p2', reward: 0, turns: [{ observation: { error: true } }, { observation: null }] },
  { promptId: 'p3', reward: 1, turns: noObs },
  { promptId: 'p4', reward: 1, turns: noObs },
  { promptId: 'p5', reward: 0, turns: noObs },
  { promptId: 'p6', reward: 0, turns: noObs },
  { promptId: 'elsewhere', reward: 1, turns: noObs },
];

const EXPECTED: EvalBreakdown = {
  subject: [
    { key: 'Algebra', n: 2, correct: 1, pass1: 0.5 },
    { key: 'Geometry', n: 2, correct: 2, pass1: 1 },
    { key: 'Number Theory', n: 1, correct: 0, pass1: 0 },
  ],
  // Numeric order: 2 before 10 (a plain string sort would put "10" first).
  level: [
    { key: '1', n: 1, correct: 1, pass1: 1 },
    { key: '2', n: 3, correct: 1, pass1: 1 / 3 },
    { key: '10', n: 2, correct: 1, pass1: 0.5 },
  ],
};

test('breakdown by subject and level: hand-computed groups, numeric level order, unknown prompts left out', () => {
  assert.deepEqual(evalBreakdown(problems, greedy), EXPECTED);
  assert.deepEqual(breakdownBy(problems, greedy, 'family'), []);
  // The synthetic task has levels but no subjects: no breakdown (one level row says nothing pass@1 does not).
  assert.equal(evalBreakdown([{ id: 'p1', meta: { level: 1 } }], greedy), null);
  assert.equal(evalBreakdown(problems, []), null);
  // A reward above 1 (never produced, but the grader contract is reward >= 1) still counts once.
  assert.deepEqual(breakdownBy([{ id: 'a', meta: { subject: 'X' } }], [{ promptId: 'a', reward: 2 }, { promptId: 'a', reward: 0.5 }], 'subject'),
    [{ key: 'X', n: 2, correct: 1, pass1: 0.5 }]);
  assert.ok(EvalBreakdown.safeParse(EXPECTED).success);
});

test('store: an eval run with its summary and breakdown round-trips; runs default to kind train', () => {
  const s = openStore(':memory:');
  try {
    const evalRun = s.createRun({ id: 'e', kind: 'eval', config: RunConfig.parse({ iterations: 0, sft: { enabled: false }, model: { init: '/ck' } }) });
    assert.equal(evalRun.kind, 'eval');
    assert.equal(s.createRun({ id: 't', config: RunConfig.parse({}) }).kind, 'train');
    assert.deepEqual(s.listRuns().map((r) => [r.id, r.kind]).sort(), [['e', 'eval'], ['t', 'train']]);
    assert.throws(() => s.createRun({ id: 'x', kind: 'bogus' as never, config: RunConfig.parse({}) }), /run kind must be 'train' or 'eval'/);
    assert.equal(s.getRunSummary('x'), null);
    assert.ok(RunSummary.safeParse(evalRun).success);

    const summary = summarizeEval(greedy.slice(0, 6), 1, null);
    assert.equal(summary.pass1, 3 / 6);
    assert.equal(summary.toolErrorRate, 1 / 6);
    assert.equal(summary.meanTurns, 7 / 6);
    const stored = s.insertEval({ runId: 'e', iteration: 0, ...summary, breakdown: evalBreakdown(problems, greedy),
      problems: greedy.slice(0, 6).map((g) => ({ promptId: g.promptId, correct: g.reward >= 1, correctK: null, trajectoryId: `e:e0:${g.promptId}:s0` })) });
    assert.deepEqual(stored.breakdown, EXPECTED);
    assert.equal(stored.pass1, 0.5);
    assert.equal(stored.passK, null);
    assert.deepEqual(s.getEval('e', 0)!.breakdown, EXPECTED);
    assert.deepEqual(s.listEvals('e').map((x) => x.breakdown), [EXPECTED]);
    // Replacing the evaluation replaces its breakdown; one without a breakdown stores none.
    s.insertEval({ ...stored, breakdown: { subject: [EXPECTED.subject[0]!], level: [] } });
    assert.deepEqual(s.getEval('e', 0)!.breakdown, { subject: [EXPECTED.subject[0]], level: [] });
    const { breakdown: _b, ...withoutBreakdown } = stored;
    s.insertEval({ ...withoutBreakdown, iteration: 1 });
    assert.equal(s.getEval('e', 1)!.breakdown, null);
    s.insertEval({ ...stored, breakdown: null });
    assert.equal(s.getEval('e', 0)!.breakdown, null);
  } finally { s.close(); }
});

test('migration 2 upgrades a version-1 database: runs become kind train, old evaluations have no breakdown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mathagent-evalres-'));
  try {
    const path = join(dir, 'v1.db');
    const v1 = openStore(path, { migrations: MIGRATIONS.slice(0, 1) });
    assert.equal(v1.schemaVersion, 1);
    v1.close();
    // What a version-1 build wrote (no kind column on runs, no breakdown column on evals).
    const raw = new Database(path);
    raw.prepare(`INSERT INTO runs (id, name, config, algorithm, iterations, state, created_at, updated_at)
      VALUES ('old', 'old', ?, 'mdpo', 3, 'finished', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')`).run(JSON.stringify(RunConfig.parse({})));
    raw.prepare(`INSERT INTO evals (run_id, iteration, pass1, pass_k, k, n, ci_low, ci_high, mean_turns, tool_error_rate, problems, created_at)
      VALUES ('old', 0, 0.25, NULL, 1, 4, 0.05, 0.7, 2, 0, '[]', '2025-01-01T00:00:00Z')`).run();
    raw.close();

    const s = openStore(path);
    try {
      assert.equal(s.schemaVersion, MIGRATIONS.length);
      assert.equal(s.getRunSummary('old')!.kind, 'train');
      const e = s.getEval('old', 0)!;
      assert.equal(e.pass1, 0.25);
      assert.equal(e.breakdown, null);
    } finally { s.close(); }
    // The column refuses kinds the code does not know, even from a raw write.
    const w = new Database(path);
    try {
      assert.throws(() => w.prepare(`UPDATE runs SET kind = 'bogus' WHERE id = 'old'`).run(), /CHECK constraint failed/);
    } finally { w.close(); }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('run/get result: evals with breakdown validate; a reply from an older daemon (no evals, no kind) still parses', () => {
  const run = { id: 'r', name: 'r', algorithm: 'mdpo', state: 'finished', stage: null, iteration: 0, iterations: 0, createdAt: 't', updatedAt: 't', error: null, bestPass1: 0.5, bestIteration: 0 };
  const old = RunGetResult.parse({ run, config: {}, iterations: [] });
  assert.equal(old.run.kind, 'train');
  assert.deepEqual(old.evals, []);
  const evals = [{ iteration: 0, pass1: 0.5, ci95: [0.1, 0.9], passK: null, k: 1, n: 6, meanTurns: 1, toolErrorRate: 0, breakdown: EXPECTED }];
  assert.deepEqual(RunGetResult.parse({ run: { ...run, kind: 'eval' }, config: {}, iterations: [], evals }).evals, evals);
  assert.equal(RunGetResult.safeParse({ run, config: {}, iterations: [], evals: [{ ...evals[0], breakdown: { subject: [{ key: 'A', n: -1, correct: 0, pass1: 0 }], level: [] } }] }).success, false);
});

test('formatBreakdown: aligned subject and level tables with n, correct and pass@1', () => {
  const text = formatBreakdown(EXPECTED);
  const lines = text.split('\n');
  assert.deepEqual(lines.slice(0, 5), [
    'subject        n  correct  pass@1',
    '─────────────  ─  ───────  ──────',
    'Algebra        2        1   50.0%',
    'Geometry       2        2  100.0%',
    'Number Theory  1        0    0.0%',
  ]);
  assert.match(text, /\n\nlevel  n  correct  pass@1\n/);
  assert.match(text, /\n2      3        1   33\.3%\n10     2        1   50\.0%$/);
  assert.equal(formatBreakdown({ subject: [], level: [] }), '');
});

const opts = (o: Partial<EvalOptions> = {}): EvalOptions => ({
  dataset: 'math500', split: 'eval', n: 10, k: 1, temperature: 0.7, level: 1, seed: 1, maxTurns: 6, backend: 'auto',
  endpoint: [], template: 'mathagent', set: [], store: true, ...o,
});

test('mathagent eval: the run config it builds, and one-line errors for bad flags', () => {
  const here = __dirname; // any existing folder passes the checkpoint check; nothing is loaded here
  const local = evalRunConfig(here, opts({ k: 4, temperature: 0.9, split: 'dev', set: ['limits.maxTurnTokens=64'] }));
  assert.equal(local.iterations, 0);
  assert.equal(local.sft.enabled, false);
  assert.equal(local.model.init, here);
  assert.deepEqual(local.policy, { kind: 'local' });
  assert.deepEqual([local.data.dataset, local.data.evalPrompts, local.eval.passK, local.eval.evalTemperature, local.eval.split, local.limits.maxTurnTokens],
    ['math500', 10, 4, 0.9, 'dev', 64]);
  assert.match(local.name, /^eval unit on math500 \(dev\)$/);

  const remote = evalRunConfig(undefined, opts({ endpoint: ['http://127.0.0.1:8000', 'http://127.0.0.1:8001/v1'], model: 'gemma', template: 'gemma', apiKeyFile: '/tok' }));
  assert.equal(remote.model.init, null);
  assert.equal(remote.policy.kind, 'openai');
  if (remote.policy.kind === 'openai') {
    assert.deepEqual(remote.policy.endpoints, [{ url: 'http://127.0.0.1:8000', apiKeyFile: '/tok' }, { url: 'http://127.0.0.1:8001/v1', apiKeyFile: '/tok' }]);
    assert.equal(remote.policy.model, 'gemma');
    assert.equal(remote.policy.template, 'gemma');
  }

  assert.throws(() => evalRunConfig(here, opts({ dataset: 'mmlu' })), /^Error: --dataset must be one of synthetic, gsm8k, math, math500; got "mmlu"$/);
  assert.throws(() => evalRunConfig(here, opts({ split: 'test' })), /--split must be one of eval, dev, train; got "test"/);
  assert.throws(() => evalRunConfig(here, opts({ n: Number.NaN })), /-n must be an integer ≥ 1; got NaN/);
  assert.throws(() => evalRunConfig(here, opts({ k: 0 })), /-k must be an integer ≥ 1/);
  assert.throws(() => evalRunConfig(here, opts({ endpoint: ['http://x'] })), /not both/);
  assert.throws(() => evalRunConfig(undefined, opts()), /nothing to evaluate/);
  assert.throws(() => evalRunConfig(here, opts({ model: 'm' })), /--model and --api-key-file apply to --endpoint/);
  assert.throws(() => evalRunConfig(join(here, 'no-such-checkpoint'), opts()), /checkpoint .*no-such-checkpoint not found/);
  assert.throws(() => evalRunConfig(undefined, opts({ endpoint: ['http://x'], template: 'llama' })), /--endpoint \/ --model \/ --template: template: /);
  assert.throws(() => evalRunConfig(here, opts({ level: 7 })), /invalid evaluation settings:\ndata\.difficulty: /);
  // --set cannot turn an evaluation into training.
  assert.throws(() => evalRunConfig(here, opts({ set: ['iterations=2'] })), /an eval run trains nothing/);
  assert.throws(() => evalRunConfig(here, opts({ set: ['sft.enabled=true'] })), /an eval run trains nothing/);
});

test('checkEvalConfig: an eval run trains nothing and evaluates something given', () => {
  assert.doesNotThrow(() => checkEvalConfig(RunConfig.parse({ iterations: 0, sft: { enabled: false }, model: { init: '/ck' } })));
  assert.doesNotThrow(() => checkEvalConfig(RunConfig.parse({ iterations: 0, sft: { steps: 0 }, model: { init: '/ck' } })));
  assert.doesNotThrow(() => checkEvalConfig(RunConfig.parse({ iterations: 0, sft: { enabled: false }, policy: { kind: 'openai', endpoints: [{ url: 'http://x' }] } })));
  assert.throws(() => checkEvalConfig(RunConfig.parse({ iterations: 1, sft: { enabled: false }, model: { init: '/ck' } })), /set iterations to 0/);
  assert.throws(() => checkEvalConfig(RunConfig.parse({ iterations: 0, model: { init: '/ck' } })), /sft\.enabled to false/);
  assert.throws(() => checkEvalConfig(RunConfig.parse({ iterations: 0, sft: { enabled: false } })), /needs a checkpoint to evaluate \(model\.init\) or a remote policy/);
});
