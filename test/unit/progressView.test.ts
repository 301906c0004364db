/**
 * The CLI's progress view without a TTY (CI, pipes, an experiment's per-run logs): a line at every tenth of a
 * stage, never two for the same tenth, and one line when the stage ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressView } from '../../daemon/src/cli/progress';
import type { DaemonEvent } from '@mathagent/shared';

function sink() {
  const lines: string[] = [];
  const out = { isTTY: false, write: (s: string) => { lines.push(...s.split('\n').filter(Boolean)); return true; } } as unknown as NodeJS.WriteStream;
  return { lines, out };
}

const status = (kind: 'begin' | 'report' | 'end', done: number, total: number) => ({
  type: 'run/status', runId: 'r', state: 'running', stage: 'eval', iteration: 1, time: new Date().toISOString(),
  progress: { kind, done, total, message: 'greedy' },
}) as unknown as DaemonEvent;

test('ProgressView without a TTY prints one line per tenth of a stage and one at its end', () => {
  const { lines, out } = sink();
  const view = new ProgressView(out);
  view.handle(status('begin', 0, 1000));
  for (let done = 1; done < 1000; done += 7) view.handle(status('report', done, 1000));
  view.handle(status('report', 1000, 1000));
  view.handle(status('end', 1000, 1000));
  const partial = lines.filter((l) => l.startsWith('…'));
  assert.equal(partial.length, 9, lines.join('\n'));
  assert.match(partial[0]!, /eval it1\s+10[0-9]\/1000 greedy/);
  assert.equal(lines.filter((l) => l.startsWith('✓')).length, 1);
  assert.match(lines.at(-1)!, /✓ eval it1\s+1000\/1000 greedy/);
});

test('ProgressView without a TTY: a stage that jumps straight past several tenths prints one line, and quiet prints none', () => {
  const { lines, out } = sink();
  const view = new ProgressView(out);
  view.handle(status('begin', 0, 10));
  view.handle(status('report', 7, 10));
  view.handle(status('report', 8, 10));
  assert.deepEqual(lines.map((l) => l.replace(/\s+/g, ' ').replace(/\(\d+s\)/, '')), ['… eval it1 7/10 greedy ', '… eval it1 8/10 greedy ']);
  const q = sink();
  const quiet = new ProgressView(q.out, true);
  quiet.handle(status('begin', 0, 10));
  quiet.handle(status('report', 5, 10));
  quiet.handle(status('end', 10, 10));
  assert.deepEqual(q.lines, []);
});
