import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, ConfigError, PRESETS } from '../../daemon/src/pipeline/config';
import { parseSets } from '../../daemon/src/cli/run';
import { exportPair, trajectoryMessages } from '../../daemon/src/pipeline/exportPairs';
import type { Trajectory } from '@mathagent/shared';

test('presets validate, and the precedence is defaults < preset < file < overrides', () => {
  for (const name of Object.keys(PRESETS)) assert.doesNotThrow(() => resolveConfig({ preset: name }), name);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'a.mathagent.json');
  writeFileSync(file, JSON.stringify({ preset: 'smoke', iterations: 5, train: { beta: 0.2 } }));
  const c = resolveConfig({ file, overrides: { train: { lr: 3e-6 } } });
  assert.equal(c.iterations, 5);
  assert.equal(c.train.beta, 0.2);
  assert.equal(c.train.lr, 3e-6);
  assert.equal(c.limits.maxTurns, PRESETS.smoke!.limits!.maxTurns);
});

test('broken configs give errors that name the file, the field path and the allowed values', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const bad = join(dir, 'bad.mathagent.json');
  writeFileSync(bad, '{ "algorithm": "ppo", "sampling": { "temprature": 1 } }');
  assert.throws(() => resolveConfig({ file: bad }), (e: Error) => e instanceof ConfigError && /bad\.mathagent\.json/.test(e.message) &&
    /algorithm: .*"mdpo"\|"mkto"\|"raft"\|"dpo_unmasked"/.test(e.message) && /sampling: Unrecognized key: "temprature"/.test(e.message));
  const notJson = join(dir, 'x.json');
  writeFileSync(notJson, '{ nope');
  assert.throws(() => resolveConfig({ file: notJson }), /not valid JSON/);
  assert.throws(() => resolveConfig({ file: join(dir, 'missing.json') }), /cannot read config file/);
  assert.throws(() => resolveConfig({ preset: 'huge' }), /unknown preset "huge"; known presets: smoke, smoke-sft, paper-mini/);
});

test('--set parses JSON values and nested paths', () => {
  assert.deepEqual(parseSets(['train.lr=1e-5', 'name=abc', 'sft.enabled=false', 'sft.flawFamilies=["units"]']),
    { train: { lr: 1e-5 }, name: 'abc', sft: { enabled: false, flawFamilies: ['units'] } });
  assert.throws(() => parseSets(['oops']), /key\.path=value/);
});

test('exported pairs mark the model turns 1 and the observations 0', () => {
  const t = (id: string): Trajectory => ({
    id, runId: 'r', iteration: 1, promptId: 'p', sampleIndex: 0, policy: 'x', question: 'Q?', reference: '4', template: 'mathagent',
    promptText: '<|user|>Q?<|end|><|assistant|>', promptTokenIds: [1, 2], extractedAnswer: '4', reward: 1, outcome: 'correct', truncation: null,
    turns: [
      { index: 0, action: { text: 'a\n```mathjs\n2+2\n```<|output|>', tokenIds: [3], logprobs: [-0.1] }, finishReason: 'stop', toolCall: { lang: 'mathjs', code: '2+2' },
        observation: { output: '4', text: '\n4\n<|/output|>\n', tokenIds: [4], error: false, durationMs: 1 } },
      { index: 1, action: { text: '\\boxed{4}<|end|>', tokenIds: [5], logprobs: [-0.2] }, finishReason: 'eos', toolCall: null, observation: null },
    ],
    tokenIds: [1, 2, 3, 4, 5], actionMask: [0, 0, 1, 0, 1], retokenized: false, createdAt: '',
  });
  assert.deepEqual(trajectoryMessages(t('a')).map((m) => [m.role, m.mask]), [['assistant', 1], ['user', 0], ['assistant', 1]]);
  const e = exportPair(t('a'), t('b'), { tokens: true });
  assert.deepEqual(e.prompt, [{ role: 'user', content: 'Q?' }]);
  assert.deepEqual(e.chosen_tokens!.action_mask, [0, 0, 1, 0, 1]);
  assert.equal(e.rejected_id, 'b');
});

test('data.promptsFromDemos: online prompts are the SFT problems, the next block each iteration, wrapping around', async () => {
  const { runProblems, sftDemos } = await import('../../daemon/src/pipeline/execute');
  const cfg = resolveConfig({ preset: 'smoke', overrides: { data: { promptsFromDemos: true, trainPrompts: 5 }, sft: { demos: 12, copyDrills: 0.5 } } });
  const demos = sftDemos(cfg);
  assert.equal(demos.length, 12 + 6, 'demos plus copy drills');
  const synthetic = demos.filter((d) => d.problem.source === 'synthetic').map((d) => d.problem.id);
  assert.deepEqual(runProblems(cfg, 'train', 5, 1).map((p) => p.id), synthetic.slice(0, 5));
  assert.deepEqual(runProblems(cfg, 'train', 5, 2).map((p) => p.id), synthetic.slice(5, 10));
  assert.deepEqual(runProblems(cfg, 'train', 5, 3).map((p) => p.id), [...synthetic.slice(10, 12), ...synthetic.slice(0, 3)]);
  // Off (the default): fresh train problems, none of them a demonstration's.
  const fresh = runProblems(resolveConfig({ preset: 'smoke', overrides: { sft: { demos: 12 } } }), 'train', 5, 1);
  assert.ok(fresh.every((p) => !synthetic.includes(p.id)));
  assert.throws(() => runProblems(resolveConfig({ preset: 'smoke', overrides: { data: { promptsFromDemos: true }, sft: { demos: 0 } } }), 'train', 5, 1), /sft.demos > 0/);
});
