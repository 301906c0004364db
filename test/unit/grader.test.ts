import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradeAnswer, isEquivalent } from '../../daemon/src/reward/grader';
import { latexToMathjs } from '../../daemon/src/reward/latexToMathjs';
import { normalizeAnswer } from '../../daemon/src/reward/normalize';
import { constantValue } from '../../daemon/src/reward/numeric';
import { benchGrader, benchPairs } from '../../daemon/src/reward/bench';

type Case = [gold: string, pred: string, expected: boolean];

function check(cases: Case[]): void {
  const wrong = cases.filter(([g, p, e]) => isEquivalent(g, p) !== e);
  assert.deepEqual(wrong, [], `verdicts differ for: ${wrong.map(([g, p, e]) => `${JSON.stringify(g)} vs ${JSON.stringify(p)} (expected ${e})`).join('; ')}`);
}

test('bare answers: fractions, decimals, dollars, thousands, percent, degrees, units', () => {
  check([
    ['\\frac{1}{2}', '0.5', true],
    ['\\frac{1}{2}', '0.51', false],
    ['0.5', '1/2', true],
    ['\\frac12', '\\dfrac{1}{2}', true],
    ['$9$', '9', true],
    ['9', '$9.0$', true],
    ['1000.99', '1,000.99', true],
    ['1000.99', '1,000.98', false],
    ['1,000', '1000', true],
    ['1,000', '100', false],
    ['12.5', '12.50', true],
    ['988.41', '988.48', false], // wrong money, though within 1e-4 relative
    ['15000', '\\$15,\\!000', true],
    ['50\\%', '0.5', true],
    ['50\\%', '50', true],
    ['50\\%', '5', false],
    ['0.28', '28', false], // no percent sign, no scaling
    ['90^\\circ', '90', true],
    ['90^{\\circ}', '90°', true],
    ['10\\text{ cm}', '10', true],
    ['5', '5 \\text{ meters}', true],
    ['5', '6 \\text{ meters}', false],
    ['\\sqrt{2}', '1.41421', true],
    ['\\sqrt{2}', '1.41', false],
    ['\\pi', '3.14159', true],
    ['2\\pi', '\\pi \\cdot 2', true],
    ['\\frac{\\sqrt{3}}{2}', '\\frac{1}{2}\\sqrt{3}', true],
    ['1.5 \\times 10^3', '1500', true],
    ['2^{10}', '1024', true],
    ['-\\frac{10}{9}', '-10/9', true],
    ['918\\frac{1}{2}', '918.5', true], // mixed number
    ['4 4/9', '40/9', true],
    ['1.5e6', '1500000', true],
    ['2e', '2e', true],
  ]);
});

test('assignments and relations: x = 2 vs 2, equations up to a factor, inequalities', () => {
  check([
    ['x = 2', '2', true],
    ['2', 'x=2', true],
    ['x = 2', '3', false],
    ['k = \\frac{1}{3}', '1/3', true],
    ['x = 2', 'y = 2', false],
    ['y = 2x + 1', 'y = 1 + 2x', true],
    ['2x + 4y - 3 = 0', 'y = -\\frac{1}{2}x + \\frac{3}{4}', true],
    ['x + y = 1', 'x - y = 1', false],
    ['x \\geq 5', '5 \\le x', true],
    ['x > 5', 'x < 5', false],
    ['x < 1', '-x > -1', true],
    ['-2 \\le x \\le 7', '[-2, 7]', true],
    ['-2 < x \\le 7', '[-2, 7]', false],
    ['a + 3z = 0', '0', false],
  ]);
});

test('tuples, intervals, sets, unions, ± and matrices', () => {
  check([
    ['(1, 2)', '\\left( 1, 2 \\right)', true],
    ['(1, 2)', '(2, 1)', false],
    ['(1, \\frac{9}{2})', '(1, 4.5)', true],
    ['(0, 1)', '[0, 1)', false],
    ['[0, 1)', '[0, 1)', true],
    ['(-\\infty, 3]', '(-\\infty, 3]', true],
    ['(-\\infty, 3]', '(-\\infty, 3)', false],
    ['(1, \\infty)', '(1, +\\infty)', true],
    ['\\{1, 2, 3\\}', '\\{3, 2, 1\\}', true],
    ['\\{1, 2, 3\\}', '\\{1, 2\\}', false],
    ['(-\\infty, -8) \\cup (8, \\infty)', '(8,\\infty)\\cup(-\\infty,-8)', true],
    ['1 \\pm \\sqrt{19}', '1 - \\sqrt{19}, 1 + \\sqrt{19}', true],
    ['\\pm 2', '2', false],
    ['(3,1)', '\\{1,3\\}', false],
    ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', '\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}', true],
    ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', '\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}', false],
    ['\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}', '\\begin{pmatrix} 1 & 2 \\end{pmatrix}', false], // shape matters
  ]);
});

