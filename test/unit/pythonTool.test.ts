/**
 * The Python tool: stateful cells (earlier cells re-run, only the last cell's output), short errors, and the
 * hostile cases — infinite loop, huge allocation, fork bomb (audit hook, and the OS layers on their own where
 * the host enforces them), writes outside the temp dir, network — each contained and reported as an error.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PythonTool, pythonSandboxInfo, withPython, pythonRiskMessage } from '../../daemon/src/env/pythonTool';
import { SandboxPool } from '../../daemon/src/env/sandbox';

const hasPython = spawnSync('python3', ['-c', 'pass']).status === 0;
const skip = hasPython ? false : 'python3 is not installed on this host';

describe('python tool', () => {
  it('re-runs earlier cells, returns only the last cell\'s output, shows a last expression', { skip }, async () => {
    const tool = new PythonTool({ timeoutMs: 10_000 });
    const s = tool.session();
    assert.deepEqual(pick(await s.run('x = 6\nprint("setting x")')), ['setting x', false]);
    assert.deepEqual(pick(await s.run('y = x * 7\nprint(y)')), ['42', false]);
    assert.deepEqual(pick(await s.run('x + y')), ['48', false], 'notebook-style last expression; earlier prints are not repeated');
    // A failing cell is reported by the last line of its traceback and is not kept.
    assert.deepEqual(pick(await s.run('z = 1\nw = 1/0')), ['ZeroDivisionError: division by zero', true]);
    assert.deepEqual(pick(await s.run('z')), ["NameError: name 'z' is not defined", true]);
    assert.deepEqual(pick(await s.run('def f(:\n  pass')), ['SyntaxError: invalid syntax', true]);
    assert.deepEqual(pick(await s.run('   ')), ['Error: empty code block', true]);
    const other = tool.session();
    assert.deepEqual(pick(await other.run('x')), ["NameError: name 'x' is not defined", true], 'sessions do not share state');
    s.dispose();
    await assert.rejects(s.run('1'), /disposed/);
  });

  it('stops an infinite loop at the time limit', { skip }, async () => {
    const tool = new PythonTool({ timeoutMs: 1500 });
    const r = await tool.runCells([], 'while True:\n    pass');
    assert.deepEqual(pick(r), ['Error: time limit exceeded (1.5 s); the program was stopped', true]);
    // The tool is still usable afterwards.
    assert.deepEqual(pick(await tool.runCells([], 'print(1)')), ['1', false]);
  });

  it('refuses a huge allocation with a MemoryError', { skip }, async () => {
    const tool = new PythonTool({ memoryMb: 256 });
    assert.deepEqual(pick(await tool.runCells([], 'b = bytearray(8 * 1024**3)')), ['MemoryError: out of memory (the limit is 256 MB)', true]);
    assert.deepEqual(pick(await tool.runCells([], 'x = [0] * (10**9)')), ['MemoryError: out of memory (the limit is 256 MB)', true]);
  });

  it('refuses process creation: fork bomb, subprocess, os.system, ctypes fork', { skip }, async () => {
    const tool = new PythonTool({ timeoutMs: 5000 });
    const cases: Array<[string, RegExp]> = [
      ['import os\nwhile True:\n    os.fork()', /^PermissionError: os\.fork is not allowed in the sandbox$/],
      ['import subprocess\nsubprocess.run(["sh", "-c", ":(){ :|:& };:"])', /subprocess\.Popen is not allowed/],
      ['import os\nos.system("echo hi")', /os\.system is not allowed/],
      ['import ctypes\nctypes.CDLL(None).fork()', /ctypes access to fork is not allowed/],
      ['import ctypes\nctypes.CDLL("libc.so.6")', /loading native libraries is not allowed/],
      ['import os, signal\nos.kill(1, signal.SIGTERM)', /os\.kill is not allowed/],
    ];
    for (const [code, re] of cases) {
      const r = await tool.runCells([], code);
      assert.equal(r.error, true, code);
      assert.match(r.output, re);
    }
  });

  it('contains a fork bomb with the OS layers alone (PID namespace + RLIMIT_NPROC) where the host enforces them', async (t) => {
    // Root ignores RLIMIT_NPROC: only where calls run as an unprivileged user is a real fork bomb safe to run.
    const python = process.getuid?.() === 0 ? '/usr/bin/python3' : 'python3';
    const info = existsSync(python) || python === 'python3' ? pythonSandboxInfo(python) : null;
    const enforced = info?.executable && info.unshare && (info.unprivileged || process.getuid?.() !== 0);
    if (!enforced) { t.skip(`the OS layers are not all available here (${info?.notes.join('; ') || `${python} missing`}): the audit hook alone stops fork bombs (previous test)`); return; }
    const tool = new PythonTool({ python, timeoutMs: 3000, maxProcesses: 32, auditHook: false });
    const r = await tool.runCells([], 'import os\nwhile True:\n    os.fork()');
    assert.equal(r.error, true);
    assert.match(r.output, /BlockingIOError|Resource temporarily unavailable|time limit exceeded/);
  });

  it('refuses writes, removals and renames outside its temp dir, which is removed afterwards', { skip }, async () => {
    const outside = mkdtempSync(join(tmpdir(), 'py-outside-'));
    const victim = join(outside, 'keep.txt');
    writeFileSync(victim, 'precious');
    try {
      const tool = new PythonTool();
      const attempts: Array<[string, RegExp]> = [
        [`open(${JSON.stringify(join(outside, 'new.txt'))}, "w").write("x")`, /writing outside the working directory is not allowed/],
        [`open(${JSON.stringify(victim)}, "a").write("x")`, /writing outside the working directory is not allowed/],
        [`import os\nos.remove(${JSON.stringify(victim)})`, /os\.remove outside the working directory is not allowed/],
        [`import os\nos.rename(${JSON.stringify(victim)}, "stolen.txt")`, /os\.rename outside the working directory is not allowed/],
        [`import shutil\nshutil.rmtree(${JSON.stringify(outside)})`, /outside the working directory is not allowed/],
        [`import os\nfd = os.open(${JSON.stringify(join(outside, 'fd.txt'))}, os.O_WRONLY | os.O_CREAT)`, /writing outside the working directory is not allowed/],
      ];
      for (const [code, re] of attempts) {
        const r = await tool.runCells([], code);
        assert.equal(r.error, true, code);
        assert.match(r.output, re);
      }
      assert.equal(readFileSync(victim, 'utf8'), 'precious');
      assert.equal(existsSync(join(outside, 'new.txt')), false);
      assert.equal(existsSync(join(outside, 'fd.txt')), false);
      // Inside its own directory it may write and read back; the directory is gone after the call.
      const r = await tool.runCells([], 'import os\nopen("data.txt", "w").write("abc")\nprint(open("data.txt").read(), os.getcwd())');
      assert.equal(r.error, false);
      const [text, cwd] = r.output.split(' ');
      assert.equal(text, 'abc');
      assert.match(cwd!, /mathagent-py-/);
      assert.equal(existsSync(cwd!), false);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('has no network: sockets are refused, and the network namespace has no route even without the hook', { skip }, async (t) => {
    const server = createServer((c) => c.end('secret\n'));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const code = `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), timeout=2)\nprint(s.recv(100))`;
    try {
      const r = await new PythonTool().runCells([], code);
      assert.deepEqual(pick(r), ['PermissionError: network access is not allowed in the sandbox', true]);
      const info = pythonSandboxInfo();
      if (!info.unshare) { t.diagnostic('unshare is not permitted here: only the audit hook keeps the network out'); return; }
      const bare = await new PythonTool({ auditHook: false }).runCells([], code);
      assert.equal(bare.error, true);
      assert.match(bare.output, /ConnectionRefusedError|OSError|Network is unreachable|timed out/);
    } finally {
      server.close();
    }
  });

  it('truncates long output and rejects oversized cells', { skip }, async () => {
    const tool = new PythonTool({ maxOutputChars: 100, maxCodeChars: 50 });
    const r = await tool.runCells([], 'print("a" * 5000)');
    assert.equal(r.error, false);
    assert.equal(r.output, `${'a'.repeat(100)}\n... (output truncated to 100 characters)`);
    assert.deepEqual(pick(await tool.runCells([], `x = "${'b'.repeat(60)}"`)), ['Error: code too long (66 characters; the limit is 50)', true]);
    assert.deepEqual(pick(await tool.runCells([], 'import os\nos._exit(3)')), ['Error: the program exited without a result (exit code 3)', true]);
  });

  it('sends python cells to the Python tool and mathjs cells to the mathjs sandbox', { skip }, async () => {
    const pool = new SandboxPool({ workers: 1 });
    try {
      const s = withPython(pool, new PythonTool()).session();
      assert.deepEqual(pick(await s.run('a = 2 + 3', 'mathjs')), ['5', false]);
      assert.deepEqual(pick(await s.run('b = 10\nprint(b // 3)', 'python')), ['3', false]);
      assert.deepEqual(pick(await s.run('b * 2', 'py')), ['20', false]);
      assert.deepEqual(pick(await s.run('a * 2', 'mathjs')), ['10', false]);
      s.dispose();
    } finally { await pool.close(); }
  });

  it('reports a missing interpreter as an error observation, and the risk message names the layers', async () => {
    const tool = new PythonTool({ python: '/nonexistent/python3' });
    const r = await tool.runCells([], 'print(1)');
    assert.equal(r.error, true);
    assert.match(r.output, /^Error: no python interpreter is available on the daemon host \(\/nonexistent\/python3 is not available/);
    assert.throws(() => new PythonTool({ timeoutMs: 0 }), /timeoutMs must be a positive number/);
    const msg = pythonRiskMessage({ executable: '/usr/bin/python3', version: '3.11', unshare: ['--net'], unprivileged: false, notes: [] }, 20_000);
    assert.match(msg, /Python tool is ON.*not a security boundary/);
    assert.match(msg, /20 s limit/);
  });
});

function pick(r: { output: string; error: boolean }): [string, boolean] {
  return [r.output, r.error];
}
