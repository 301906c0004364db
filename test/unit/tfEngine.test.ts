/**
 * The pipeline's tfjs engine end to end on the tiny model: sample real trajectories through the sandbox, pair them,
 * and train M-DPO / M-KTO / unmasked DPO / SFT on them; save and load the result. (Whether a pair is "correct vs
 * wrong" does not matter to the mechanics checked here.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { createTfEngine } from '../../daemon/src/pipeline/tfEngine';
import { rollout } from '../../daemon/src/env/rollout';
import { SandboxPool } from '../../daemon/src/env/sandbox';
import { getTemplate } from '../../daemon/src/env/templates';
import { generateProblems } from '../../daemon/src/data/synthetic';
import { RunConfig } from '@mathagent/shared';

test('engine: rollout → pairs → M-DPO, M-KTO, unmasked DPO and SFT steps → save/load', { timeout: 120_000 }, async () => {
  const engine = await createTfEngine({ backend: 'wasm', log: () => {} });
  const model = engine.newModel('tiny', 3, 256);
  assert.equal(engine.contextLength(model), 256);
  const tools = new SandboxPool({ workers: 1 });
  try {
    const problems = generateProblems({ seed: 4, count: 2, split: 'train', level: 1 });
    const items = problems.flatMap((problem) => [0, 1].map((k) => ({ id: `${problem.id}:${k}`, runId: 'r', iteration: 1, sampleIndex: k, problem })));
    const trajs = await rollout(engine.policy(model, 'p'), items, {
      template: getTemplate('mathagent'), maxTurns: 2, maxTurnTokens: 40, maxTrajectoryTokens: 200, temperature: 1, topP: 1, batchSize: 4, seed: 1,
    }, tools);
    assert.equal(trajs.length, 4);
    const pairs = [{ chosen: trajs[0]!, rejected: trajs[1]! }, { chosen: trajs[2]!, rejected: trajs[3]! }];
    const train = RunConfig.parse({}).train;
    const round = async (check: boolean) => {
    for (const algorithm of ['mdpo', 'mkto', 'dpo_unmasked'] as const) {
      const student = engine.newModel('tiny', 3, 256);
      const metrics: Record<string, number>[] = [];
      const steps = await engine.trainPreference(student, model, pairs, { ...train, batchSize: 2, microBatchSize: 1, algorithm, seed: 1, onStep: (_s, m) => { metrics.push(m); } });
      assert.equal(steps, 1, algorithm);
      assert.ok(Number.isFinite(metrics[0]!.loss), `${algorithm} loss ${metrics[0]!.loss}`);
      if (algorithm !== 'mkto') assert.ok('rewards/margins' in metrics[0]!, algorithm);
      student.dispose();
    }
    const sftSteps = await engine.trainSft(model, trajs.map((t) => ({ tokenIds: t.tokenIds, actionMask: t.actionMask })), { steps: 2, lr: 1e-3, batchSize: 2, warmupSteps: 0, seed: 1 });
    assert.equal(sftSteps, 2);
    void check;
    };
    // The first round fills the model's per-length causal-mask cache; a second identical round must not grow memory.
    await round(false);
    const before = tf.memory().numTensors;
    await round(true);
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked by training');
    const dir = join(mkdtempSync(join(tmpdir(), 'engine-')), 'ckpt');
    await engine.save(model, dir, { note: 'test' });
    const loaded = await engine.load(dir);
    assert.equal(engine.contextLength(loaded), 256);
    loaded.dispose();
  } finally {
    model.dispose();
    await tools.close();
  }
});
