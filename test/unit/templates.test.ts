import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTemplate, TEMPLATE_NAMES, DEFAULT_TEMPLATE, endingStop, stripStop } from '../../daemon/src/env/templates';
import { parseToolCall, hasBoxedAnswer } from '../../daemon/src/env/codeBlocks';

test('template registry: names, default, clear error for unknown names', () => {
  assert.deepEqual([...TEMPLATE_NAMES], ['mathagent', 'gemma', 'tora']);
  assert.equal(DEFAULT_TEMPLATE, 'mathagent');
  assert.throws(() => getTemplate('llama'), /unknown chat template "llama"; known templates: mathagent, gemma, tora/);
  assert.throws(() => getTemplate('toString'), /unknown chat template/); // no prototype lookups
  for (const n of TEMPLATE_NAMES) assert.equal(getTemplate(n).name, n);
});

test('mathagent template renders the exact strings of our format', () => {
  const t = getTemplate('mathagent');
  assert.deepEqual(t.specialTokens, ['<|pad|>', '<|user|>', '<|assistant|>', '<|end|>', '<|output|>', '<|/output|>']);
  assert.deepEqual(t.stop, ['<|output|>', '<|end|>']);
  assert.equal(t.eos, '<|end|>');
  assert.equal(t.toolStop, '<|output|>');
  assert.equal(t.renderPrompt('What is 2+3?'), '<|user|>What is 2+3?<|end|><|assistant|>');
  assert.equal(t.renderObservation('5', false), '\n5\n<|/output|>\n');
  assert.equal(t.renderObservation('Error: Undefined symbol x', true), '\nError: Undefined symbol x\n<|/output|>\n');
  assert.equal(t.renderToolCall('Add them.', '2+3'), 'Add them.\n```mathjs\n2+3\n```<|output|>');
  // no doubled newline when the text already ends with one; trailing newlines of the code are not doubled
  assert.equal(t.renderToolCall('Add them.\n', '2+3\n'), 'Add them.\n```mathjs\n2+3\n```<|output|>');
  assert.equal(t.renderToolCall('', 'x = 1'), '```mathjs\nx = 1\n```<|output|>');
  assert.equal(t.renderFinal('So \\boxed{5}.'), 'So \\boxed{5}.<|end|>');
});

test('gemma template follows the paper\'s Gemma-it multi-turn format', () => {
  const t = getTemplate('gemma');
  assert.equal(t.renderPrompt('Q?'), '<start_of_turn>user\nQ?<end_of_turn>\n<start_of_turn>model\n');
  assert.deepEqual(t.stop, ['<end_of_turn>']);
  assert.equal(t.eos, '<end_of_turn>');
  assert.equal(t.toolStop, null);
  assert.equal(t.bos, '<bos>');
  // action (ends with <end_of_turn>, sampled) + observation = the paper's concatenation
  const action = t.renderToolCall('Compute.', 'print(1)', 'python');
  const obs = t.renderObservation('1', false);
  assert.equal(action + obs,
    'Compute.\n```python\nprint(1)\n```<end_of_turn>\n<start_of_turn>user\n```output\n1\n```<end_of_turn>\n<start_of_turn>model\n');
  assert.ok(t.specialTokens.includes('<start_of_turn>') && t.specialTokens.includes('<end_of_turn>'));
});

test('tora template: the model opens ```output, the tool fills and closes it', () => {
  const t = getTemplate('tora');
  assert.equal(t.renderPrompt('Q?'), '<|user|>\nQ?\n<|assistant|>\n');
  assert.deepEqual(t.stop, ['```output', '</s>']);
  assert.equal(t.toolStop, '```output');
  const action = t.renderToolCall('Compute.', '2^10');
  assert.equal(action + t.renderObservation('1024', false), 'Compute.\n```mathjs\n2^10\n```\n```output\n1024\n```\n');
  assert.equal(t.renderFinal('\\boxed{1024}'), '\\boxed{1024}</s>');
});

test('every template: a rendered tool call ends with a stop string, parses back to its code, and no stop occurs earlier', () => {
  for (const name of TEMPLATE_NAMES) {
    const t = getTemplate(name);
    const action = t.renderToolCall('Let me compute the product.', 'a = 1234 * 5678\na + 1');
    const stop = endingStop(action, t.stop);
    assert.ok(stop, `${name}: tool call must end with a stop string`);
    const body = stripStop(action, t.stop);
    for (const s of t.stop) assert.equal(body.includes(s), false, `${name}: stop ${s} inside the action body`);
    const call = parseToolCall(body);
    assert.deepEqual(call, { ok: true, lang: 'mathjs', tag: 'mathjs', code: 'a = 1234 * 5678\na + 1' }, name);
    assert.equal(hasBoxedAnswer(body), false);
    const final = t.renderFinal('The answer is \\boxed{7006653}.');
    assert.equal(endingStop(final, t.stop), t.eos, `${name}: final turn ends with eos, which is a stop`);
    assert.ok(t.stop.includes(t.eos));
    assert.ok(hasBoxedAnswer(stripStop(final, t.stop)));
    // The observation is not mistaken for the model's stop: it never ends with one.
    assert.equal(endingStop(t.renderObservation('42', false), t.stop), null, name);
  }
});

test('endingStop prefers the longest match; stripStop removes only a trailing stop', () => {
  assert.equal(endingStop('abc<|end|>', ['<|end|>', '|>']), '<|end|>');
  assert.equal(endingStop('abc', ['<|end|>']), null);
  assert.equal(endingStop('abc', ['']), null);
  assert.equal(stripStop('a<|end|>b', ['<|end|>']), 'a<|end|>b');
  assert.equal(stripStop('x```output', ['```output', '</s>']), 'x');
});
