import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mcnemarExact, svgPlot } from '../../daemon/src/pipeline/experimentReport';
import { planFor, ARMS } from '../../daemon/src/pipeline/experiment';

test('exact McNemar p-values match the binomial tail by hand', () => {
  assert.equal(mcnemarExact(0, 0), 1);
  // b=0, c=5: 2 * (1/2)^5 = 0.0625
  assert.ok(Math.abs(mcnemarExact(0, 5) - 0.0625) < 1e-12);
  // b=1, c=9: 2 * (C(10,0)+C(10,1)) / 1024 = 22/1024
  assert.ok(Math.abs(mcnemarExact(1, 9) - 22 / 1024) < 1e-12);
  assert.equal(mcnemarExact(5, 5), 1);
});

test('the plan runs SFT and M-DPO on every seed, the other arms on the first', () => {
  const p = planFor([1, 2, 3]);
  assert.deepEqual(p.armSeeds.mdpo, [1, 2, 3]);
  for (const a of ARMS.filter((x) => x.key !== 'mdpo')) assert.deepEqual(p.armSeeds[a.key], [1]);
  assert.deepEqual(ARMS.map((a) => a.key), ['mdpo', 'mdpo_sftref', 'dpo_unmasked', 'mkto', 'raft']);
});

test('the SVG plot has one polyline and legend entry per series', () => {
  const svg = svgPlot([{ label: 'A', points: [[0, 0.5], [1, 0.6]] }, { label: 'B', points: [[0, 0.5], [1, 0.4]] }], { title: 't' });
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
  assert.match(svg, />A</);
  assert.match(svg, /^<svg /);
});
