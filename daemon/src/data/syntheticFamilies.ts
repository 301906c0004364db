/**
 * The problem families of the synthetic tool-arithmetic task. Each family builds one problem instance from a
 * random stream: the question text, the correct tool-call solution (mathjs code, one line per turn, later turns
 * reusing variables from earlier ones) with every value computed exactly in JS, and the family's typical flaw.
 *
 * Why these choices:
 * - Operands are 3–5 digits so a ~1M-parameter model cannot do the arithmetic itself and must call the tool.
 * - Every value is a positive integer below 1e9 (divisions are constructed to be exact; percentages use prices
 *   that are multiples of 20 and rates that are multiples of 5), so tool outputs are plain digits.
 * - Held-out questions (dev/eval) use other sentence frames than train and operands from other ranges (the upper
 *   40% of each role's range; train uses the lower 60%). The numbers appear in the same order in every frame of
 *   a family, so the held-out split tests new wording and new numbers, not a new reading order.
 * - Each family has one systematic flaw (a wrong operation, a skipped step, a wrong constant, ...), so flawed
 *   demonstrations concentrated in a family teach a consistent, learnable mistake.
 */
import { pick, randInt, type Rng } from './rng';

/** 0: a level-1 problem turned into a yes/no question (smoke tests: an untrained model guesses right half the time). */
export type Level = 0 | 1 | 2 | 3;
/** The levels whose operand ranges and solutions are built directly (level 0 reuses level 1). */
type BaseLevel = 1 | 2 | 3;
export type Style = 'train' | 'heldout';

export const FAMILIES = ['shopping', 'production', 'sharing', 'discount', 'units', 'budget'] as const;
export type Family = (typeof FAMILIES)[number];

export const FLAW_KINDS = ['wrong_op', 'skip_step', 'early_box', 'wrong_factor', 'digit_copy'] as const;
export type FlawKind = (typeof FLAW_KINDS)[number];

/** The flaw each family's flawed demonstrations contain. */
export const FAMILY_FLAW: Readonly<Record<Family, FlawKind>> = {
  shopping: 'wrong_op', // adds the second cost with `-`
  production: 'skip_step', // L1: forgets to remove the broken parts; L2+: forgets the number of machines
  sharing: 'early_box', // boxes each group's share before subtracting what it gives away
  discount: 'wrong_op', // adds the discount instead of subtracting it
  units: 'wrong_factor', // converts hours to minutes with 100 instead of 60
  budget: 'digit_copy', // copies one digit of a price wrong
};

export interface SolutionStep {
  text: string;
  code: string;
  /** The exact value the code's last line evaluates to (what the tool prints). */
  value: number;
}

export interface Instance {
  question: string;
  /** Index of the sentence frame within the style's list (for meta and tests). */
  template: number;
  /** The sampled operands as `role=value` pairs, e.g. `big=345 mult=67` (for meta and range tests). */
  numbers: string;
  steps: SolutionStep[];
  /** The same solution with the family's flaw; its last value differs from the answer. */
  flawedSteps: SolutionStep[];
}

/* ---------- number ranges ---------- */

export type Role = 'big' | 'mult' | 'small' | 'price' | 'pct' | 'min';
interface RoleRange { lo: number; hi: number; step: number }

const RANGES: Readonly<Record<Role, Readonly<Record<BaseLevel, RoleRange>>>> = {
  big: { 1: { lo: 100, hi: 999, step: 1 }, 2: { lo: 1000, hi: 9999, step: 1 }, 3: { lo: 10000, hi: 99999, step: 1 } },
  mult: { 1: { lo: 12, hi: 99, step: 1 }, 2: { lo: 12, hi: 99, step: 1 }, 3: { lo: 100, hi: 999, step: 1 } },
  small: { 1: { lo: 12, hi: 99, step: 1 }, 2: { lo: 12, hi: 99, step: 1 }, 3: { lo: 12, hi: 99, step: 1 } },
  price: { 1: { lo: 1000, hi: 9980, step: 20 }, 2: { lo: 1000, hi: 9980, step: 20 }, 3: { lo: 10000, hi: 99980, step: 20 } },
  pct: { 1: { lo: 5, hi: 95, step: 5 }, 2: { lo: 5, hi: 95, step: 5 }, 3: { lo: 5, hi: 95, step: 5 } },
  min: { 1: { lo: 1, hi: 59, step: 1 }, 2: { lo: 1, hi: 59, step: 1 }, 3: { lo: 1, hi: 59, step: 1 } },
};

/** Share of each role's values (the lower part) that belongs to train; held-out splits get the rest. */
const TRAIN_SHARE = 0.6;

