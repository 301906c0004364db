#!/usr/bin/env node
// Runs every test file under test/ in one `node --test` invocation, so the runner's closing summary
// (`# pass N` / `# fail N`) counts everything. Usage: node scripts/test.mjs [unit|integration|e2e ...]
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const groups = process.argv.slice(2);
const dirs = (groups.length ? groups : ['unit', 'integration', 'e2e']).map((g) => join(root, 'test', g));
const files = [];
const walk = (d) => {
  let entries = [];
  try { entries = readdirSync(d); } catch { return; }
  for (const e of entries.sort()) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.test\.ts$/.test(e)) files.push(relative(root, p));
  }
};
dirs.forEach(walk);
if (!files.length) { console.error('no test files found'); process.exit(1); }
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
