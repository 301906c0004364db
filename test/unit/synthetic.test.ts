import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate } from 'mathjs';
import {
  FAMILIES, FAMILY_FLAW, generateDemos, generateProblems, heldOutPart, roleRange, sameStylePart, SyntheticError,
  type Family, type Level, type Role,
} from '../../daemon/src/data/synthetic';
import { mulberry32, hash32 } from '../../daemon/src/data/rng';
import { getTemplate } from '../../daemon/src/env/templates';
import type { Demo } from '../../daemon/src/data/types';

const LEVELS: Level[] = [1, 2, 3];

/** Replace every number by # so two questions from the same sentence frame look alike. */
const skeleton = (q: string) => q.replace(/\d+/g, '#');

test('rng: mulberry32 known values, hash32 separates streams', () => {
  const r = mulberry32(1);
  const first = [r(), r(), r()];
  // Reference output of the canonical mulberry32 (Tommy Ettinger / bryc's JS) for seed 1.
  assert.deepEqual(first, [0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
  assert.notEqual(hash32('a', 1), hash32('a', 2));
  assert.notEqual(hash32('a1'), hash32('a', 1));
  assert.equal(hash32('x', 5), hash32('x', 5));
});

test('problems: deterministic by seed, a longer list extends a shorter one, ids and meta', () => {
  const a = generateProblems({ seed: 7, count: 40, split: 'train', level: 2 });
  assert.deepEqual(generateProblems({ seed: 7, count: 40, split: 'train', level: 2 }), a);
  assert.deepEqual(generateProblems({ seed: 7, count: 15, split: 'train', level: 2 }), a.slice(0, 15));
  const b = generateProblems({ seed: 8, count: 40, split: 'train', level: 2 });
  assert.ok(a.filter((p, i) => p.question === b[i]!.question).length < 2);
  assert.equal(a[3]!.id, 'synthetic/train/L2/s7-3');
  assert.equal(a[0]!.source, 'synthetic');
  // Families come in balanced blocks: every 6 consecutive problems cover all 6 families.
  for (let i = 0; i + 6 <= a.length; i += 6) assert.equal(new Set(a.slice(i, i + 6).map((p) => p.meta!.family)).size, 6);
  for (const p of a) {
    assert.match(p.answer, /^[1-9]\d*$/);
    assert.equal(p.meta!.level, 2);
    assert.equal(p.meta!.toolCalls, 3);
    // Too large to compute mentally: some operand has at least 3 digits.
    assert.ok(/\d{3}/.test(p.question), p.question);
  }
  assert.equal(generateProblems({ seed: 1, count: 5, split: 'eval', families: ['units'] }).filter((p) => p.meta!.family === 'units').length, 5);
});

test('bad options give errors that say what to change', () => {
  assert.throws(() => generateProblems({ seed: 1, count: 5, split: 'test' as 'eval' }), /unknown split "test"; valid splits: train, dev, eval/);
  assert.throws(() => generateProblems({ seed: 1, count: 5, split: 'eval', level: 4 as Level }), /level must be 0, 1, 2 or 3/);
  assert.throws(() => generateProblems({ seed: 1.5, count: 5, split: 'eval' }), /seed must be an integer/);
  assert.throws(() => generateProblems({ seed: 1, count: -1, split: 'eval' }), /count must be a non-negative integer/);
  assert.throws(() => generateProblems({ seed: 1, count: 1, split: 'eval', families: ['cooking' as Family] }), (e: Error) =>
    e instanceof SyntheticError && /unknown family "cooking"; valid families: shopping, production/.test(e.message));
  assert.throws(() => generateDemos({ seed: 1, count: 10, flawedShare: 1.2 }), /flawedShare must be in \[0, 1\]/);
  assert.throws(() => generateDemos({ seed: 1, count: 10, flawedShare: 0.1, split: 'eval' as 'train' }), /train split only/);
  assert.throws(() => generateDemos({ seed: 1, count: 600, flawedShare: 0.5, flawFamilies: ['discount'] }),
    /asks for 300 flawed demos but the flaw families \(discount\) have only 100 of 600; lower flawedShare to at most 0\.167/);
  assert.throws(() => generateDemos({ seed: 1, count: 60, flawedShare: 0.1, families: ['units'], flawFamilies: ['discount'] }), /not among the families in use/);
});

test('splits never share a question; held-out frames and number ranges differ from train (3000 per split and level)', () => {
  for (const level of LEVELS) {
    const train = generateProblems({ seed: 1, count: 3000, split: 'train', level });
    const dev = generateProblems({ seed: 1, count: 3000, split: 'dev', level });
    const evalP = generateProblems({ seed: 1, count: 3000, split: 'eval', level });
    const evalOtherSeed = generateProblems({ seed: 2, count: 1000, split: 'eval', level });
    const qs = (ps: typeof train) => new Set(ps.map((p) => p.question));
    for (const ps of [train, dev, evalP]) assert.equal(qs(ps).size, ps.length, 'no repeats within a split');
    const [tq, dq, eq] = [qs(train), qs(dev), qs(evalP)];
    assert.ok(![...dq].some((q) => tq.has(q) || eq.has(q)), `L${level}: dev shares a question`);
    assert.ok(![...eq].some((q) => tq.has(q)), `L${level}: eval shares a question with train`);
    // dev and eval are disjoint whatever the seeds: membership is a function of the text.
    assert.ok(!generateProblems({ seed: 2, count: 1000, split: 'dev', level }).some((p) => eq.has(p.question)));
    for (const p of evalOtherSeed) assert.equal(heldOutPart(p.question), 'eval');
    // Other sentence frames: no held-out question reduces to a train skeleton.
    const trainSkeletons = new Set(train.map((p) => skeleton(p.question)));
    const heldSkeletonHits = [...dev, ...evalP].filter((p) => trainSkeletons.has(skeleton(p.question)));
    assert.deepEqual(heldSkeletonHits.map((p) => p.question), []);
    // Other number ranges: every drawn operand lies in its split's range, and the ranges do not meet.
    for (const [ps, style] of [[train, 'train'], [dev, 'heldout'], [evalP, 'heldout']] as const) {
      for (const p of ps) {
        for (const pair of String(p.meta!.numbers).split(' ')) {
          const [role, v] = pair.split('=') as [Role, string];
          const r = roleRange(role, level, style);
          const n = Number(v);
          assert.ok(n >= r.lo && n <= r.hi && (n - r.lo) % r.step === 0, `L${level} ${style} ${pair} outside [${r.lo}, ${r.hi}]`);
        }
      }
    }
    for (const role of ['big', 'mult', 'small', 'price', 'pct', 'min'] as Role[]) {
      const t = roleRange(role, level, 'train'), h = roleRange(role, level, 'heldout');
      assert.ok(t.hi < h.lo, `${role} ranges overlap at L${level}`);
    }
    // Every family appears in every split.
    for (const ps of [train, dev, evalP]) assert.equal(new Set(ps.map((p) => p.meta!.family)).size, FAMILIES.length);
  }
});

test('heldOut "same": splits share frames and ranges but never a question, demos included; bad mode is named', () => {
  const level = 1;
  const gen = (split: 'train' | 'dev' | 'eval', seed = 1, count = 2000) => generateProblems({ seed, count, split, level, heldOut: 'same' });
  const [train, dev, evalP] = [gen('train'), gen('dev'), gen('eval')];
  const demos = generateDemos({ seed: 5, count: 2000, flawedShare: 0.2, level, heldOut: 'same' });
  const qs = (ps: Array<{ question: string }>) => new Set(ps.map((p) => p.question));
  const [tq, dq, eq, mq] = [qs(train), qs(dev), qs(evalP), qs(demos.map((d) => d.problem))];
  for (const [a, b, what] of [[tq, eq, 'train/eval'], [tq, dq, 'train/dev'], [dq, eq, 'dev/eval'], [mq, eq, 'demos/eval'], [mq, dq, 'demos/dev']] as const) {
    assert.ok(![...a].some((q) => b.has(q)), `${what} share a question`);
  }
  // Membership is a function of the text: another seed's eval questions are eval questions too.
  for (const p of gen('eval', 7, 300)) assert.equal(sameStylePart(p.question), 'eval');
  // Same distribution: held-out questions use the train frames and the train number ranges.
  const trainSkeletons = new Set([...train, ...demos.map((d) => d.problem)].map((p) => skeleton(p.question)));
  assert.ok(evalP.filter((p) => trainSkeletons.has(skeleton(p.question))).length > 0.95 * evalP.length);
  for (const p of [...dev, ...evalP]) {
    for (const pair of String(p.meta!.numbers).split(' ')) {
      const [role, v] = pair.split('=') as [Role, string];
      const r = roleRange(role, level, 'train');
      assert.ok(Number(v) >= r.lo && Number(v) <= r.hi, `${pair} outside the train range`);
    }
  }
  // The default stays 'shifted' (earlier runs keep their problems).
  assert.deepEqual(generateProblems({ seed: 1, count: 20, split: 'eval', level }), generateProblems({ seed: 1, count: 20, split: 'eval', level, heldOut: 'shifted' }));
  assert.throws(() => generateProblems({ seed: 1, count: 1, split: 'eval', heldOut: 'mixed' as 'same' }), /heldOut must be shifted or same, got "mixed"/);
});

test('role ranges by hand: L1 big is 100..639 for train and 640..999 held out; percentages step by 5', () => {
  assert.deepEqual(roleRange('big', 1, 'train'), { lo: 100, hi: 639, step: 1 });
  assert.deepEqual(roleRange('big', 1, 'heldout'), { lo: 640, hi: 999, step: 1 });
  assert.deepEqual(roleRange('pct', 2, 'train'), { lo: 5, hi: 55, step: 5 });
  assert.deepEqual(roleRange('pct', 2, 'heldout'), { lo: 60, hi: 95, step: 5 });
  assert.deepEqual(roleRange('price', 3, 'heldout').step, 20);
});

/** Run a demo's code through mathjs with one scope across steps (as the stateful sandbox does). */
function runDemo(demo: Demo): { outputs: number[]; boxed: string } {
  const scope: Record<string, unknown> = {};
  const outputs: number[] = [];
  for (const s of demo.steps.slice(0, -1)) {
    assert.notEqual(s.code, null, 'only the last step lacks code');
    const v = evaluate(s.code!, scope) as unknown;
    assert.equal(typeof v, 'number', `${s.code} gave ${String(v)}`);
    outputs.push(v as number);
  }
  const last = demo.steps.at(-1)!;
  assert.equal(last.code, null);
  const m = /^Answer: \\boxed\{(-?\d+)\}$/.exec(last.text);
  assert.ok(m, `final step: ${last.text}`);
  return { outputs, boxed: m[1]! };
}

test('demos: code evaluates in mathjs to what the text claims; clean demos box the reference, flawed ones do not', () => {
  for (const level of LEVELS) {
    const demos = generateDemos({ seed: 3, count: 900, flawedShare: 0.3, level });
    for (const d of demos) {
      const { outputs, boxed } = runDemo(d);
      for (const v of outputs) assert.ok(Number.isSafeInteger(v), `${d.problem.id}: ${v} is not an integer`);
      assert.equal(boxed, String(outputs.at(-1)), `${d.problem.id}: boxed value is the last tool output`);
      if (d.flawed) {
        assert.notEqual(boxed, d.problem.answer, d.problem.id);
        assert.equal(d.problem.meta!.flaw, FAMILY_FLAW[d.problem.meta!.family as Family]);
      } else {
        assert.equal(boxed, d.problem.answer, d.problem.id);
        assert.equal(outputs.length, level === 1 ? 2 : 3, 'tool calls per clean demo');
        for (const v of outputs) assert.ok(v > 0);
        assert.equal(d.problem.meta!.flaw, undefined);
      }
      // Multi-turn state: each variable read was assigned by an earlier call, and the last call reads one.
      const defined = new Set<string>();
      const calls = d.steps.slice(0, -1);
      calls.forEach((s, i) => {
        const reads = s.code!.replace(/^\s*[a-z]\s*=/, '').match(/\b[a-z]\b/g) ?? [];
        for (const v of reads) assert.ok(defined.has(v), `${d.problem.id}: "${s.code}" reads ${v} before it is assigned`);
        if (i > 0 && i === calls.length - 1) assert.ok(reads.length > 0, `${d.problem.id}: last call "${s.code}" uses no earlier result`);
        const def = /^\s*([a-z])\s*=/.exec(s.code!);
        if (def) defined.add(def[1]!);
      });
      // A single call happens only in L1 flaws that box the first result (production, sharing).
      if (outputs.length < 2) assert.ok(level === 1 && d.flawed && ['production', 'sharing'].includes(String(d.problem.meta!.family)), d.problem.id);
    }
  }
});

test('demos: a hand-checked example per flaw kind', () => {
  const demos = generateDemos({ seed: 11, count: 300, flawedShare: 1, level: 2 });
  const byFamily = new Map<string, Demo>();
  for (const d of demos) if (!byFamily.has(String(d.problem.meta!.family))) byFamily.set(String(d.problem.meta!.family), d);
  const shop = byFamily.get('shopping')!;
  assert.equal(shop.steps[2]!.code, 'a - b');
  const disc = byFamily.get('discount')!;
  assert.equal(disc.steps[2]!.code, 'a + b');
  const units = byFamily.get('units')!;
  assert.match(units.steps[0]!.code!, /^a = \d+ \* 100$/);
  const prod = byFamily.get('production')!;
  assert.equal(prod.steps.length, 3); // two calls (the machines step is skipped) + answer
  assert.match(prod.steps[1]!.code!, /^a - \d+$/);
  const share = byFamily.get('sharing')!;
  assert.equal(share.steps.length, 3); // boxes b before subtracting
  assert.match(share.steps[1]!.code!, /^b = a \/ \d+$/);
  const bud = byFamily.get('budget')!;
  // One price in the code differs from the question's (a miscopied digit).
  const codePrices = bud.steps.slice(0, 2).map((s) => s.code!.split(' * ')[1]!);
  assert.equal(codePrices.filter((p) => !bud.problem.question.includes(` at ${p} each`)).length, 1);

  // Hand-computed: a clean L1 discount demo.
  const clean = generateDemos({ seed: 5, count: 60, flawedShare: 0, level: 1, families: ['discount'] })[0]!;
  const m = /costs (\d+)\. It is (\d+)% off|price of a \w+ is (\d+), with a (\d+)%/.exec(clean.problem.question)!;
  const price = Number(m[1] ?? m[3]), pct = Number(m[2] ?? m[4]);
  assert.equal(clean.problem.answer, String(price - (price * pct) / 100));
  assert.deepEqual(clean.steps.map((s) => s.code), [`a = ${price} * ${pct} / 100`, `${price} - a`, null]);
});

test('flawed share: exact count, concentration in chosen families, deterministic choice', () => {
  const demos = generateDemos({ seed: 2, count: 1200, flawedShare: 0.25 });
  assert.equal(demos.filter((d) => d.flawed).length, 300);
  // Spread over all families: each family's flawed rate is near 25%.
  for (const f of FAMILIES) {
    const fam = demos.filter((d) => d.problem.meta!.family === f);
    const rate = fam.filter((d) => d.flawed).length / fam.length;
    assert.ok(Math.abs(rate - 0.25) < 0.08, `${f}: ${rate}`);
  }
  // Concentrated: 10% of 1200 flawed, all in discount -> 120 of its 200 demos (60%).
  const conc = generateDemos({ seed: 2, count: 1200, flawedShare: 0.1, flawFamilies: ['discount'] });
  const disc = conc.filter((d) => d.problem.meta!.family === 'discount');
  assert.equal(disc.length, 200);
  assert.equal(disc.filter((d) => d.flawed).length, 120);
  assert.equal(conc.filter((d) => d.flawed && d.problem.meta!.family !== 'discount').length, 0);
  assert.deepEqual(generateDemos({ seed: 2, count: 1200, flawedShare: 0.1, flawFamilies: ['discount'] }), conc);
  assert.equal(generateDemos({ seed: 2, count: 50, flawedShare: 0 }).filter((d) => d.flawed).length, 0);
  assert.deepEqual(generateDemos({ seed: 2, count: 0, flawedShare: 0.5 }), []);
  // Demo problems are a stream of their own: not the online training prompts of the same seed.
  const prompts = new Set(generateProblems({ seed: 2, count: 1200, split: 'train' }).map((p) => p.question));
  assert.ok(demos.filter((d) => prompts.has(d.problem.question)).length < 12);
});

test('trajectories stay short for a byte-level model (rendered in the default template)', () => {
  const t = getTemplate('mathagent');
  const specials = t.specialTokens;
  const tokens = (text: string) => specials.reduce((n, s) => n - (text.split(s).length - 1) * (s.length - 1), text.length);
  for (const level of LEVELS) {
    let max = 0;
    let sum = 0;
    const demos = generateDemos({ seed: 4, count: 600, flawedShare: 0, level });
    for (const d of demos) {
      const { outputs } = runDemo(d);
      let text = t.renderPrompt(d.problem.question);
      d.steps.forEach((s, i) => {
        text += s.code === null ? t.renderFinal(s.text) : t.renderToolCall(s.text, s.code) + t.renderObservation(String(outputs[i]), false);
      });
      const n = tokens(text);
      max = Math.max(max, n);
      sum += n;
    }
    assert.ok(max < 400, `L${level}: longest demo is ${max} tokens`);
    assert.ok(sum / demos.length < 330, `L${level}: mean ${sum / demos.length}`);
  }
});

test('level 0: level-1 problems asked as yes/no, answers 1 or 0 in balance, flawed demos answer the other way', () => {
  const demos = generateDemos({ seed: 3, count: 600, flawedShare: 0.3, level: 0 });
  const yes = demos.filter((d) => d.problem.answer === '1').length;
  assert.ok(yes > 240 && yes < 360, `yes answers ${yes} of 600`);
  for (const d of demos) {
    assert.match(d.problem.question, /Is it (more|less) than (\d+)\? Answer 1 for yes or 0 for no\.$/);
    assert.ok(d.problem.answer === '1' || d.problem.answer === '0');
    // The solution's code really computes its answer: run the cells through mathjs with one scope.
    const scope = new Map<string, unknown>();
    let last: unknown;
    for (const s of d.steps.slice(0, -1)) last = evaluate(s.code!, scope);
    assert.equal(typeof last, 'boolean', `${d.problem.id}: the last call compares`);
    const boxed = d.steps.at(-1)!.text.match(/\\boxed\{(\d)\}/)![1];
    assert.equal(boxed, last ? '1' : '0');
    assert.equal(boxed === d.problem.answer, !d.flawed, `${d.problem.id}: flawed ${d.flawed} but boxed ${boxed} vs answer ${d.problem.answer}`);
  }
  const evalP = generateProblems({ seed: 3, count: 200, split: 'eval', level: 0 });
  assert.ok(evalP.every((p) => p.meta!.level === 0 && /^[01]$/.test(p.answer)));
});
