import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractAnswer, findBoxes, isBareAnswer, MAX_TEXT_CHARS } from '../../daemon/src/reward/extract';

test('boxed answers: brace matching, \\fbox, \\boxed 5, the last box wins', () => {
  assert.equal(extractAnswer('So $x = \\boxed{\\frac{1}{2}}$.'), '\\frac{1}{2}');
  assert.equal(extractAnswer('\\boxed{\\{1, 2\\}} is the set'), '\\{1, 2\\}');
  assert.equal(extractAnswer('\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}'), '\\left( 3, \\frac{\\pi}{2} \\right)');
  assert.equal(extractAnswer('First \\boxed{10}, then we correct it: \\boxed{42}'), '42');
  assert.equal(extractAnswer('\\boxed{10} and then \\boxed{42}'), '42');
  assert.equal(extractAnswer('the result is \\fbox{7}'), '7');
  assert.equal(extractAnswer('hence \\boxed 5.'), '5');
  assert.equal(extractAnswer('$\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}$'), '\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}');
});

test('adjacent boxes joined by a connector form one list answer; a flood of boxes still yields the last', () => {
  assert.equal(extractAnswer('The roots are \\boxed{-2} and \\boxed{1}.'), '-2, 1');
  assert.equal(extractAnswer('\\boxed{1},\\boxed{2},\\boxed{3}'), '1, 2, 3');
  assert.equal(extractAnswer('\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}'), '(2, 2), (6, 2)');
  assert.equal(extractAnswer('\\boxed{p = 5, q = 2} and \\boxed{p = 7, q = 2}'), 'p = 5, q = 2; p = 7, q = 2');
  assert.equal(extractAnswer('$$\\boxed{20}$$ \\boxed{143}'), '143');
  const flood = `${Array(400).fill('\\boxed{9}').join(' ')} \\boxed{42}`;
  assert.equal(extractAnswer(flood), '42');
});

test('an unclosed box yields the rest of the text; findBoxes reports positions', () => {
  assert.equal(extractAnswer('The answer is \\boxed{12'), '12');
  const boxes = findBoxes('a \\boxed{1} b \\boxed{2}');
  assert.deepEqual(boxes.map((b) => b.content), ['1', '2']);
  assert.equal(boxes[0].start, 2);
});

test('GSM8K #### marker and "the answer is" phrases', () => {
  assert.equal(extractAnswer('Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n#### 72'), '72');
  assert.equal(extractAnswer('#### 1,234'), '1,234');
  assert.equal(extractAnswer('The answer is 42.'), '42');
  assert.equal(extractAnswer('Final answer: 42'), '42');
  assert.equal(extractAnswer('so the answer is $\\frac{3}{4}$.'), '\\frac{3}{4}');
  assert.equal(extractAnswer('Final Answer: The final answer is $14{,}916$. I hope it is correct.'), '14{,}916');
  assert.equal(extractAnswer('Final Answer: The largest $n$ is 34.'), '34');
  assert.equal(extractAnswer('The answer is 42 because geometry proves it'), '42');
  // A later "final answer" phrase overrides an earlier box (the model restated its result).
  assert.equal(extractAnswer('so \\boxed{200} ... \\boxed{255} ... Final Answer: The final answer is $10,455$.'), '10,455');
  // ...but a box inside the phrase is still the answer.
  assert.equal(extractAnswer('The answer is \\boxed{9}.'), '9');
});

test('fallback: a bare answer as is, otherwise the last math span or the last number', () => {
  assert.equal(extractAnswer('12'), '12');
  assert.equal(extractAnswer('  x^2 + 2x + 1  '), 'x^2 + 2x + 1');
  assert.equal(extractAnswer('$9$'), '9');
  assert.equal(extractAnswer('10\\text{ units}'), '10\\text{ units}');
  assert.equal(extractAnswer('so she pays 12.50 dollars'), '12.50');
  assert.equal(extractAnswer('It costs 1,000.99 in total, not 10.'), '10');
  assert.equal(extractAnswer('the number is not 10 which is 1,000.99€'), '1,000.99');
  assert.equal(extractAnswer('Answer \\( (9+1) \\)'), '(9+1)');
  assert.equal(extractAnswer('The ordered pair is $(7, 6)$. <|im_start|>user'), '(7, 6)');
  assert.equal(extractAnswer('The probability that Alice wins is 2/3. <|im_start|>user'), '2/3');
  assert.equal(extractAnswer('So the loss increases by 100%.'), '100%');
  assert.equal(extractAnswer('$1$ and $2$ and $3$'), '1, 2, 3');
  assert.equal(extractAnswer('The answer is 4 4/9.'), '4 4/9');
});

test('nothing answer-like gives null; numbers inside code are ignored', () => {
  assert.equal(extractAnswer(''), null);
  assert.equal(extractAnswer('   \n '), null);
  assert.equal(extractAnswer('I do not know how to solve this problem at all.'), null);
  assert.equal(extractAnswer('Let me compute:\n```mathjs\nx = 5 + 3\n```\nand then we will see what happens.'), null);
  assert.equal(extractAnswer("__import__('os').system('touch marker') or 0"), null);
  assert.equal(extractAnswer(undefined as unknown as string), null);
});

test('bare-answer detection', () => {
  assert.equal(isBareAnswer('\\frac{1}{2}'), true);
  assert.equal(isBareAnswer('1,000.99'), true);
  assert.equal(isBareAnswer('\\text{The midpoints form a regular hexagon}'), true);
  assert.equal(isBareAnswer('so she pays 12.50 dollars'), false);
  assert.equal(isBareAnswer('Answer $ 9 $'), false);
});

test('huge texts are cut to their tail: the final box is still found', () => {
  const text = `${'reasoning '.repeat(60_000)}\\boxed{42}`;
  assert.ok(text.length > MAX_TEXT_CHARS);
  assert.equal(extractAnswer(text), '42');
});
