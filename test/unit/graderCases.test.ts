/**
 * Agreement with the verdicts of public grader test suites (Hendrycks MATH is_equiv tests, Math-Verify,
 * Inspect's math scorer, NeMo-Skills), transcribed into test/fixtures/grader/cases.jsonl with a `source`
 * field per case. The bar is >= 97% agreement; every disagreement is printed so a change that flips one
 * shows up in the test log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isEquivalent } from '../../daemon/src/reward/grader';

interface Case { source: string; gold: string; pred: string; expected: boolean; note?: string }

const file = join(__dirname, '..', 'fixtures', 'grader', 'cases.jsonl');
const cases: Case[] = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
  const c = JSON.parse(l) as Case;
  if (typeof c.gold !== 'string' || typeof c.pred !== 'string' || typeof c.expected !== 'boolean' || !c.source) {
    throw new Error(`${file}:${i + 1}: a case needs string gold/pred, boolean expected and a source`);
  }
  return c;
});

test('fixture covers each public suite with a few hundred cases in all', () => {
  assert.ok(cases.length >= 300, `only ${cases.length} cases`);
  for (const suite of ['hendrycks-math', 'math-verify', 'inspect-ai', 'nemo-skills']) {
    assert.ok(cases.some((c) => c.source.startsWith(suite)), `no cases from ${suite}`);
  }
  // Both verdicts are represented, so a grader that always says yes (or no) cannot pass.
  assert.ok(cases.filter((c) => c.expected).length > 50 && cases.filter((c) => !c.expected).length > 50);
});

test('agreement with public grader suites is at least 97%', () => {
  const disagreements: string[] = [];
  const bySource = new Map<string, { n: number; ok: number }>();
  for (const c of cases) {
    const got = isEquivalent(c.gold, c.pred);
    const suite = c.source.split('/')[0];
    const s = bySource.get(suite) ?? { n: 0, ok: 0 };
    s.n++;
    if (got === c.expected) s.ok++;
    else disagreements.push(`  [${c.source}] expected ${c.expected}: gold=${JSON.stringify(c.gold).slice(0, 120)} pred=${JSON.stringify(c.pred).slice(0, 120)}${c.note ? ` (${c.note})` : ''}`);
    bySource.set(suite, s);
  }
  const ok = cases.length - disagreements.length;
  const rate = ok / cases.length;
  const summary = [...bySource].map(([k, v]) => `${k} ${v.ok}/${v.n}`).join(', ');
  console.log(`grader agreement: ${ok}/${cases.length} = ${(rate * 100).toFixed(1)}% (${summary})`);
  if (disagreements.length) console.log(`disagreements:\n${disagreements.join('\n')}`);
  assert.ok(rate >= 0.97, `agreement ${(rate * 100).toFixed(1)}% is below 97%`);
});
