import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateCopyDrills } from '../../daemon/src/data/copyDrills';
import { renderDemo } from '../../daemon/src/env/demos';
import { getTemplate } from '../../daemon/src/env/templates';
import { ByteTokenizer } from '../../daemon/src/model/tokenizer';
import type { ToolSession } from '../../daemon/src/env/sandbox';

test('copy drills: deterministic, the answer is the numbers of the question in order, a longer list extends a shorter one', () => {
  const a = generateCopyDrills(7, 50);
  assert.deepEqual(generateCopyDrills(7, 20), a.slice(0, 20));
  assert.notDeepEqual(generateCopyDrills(8, 20), a.slice(0, 20));
  for (const d of a) {
    const nums = d.problem.question.match(/\d+/g)!;
    assert.ok(nums.length >= 2 && nums.length <= 5, d.problem.question);
    assert.equal(d.problem.answer, nums.join(' '));
    assert.deepEqual(d.steps, [{ text: nums.join(' '), code: null }]);
    assert.equal(d.flawed, false);
  }
  assert.equal(new Set(a.map((d) => d.problem.id)).size, 50);
  assert.deepEqual(generateCopyDrills(1, 0), []);
  assert.throws(() => generateCopyDrills(1, -1), /non-negative integer/);
});

test('a rendered drill masks exactly the answer turn (the prompt is not the model\'s)', async () => {
  const tpl = getTemplate('mathagent');
  const tok = new ByteTokenizer(tpl.specialTokens);
  const noTool = { run: () => Promise.reject(new Error('a drill never calls the tool')), dispose() {} } as unknown as ToolSession;
  const [d] = generateCopyDrills(3, 1);
  const r = await renderDemo(d!, tpl, tok, noTool);
  const action = r.tokenIds.filter((_, i) => r.actionMask[i] === 1);
  assert.equal(tok.decode(action), `${d!.problem.answer}<|end|>`);
  assert.equal(r.text, `<|user|>${d!.problem.question}<|end|><|assistant|>${d!.problem.answer}<|end|>`);
});
