import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findFencedBlocks, parseToolCall, hasBoxedAnswer } from '../../daemon/src/env/codeBlocks';

test('the LAST code block of a turn is the tool call', () => {
  const text = 'First\n```mathjs\na = 1\n```\nthen\n```mathjs\nb = 2\nb * 3\n```\n';
  assert.deepEqual(parseToolCall(text), { ok: true, lang: 'mathjs', tag: 'mathjs', code: 'b = 2\nb * 3' });
  assert.equal(findFencedBlocks(text).length, 2);
});

test('mathjs, math and untagged blocks run as mathjs; tags are case-insensitive', () => {
  assert.deepEqual(parseToolCall('```math\n1+1\n```'), { ok: true, lang: 'mathjs', tag: 'math', code: '1+1' });
  assert.deepEqual(parseToolCall('```\n1+1\n```'), { ok: true, lang: 'mathjs', tag: '', code: '1+1' });
  assert.deepEqual(parseToolCall('```MathJS\n1+1\n```'), { ok: true, lang: 'mathjs', tag: 'mathjs', code: '1+1' });
  assert.deepEqual(parseToolCall('see ```2+3``` ok'), { ok: true, lang: 'mathjs', tag: '', code: '2+3' });
});

test('python only when the Python tool is enabled; other languages get a tool error naming the fix', () => {
  const py = '```python\nprint(2**10)\n```';
  assert.deepEqual(parseToolCall(py), { ok: false, tag: 'python', code: 'print(2**10)', error: 'Error: python is not enabled; use ```mathjs' });
  assert.deepEqual(parseToolCall(py, { python: true }), { ok: true, lang: 'python', tag: 'python', code: 'print(2**10)' });
  assert.deepEqual(parseToolCall('```py\nx\n```', { python: true }), { ok: true, lang: 'python', tag: 'py', code: 'x' });
  const js = parseToolCall('```javascript\nconsole.log(1)\n```');
  assert.deepEqual(js, { ok: false, tag: 'javascript', code: 'console.log(1)', error: 'Error: ```javascript blocks are not run; use ```mathjs' });
});

test('output blocks are observations, not code: a ToRA turn ending with ```output still finds its code', () => {
  const tora = 'Compute.\n```mathjs\n2^10\n```\n```output';
  assert.deepEqual(parseToolCall(tora), { ok: true, lang: 'mathjs', tag: 'mathjs', code: '2^10' });
  const withEarlierOutput = '```mathjs\n1\n```\n```output\n1\n```\nnow\n```mathjs\n2\n```';
  assert.deepEqual(parseToolCall(withEarlierOutput), { ok: true, lang: 'mathjs', tag: 'mathjs', code: '2' });
  assert.equal(parseToolCall('```output\n5\n```'), null);
});

test('unclosed block runs to the end; empty block is an error; no block is null', () => {
  assert.deepEqual(parseToolCall('Let me:\n```mathjs\nx = 3\nx^2\n'), { ok: true, lang: 'mathjs', tag: 'mathjs', code: 'x = 3\nx^2' });
  assert.equal(findFencedBlocks('```mathjs\nx')[0]!.closed, false);
  assert.deepEqual(parseToolCall('```mathjs\n\n```'), { ok: false, tag: 'mathjs', code: '', error: 'Error: empty code block' });
  assert.equal(parseToolCall('no code here, just 2+2=4'), null);
  assert.equal(parseToolCall(''), null);
});

test('code on the fence line and indentation are kept', () => {
  assert.deepEqual(parseToolCall('```x = 1\ny = x + 1\n```'), { ok: true, lang: 'mathjs', tag: '', code: 'x = 1\ny = x + 1' });
  assert.deepEqual(parseToolCall('```mathjs\n  a = [1,\n    2]\n```'), { ok: true, lang: 'mathjs', tag: 'mathjs', code: '  a = [1,\n    2]' });
  // Windows line endings: the \r before the newline is trailing whitespace
  assert.deepEqual(parseToolCall('```mathjs\r\n1+1\r\n```'), { ok: true, lang: 'mathjs', tag: 'mathjs', code: '1+1' });
});

test('hasBoxedAnswer sees \\boxed{ and \\fbox{ only', () => {
  assert.equal(hasBoxedAnswer('so \\boxed{12}'), true);
  assert.equal(hasBoxedAnswer('so \\boxed {12}'), true);
  assert.equal(hasBoxedAnswer('so \\fbox{12}'), true);
  assert.equal(hasBoxedAnswer('boxed{12}'), false);
  assert.equal(hasBoxedAnswer('the answer is 12'), false);
});
