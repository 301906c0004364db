/**
 * `mathagent grade`: the equivalence grader from the command line.
 *   mathagent grade --gold A --pred B      prints true / false
 *   mathagent grade < pairs.jsonl          one JSON object per line: {"gold": ..., "pred": ..., ...}; each is
 *                                          written back with "equal": true|false added (other fields kept).
 * A malformed line gets an output line {"line": N, "error": "..."} and processing continues; the exit code
 * is 1 if any line was malformed. Also registers the `grade` benchmark with `mathagent bench`.
 */
import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { isEquivalent } from '../reward/grader';
import { benchGrader } from '../reward/bench';
import { BENCHMARKS, registerBenchmark } from './bench';

/** Result of grading one input line: the output object, and whether the line was malformed. */
export function gradeLine(line: string, lineNo: number): { out: Record<string, unknown>; malformed: boolean } {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { out: { line: lineNo, error: `invalid JSON (${why}); expected an object like {"gold": "1/2", "pred": "0.5"}` }, malformed: true };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return { out: { line: lineNo, error: 'expected a JSON object with "gold" and "pred" fields' }, malformed: true };
  }
  const rec = obj as Record<string, unknown>;
  const bad: string[] = [];
  for (const field of ['gold', 'pred'] as const) {
    const v = rec[field];
    if (v === undefined) bad.push(`missing "${field}"`);
    else if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) bad.push(`"${field}" must be a string or a number, got ${v === null ? 'null' : typeof v}`);
  }
  if (bad.length) return { out: { ...rec, line: lineNo, error: bad.join('; ') }, malformed: true };
  return { out: { ...rec, equal: isEquivalent(String(rec.gold), String(rec.pred)) }, malformed: false };
}

async function gradeStream(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<number> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let malformed = 0;
  for await (const raw of rl) {
    lineNo++;
    const line = raw.trim();
    if (!line) continue;
    const r = gradeLine(line, lineNo);
    if (r.malformed) malformed++;
    // Respect back-pressure so a large input does not pile up in memory.
    if (!output.write(`${JSON.stringify(r.out)}\n`)) await new Promise<void>((res) => output.once('drain', () => res()));
  }
  return malformed;
}

export function register(program: Command): void {
  program
    .command('grade')
    .description('grade answers: JSON lines {"gold","pred"} on stdin -> the same lines with "equal" added; or --gold A --pred B')
    .option('--gold <answer>', 'reference answer (or a solution that contains it)')
    .option('--pred <answer>', 'predicted answer (or a model output that contains it)')
    .action(async (o: { gold?: string; pred?: string }) => {
      if (o.gold !== undefined || o.pred !== undefined) {
        if (o.gold === undefined || o.pred === undefined) throw new Error('give both --gold and --pred, or neither (then JSON lines are read from stdin)');
        process.stdout.write(`${isEquivalent(o.gold, o.pred)}\n`);
        return;
      }
      const malformed = await gradeStream(process.stdin, process.stdout);
      if (malformed > 0) {
        process.stderr.write(`mathagent grade: ${malformed} malformed line(s); see their "error" fields\n`);
        process.exitCode = 1;
      }
    });

  if (!BENCHMARKS.some((b) => b.name === 'grade')) {
    registerBenchmark({
      name: 'grade',
      description: 'answer grader throughput on a realistic GSM8K/MATH mix (answers/s, median of repeats)',
      run: async (opts) => {
        const r = await benchGrader({ n: 2000, repeats: Math.max(3, opts.steps) });
        opts.log(`grade: ${r.answersPerSec} answers/s (n=${r.n})`);
        return { answersPerSec: r.answersPerSec, n: r.n };
      },
    });
  }
}
