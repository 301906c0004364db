/**
 * The synthetic tool-arithmetic task: seeded multi-step word problems (families in syntheticFamilies.ts) and
 * SFT demonstrations that solve them with 1–3 mathjs tool calls, the later ones reusing variables of the
 * earlier ones, then `Answer: \boxed{N}`.
 *
 * Splits (`heldOut`):
 * - 'shifted' (default): `train` uses the training sentence frames and the lower part of every number range; `dev`
 *   and `eval` use other frames and the upper part of every range — a test of generalisation to new wordings and
 *   larger numbers. dev and eval share a distribution but never a question: a question belongs to eval or dev by a
 *   hash of its text (independent of the seed), so the two can never overlap, whatever seeds are used.
 * - 'same': all three splits come from the training distribution (frames and ranges); a hash of the question text
 *   puts 1/8 of all questions in eval, 1/8 in dev and the rest in train (demonstrations included), so no held-out
 *   question is ever trained on. This measures what preference learning does to in-distribution accuracy, as the
 *   paper's GSM8K/MATH test sets do for their train sets.
 * Within one generated list no question repeats.
 *
 * Determinism: problem i depends only on (seed, split, level, families, i), so a longer list extends a shorter
 * one. Demonstrations draw their problems from a stream of their own (train style), so the SFT set and the
 * online training prompts of the same seed are different problems from the same distribution.
 *
 * Note for the tool: values reach 1e9, so the sandbox must print integers as plain digits (it does: safe integers
 * are printed with String(); mathjs `format` alone would switch to exponent notation from 1e5).
 */
import { hash32, rngFor, shuffled } from './rng';
import { buildInstance, FAMILIES, FAMILY_FLAW, type Family, type Instance, type Level, type Style } from './syntheticFamilies';
import type { Demo, Problem } from './types';

export { FAMILIES, FAMILY_FLAW, FLAW_KINDS, roleRange } from './syntheticFamilies';
export type { Family, FlawKind, Level, Role } from './syntheticFamilies';

export type SyntheticSplit = 'train' | 'dev' | 'eval';
export const SYNTHETIC_SPLITS: readonly SyntheticSplit[] = ['train', 'dev', 'eval'];

export interface ProblemOptions {
  seed: number;
  count: number;
  split: SyntheticSplit;
  /**
   * Difficulty: 0 = a level-1 problem asked as yes/no ("Is it more than X?", answer 1 or 0: for smoke tests);
   * 1 = two tool calls, 3-digit operands; 2 = three calls, 4-digit; 3 = three calls, 5-digit. Default 1.
   */
  level?: Level;
  /** Restrict to these families (default: all, in equal shares). */
  families?: readonly Family[];
  /** How dev/eval relate to train (see the file comment); default 'shifted'. */
  heldOut?: HeldOutMode;
}

export type HeldOutMode = 'shifted' | 'same';
export const HELD_OUT_MODES: readonly HeldOutMode[] = ['shifted', 'same'];

export interface DemoOptions {
  seed: number;
  count: number;
  /** Share of all demonstrations that are flawed, in [0, 1]; the count is exact (rounded). */
  flawedShare: number;
  level?: Level;
  split?: 'train';
  families?: readonly Family[];
  /**
   * Put every flaw into these families (default: spread over all families in use). With F families in equal
   * shares and flaws in f of them, each flawed family has flawedShare × F / f of its demos flawed; e.g. 6
   * families, flawFamilies ['discount'], flawedShare 0.1 → 60% of discount demos flawed, the rest clean.
   */
  flawFamilies?: readonly Family[];
  /** With 'same', demonstrations avoid the questions reserved for dev and eval. Default 'shifted'. */
  heldOut?: HeldOutMode;
}

/** Thrown for bad options; the message says what to change. */
export class SyntheticError extends Error {
  override name = 'SyntheticError';
}

/** Largest value any correct solution step may reach (exact in float64, and short). */
export const MAX_VALUE = 1e9;
const MAX_ATTEMPTS = 1000;

