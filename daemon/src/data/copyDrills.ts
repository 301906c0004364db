/**
 * Copy drills: "Repeat: the 4821 also 7730." answered by "4821 7730". Pure copying, no arithmetic and no
 * wording to understand, at random places in the prompt.
 *
 * Why: a character-level model trained from scratch must learn to copy the operands of a question into its
 * code before it can solve anything, and that skill (an induction circuit: attend to what followed the token
 * just written) appears late and suddenly in SFT on the task alone. Drills mixed into the SFT data give it a
 * dense, unambiguous signal. They are demonstrations like the task's (a prompt and a final turn), so they go
 * through the same rendering and masks. Measured (docs/model.md): they did not help. With 0.5 drills per demo the
 * small model still copied 23% of digits at step 500, where the same run without drills was at 88% (copying
 * appears between steps 350 and 500 at lr 2e-3). Kept as an option, off by default.
 */
import { randInt, rngFor, pick } from './rng';
import type { Demo } from './types';

const WORDS = ['Copy', 'the', 'numbers', 'now', 'please', 'then', 'and', 'also', 'next', 'last'] as const;

/** `count` copy drills of 2–5 numbers with 2–5 digits each; drill i depends only on (seed, i). */
export function generateCopyDrills(seed: number, count: number): Demo[] {
  if (!Number.isInteger(count) || count < 0) throw new Error(`copy drills: count must be a non-negative integer, got ${count}`);
  return Array.from({ length: count }, (_, i) => {
    const rng = rngFor('copy-drill', seed, i);
    const nums = Array.from({ length: randInt(rng, 2, 5) }, () => String(randInt(rng, 10, 99999)));
    const question = `Repeat: ${nums.map((n) => `${pick(rng, WORDS)} ${n}`).join(' ')}.`;
    const answer = nums.join(' ');
    return {
      problem: { id: `drill/${seed}-${i}`, question, answer, source: 'drill' },
      steps: [{ text: answer, code: null }],
      flawed: false,
    };
  });
}
