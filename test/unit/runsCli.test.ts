import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunConfig } from '@mathagent/shared';
import { openStore } from '../../daemon/src/store';
import { metricRanges } from '../../daemon/src/cli/runs';
import { deleteRuns } from '../../daemon/src/pipeline/deleteRuns';

test('runs delete: removes rows and the checkpoint folder; refuses active runs and runs others start from, deleting nothing; --force overrides', () => {
  const dir = mkdtempSync(join(tmpdir(), 'runs-delete-'));
  const runsDir = join(dir, 'runs');
  const store = openStore(join(dir, 'db.sqlite'));
  try {
    const sft = store.createRun({ config: RunConfig.parse({ name: 'sft' }) });
    mkdirSync(join(runsDir, sft.id, 'iter-0'), { recursive: true });
    writeFileSync(join(runsDir, sft.id, 'iter-0', 'model.safetensors'), 'x');
    store.addCheckpoint({ runId: sft.id, iteration: 0, path: join(runsDir, sft.id, 'iter-0'), metrics: {}, isBest: true });
    const arm = store.createRun({ config: RunConfig.parse({ name: 'arm', model: { init: join(runsDir, sft.id, 'iter-0') } }) });
    store.updateRun(sft.id, { state: 'finished' });
    store.updateRun(arm.id, { state: 'running' });
    const other = store.createRun({ config: RunConfig.parse({ name: 'other' }) });
    store.updateRun(other.id, { state: 'failed' });

    assert.throws(() => deleteRuns(store, runsDir, [sft.id, 'nope']), (e: unknown) => {
      const m = (e as Error).message;
      return m.includes(`${arm.id} starts from its checkpoints`) && m.includes('no run with id nope');
    });
    assert.throws(() => deleteRuns(store, runsDir, [arm.id]), /is running: stop it first .*--force/);
    assert.ok(store.getRunSummary(sft.id) && existsSync(join(runsDir, sft.id)), 'a refused delete deletes nothing');

    assert.deepEqual(deleteRuns(store, runsDir, [other.id]), [`deleted run ${other.id}`]);
    assert.equal(store.getRunSummary(other.id), null);
    // Both together: the only user of the SFT checkpoints goes too, but the arm is running: --force.
    const lines = deleteRuns(store, runsDir, [arm.id, sft.id], { force: true });
    assert.equal(lines[1], `deleted run ${sft.id} and ${join(runsDir, sft.id)}`);
    assert.equal(store.getRunSummary(sft.id), null);
    assert.equal(store.listCheckpoints(sft.id).length, 0);
    assert.ok(!existsSync(join(runsDir, sft.id)));
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runs show: metric ranges per iteration give steps, first, last, min and max in step order', () => {
  const pts = [
    { iteration: 2, step: 1, name: 'loss', value: 0.5 },
    { iteration: 1, step: 1, name: 'loss', value: 0.69 },
    { iteration: 1, step: 1, name: 'logps/rejected', value: -3 },
    { iteration: 1, step: 2, name: 'loss', value: 0.4 },
    { iteration: 1, step: 2, name: 'logps/rejected', value: -7 },
    { iteration: 1, step: 3, name: 'loss', value: 0.45 },
  ];
  assert.deepEqual(metricRanges(pts), [
    { iteration: 1, name: 'logps/rejected', steps: 2, first: -3, last: -7, min: -7, max: -3 },
    { iteration: 1, name: 'loss', steps: 3, first: 0.69, last: 0.45, min: 0.4, max: 0.69 },
    { iteration: 2, name: 'loss', steps: 1, first: 0.5, last: 0.5, min: 0.5, max: 0.5 },
  ]);
});
