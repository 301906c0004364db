import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxPool } from '../../daemon/src/env/sandbox';

// One shared pool for the cases that do not kill workers; short time limit so runaway cases end fast.
const pool = new SandboxPool({ timeoutMs: 800, workers: 2 });
after(() => pool.close());

/** fib(40) by exponential recursion: ~3e8 calls, far beyond any time limit used here. */
const RUNAWAY = 'fib(n) = n < 2 ? n : fib(n - 1) + fib(n - 2)\nfib(40)';

test('state is kept across the cells of a session; a failed cell does not break it', async () => {
  const s = pool.session();
  assert.deepEqual(pick(await s.run('x = 6\ny = 7')), { output: '7', error: false });
  assert.deepEqual(pick(await s.run('z = x * y')), { output: '42', error: false });
  assert.deepEqual(pick(await s.run('nope + 1')), { output: 'Error: Undefined symbol nope', error: true });
  // a cell that assigns and then fails: its assignment must not leak into later cells (they replay successes only)
  assert.equal((await s.run('w = 5\nw + nope')).error, true);
  assert.deepEqual(pick(await s.run('z + 1')), { output: '43', error: false });
  // another session does not see this one's variables
  const other = pool.session();
  assert.deepEqual(pick(await other.run('x')), { output: 'Error: Undefined symbol x', error: true });
  s.dispose();
  other.dispose();
  await assert.rejects(s.run('1'), /disposed/);
});

test('output: last visible value, integers as plain digits, precision 14 otherwise', async () => {
  const s = pool.session();
  const cases: Array<[string, string]> = [
    ['2^40', '1099511627776'],
    ['12345678 * 87654321', '1082152022374638'], // 16 digits, exact in a double: printed in full
    ['1/3', '0.33333333333333'],
    ['0.1 + 0.2', '0.3'],
    ['a = 3;', ''], // a hidden value prints nothing
    ['a = 3\nb = a + 1;\nc = b * 2', '8'],
    ['f(t) = t^2 + 1', 'f(t)'],
    ['f(3)', '10'],
    ['[1, 2; 3, 4] * [1; 1]', '[[3], [7]]'],
    ['fraction(1, 3) + fraction(1, 6)', '1/2'],
    ['format(bignumber(2)^100, {notation: "fixed"})', '1267650600228229401496703205376'],
    ['sum(1:100)', '5050'], // the expression range is 1-based and inclusive (transform preserved)
    ['"text"', 'text'],
  ];
  for (const [code, want] of cases) assert.deepEqual(pick(await s.run(code)), { output: want, error: false }, code);
  s.dispose();
});