/** The inclusive range and step a role's operands come from for a level and style. */
export function roleRange(role: Role, level: Level, style: Style): RoleRange {
  const r = RANGES[role][level === 0 ? 1 : level];
  const count = Math.floor((r.hi - r.lo) / r.step) + 1;
  const cut = Math.floor(count * TRAIN_SHARE);
  return style === 'train'
    ? { lo: r.lo, hi: r.lo + (cut - 1) * r.step, step: r.step }
    : { lo: r.lo + cut * r.step, hi: r.hi, step: r.step };
}

/* ---------- shared vocabulary ---------- */

const NAMES = ['Ann', 'Ben', 'Mia', 'Tom', 'Eva', 'Sam', 'Leo', 'Zoe'] as const;
const GOODS = ['pens', 'cups', 'books', 'lamps', 'chairs', 'mugs', 'hats', 'bags', 'toys', 'plates'] as const;
const PARTS = ['bolts', 'parts', 'chips', 'cans', 'bottles', 'nails'] as const;
const GROUPS = ['teams', 'classes', 'shops', 'families', 'clubs', 'groups'] as const;

/** The values drawn for one instance, with their roles, recorded for meta.numbers. */
class Draw {
  readonly log: string[] = [];
  constructor(readonly rng: Rng, readonly level: BaseLevel, readonly style: Style) {}
  num(role: Role): number {
    const r = roleRange(role, this.level, this.style);
    const v = r.lo + r.step * randInt(this.rng, 0, Math.floor((r.hi - r.lo) / r.step));
    this.log.push(`${role}=${v}`);
    return v;
  }
  /** A value of `role` that is a multiple of `m`, or null when the split's range has none. */
  numMultipleOf(role: Role, m: number): number | null {
    const r = roleRange(role, this.level, this.style);
    if (r.step !== 1) throw new Error('numMultipleOf needs a step-1 role');
    const lo = Math.ceil(r.lo / m);
    const hi = Math.floor(r.hi / m);
    if (hi < lo) return null;
    const v = m * randInt(this.rng, lo, hi);
    this.log.push(`${role}=${v}`);
    return v;
  }
  name(): string { return pick(this.rng, NAMES); }
  /** Two different nouns from a list. */
  two<T>(list: readonly T[]): [T, T] {
    const a = pick(this.rng, list);
    let b = pick(this.rng, list);
    while (b === a) b = pick(this.rng, list);
    return [a, b];
  }
}

type Frame<V> = (v: V) => string;
interface Frames<V> { train: Array<Frame<V>>; heldout: Array<Frame<V>> }

function frame<V>(d: Draw, frames: Frames<V>, v: V): { question: string; template: number } {
  const list = frames[d.style];
  const template = randInt(d.rng, 0, list.length - 1);
  return { question: list[template]!(v), template };
}

const step = (text: string, code: string, value: number): SolutionStep => ({ text, code, value });

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Change one digit of n (never the leading digit to 0), so a copied operand is wrong. */
function miscopy(rng: Rng, n: number): number {
  const s = String(n);
  const pos = randInt(rng, 0, s.length - 1);
  const old = Number(s[pos]);
  let digit = randInt(rng, pos === 0 ? 1 : 0, 9);
  while (digit === old) digit = randInt(rng, pos === 0 ? 1 : 0, 9);
  return Number(s.slice(0, pos) + String(digit) + s.slice(pos + 1));
}

/* ---------- families ---------- */

type Builder = (d: Draw) => Omit<Instance, 'numbers'> | null;

const shopping: Builder = (d) => {
  if (d.level === 1) {
    const n = d.num('mult'), p = d.num('big'), f = d.num('big');
    const it = pick(d.rng, GOODS), nm = d.name();
    const q = frame(d, {
      train: [
        () => `A shop sells ${n} ${it} at ${p} each plus a ${f} fee. What is the total cost?`,
        () => `${nm} buys ${n} ${it} at ${p} each and pays a ${f} fee. What is the total cost?`,
      ],
      heldout: [
        () => `An order has ${n} ${it} at ${p} each and a ${f} fee. Find the total price.`,
        () => `${nm} pays for ${n} ${it} at ${p} each and ${f} for shipping. How much in all?`,
      ],
    }, null);
    const a = n * p;
    const s1 = step('Cost of items:', `a = ${n} * ${p}`, a);
    return { ...q, steps: [s1, step('Add the fee:', `a + ${f}`, a + f)], flawedSteps: [s1, step('Add the fee:', `a - ${f}`, a - f)] };
  }
  const n1 = d.num('mult'), p1 = d.num('big'), n2 = d.num('mult'), p2 = d.num('big');
  const [i1, i2] = d.two(GOODS), nm = d.name();
  const q = frame(d, {
    train: [
      () => `A shop sells ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. What is the total cost?`,
      () => `${nm} buys ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. What is the total cost?`,
    ],
    heldout: [
      () => `An order has ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. Find the total price.`,
      () => `${nm} pays for ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. How much in all?`,
    ],
  }, null);
  const a = n1 * p1, b = n2 * p2;
  const s1 = step('First items:', `a = ${n1} * ${p1}`, a);
  const s2 = step('Second items:', `b = ${n2} * ${p2}`, b);
  return { ...q, steps: [s1, s2, step('Total:', 'a + b', a + b)], flawedSteps: [s1, s2, step('Total:', 'a - b', a - b)] };
};

