#!/usr/bin/env node
// Wall time of one scaled-down paper-mini experiment (2 seeds: SFT, M-DPO and RAFT on both, the other arms on
// seed 1: 9 runs of the `small` model) with --jobs 1 and with --jobs N, alternating, on fresh databases.
// Prints each run's seconds, the medians and their ratio. Usage: node scripts/benchJobs.mjs [repeats=1] [jobs=2]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';

const repeats = Number(process.argv[2] ?? 1);
const jobs = Number(process.argv[3] ?? 2);
const root = new URL('..', import.meta.url).pathname;
const sets = ['iterations=1', 'sft.demos=400', 'sft.steps=30', 'data.trainPrompts=8', 'data.evalPrompts=64', 'eval.passKPrompts=8'];
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const times = { 1: [], [jobs]: [] };
for (let r = 0; r < repeats; r++) {
  for (const j of [1, jobs]) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-jobs-'));
    const t0 = Date.now();
    const p = spawnSync(process.execPath, [join(root, 'daemon/bin/mathagent.cjs'), 'experiment', 'paper-mini', '--seeds', '1,2', '--jobs', String(j),
      '--db', join(dir, 'runs.db'), '--out', join(dir, 'out'), '--backend', 'wasm', ...sets.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    const s = (Date.now() - t0) / 1000;
    rmSync(dir, { recursive: true, force: true });
    if (p.status !== 0) { console.error(p.stderr.slice(-2000)); process.exit(1); }
    times[j].push(s);
    console.log(`repeat ${r + 1}, --jobs ${j}: ${s.toFixed(1)} s`);
  }
}
const m1 = median(times[1]); const mj = median(times[jobs]);
console.log(`${cpus().length} × ${cpus()[0]?.model}: median --jobs 1 ${m1.toFixed(1)} s, --jobs ${jobs} ${mj.toFixed(1)} s, speed-up ${(m1 / mj).toFixed(2)}× (${repeats} repeat(s), same session)`);