test('symbolic and numeric equality of expressions with variables', () => {
  check([
    ['x^2+2x+1', '(x+1)^2', true],
    ['x^2+2x+1', 'x^3+2x+1', false],
    ['\\frac{x+2}{7}', '\\frac{x}{7}+\\frac{2}{7}', true],
    ['\\tan^2(y)+1', '\\sec^2(y)', true],
    ['2 \\sin b \\cos a', '\\sin(a+b) - \\sin(a-b)', true],
    ['\\sqrt{x^2}', 'x', false], // differs for negative x
    ['|x|', '\\sqrt{x^2}', true],
    ['(a+5)(b+2)', '(+5)(b+2)', false],
    ['\\frac{3}{4}i', '0.75i', true],
    ['e^{i\\pi}', '-1', true],
  ]);
});

test('text answers and multiple choice', () => {
  check([
    ['\\text{odd}', 'odd', true],
    ['odd', '\\text{oddd}', false],
    ['\\text{Evelyn}', 'Evelyn', true],
    ['\\text{(C)}', 'C', true],
    ['C', 'C. x = 42', true],
    ['C', 'D', false],
    ['E', "E'", false],
  ]);
});

test('sentences and solutions: extract first, then compare', () => {
  check([
    ['12.5', 'so she pays 12.50 dollars', true],
    ['9', 'the answer is \\boxed{9}', true],
    ['9', 'the answer is \\boxed{8}', false],
    ['Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72', 'She sold \\boxed{72} clips.', true],
    ['#### 72', 'She sold 73 clips in total.', false],
    ['The answer is $\\frac{1}{2}$.', 'Therefore the probability is $\\boxed{0.5}$.', true],
    ['\\boxed{(3, \\frac{\\pi}{2})}', 'In polar coordinates the point is $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$', true],
    ['1,000.99', 'The total is $1,000.99.', true],
    ['42', 'Final answer: 42', true],
    ['42', 'The perimeter is 7', false],
  ]);
});

test('gradeAnswer reports the extracted answer and the verdict', () => {
  assert.deepEqual(gradeAnswer('We compute 6*7 with the tool.\n```output\n42\n```\nSo the answer is \\boxed{42}.', '42'), { extracted: '42', correct: true });
  assert.deepEqual(gradeAnswer('So the answer is \\boxed{41}.', '#### 42'), { extracted: '41', correct: false });
  assert.deepEqual(gradeAnswer('I could not finish.', '42'), { extracted: null, correct: false });
  assert.deepEqual(gradeAnswer('', '42'), { extracted: null, correct: false });
  assert.deepEqual(gradeAnswer('\\boxed{\\frac{1}{2}}', ''), { extracted: '\\frac{1}{2}', correct: false });
});