const production: Builder = (d) => {
  const pt = pick(d.rng, PARTS);
  if (d.level === 1) {
    const r = d.num('big'), h = d.num('mult'), x = d.num('big');
    const q = frame(d, {
      train: [
        () => `A machine makes ${r} ${pt} per hour for ${h} hours. Then ${x} are broken. How many good ${pt} are left?`,
        () => `A factory makes ${r} ${pt} an hour for ${h} hours, and ${x} fail. How many good ${pt} are left?`,
      ],
      heldout: [
        () => `A press turns out ${r} ${pt} per hour for ${h} hours; ${x} of them are bad. How many good ${pt} remain?`,
        () => `A plant builds ${r} ${pt} each hour for ${h} hours and rejects ${x}. Find the number of good ${pt}.`,
      ],
    }, null);
    const a = r * h;
    const s1 = step('Made:', `a = ${r} * ${h}`, a);
    return { ...q, steps: [s1, step('Minus broken:', `a - ${x}`, a - x)], flawedSteps: [s1] };
  }
  const r = d.num('big'), h = d.num('small'), k = d.num('small'), x = d.num('big');
  const q = frame(d, {
    train: [
      () => `A machine makes ${r} ${pt} per hour for ${h} hours. There are ${k} such machines and ${x} ${pt} are broken. How many good ${pt}?`,
      () => `A factory line makes ${r} ${pt} an hour for ${h} hours. It has ${k} lines, and ${x} ${pt} fail. How many good ${pt}?`,
    ],
    heldout: [
      () => `A press turns out ${r} ${pt} per hour for ${h} hours. ${k} presses run and ${x} ${pt} are bad. How many good ${pt} remain?`,
      () => `One robot builds ${r} ${pt} each hour for ${h} hours. With ${k} robots, ${x} ${pt} are rejected. Find the good ${pt}.`,
    ],
  }, null);
  const a = r * h, b = a * k;
  const s1 = step('One machine:', `a = ${r} * ${h}`, a);
  return {
    ...q,
    steps: [s1, step('All machines:', `b = a * ${k}`, b), step('Minus broken:', `b - ${x}`, b - x)],
    flawedSteps: [s1, step('Minus broken:', `a - ${x}`, a - x)],
  };
};

const sharing: Builder = (d) => {
  const it = pick(d.rng, GOODS), gr = pick(d.rng, GROUPS), nm = d.name();
  if (d.level === 1) {
    const t0 = d.num('small'); // k, the number of groups
    const share = d.num('big'), g = d.num('mult');
    const total = t0 * share;
    const q = frame(d, {
      train: [
        () => `${total} ${it} are shared equally by ${t0} ${gr}. Each gives away ${g}. How many does each keep?`,
        () => `${nm} splits ${total} ${it} equally among ${t0} ${gr}, and each uses ${g}. How many are left for each?`,
      ],
      heldout: [
        () => `A pile of ${total} ${it} is divided evenly among ${t0} ${gr}. Each then loses ${g}. How many does each have now?`,
        () => `There are ${total} ${it} for ${t0} ${gr} in equal parts, and each returns ${g}. What does each one keep?`,
      ],
    }, null);
    const s1 = step('Each gets:', `a = ${total} / ${t0}`, share);
    return { ...q, steps: [s1, step('Minus given:', `a - ${g}`, share - g)], flawedSteps: [s1] };
  }
  // n boxes of m items shared by k groups: m is drawn as a multiple of k / gcd(k, n) so the division is exact.
  // n = k would make each share just m (no arithmetic left), so that draw is rejected.
  const n = d.num('small'), k = d.num('small');
  if (n === k) return null;
  const m = d.numMultipleOf('big', k / gcd(k, n));
  if (m === null) return null;
  const g = d.num('mult');
  const a = n * m, b = a / k;
  const q = frame(d, {
    train: [
      () => `${n} boxes hold ${m} ${it} each. They are shared equally by ${k} ${gr}. Each uses ${g}. How many are left for each?`,
      () => `${nm} has ${n} crates of ${m} ${it}, split equally among ${k} ${gr}. Each gives away ${g}. How many does each keep?`,
    ],
    heldout: [
      () => `A store packs ${n} cartons of ${m} ${it} and divides them evenly among ${k} ${gr}. Each loses ${g}. What does each have now?`,
      () => `There are ${n} bins with ${m} ${it} in each, for ${k} ${gr} in equal parts. Each returns ${g}. How many does each keep?`,
    ],
  }, null);
  const s1 = step('All items:', `a = ${n} * ${m}`, a);
  const s2 = step('Each gets:', `b = a / ${k}`, b);
  return { ...q, steps: [s1, s2, step('Minus given:', `b - ${g}`, b - g)], flawedSteps: [s1, s2] };
};

