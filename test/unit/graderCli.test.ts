/**
 * `mathagent grade` end to end: the real bin (daemon/bin/mathagent.cjs) as a child process, JSON lines on
 * stdin. The bin runs the esbuild bundle when one exists; a bundle older than the sources is rebuilt first
 * (node scripts/build.mjs) so the test exercises the current code.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const bin = join(root, 'daemon', 'bin', 'mathagent.cjs');
const bundle = join(root, 'daemon', 'dist', 'cli.cjs');

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

before(() => {
  if (!existsSync(bundle)) return; // the bin falls back to the TypeScript sources through tsx
  const sources = Math.max(newestSource(join(root, 'daemon', 'src')), newestSource(join(root, 'shared', 'src')));
  if (statSync(bundle).mtimeMs >= sources) return;
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (r.status === 0) return;
  // A failed rebuild (another module mid-edit) is only tolerable if the existing bundle already grades.
  const probe = spawnSync(process.execPath, [bin, 'grade', '--gold', '1', '--pred', '1'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.equal(probe.stdout, 'true\n', `the CLI bundle is stale and rebuilding it failed:\n${r.stderr.slice(0, 2000)}`);
  console.log('warning: CLI bundle is stale and could not be rebuilt; testing the existing bundle');
});

function grade(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [bin, 'grade', ...args], { cwd: root, input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('grade reads JSON lines, adds "equal", keeps other fields, reports malformed lines and continues', () => {
  const lines = [
    JSON.stringify({ gold: '\\frac{1}{2}', pred: '0.5', id: 'a', meta: { k: 1 } }),
    'this is not json',
    JSON.stringify({ gold: '12.5', pred: 'so she pays 12.50 dollars' }),
    '',
    JSON.stringify({ gold: '9' }),
    JSON.stringify([1, 2]),
    JSON.stringify({ gold: 72, pred: 'Natalia sold 72 clips.\n#### 72' }),
    JSON.stringify({ gold: '(0,1)', pred: '[0,1)' }),
    JSON.stringify({ gold: 'x', pred: null }),
  ];
  const r = grade([], `${lines.join('\n')}\n`);
  assert.equal(r.code, 1, 'malformed lines make the exit code non-zero');
  const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(out.length, 8, 'one output line per non-empty input line');
  assert.deepEqual(out[0], { gold: '\\frac{1}{2}', pred: '0.5', id: 'a', meta: { k: 1 }, equal: true });
  assert.equal(out[1].line, 2);
  assert.match(String(out[1].error), /invalid JSON/);
  assert.deepEqual(out[2], { gold: '12.5', pred: 'so she pays 12.50 dollars', equal: true });
  assert.match(String(out[3].error), /missing "pred"/);
  assert.equal(out[3].line, 5);
  assert.match(String(out[4].error), /JSON object/);
  assert.equal(out[5].equal, true);
  assert.equal(out[6].equal, false);
  assert.match(String(out[7].error), /"pred" must be a string or a number, got null/);
  assert.match(r.stderr, /4 malformed line/);
});

test('grade exits 0 when every line is well formed', () => {
  const r = grade([], `${JSON.stringify({ gold: '2', pred: 'x = 2' })}\n${JSON.stringify({ gold: '2', pred: '3' })}\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { equal: boolean }).equal), [true, false]);
});

test('grade --gold A --pred B prints true or false', () => {
  let r = grade(['--gold', '$9$', '--pred', 'the answer is \\boxed{9}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'true\n');
  r = grade(['--gold', '1,000.99', '--pred', '1000.98']);
  assert.equal(r.stdout, 'false\n');
  r = grade(['--gold', '1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /give both --gold and --pred/);
});
