/**
 * The evaluation knobs the paper-mini experiment relies on, on a real (tiny, untrained) local model:
 * eval.initial false skips the starting model's evaluation, eval.passKAt 'ends' samples pass@k only at the final
 * iteration (and the start), eval.passKPrompts samples k only for the first N held-out problems, and pass@k is
 * averaged over those N alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunConfig } from '@mathagent/shared';
import { initBackend } from '../../daemon/src/model/backends';
import { GPT, presetConfig } from '../../daemon/src/model/gpt';
import { saveCheckpoint } from '../../daemon/src/model/checkpoint';
import { getTemplate } from '../../daemon/src/env/templates';
import { openStore } from '../../daemon/src/store';
import { createTfEngine } from '../../daemon/src/pipeline/tfEngine';
import { executeRun } from '../../daemon/src/pipeline/execute';

test('eval.initial, eval.passKAt "ends" and eval.passKPrompts', { timeout: 300_000 }, async () => {
  await initBackend('wasm', { log: () => {} });
  const dir = mkdtempSync(join(tmpdir(), 'eval-schedule-'));
  try {
    const tpl = getTemplate('mathagent');
    const ck = join(dir, 'start');
    const m = new GPT(presetConfig('tiny', 256 + tpl.specialTokens.length), 5);
    await saveCheckpoint(ck, { model: m, tokenizerSpecials: tpl.specialTokens });
    m.dispose();
    const store = openStore(join(dir, 'runs.db'));
    const config = RunConfig.parse({
      iterations: 2, seed: 2, model: { init: ck }, sft: { enabled: false },
      data: { dataset: 'synthetic', trainPrompts: 2, evalPrompts: 5, heldOut: 'same' },
      sampling: { samplesPerPrompt: 2, temperature: 1, batchSize: 8 },
      limits: { maxTurns: 2, maxTurnTokens: 8, maxTrajectoryTokens: 120 },
      eval: { passK: 3, passKPrompts: 2, passKAt: 'ends', initial: false },
    });
    const run = store.createRun({ config, state: 'running' });
    const engine = await createTfEngine({ backend: 'wasm', log: () => {} });
    await executeRun(run.id, config, { store, emit: () => {}, engine, runDir: join(dir, 'run'), signal: new AbortController().signal });
    const evals = store.listEvals(run.id).sort((a, b) => a.iteration - b.iteration);
    assert.deepEqual(evals.map((e) => e.iteration), [1, 2], 'no evaluation of the starting model');
    const [first, last] = evals as [typeof evals[0], typeof evals[0]];
    assert.equal(first.k, 1);
    assert.equal(first.passK, null);
    assert.ok(first.problems.every((p) => p.correctK === null));
    assert.equal(last.k, 3);
    assert.equal(last.n, 5, 'greedy pass@1 still covers every held-out problem');
    const sampled = last.problems.filter((p) => p.correctK !== null);
    assert.equal(sampled.length, 2, 'k samples for the first two problems only');
    // pass@k averages over the sampled problems: with k samples each, a problem counts 1 when any sample is right.
    const expected = sampled.filter((p) => p.correctK! > 0).length / 2;
    assert.equal(last.passK, expected);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