function checkCommon(opts: { seed: number; count: number; level?: number; families?: readonly string[]; heldOut?: string }): { level: Level; families: Family[]; heldOut: HeldOutMode } {
  if (!Number.isInteger(opts.seed)) throw new SyntheticError(`seed must be an integer, got ${opts.seed}`);
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new SyntheticError(`count must be a non-negative integer, got ${opts.count}`);
  const level = opts.level ?? 1;
  if (level !== 0 && level !== 1 && level !== 2 && level !== 3) throw new SyntheticError(`level must be 0, 1, 2 or 3, got ${level}`);
  const families = checkFamilies(opts.families ?? FAMILIES, 'families');
  if (families.length === 0) throw new SyntheticError('families must list at least one family');
  const heldOut = opts.heldOut ?? 'shifted';
  if (!HELD_OUT_MODES.includes(heldOut as HeldOutMode)) throw new SyntheticError(`heldOut must be ${HELD_OUT_MODES.join(' or ')}, got "${heldOut}"`);
  return { level, families, heldOut: heldOut as HeldOutMode };
}

function checkFamilies(list: readonly string[], what: string): Family[] {
  const out: Family[] = [];
  for (const f of list) {
    if (!(FAMILIES as readonly string[]).includes(f)) throw new SyntheticError(`${what}: unknown family "${f}"; valid families: ${FAMILIES.join(', ')}`);
    if (!out.includes(f as Family)) out.push(f as Family);
  }
  return out;
}

/** The family of item i: a fresh shuffle of the families for every block of F items keeps them balanced. */
function familyAt(stream: string, seed: number, split: string, level: Level, families: Family[], i: number): Family {
  const block = Math.floor(i / families.length);
  return shuffled(rngFor('family', stream, seed, split, level, families.join(','), block), families)[i % families.length]!;
}

/** Which held-out split a question belongs to: a function of its text alone, so dev and eval never share one. */
export function heldOutPart(question: string): 'dev' | 'eval' {
  return hash32('heldout-part', question) % 2 === 0 ? 'eval' : 'dev';
}

/** With heldOut 'same': the split a question belongs to (1/8 eval, 1/8 dev, 3/4 train), by its text alone. */
export function sameStylePart(question: string): SyntheticSplit {
  const h = hash32('same-part', question) % 8;
  return h === 0 ? 'eval' : h === 1 ? 'dev' : 'train';
}

interface Generated { family: Family; inst: Instance }

function generate(stream: 'problem' | 'demo', seed: number, count: number, split: SyntheticSplit, level: Level, families: Family[], heldOut: HeldOutMode): Generated[] {
  const style: Style = split === 'train' || heldOut === 'same' ? 'train' : 'heldout';
  // Which questions this split may use: the shifted mode separates train by style, so only dev/eval need a hash.
  const mine = heldOut === 'same' ? (q: string) => sameStylePart(q) === split : (q: string) => split === 'train' || heldOutPart(q) === split;
  const seen = new Set<string>();
  const out: Generated[] = [];
  for (let i = 0; i < count; i++) {
    const family = familyAt(stream, seed, split, level, families, i);
    let inst: Instance | null = null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && !inst; attempt++) {
      const cand = buildInstance(family, rngFor(stream, seed, split, level, i, attempt), level, style);
      if (!cand || seen.has(cand.question)) continue;
      if (!mine(cand.question)) continue;
      inst = cand;
    }
    if (!inst) {
      throw new SyntheticError(`could not make ${count} distinct ${split} problems of family ${family} at level ${level}; ask for fewer`);
    }
    checkInstance(family, inst, level);
    seen.add(inst.question);
    out.push({ family, inst });
  }
  return out;
}

/** Guard the invariants the task promises (a generator bug must not silently produce bad data). */
function checkInstance(family: Family, inst: Instance, level: Level): void {
  // Level 0 ends with a yes/no comparison whose value is 1 or 0.
  const last = inst.steps.at(-1)!.value;
  if (level === 0 && last !== 0 && last !== 1) throw new Error(`synthetic ${family}: level 0 answer ${last} is not 0 or 1`);
  for (const s of level === 0 ? inst.steps.slice(0, -1) : inst.steps) {
    if (!Number.isSafeInteger(s.value) || s.value <= 0 || s.value >= MAX_VALUE) {
      throw new Error(`synthetic ${family}: step "${s.code}" gives ${s.value}, not a positive integer below ${MAX_VALUE}`);
    }
  }
  for (const s of inst.flawedSteps) {
    if (!Number.isSafeInteger(s.value)) throw new Error(`synthetic ${family}: flawed step "${s.code}" gives non-integer ${s.value}`);
  }
  if (inst.flawedSteps.at(-1)!.value === inst.steps.at(-1)!.value) {
    throw new Error(`synthetic ${family}: the flawed solution reaches the right answer for "${inst.question}"`);
  }
}

