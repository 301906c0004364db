import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';
import { dataDir, datasetPath, gsm8kAnswer, loadDataset, splitProblems, DatasetError } from '../../daemon/src/data/datasets';
import { lastBoxed } from '../../daemon/src/data/boxed';
import { getProblems } from '../../daemon/src/data/index';
import type { Problem } from '../../daemon/src/data/types';

const root = resolve(__dirname, '../..');

function tempData(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mathagent-data-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

test('real files: row counts and first answers', () => {
  const counts: Array<[Parameters<typeof loadDataset>[0], Parameters<typeof loadDataset>[1], number]> = [
    ['gsm8k', 'train', 7473], ['gsm8k', 'test', 1319], ['math', 'train', 7500], ['math', 'test', 5000], ['math500', 'test', 500],
  ];
  for (const [name, split, n] of counts) assert.equal(loadDataset(name, split).length, n, `${name}/${split}`);

  const gsmTest = loadDataset('gsm8k', 'test', { limit: 2 });
  assert.equal(gsmTest.length, 2);
  assert.equal(gsmTest[0]!.answer, '18'); // Janet's ducks
  assert.equal(gsmTest[0]!.id, 'gsm8k/test/0');
  assert.match(gsmTest[0]!.question, /^Janet’s ducks lay 16 eggs/);
  assert.equal(gsmTest[1]!.answer, '3');
  assert.equal(loadDataset('gsm8k', 'train', { limit: 1 })[0]!.answer, '72');
  assert.deepEqual(loadDataset('gsm8k', 'test', { limit: 0 }), []);

  const mathTest = loadDataset('math', 'test', { limit: 1 })[0]!;
  assert.equal(mathTest.answer, '2');
  assert.equal(mathTest.meta?.subject, 'Algebra');
  assert.equal(mathTest.meta?.level, 3);

  const m500 = loadDataset('math500', 'test', { limit: 1 })[0]!;
  assert.equal(m500.answer, '\\left( 3, \\frac{\\pi}{2} \\right)');
  assert.equal(m500.meta?.uniqueId, 'test/precalculus/807.json');
  assert.equal(m500.meta?.subject, 'Precalculus');
  assert.equal(m500.meta?.level, 2);
});

test('GSM8K answers drop thousands separators; every answer is a plain number', () => {
  const train = loadDataset('gsm8k', 'train');
  const withComma = train.filter((p) => /#### [\d-]*,/.test(String(p.meta?.solution)));
  assert.ok(withComma.length > 50, 'the train file has answers such as "#### 1,080"');
  for (const p of train) assert.match(p.answer, /^-?\d+(\.\d+)?$/, p.id);
  assert.ok(train.some((p) => p.answer === '1080'));
  assert.equal(gsm8kAnswer('x\n#### 850,000'), '850000');
  assert.equal(gsm8kAnswer('x\n#### -12'), '-12');
  assert.equal(gsm8kAnswer('no marker 5'), null);
  assert.equal(gsm8kAnswer('#### twelve'), null);
});

test('MATH: last \\boxed{} with brace matching agrees with MATH-500 answer fields (500/500)', () => {
  const byQuestion = new Map(loadDataset('math', 'test').map((p) => [p.question, p.answer]));
  const m500 = loadDataset('math500', 'test');
  const mismatches = m500.filter((p) => byQuestion.get(p.question) !== p.answer);
  assert.deepEqual(mismatches.map((p) => p.id), []);
  const train = loadDataset('math', 'train');
  // Two rows use the brace-less form `\boxed 9`; two have level "Level ?".
  assert.equal(train.filter((p) => p.meta?.level === '?').length, 2);
  assert.ok(train.some((p) => p.answer === '9' && /\\boxed 9/.test(String(p.meta?.solution))));
  // Two rows have an empty \boxed{} in the release: kept (ids match lines) but flagged, and left out by getProblems.
  const noRef = train.filter((p) => p.meta?.noReference === 1);
  assert.deepEqual(noRef.map((p) => p.meta?.uniqueId), ['train/number_theory/7115.json', 'train/number_theory/7117.json']);
  for (const p of train) assert.ok(p.answer.length > 0 || p.meta?.noReference === 1, p.id);
  const mathTrain = getProblems({ dataset: 'math', split: 'train', count: 10_000, seed: 1 });
  const mathDev = getProblems({ dataset: 'math', split: 'dev', count: 10_000, seed: 1 });
  assert.equal(mathTrain.length + mathDev.length, 7498);
  assert.ok([...mathTrain, ...mathDev].every((p) => p.answer !== ''));
});

test('lastBoxed: nesting, escapes, the last one, brace-less form, failures', () => {
  assert.equal(lastBoxed('so $\\boxed{\\frac{1}{2}}$.'), '\\frac{1}{2}');
  assert.equal(lastBoxed('\\boxed{1} then \\boxed{ 2 }'), '2');
  assert.equal(lastBoxed('\\boxed{\\{1,2\\}}'), '\\{1,2\\}');
  assert.equal(lastBoxed('x = \\boxed 9$.'), '9');
  assert.equal(lastBoxed('\\fbox{7}'), '7');
  assert.equal(lastBoxed('\\boxed{\\frac{1}{2}'), null);
  assert.equal(lastBoxed('no answer here'), null);
  assert.equal(lastBoxed('\\boxedx'), null);
});

test('unknown dataset or split: the error lists the valid ones', () => {
  assert.throws(() => loadDataset('gsm9k' as 'gsm8k', 'test'), (e: Error) => e instanceof DatasetError && /gsm9k/.test(e.message) && /gsm8k, math, math500/.test(e.message));
  assert.throws(() => loadDataset('math500', 'train'), /no split "train".*valid splits for math500: test/);
  assert.throws(() => datasetPath('math', 'dev', '/x'), /valid splits for math: train, test/);
  assert.throws(() => loadDataset('gsm8k', 'test', { limit: -1 }), /limit must be a non-negative integer/);
});

test('missing file: the error names the path and how to fix it', () => {
  const dir = tempData({ 'gsm8k/train.jsonl': '' });
  try {
    assert.throws(() => loadDataset('gsm8k', 'test', { dataDir: dir }), (e: Error) => {
      assert.ok(e instanceof DatasetError);
      assert.ok(e.message.includes(join(dir, 'gsm8k', 'test.jsonl')), e.message);
      assert.match(e.message, /MATHAGENT_DATA_DIR/);
      assert.match(e.message, /shared\/data\/gsm8k/);
      return true;
    });
    assert.deepEqual(loadDataset('gsm8k', 'train', { dataDir: dir }), []); // empty file: no rows, no error
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed lines: file:line and what is wrong', () => {
  const good = JSON.stringify({ question: 'q?', answer: 'work\n#### 1,234' });
  const dir = tempData({
    'gsm8k/test.jsonl': `${good}\n\n{"question": "broken"\n`,
    'gsm8k/train.jsonl': `${good}\n${JSON.stringify({ question: 'q', answer: 'no marker' })}\n`,
    'math/test.jsonl': `${JSON.stringify({ problem: 'p', solution: 'no box', level: 'Level 2', type: 'Algebra' })}\n`,
    'math/train.jsonl': `${JSON.stringify({ problem: 7, solution: '\\boxed{1}' })}\n`,
    'math500/test.jsonl': '[1, 2]\n',
  });
  try {
    // The good first line parses; the blank line 2 is skipped; line 3 is not JSON.
    assert.deepEqual(loadDataset('gsm8k', 'test', { dataDir: dir, limit: 1 }).map((p) => p.answer), ['1234']);
    assert.throws(() => loadDataset('gsm8k', 'test', { dataDir: dir }), (e: Error) =>
      e instanceof DatasetError && e.message.startsWith(`${join(dir, 'gsm8k', 'test.jsonl')}:3: not valid JSON`));
    assert.throws(() => loadDataset('gsm8k', 'train', { dataDir: dir }), /train\.jsonl:2: the "answer" field does not end with "#### <number>"/);
    assert.throws(() => loadDataset('math', 'test', { dataDir: dir }), /test\.jsonl:1: the "solution" field has no \\boxed/);
    assert.throws(() => loadDataset('math', 'train', { dataDir: dir }), /train\.jsonl:1: non-string \(number\) field "problem"/);
    assert.throws(() => loadDataset('math500', 'test', { dataDir: dir }), /test\.jsonl:1: expected a JSON object, got an array/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dataDir: found from the sources, overridable by MATHAGENT_DATA_DIR', () => {
  assert.equal(dataDir(), join(root, 'data'));
  const old = process.env.MATHAGENT_DATA_DIR;
  const dir = tempData({ 'gsm8k/test.jsonl': `${JSON.stringify({ question: 'q', answer: '#### 5' })}\n` });
  try {
    process.env.MATHAGENT_DATA_DIR = dir;
    assert.equal(dataDir(), dir);
    assert.deepEqual(loadDataset('gsm8k', 'test').map((p) => p.answer), ['5']);
    // An explicit dataDir wins over the environment.
    assert.equal(loadDataset('gsm8k', 'test', { dataDir: join(root, 'data') }).length, 1319);
  } finally {
    if (old === undefined) delete process.env.MATHAGENT_DATA_DIR;
    else process.env.MATHAGENT_DATA_DIR = old;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dataDir: found from an esbuild bundle in daemon/dist, whatever the working directory', async () => {
  const entry = join(tmpdir(), `mathagent-probe-${process.pid}.ts`);
  const outfile = join(root, 'daemon', 'dist', `dataDirProbe-${process.pid}.cjs`);
  writeFileSync(entry, `import { dataDir, loadDataset } from ${JSON.stringify(join(root, 'daemon/src/data/datasets'))};\n` +
    `console.log(JSON.stringify({ dir: dataDir(), n: loadDataset('math500', 'test').length }));\n`);
  try {
    await build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'cjs', logLevel: 'error' });
    const env = { ...process.env };
    delete env.MATHAGENT_DATA_DIR;
    const r = spawnSync(process.execPath, [outfile], { cwd: tmpdir(), env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { dir: join(root, 'data'), n: 500 });
  } finally {
    rmSync(entry, { force: true });
    rmSync(outfile, { force: true });
  }
});

test('splitProblems: exact sizes, disjoint, deterministic, independent of input order', () => {
  const problems: Problem[] = Array.from({ length: 1000 }, (_, i) => ({ id: `x/${i}`, question: `q${i}`, answer: String(i), source: 'x' }));
  const a = splitProblems(problems, { seed: 3, evalFraction: 0.1, devFraction: 0.05 });
  assert.equal(a.eval.length, 100);
  assert.equal(a.dev.length, 50);
  assert.equal(a.train.length, 850);
  const ids = [...a.train, ...a.dev, ...a.eval].map((p) => p.id);
  assert.equal(new Set(ids).size, 1000);
  // Each part keeps the input order.
  const idx = (p: Problem) => Number(p.id.slice(2));
  for (const part of [a.train, a.dev, a.eval]) for (let i = 1; i < part.length; i++) assert.ok(idx(part[i - 1]!) < idx(part[i]!));
  assert.deepEqual(splitProblems(problems, { seed: 3, evalFraction: 0.1, devFraction: 0.05 }), a);
  const reversed = splitProblems(problems.slice().reverse(), { seed: 3, evalFraction: 0.1, devFraction: 0.05 });
  assert.deepEqual(new Set(reversed.eval.map((p) => p.id)), new Set(a.eval.map((p) => p.id)));
  const other = splitProblems(problems, { seed: 4, evalFraction: 0.1 });
  assert.notDeepEqual(other.eval.map((p) => p.id), a.eval.map((p) => p.id));
  assert.equal(other.dev.length, 0);
  assert.throws(() => splitProblems(problems, { seed: 1, evalFraction: 1.5 }), /evalFraction must be in \[0, 1\]/);
  assert.throws(() => splitProblems(problems, { seed: 1, evalFraction: 0.6, devFraction: 0.6 }), /at most 1/);
  assert.throws(() => splitProblems([problems[0]!, problems[0]!], { seed: 1, evalFraction: 0.5 }), /duplicate problem id "x\/0"/);
});

test('getProblems: real datasets map train/dev/eval without overlap; synthetic delegates to the generator', () => {
  const evalP = getProblems({ dataset: 'gsm8k', split: 'eval', count: 5, seed: 1 });
  assert.deepEqual(evalP.map((p) => p.id), ['gsm8k/test/0', 'gsm8k/test/1', 'gsm8k/test/2', 'gsm8k/test/3', 'gsm8k/test/4']);
  const dev = getProblems({ dataset: 'gsm8k', split: 'dev', count: 10_000, seed: 1 });
  assert.equal(dev.length, Math.round(7473 * 0.05));
  const train1 = getProblems({ dataset: 'gsm8k', split: 'train', count: 10_000, seed: 1 });
  assert.equal(train1.length, 7473 - dev.length);
  const devIds = new Set(dev.map((p) => p.id));
  assert.ok(train1.every((p) => !devIds.has(p.id)));
  const train2 = getProblems({ dataset: 'gsm8k', split: 'train', count: 20, seed: 2 });
  assert.notDeepEqual(train2.map((p) => p.id), train1.slice(0, 20).map((p) => p.id));
  assert.equal(getProblems({ dataset: 'math500', split: 'eval', count: 1000, seed: 1 }).length, 500);
  assert.match(getProblems({ dataset: 'math500', split: 'train', count: 1, seed: 1 })[0]!.id, /^math\/train\//);
  const syn = getProblems({ dataset: 'synthetic', split: 'eval', count: 3, seed: 1, level: 2 });
  assert.deepEqual(syn.map((p) => p.id), ['synthetic/eval/L2/s1-0', 'synthetic/eval/L2/s1-1', 'synthetic/eval/L2/s1-2']);
});
