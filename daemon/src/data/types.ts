/** A problem from any dataset, normalised: what the rollout loop and the grader need. */
export interface Problem {
  /** Stable id: `<dataset>/<split>/<index or unique id>`, e.g. `gsm8k/test/17`, `synthetic/eval/L2/123`. */
  id: string;
  question: string;
  /** The reference final answer as a string (GSM8K: the number after `####`; MATH: the last \boxed{} content). */
  answer: string;
  /** Dataset name: synthetic, gsm8k, math, math500. */
  source: string;
  /** Extra fields: subject, level, family, ... */
  meta?: Record<string, string | number>;
}

/**
 * A structured demonstration for SFT: the model's turns, each reasoning text plus at most one tool call.
 * Observations are not stored: they are produced by running `code` through the real sandbox when the demo is
 * rendered with a chat template (env/demos.ts), so demo outputs match tool outputs exactly.
 * The last step's text contains the final answer as `\boxed{...}`.
 */
export interface Demo {
  problem: Problem;
  steps: Array<{ text: string; code: string | null }>;
  /** True when the demonstration deliberately contains a mistake (wrong operation, wrong copy, ...). */
  flawed: boolean;
}