const discount: Builder = (d) => {
  const nm = d.name();
  if (d.level === 1) {
    const p = d.num('price'), pc = d.num('pct');
    const it = pick(d.rng, GOODS).replace(/s$/, '');
    const q = frame(d, {
      train: [
        () => `A ${it} costs ${p}. It is ${pc}% off. What is the new price?`,
        () => `The price of a ${it} is ${p}, with a ${pc}% discount. What is the sale price?`,
      ],
      heldout: [
        () => `${nm} sees a ${it} priced ${p} at ${pc}% off. How much does it cost now?`,
        () => `A ${it} listed at ${p} is cut by ${pc}%. Find the price after the cut.`,
      ],
    }, null);
    const a = (p * pc) / 100;
    const s1 = step('Discount:', `a = ${p} * ${pc} / 100`, a);
    return { ...q, steps: [s1, step('New price:', `${p} - a`, p - a)], flawedSteps: [s1, step('New price:', `${p} + a`, p + a)] };
  }
  const n = d.num(d.level === 2 ? 'small' : 'mult'), p = d.num('price'), pc = d.num('pct');
  const it = pick(d.rng, GOODS);
  const q = frame(d, {
    train: [
      () => `${nm} buys ${n} ${it} at ${p} each and gets ${pc}% off the total. How much does ${nm} pay?`,
      () => `A shop sells ${n} ${it} at ${p} each with ${pc}% off the total. What is the final price?`,
    ],
    heldout: [
      () => `An order of ${n} ${it} at ${p} each has a ${pc}% discount on the total. Find the amount due.`,
      () => `${nm} orders ${n} ${it} priced ${p} each, and the bill is cut by ${pc}%. What is the bill now?`,
    ],
  }, null);
  const a = n * p, b = (a * pc) / 100;
  const s1 = step('Total:', `a = ${n} * ${p}`, a);
  const s2 = step('Discount:', `b = a * ${pc} / 100`, b);
  return { ...q, steps: [s1, s2, step('To pay:', 'a - b', a - b)], flawedSteps: [s1, s2, step('To pay:', 'a + b', a + b)] };
};

const units: Builder = (d) => {
  const h = d.num('big'), m = d.num('min'), nm = d.name();
  const target = d.level === 1 ? 'minutes' : 'seconds';
  const q = frame(d, {
    train: [
      () => `A job takes ${h} hours and ${m} minutes. How many ${target} is that?`,
      () => `A trip lasts ${h} hours ${m} minutes. How long is it in ${target}?`,
    ],
    heldout: [
      () => `${nm} works ${h} hours and ${m} minutes in all. Give the time in ${target}.`,
      () => `A festival runs for ${h} hours and ${m} minutes. How many ${target} does it run?`,
    ],
  }, null);
  const a = h * 60, wrong = h * 100;
  if (d.level === 1) {
    return {
      ...q,
      steps: [step('Hours to minutes:', `a = ${h} * 60`, a), step('Add minutes:', `a + ${m}`, a + m)],
      flawedSteps: [step('Hours to minutes:', `a = ${h} * 100`, wrong), step('Add minutes:', `a + ${m}`, wrong + m)],
    };
  }
  return {
    ...q,
    steps: [step('Hours to minutes:', `a = ${h} * 60`, a), step('Add minutes:', `b = a + ${m}`, a + m), step('To seconds:', 'b * 60', (a + m) * 60)],
    flawedSteps: [step('Hours to minutes:', `a = ${h} * 100`, wrong), step('Add minutes:', `b = a + ${m}`, wrong + m), step('To seconds:', 'b * 60', (wrong + m) * 60)],
  };
};

