/**
 * `mathagent experiment --jobs 2` as a person runs it: a tiny paper-mini (tiny model, a handful of problems, one
 * iteration) whose runs execute two at a time in child processes writing to one SQLite store. Every run finishes,
 * runs overlap in time, no event is lost to a seq clash, each run has its log, the report is written, and a
 * second invocation starts nothing new.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../daemon/src/store';

const root = join(__dirname, '..', '..');
const tiny = ['iterations=1', 'model.preset=tiny', 'sft.demos=40', 'sft.steps=2', 'data.trainPrompts=2', 'data.evalPrompts=4',
  'sampling.samplesPerPrompt=2', 'eval.passKPrompts=2', 'limits.maxTurns=2', 'limits.maxTurnTokens=24', 'limits.maxTrajectoryTokens=96'];

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'daemon/src/cli/main.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = ''; let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('experiment --jobs 2: runs two at a time in child processes on one store, resumable, nothing lost', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'exp-jobs-'));
  const db = join(dir, 'runs.db');
  const args = ['experiment', 'paper-mini', '--seeds', '1', '--jobs', '2', '--db', db, '--out', join(dir, 'out'), '--backend', 'wasm', ...tiny.flatMap((s) => ['--set', s])];
  try {
    const r = await cli(args);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /could not store/);
    assert.match(r.stderr, /2 runs at once/);
    const state = JSON.parse(readFileSync(join(dir, 'experiments', 'paper-mini.json'), 'utf8')) as { runs: Record<string, string>; wallSeconds: number };
    assert.deepEqual(Object.keys(state.runs).sort(), ['dpo_unmasked/1', 'mdpo/1', 'mdpo_sftref/1', 'mkto/1', 'raft/1', 'raft_pairs/1', 'sft/1']);
    const store = openStore(db);
    try {
      const spans: Array<[number, number]> = [];
      for (const [key, id] of Object.entries(state.runs)) {
        assert.equal(store.getRunSummary(id)?.state, 'finished', key);
        assert.ok(existsSync(join(dir, 'experiments', 'paper-mini-logs', `${key.replace('/', '-')}.log`)), `${key} has a log`);
        const times = store.eventsAfter(0, id, 100_000).map((e) => Date.parse(e.time));
        assert.ok(times.length > 0, `${key} stored its events`);
        spans.push([Math.min(...times), Math.max(...times)]);
        if (key !== 'sft/1') assert.ok(store.listEvals(id).some((e) => e.iteration === 1), `${key} evaluated iteration 1`);
      }
      const overlap = spans.some(([a0, a1], i) => spans.some(([b0, b1], j) => i !== j && a0 < b1 && b0 < a1));
      assert.ok(overlap, 'two runs ran at the same time');
      const seqs = store.eventsAfter(0, undefined, 100_000).map((e) => e.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      assert.equal(new Set(seqs).size, seqs.length);
    } finally { store.close(); }
    const report = readFileSync(join(dir, 'out', 'paper-mini.md'), 'utf8');
    for (const m of ['M-DPO (ref = previous)', 'M-KTO', 'RAFT', 'DPO (no observation mask)', "RAFT (pairs' chosen only)"]) assert.match(report, new RegExp(`\\| ${m.replace(/[()]/g, '\\$&')} \\| 1 \\|`));
    assert.match(report, /backend: wasm/);
    // Where the time went, from the status events the child processes stored: every run of the experiment counted.
    assert.match(report, /## Where the time goes\n\n7 runs took [\d.]+ run-minutes/);
    // The same command again finds every run finished and starts none.
    const again = await cli(args);
    assert.equal(again.code, 0, again.stderr.slice(-2000));
    assert.doesNotMatch(again.stderr, /started/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