function toProblem(g: Generated, id: string, split: SyntheticSplit, level: Level): Problem {
  return {
    id,
    question: g.inst.question,
    answer: String(g.inst.steps.at(-1)!.value),
    source: 'synthetic',
    meta: { family: g.family, level, split, template: g.inst.template, numbers: g.inst.numbers, toolCalls: g.inst.steps.length },
  };
}

/** Generate `count` problems of one split; ids are `synthetic/<split>/L<level>/s<seed>-<i>`. */
export function generateProblems(opts: ProblemOptions): Problem[] {
  const { level, families, heldOut } = checkCommon(opts);
  if (!SYNTHETIC_SPLITS.includes(opts.split)) throw new SyntheticError(`unknown split "${opts.split}"; valid splits: ${SYNTHETIC_SPLITS.join(', ')}`);
  return generate('problem', opts.seed, opts.count, opts.split, level, families, heldOut).map((g, i) =>
    toProblem(g, `synthetic/${opts.split}/L${level}/s${opts.seed}-${i}`, opts.split, level),
  );
}

/** The text of the final step of a demonstration. */
export function finalAnswerText(value: number | string): string {
  return `Answer: \\boxed{${value}}`;
}

/**
 * Generate `count` SFT demonstrations (train style). Exactly round(count × flawedShare) of them are flawed,
 * chosen at random among the demos of `flawFamilies`; a flawed demo follows its family's flaw and boxes what its
 * own (wrong) code computes, so its answer differs from problem.answer.
 */
export function generateDemos(opts: DemoOptions): Demo[] {
  const { level, families, heldOut } = checkCommon(opts);
  if (opts.split !== undefined && opts.split !== 'train') {
    throw new SyntheticError(`demonstrations are made for the train split only, got split "${opts.split}"`);
  }
  if (!(opts.flawedShare >= 0 && opts.flawedShare <= 1)) throw new SyntheticError(`flawedShare must be in [0, 1], got ${opts.flawedShare}`);
  const flawFamilies = opts.flawFamilies ? checkFamilies(opts.flawFamilies, 'flawFamilies') : families;
  const stray = flawFamilies.filter((f) => !families.includes(f));
  if (stray.length) throw new SyntheticError(`flawFamilies ${stray.join(', ')} not among the families in use (${families.join(', ')})`);

  const gen = generate('demo', opts.seed, opts.count, 'train', level, families, heldOut);
  const eligible = gen.map((g, i) => (flawFamilies.includes(g.family) ? i : -1)).filter((i) => i >= 0);
  const nFlawed = Math.round(opts.count * opts.flawedShare);
  if (nFlawed > eligible.length) {
    throw new SyntheticError(
      `flawedShare ${opts.flawedShare} asks for ${nFlawed} flawed demos but the flaw families (${flawFamilies.join(', ')}) ` +
        `have only ${eligible.length} of ${opts.count}; lower flawedShare to at most ${(eligible.length / Math.max(1, opts.count)).toFixed(3)} or add flawFamilies`,
    );
  }
  const flawed = new Set(shuffled(rngFor('flaws', opts.seed, level, opts.count), eligible).slice(0, nFlawed));

  return gen.map((g, i) => {
    const isFlawed = flawed.has(i);
    const problem = toProblem(g, `synthetic/train/L${level}/s${opts.seed}-d${i}`, 'train', level);
    if (isFlawed) problem.meta!.flaw = FAMILY_FLAW[g.family];
    const sol = isFlawed ? g.inst.flawedSteps : g.inst.steps;
    return {
      problem,
      steps: [...sol.map((s) => ({ text: s.text, code: s.code })), { text: finalAnswerText(sol.at(-1)!.value), code: null }],
      flawed: isFlawed,
    };
  });
}
