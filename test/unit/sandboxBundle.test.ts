// The sandbox must also work from the esbuild bundle (daemon/dist/cli.cjs + daemon/dist/sandboxWorker.cjs).
// Bundle a tiny CLI that uses SandboxPool and the worker, side by side in a temporary folder (so nothing from
// the repository's node_modules can be picked up at run time), and run it with plain node (no tsx).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';

const root = join(__dirname, '..', '..');

test('bundled sandbox resolves its .cjs worker next to the bundle and runs cells', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-bundle-'));
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, `
      import { SandboxPool } from ${JSON.stringify(join(root, 'daemon/src/env/sandbox.ts'))};
      (async () => {
        const pool = new SandboxPool({ workers: 1, timeoutMs: 3000 });
        const s = pool.session();
        const out = [await s.run('x = 2^20'), await s.run('x + 1'), await s.run('import({}, {})')];
        console.log(JSON.stringify(out.map((r) => [r.output, r.error])));
        await pool.close();
      })();
    `);
    const common = { bundle: true, platform: 'node' as const, target: 'node20', format: 'cjs' as const, logLevel: 'silent' as const };
    await build({ ...common, entryPoints: [entry], outfile: join(dir, 'cli.cjs') });
    await build({ ...common, entryPoints: [join(root, 'daemon/src/env/sandboxWorker.ts')], outfile: join(dir, 'sandboxWorker.cjs') });
    const r = spawnSync(process.execPath, [join(dir, 'cli.cjs')], { cwd: dir, encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), [['1048576', false], ['1048577', false], ['Error: import is disabled in the sandbox', true]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