test('malformed LaTeX and hostile inputs are simply not equal, never a throw', { timeout: 30_000 }, () => {
  const hostile = [
    '\\frac{', '\\frac{1}{', '\\sqrt[', '}}}}{{{', '\\begin{pmatrix} 1 & 2', '\\boxed{', '$$$$', '\\\\\\\\', '\\left(',
    '(((((((((', ')(', '^^^', '1/0', '0/0', '\\frac{1}{0}', 'x^', '\\unknowncommand{3}', '\\text{', '%%%',
    '{'.repeat(5000) + '1' + '}'.repeat(5000), '('.repeat(3000) + '1', '1+'.repeat(20_000) + '1',
    '1,'.repeat(10_000) + '1', 'x'.repeat(100_000), '\\boxed{'.repeat(2000), '10^10^10^10^10', '2^{2^{2^{49}}}',
    '(10^{10})!', '\\binom{1000000}{500000}', '10^{10^{10}} - 10^{10^{10}}', '9^{9^{9}}x - x',
    'constructor', '__proto__', 'toString()', "().__class__.__base__.__subclasses__()", 'import("fs")',
    'evaluate("1+1")', 'createUnit("foo")', '\u0000\u0001\u0002', '\ud800', '😀', '\\sqrt{-1}', '\\log(0)',
  ];
  for (const h of hostile) {
    for (const other of ['1', '0', h]) {
      let r: boolean | undefined;
      assert.doesNotThrow(() => { r = isEquivalent(other, h); }, `isEquivalent threw on ${JSON.stringify(h.slice(0, 40))}`);
      assert.equal(typeof r, 'boolean');
      assert.doesNotThrow(() => gradeAnswer(h, other));
    }
  }
  // Specific verdicts on the hostile ones.
  assert.equal(isEquivalent('1', '2^{2^{2^{49}}}'), false);
  assert.equal(isEquivalent('2^{2025}', '3^{2025}'), false); // both overflow: not equal by value
  assert.equal(isEquivalent('10^10^10', '10^10^10'), true);
  assert.equal(isEquivalent('1', '(10^{10})!'), false);
  assert.equal(isEquivalent('\\frac{1}{0}', '\\frac{2}{0}'), false);
  assert.equal(isEquivalent('1', '\\frac{1}{'), false);
  assert.equal(isEquivalent('0', "open('marker', 'w').write('x') or 0"), false);
  // Non-string inputs from JavaScript callers.
  assert.equal(isEquivalent(undefined as unknown as string, '1'), false);
  assert.equal(isEquivalent(null as unknown as string, null as unknown as string), false);
  assert.equal(isEquivalent(5 as unknown as string, '5.0'), true);
  assert.equal(isEquivalent('', ''), false);
});

test('large exact integers compare exactly, not within a tolerance', () => {
  check([
    ['99999999999', '100000000000', false],
    ['100000000000000000000', '100000000001000000000', false],
    ['123456789012345678901234567890', '123,456,789,012,345,678,901,234,567,890', true],
  ]);
});

test('the converter emits only whitelisted mathjs and rejects what it does not understand', () => {
  const value = (tex: string) => { const c = latexToMathjs(tex); return c === null ? null : constantValue(c); };
  assert.equal(value('\\frac{1}{2}'), 0.5);
  assert.equal(value('\\frac12 + 2\\cdot 3'), 6.5);
  assert.equal(value('918\\frac{1}{2}'), 918.5);
  assert.equal(value('204_5'), 54);
  assert.equal(value('2^{10}'), 1024);
  assert.equal(value('-2^2'), -4);
  assert.equal(value('|-3| + \\lfloor 2.5 \\rfloor'), 5);
  assert.equal(value('3!'), 6);
  assert.equal(latexToMathjs('2x'), '(2) * (x)');
  assert.equal(value('\\sqrt[3]{8}'), 2);
  assert.ok(!/evaluate\(/.test(latexToMathjs('evaluate(1)') ?? ''));
  for (const bad of ['\\unknown{1}', 'a,b', 'x = 1', '\\sum_{k=0}^n k', "f'(x", '"str"', '`x`', '\\binom{n}{2}']) {
    assert.equal(latexToMathjs(bad), null, bad);
  }
  // Words are split into single-letter symbols: no mathjs function name can be spelled by a model.
  const out = latexToMathjs('import(1)') ?? '';
  assert.ok(!/import\(/.test(out), out);
});

test('normalisation strips delimiters, spacing, units and remembers percent', () => {
  assert.deepEqual(normalizeAnswer('$\\left( 1,\\! 2 \\right)$'), { text: '( 1,2 )', percent: false });
  assert.deepEqual(normalizeAnswer('33.5\\%'), { text: '33.5', percent: true });
  assert.deepEqual(normalizeAnswer('\\$15,\\!000.'), { text: '15,000', percent: false });
  assert.deepEqual(normalizeAnswer('15\\mbox{ cm}^2'), { text: '15', percent: false });
  assert.deepEqual(normalizeAnswer('x \\in [-2,7]'), { text: '[-2,7]', percent: false });
});

test('the benchmark mix is graded as constructed, and the benchmark reports a throughput', async () => {
  const pairs = benchPairs(400, 11);
  const wrong = pairs.filter(([s, ref, exp]) => gradeAnswer(s, ref).correct !== exp);
  assert.deepEqual(wrong, []);
  assert.ok(pairs.some((p) => p[2]) && pairs.some((p) => !p[2]));
  const r = await benchGrader({ n: 50, repeats: 1 });
  assert.equal(r.n, 50);
  assert.ok(Number.isFinite(r.answersPerSec) && r.answersPerSec > 0);
});