const budget: Builder = (d) => {
  const nm = d.name();
  if (d.level === 1) {
    const n = d.num('mult'), p = d.num('big'), extra = d.num('big');
    const it = pick(d.rng, GOODS);
    const total = n * p + extra;
    const q = frame(d, {
      train: [
        () => `${nm} has ${total} and buys ${n} ${it} at ${p} each. How much is left?`,
        () => `A club has ${total}. It buys ${n} ${it} at ${p} each. How much money is left?`,
      ],
      heldout: [
        () => `With ${total} in the bank, ${nm} pays for ${n} ${it} at ${p} each. What remains?`,
        () => `A budget of ${total} covers ${n} ${it} at ${p} each. How much money remains?`,
      ],
    }, null);
    const a = n * p, wp = miscopy(d.rng, p);
    return {
      ...q,
      steps: [step('Spent:', `a = ${n} * ${p}`, a), step('Left:', `${total} - a`, total - a)],
      flawedSteps: [step('Spent:', `a = ${n} * ${wp}`, n * wp), step('Left:', `${total} - a`, total - n * wp)],
    };
  }
  const n1 = d.num('mult'), p1 = d.num('big'), n2 = d.num('mult'), p2 = d.num('big'), extra = d.num('big');
  const [i1, i2] = d.two(GOODS);
  const a = n1 * p1, b = n2 * p2, total = a + b + extra;
  const q = frame(d, {
    train: [
      () => `${nm} has ${total} and buys ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. How much is left?`,
      () => `A club has ${total}. It buys ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. How much is left?`,
    ],
    heldout: [
      () => `With ${total} in the bank, ${nm} pays for ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. What remains?`,
      () => `A budget of ${total} covers ${n1} ${i1} at ${p1} each and ${n2} ${i2} at ${p2} each. How much remains?`,
    ],
  }, null);
  // The miscopied price is the first or the second one, at random.
  const first = d.rng() < 0.5;
  const wp = miscopy(d.rng, first ? p1 : p2);
  const fa = first ? n1 * wp : a, fb = first ? b : n2 * wp;
  return {
    ...q,
    steps: [step('First items:', `a = ${n1} * ${p1}`, a), step('Second items:', `b = ${n2} * ${p2}`, b), step('Left:', `${total} - a - b`, total - a - b)],
    flawedSteps: [
      step('First items:', `a = ${n1} * ${first ? wp : p1}`, fa),
      step('Second items:', `b = ${n2} * ${first ? p2 : wp}`, fb),
      step('Left:', `${total} - a - b`, total - fa - fb),
    ],
  };
};

const BUILDERS: Readonly<Record<Family, Builder>> = { shopping, production, sharing, discount, units, budget };

/** Build one instance, or null when the draw cannot make a valid one (the caller draws again). */
export function buildInstance(family: Family, rng: Rng, level: Level, style: Style): Instance | null {
  const d = new Draw(rng, level === 0 ? 1 : level, style);
  const inst = BUILDERS[family](d);
  if (!inst) return null;
  const out = { ...inst, numbers: d.log.join(' ') };
  return level === 0 ? yesNo(out, rng) : out;
}

/**
 * Level 0: ask whether the level-1 result is more (or less) than a threshold strictly between the correct and
 * the flawed result, answered 1 (yes) or 0 (no). The solution keeps its tool calls, stores the result in r and
 * compares it in one more call; the flawed solution's comparison comes out the other way, so it stays wrong.
 */
function yesNo(inst: Instance, rng: Rng): Instance | null {
  const good = inst.steps.at(-1)!.value, bad = inst.flawedSteps.at(-1)!.value;
  // A positive threshold (a flawed result can be negative; "less than -70" reads oddly).
  const lo = Math.max(Math.min(good, bad) + 1, 1), hi = Math.max(good, bad) - 1;
  if (hi < lo) return null;
  const x = randInt(rng, lo, hi);
  const more = rng() < 0.5;
  const question = `${inst.question} Is it ${more ? 'more' : 'less'} than ${x}? Answer 1 for yes or 0 for no.`;
  const finish = (steps: SolutionStep[]): SolutionStep[] => {
    const last = steps.at(-1)!;
    const yes = more ? last.value > x : last.value < x;
    return [
      ...steps.slice(0, -1),
      step(last.text, `r = ${last.code.replace(/^[a-z] = /, '')}`, last.value),
      step('Compare:', `r ${more ? '>' : '<'} ${x}`, yes ? 1 : 0),
    ];
  };
  return { ...inst, question, steps: finish(inst.steps), flawedSteps: finish(inst.flawedSteps) };
}