test('hostile expressions come back as error observations and the pool keeps serving', async () => {
  const s = pool.session();
  const hostile: Array<[string, RegExp]> = [
    ['import({x: 1}, {override: true})', /^Error: import is disabled/],
    ['createUnit("furlong", "220 yards")', /^Error: createUnit is disabled/],
    ['evaluate("1 + 1")', /^Error: evaluate is disabled/],
    ['e = evaluate\ne("2")', /^Error: evaluate is disabled/],
    ['parse("x")', /^Error: parse is disabled/],
    ['compile("x")', /^Error: compile is disabled/],
    ['simplify("x + x")', /^Error: simplify is disabled/],
    ['derivative("x^2", "x")', /^Error: derivative is disabled/],
    ['config({number: "BigNumber"})', /^Error: config is disabled/],
    ['p = parser()', /^Error: parser is disabled/],
    ['"".constructor', /^Error: No access to property "constructor"/],
    ['g(x) = x\ng.constructor', /No access to property "constructor"/],
    ['c = cos["constructor"]\nc("return process")', /No access to property "constructor"/],
    ['[1].__proto__', /No access to property "__proto__"/],
    ['o = {}\no["__proto__"]["polluted"] = 1', /No access to property "__proto__"/],
    ['zeros(100000, 100000)', /^Error: zeros: 1\.0e10 elements exceed the limit of 1\.0e6/],
    ['ones(1e9)', /^Error: ones: 1\.0e9 elements exceed/],
    ['identity(100000)', /^Error: identity: 1\.0e10 elements exceed/],
    ['range(1, 1e9)', /^Error: range: 1\.0e9 elements exceed/],
    ['sum(1:1e12)', /^Error: range: 1\.0e12 elements exceed/],
    ['random([1e5, 1e5])', /^Error: random: 1\.0e10 elements exceed/],
    ['kron(ones(1000, 1000), ones(1000, 1000))', /^Error: kron: 1\.0e12 elements exceed/],
    ['h(x) = h(x)\nh(1)', /^Error: too much recursion/],
  ];
  for (const [code, re] of hostile) {
    const r = await s.run(code);
    assert.equal(r.error, true, `${code} should fail, got ${r.output}`);
    assert.match(r.output, re, code);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // the same session and the pool still work
  assert.deepEqual(pick(await s.run('2 + 2')), { output: '4', error: false });
  s.dispose();
});

test('a runaway computation is killed at the time limit; other sessions are served meanwhile', async () => {
  const a = pool.session();
  const b = pool.session();
  const [ra, rb] = await Promise.all([a.run(RUNAWAY), b.run('6 * 7')]);
  assert.deepEqual(pick(ra), { output: 'Error: time limit exceeded (0.8 s); the computation was stopped', error: true });
  assert.deepEqual(pick(rb), { output: '42', error: false });
  assert.deepEqual(pick(await a.run('1 + 1')), { output: '2', error: false });
  assert.ok(pool.stats().timeouts >= 1);
  a.dispose();
  b.dispose();
});

test('a call that finished while this thread was busy past the time limit is not reported as timed out', async () => {
  const one = new SandboxPool({ timeoutMs: 200, workers: 1 });
  try {
    assert.deepEqual(pick(await one.run('1 + 1')), { output: '2', error: false }); // the worker is up
    const s = one.session();
    // From the check phase (as after the sampler's setImmediate yields), the loop's next phase is timers, then poll.
    await new Promise<void>((r) => setImmediate(r));
    const pending = s.run('6 * 7');
    for (let i = 0; i < 5; i++) await Promise.resolve(); // the call reaches the worker (session calls chain on promises)
    // A long synchronous stretch on this thread (as a batched prefill is): the reply and the timer both come due.
    const until = Date.now() + 600;
    while (Date.now() < until) { /* busy */ }
    assert.deepEqual(pick(await pending), { output: '42', error: false });
    assert.equal(one.stats().timeouts, 0);
    // A real runaway is still stopped.
    assert.deepEqual(pick(await s.run(RUNAWAY)), { output: 'Error: time limit exceeded (0.2 s); the computation was stopped', error: true });
    s.dispose();
  } finally {
    await one.close();
  }
});

test('after the worker is killed, the session state is rebuilt by replaying its cells', async () => {
  const one = new SandboxPool({ timeoutMs: 600, workers: 1 });
  try {
    const s = one.session();
    assert.equal((await s.run('k = 11\nm = k^2')).output, '121');
    assert.equal((await s.run(RUNAWAY)).error, true);
    assert.deepEqual(pick(await s.run('k + m')), { output: '132', error: false });
    const st = one.stats();
    assert.equal(st.timeouts, 1);
    assert.equal(st.workerStarts, 2);
    // a queued call of another session waits for the respawned worker and runs
    const other = one.session();
    const [r1, r2] = await Promise.all([s.run(RUNAWAY), other.run('3^3')]);
    assert.equal(r1.error, true);
    assert.deepEqual(pick(r2), { output: '27', error: false });
  } finally {
    await one.close();
  }
});

test('a worker that exhausts its heap dies alone: error observation, state survives', async () => {
  const small = new SandboxPool({ timeoutMs: 5000, workers: 1, memoryMb: 64 });
  try {
    const s = small.session();
    assert.equal((await s.run('q = 7')).output, '7');
    // each concat stays under the element limit; eight doublings reach 2.56e8 elements
    const grow = 'M = ones(1000, 1000)\n' + 'M = concat(M, M)\n'.repeat(8) + 'size(M)';
    const r = await s.run(grow);
    assert.equal(r.error, true);
    assert.match(r.output, /^Error: (out of memory|time limit exceeded)/);
    assert.deepEqual(pick(await s.run('q * 2')), { output: '14', error: false });
  } finally {
    await small.close();
  }
});

test('limits: code length, output length, big matrices are summarised, unknown languages', async () => {
  const p = new SandboxPool({ workers: 1, maxExprChars: 100, maxOutputChars: 40 });
  try {
    const s = p.session();
    const long = await s.run('1 + '.repeat(40) + '1');
    assert.deepEqual(pick(long), { output: 'Error: code too long (161 characters; the limit is 100)', error: true });
    const r = await s.run('1:30');
    assert.equal(r.error, false);
    assert.equal(r.output, '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, … [output truncated: 111 chars]');
    assert.deepEqual(pick(await s.run('ones(30, 30)')), { output: '[30x30 matrix, 900 elements: too large to print; index into it, e.g. A[1]]', error: false });
    assert.deepEqual(pick(await s.run('print(1)', 'python')), { output: 'Error: no python interpreter is available; use ```mathjs', error: true });
    assert.deepEqual(pick(await s.run('   ')), { output: 'Error: empty code block', error: true });
    assert.equal(typeof (await s.run('1')).durationMs, 'number');
  } finally {
    await p.close();
  }
  assert.throws(() => p.session(), /closed/);
});

test('bad options and a missing worker script give errors that say what to fix', () => {
  assert.throws(() => new SandboxPool({ timeoutMs: 0 }), /timeoutMs must be a positive number, got 0/);
  assert.throws(() => new SandboxPool({ workers: 0 }), /workers must be an integer >= 1/);
  assert.throws(() => new SandboxPool({ workerFile: '/nonexistent/sandboxWorker.cjs' }), /worker script not found at \/nonexistent\/sandboxWorker\.cjs; run `npm run build`/);
});

test('a worker script that cannot start fails the calls with its error instead of retrying forever', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-broken-'));
  const file = join(dir, 'sandboxWorker.cjs');
  writeFileSync(file, "throw new Error('boom at load');\n");
  const p = new SandboxPool({ workers: 1, workerFile: file });
  try {
    await assert.rejects(p.session().run('1 + 1'), /the interpreter worker failed to start 3 times: boom at load/);
    assert.equal(p.stats().workerStarts, 3);
  } finally {
    await p.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

function pick(r: { output: string; error: boolean }): { output: string; error: boolean } {
  return { output: r.output, error: r.error };
}
