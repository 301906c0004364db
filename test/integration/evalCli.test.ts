/**
 * `mathagent eval` as a person runs it (the CLI as a child process): a tiny checkpoint saved here is evaluated on
 * MATH-500 and stored as a run of kind `eval` with its greedy trajectories, summary and per-subject / per-level
 * breakdown; `runs show` prints the breakdown; a real daemon server returns it through `run/get`; the same CLI
 * evaluates a model served over HTTP (the daemon's own OpenAI-compatible server) with `--endpoint` and `--no-store`;
 * bad input is a one-line error that stores nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BreakdownRow } from '@mathagent/shared';
import { RunConfig } from '@mathagent/shared';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, presetConfig } from '../../daemon/src/model/gpt';
import { loadCheckpoint, saveCheckpoint } from '../../daemon/src/model/checkpoint';
import { LocalPolicy } from '../../daemon/src/model/localPolicy';
import { getTemplate } from '../../daemon/src/env/templates';
import { loadDataset } from '../../daemon/src/data';
import { startOpenAIServer, type OpenAIServer } from '../../daemon/src/openai';
import { openStore } from '../../daemon/src/store';
import { EventBus } from '../../daemon/src/server/eventBus';
import { startServer } from '../../daemon/src/server/server';
import { connectClient, readTokenFile } from '../../daemon/src/server/client';
import { trajectoryId } from '../../daemon/src/pipeline/headers';

const root = join(__dirname, '..', '..');
const tpl = getTemplate('mathagent');
let dir: string;
let ck: string;
let tokenFile: string;
let served: OpenAIServer;
let disposeModel: () => void;

/** Runs the CLI from the TypeScript sources; resolves with its exit code and output (never rejects). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'daemon/src/cli/main.ts'), ...args], {
      cwd: root, env: { ...process.env, ...env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

// A few tokens per problem and one turn: the model is random, what is tested is what gets stored.
const FAST = ['--max-turns', '1', '--set', 'limits.maxTurnTokens=8', '--backend', 'wasm'];

before(async () => {
  await initBackend('wasm', { log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'mathagent-evalcli-'));
  ck = join(dir, 'tiny-ck');
  tokenFile = join(dir, 'token');
  // A MATH prompt is several hundred byte tokens: a 1024-token context holds it.
  const m = new GPT({ ...presetConfig('tiny', 256 + tpl.specialTokens.length), blockSize: 1024 }, 5);
  await saveCheckpoint(ck, { model: m, tokenizerSpecials: tpl.specialTokens });
  m.dispose();
  const loaded = await loadCheckpoint(ck);
  disposeModel = () => loaded.model.dispose();
  served = await startOpenAIServer({ policy: new LocalPolicy(loaded.model, loaded.tokenizer), model: 'tiny', contextLength: 1024, tokenFile });
});

after(async () => {
  await served?.close();
  disposeModel?.();
  rmSync(dir, { recursive: true, force: true });
});

describe('mathagent eval', () => {
  it('stores a MATH-500 evaluation of a checkpoint as an eval run with trajectories and breakdown; runs show and run/get return it', async () => {
    const db = join(dir, 'db', 'runs.db');
    const r = await cli(['eval', ck, '--dataset', 'math500', '-n', '4', '-k', '2', ...FAST, '--db', db, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { runId: string; n: number; k: number; pass1: number; passK: number; breakdown: unknown; backend: string; dataset: string; split: string };
    assert.match(out.runId, /^\d{8}-\d{6}-[0-9a-f]{6}$/);
    assert.deepEqual([out.n, out.k, out.dataset, out.split, out.backend], [4, 2, 'math500', 'eval', 'wasm']);
    assert.match(r.stderr, new RegExp(`eval run ${out.runId} \\(database ${db.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));

    const store = openStore(db);
    try {
      const got = store.getRun(out.runId)!;
      assert.deepEqual([got.run.kind, got.run.state, got.run.iterations, got.config.model.init, got.config.sft.enabled], ['eval', 'finished', 0, ck, false]);
      // The checkpoint is evaluated where it is: recorded as iteration 0, not copied into the runs folder.
      assert.deepEqual(store.listCheckpoints(out.runId).map((c) => [c.iteration, c.path]), [[0, ck]]);
      assert.equal(existsSync(join(dir, 'db', 'runs', out.runId, 'iter-0')), false);

      // The greedy trajectories of the first four MATH-500 test problems, stored on the eval split like any run's.
      const expectedProblems = loadDataset('math500', 'test', { limit: 4 });
      const headers = store.listTrajectoryHeaders({ runId: out.runId, split: 'eval' }).trajectories;
      assert.deepEqual(headers.map((h) => h.id).sort(), expectedProblems.map((p) => trajectoryId(out.runId, 0, p.id, 0, 'eval')).sort());
      assert.ok(headers.every((h) => h.iteration === 0 && h.sampleIndex === 0));
      assert.equal(store.listTrajectoryHeaders({ runId: out.runId, split: 'train' }).total, 0);
      assert.ok(store.getTrajectory(headers[0]!.id)!.turns.length >= 1, 'a stored trajectory has its turns (steppable in the extension)');

      // Summary and breakdown, counted here from the dataset rows and the stored rewards.
      const e = store.getEval(out.runId, 0)!;
      const reward = new Map(headers.map((h) => [h.promptId, h.reward]));
      const correct = expectedProblems.filter((p) => reward.get(p.id)! >= 1).length;
      assert.deepEqual([e.n, e.k, e.pass1, out.pass1, out.passK], [4, 2, correct / 4, correct / 4, e.passK]);
      assert.deepEqual(e.problems.map((p) => p.trajectoryId).sort(), headers.map((h) => h.id).sort());
      const group = (field: 'subject' | 'level'): BreakdownRow[] => {
        const m = new Map<string, { n: number; correct: number }>();
        for (const p of expectedProblems) {
          const key = String(p.meta![field]);
          const g = m.get(key) ?? { n: 0, correct: 0 };
          g.n++; if (reward.get(p.id)! >= 1) g.correct++;
          m.set(key, g);
        }
        return [...m.entries()].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([key, g]) => ({ key, n: g.n, correct: g.correct, pass1: g.correct / g.n }));
      };
      const expected = { subject: group('subject'), level: group('level') };
      assert.ok(expected.subject.length >= 2, 'the first four MATH-500 problems span several subjects');
      assert.deepEqual(e.breakdown, expected);
      assert.deepEqual(out.breakdown, expected);
      assert.equal(store.getRunSummary(out.runId)!.bestPass1, e.pass1);

      // `runs show` prints the breakdown and lists the held-out trajectories.
      const show = await cli(['runs', 'show', out.runId, '--db', db]);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, /evaluation of .*tiny-ck on math500 \(eval split\), finished/);
      assert.match(show.stdout, /held-out pass@1 of iteration 0 by subject and level:\nsubject +n +correct +pass@1\n/);
      for (const row of [...expected.subject, ...expected.level]) {
        assert.match(show.stdout, new RegExp(`\\n${row.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +${row.n} +${row.correct} +${(100 * row.pass1).toFixed(1)}%\\n`));
      }
      assert.match(show.stdout, /greedy held-out trajectories \(4\):/);
      assert.doesNotMatch(show.stdout, /pairs \(/);

      // A real daemon server hands the breakdown to clients in run/get (the extension's metrics panel reads it).
      store.createRun({ id: 'train-run', config: RunConfig.parse({}) });
      const bus = new EventBus(store);
      const server = await startServer({
        store, bus, tokenFile: join(dir, 'daemon.token'), info: () => ({}), log: () => {},
        controller: { start: async () => ({ runId: 'x' }), stop: async () => false, resume: async () => false },
      });
      const client = await connectClient(server.url, readTokenFile(server.tokenFile));
      try {
        const res = await client.request('run/get', { runId: out.runId });
        assert.equal(res.run.kind, 'eval');
        assert.deepEqual(res.evals, [{ iteration: 0, pass1: e.pass1, ci95: e.ci95, passK: e.passK, k: 2, n: 4, meanTurns: e.meanTurns, toolErrorRate: e.toolErrorRate, breakdown: expected }]);
        const train = await client.request('run/get', { runId: 'train-run' });
        assert.equal(train.run.kind, 'train');
        assert.deepEqual(train.evals, []);
      } finally {
        await client.close();
        await server.close();
        bus.close();
      }
    } finally { store.close(); }
  });

  it('evaluates a served model through --endpoint without storing anything (--no-store)', async () => {
    const defaultDb = join(dir, 'default', 'mathagent.db');
    const before = served.stats().httpRequests;
    const r = await cli(['eval', '--endpoint', served.url, '--api-key-file', tokenFile, '--model', 'tiny', '--dataset', 'synthetic', '-n', '3', ...FAST, '--no-store', '--json'],
      { MATHAGENT_DB: defaultDb });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { runId: string | null; n: number; endpoints: string[]; backend: string; breakdown: unknown; checkpoint: string | null };
    assert.deepEqual([out.runId, out.n, out.backend, out.breakdown, out.checkpoint, out.endpoints], [null, 3, 'remote', null, null, [served.url]]);
    assert.ok(served.stats().httpRequests - before >= 3, 'each greedy trajectory was generated by the served model');
    assert.equal(existsSync(defaultDb), false, '--no-store writes no database');
    assert.doesNotMatch(r.stderr, /eval run /);
  });

  it('bad input is a one-line error with exit code 1, and no run is stored', async () => {
    const db = join(dir, 'bad.db');
    const r = await cli(['eval', join(dir, 'missing-ck'), '--db', db]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^mathagent: checkpoint .*missing-ck not found: give the folder a run saved/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(existsSync(db), false);
  });
});
