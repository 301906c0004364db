/**
 * Grader throughput on a realistic mix of (reference, model output) pairs: GSM8K-style numbers and
 * sentences, MATH-style LaTeX (fractions, radicals, tuples, intervals, percentages, expressions with
 * variables, equations) and long solutions ending in a box, about half of them wrong. Each repeat grades
 * a freshly generated set (so mathjs caches do not flatter later repeats); the median repeat is reported.
 */
import { gradeAnswer } from './grader';
import { mulberry32 as rng } from '../data/rng';

export interface GraderBenchResult { answersPerSec: number; n: number }


const FILLER = 'We first compute the intermediate quantity, then check it with the tool. ';

/** One (solution text, reference, whether it is correct) triple. */
function makePair(r: () => number): [string, string, boolean] {
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const wrong = r() < 0.5;
  const kind = int(0, 9);
  switch (kind) {
    case 0: { // GSM8K: reference solution with ####, model sentence
      const v = int(10, 99999);
      const p = wrong ? v + int(1, 50) : v;
      return [`${FILLER}So she pays ${p.toLocaleString('en-US')} dollars in total.`, `${FILLER}\n#### ${v}`, !wrong];
    }
    case 1: { // GSM8K: boxed decimal money
      const v = int(100, 99999) / 100;
      const p = wrong ? v + 0.01 * int(1, 9) : v;
      return [`The total cost is $\\boxed{\\$${p.toFixed(2)}}$.`, String(v), !wrong];
    }
    case 2: { // fraction vs decimal
      const a = int(1, 30), b = int(2, 40);
      const p = wrong ? `\\frac{${a + 1}}{${b}}` : (a / b).toFixed(6);
      return [`Therefore the probability is $\\boxed{${p}}$.`, `\\frac{${a}}{${b}}`, !wrong];
    }
    case 3: { // radicals
      const a = int(2, 9), b = [2, 3, 5, 6, 7][int(0, 4)];
      const p = wrong ? `${a}\\sqrt{${b + 1}}` : `\\sqrt{${a * a * b}}`;
      return [`${FILLER}${FILLER}The distance is $\\boxed{${p}}$.`, `${a}\\sqrt{${b}}`, !wrong];
    }
    case 4: { // ordered pair / interval
      const x = int(-9, 9), y = int(-9, 9);
      const p = wrong ? `(${y}, ${x + 1})` : `\\left( ${x}, ${y} \\right)`;
      return [`Thus $(a,b) = \\boxed{${p}}$.`, `(${x},${y})`, !wrong];
    }
    case 5: { // interval with infinity
      const x = int(-9, 9);
      const p = wrong ? `[${x}, \\infty)` : `(${x}, \\infty)`;
      return [`The solution set is $\\boxed{${p}}$.`, `(${x},\\infty)`, !wrong];
    }
    case 6: { // polynomial identity
      const a = int(1, 9);
      const p = wrong ? `x^2 + ${2 * a}x + ${a * a + 1}` : `x^2 + ${2 * a}x + ${a * a}`;
      return [`Expanding, we get $\\boxed{${p}}$.`, `(x+${a})^2`, !wrong];
    }
    case 7: { // percent
      const v = int(1, 99);
      const p = wrong ? `${v + 1}\\%` : `${v}\\%`;
      return [`The answer is ${p}.`, (v / 100).toString(), !wrong];
    }
    case 8: { // equation of a line
      const m = int(1, 9), c = int(1, 9);
      const p = wrong ? `y = ${m}x - ${c}` : `y = ${m}x + ${c}`;
      return [`Hence the line is $\\boxed{${p}}$.`, `${m}x - y + ${c} = 0`, !wrong];
    }
    default: { // degrees and text units
      const v = int(10, 170);
      const p = wrong ? `${v + 5}^\\circ` : `${v}^\\circ`;
      return [`${FILLER}So the angle is $\\boxed{${p}}$.`, `${v}`, !wrong];
    }
  }
}

/** The benchmark's pairs, for tests: [solution text, reference, expected verdict]. */
export function benchPairs(n: number, seed = 1): Array<[string, string, boolean]> {
  const r = rng(seed);
  return Array.from({ length: n }, () => makePair(r));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Measure grader throughput (answers graded per second, median of several repeats). */
export async function benchGrader(opts: { n?: number; repeats?: number } = {}): Promise<GraderBenchResult> {
  const n = Math.max(1, Math.floor(opts.n ?? 2000));
  const repeats = Math.max(1, Math.floor(opts.repeats ?? 5));
  // Warm-up: module initialisation and JIT, not measured.
  const warm = rng(1);
  for (let k = 0; k < 200; k++) { const [s, ref] = makePair(warm); gradeAnswer(s, ref); }
  const times: number[] = [];
  let sink = 0;
  for (let rep = 0; rep < repeats; rep++) {
    const r = rng(1000 + rep);
    const pairs = Array.from({ length: n }, () => makePair(r));
    const t0 = performance.now();
    for (const [s, ref] of pairs) if (gradeAnswer(s, ref).correct) sink++;
    times.push(performance.now() - t0);
    await new Promise((res) => setImmediate(res));
  }
  if (sink < 0) throw new Error('unreachable'); // keeps the graded results alive
  const ms = Math.max(median(times), 1e-6);
  return { answersPerSec: Math.round((n / ms) * 1000), n };
}
