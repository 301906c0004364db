/**
 * The run store: one SQLite file (better-sqlite3, synchronous API) holding runs, iterations, trajectories,
 * pairs, metrics, evaluations, annotations, checkpoints, the event log and per-run resume state.
 *
 * Durability: WAL with synchronous=NORMAL — a committed transaction survives a process crash (kill -9); only an
 * OS crash or power loss can drop the last few commits, which resume then redoes. The pipeline wraps each stage's
 * writes in `transaction()` so a stage is either fully stored or not at all.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  Annotation,
  AnnotationSetParams,
  RunConfig,
  TrajectoryListParams,
  type AnnotationLabel,
  type CompareResult,
  type DaemonEvent,
  type EvalBreakdown,
  type IterationSummary,
  type MetricPoint,
  type OutcomeLabel,
  type Pair,
  type RunKind,
  type RunState,
  type RunStatusEvent,
  type RunSummary,
  type Stage,
  type Trajectory,
  type TrajectoryHeader,
} from '@mathagent/shared';
import type { z } from 'zod';

type CompareResultT = z.infer<typeof CompareResult>;
import { MIGRATIONS, migrate, type Migration } from './migrations';
import { NotFoundError, StoreVersionError } from './errors';
import { decodeFloat64, encodeFloat64, packTrajectory, unpackTrajectory, type TrajectoryRow } from './codec';

export type Split = 'train' | 'eval';

export interface CreateRunInput {
  /** Defaults to a sortable id: `YYYYMMDD-HHMMSS-xxxxxx`. */
  id?: string;
  /** Defaults to `config.name`. */
  name?: string;
  config: RunConfig;
  /** Default `train`; `eval` for an evaluation-only run (`mathagent eval`). */
  kind?: RunKind;
  state?: RunState;
  stage?: Stage | null;
}

export type RunPatch = Partial<Pick<RunSummary, 'name' | 'state' | 'stage' | 'iteration' | 'error' | 'bestPass1' | 'bestIteration'>>;

/** Creates the row with zero counts when missing, then applies the given fields. */
export type IterationPatch = Pick<IterationSummary, 'runId' | 'iteration'> & Partial<Omit<IterationSummary, 'runId' | 'iteration'>>;

/** One held-out problem's result in an evaluation. */
export interface EvalProblem {
  promptId: string;
  /** Greedy answer correct. */
  correct: boolean;
  /** How many of the k pass@k samples were correct (null when pass@k was not sampled). */
  correctK: number | null;
  /** The greedy trajectory, when it was stored. */
  trajectoryId: string | null;
}

export interface EvalRecord {
  runId: string;
  iteration: number;
  pass1: number;
  passK: number | null;
  k: number;
  n: number;
  ci95: [number, number];
  meanTurns: number;
  toolErrorRate: number;
  /** Greedy pass@1 by subject and level (MATH, MATH-500); null for datasets without subjects. */
  breakdown: EvalBreakdown | null;
  problems: EvalProblem[];
  createdAt: string;
}
export type EvalInput = Omit<EvalRecord, 'createdAt' | 'breakdown'> & { createdAt?: string; breakdown?: EvalBreakdown | null };

export interface CheckpointRecord {
  id: number;
  runId: string;
  iteration: number;
  /** Directory (or file) holding the safetensors weights and JSON config. */
  path: string;
  metrics: Record<string, number>;
  isBest: boolean;
  createdAt: string;
}
export type CheckpointInput = Omit<CheckpointRecord, 'id' | 'createdAt' | 'isBest'> & { isBest?: boolean };

export type TrajectoryFilter = z.input<typeof TrajectoryListParams>;
export type AnnotationInput = z.input<typeof AnnotationSetParams>;

export interface OpenStoreOptions {
  /** Tests only: migrate with this list instead of the shipped one. */
  migrations?: readonly Migration[];
  /** Milliseconds to wait for another connection's write lock (default 5000). */
  busyTimeoutMs?: number;
}

const now = () => new Date().toISOString();

function newRunId(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}-${randomBytes(3).toString('hex')}`;
}

interface RunRow {
  id: string; name: string; kind: string; config: string; algorithm: string; iterations: number; state: string; stage: string | null;
  iteration: number; error: string | null; best_pass1: number | null; best_iteration: number | null; created_at: string; updated_at: string;
}
interface IterationRow {
  run_id: string; iteration: number; stage: string; trajectories: number; correct: number; pairs: number; skipped: string;
  pass1: number | null; pass_k: number | null;
}
interface HeaderRow {
  id: string; run_id: string; iteration: number; prompt_id: string; sample_index: number; split: string; question: string;
  outcome: string; reward: number; extracted_answer: string | null; num_turns: number; label: string | null;
}
interface AnnotationRow {
  trajectory_id: string; run_id: string; label: string; note: string; turn: number | null; reward_override: number | null; author: string; updated_at: string;
}
interface EvalRow {
  run_id: string; iteration: number; pass1: number; pass_k: number | null; k: number; n: number; ci_low: number; ci_high: number;
  mean_turns: number; tool_error_rate: number; problems: string; breakdown: string | null; created_at: string;
}
interface CheckpointRow { id: number; run_id: string; iteration: number; path: string; metrics: string; is_best: number; created_at: string }

const toRun = (r: RunRow): RunSummary => ({
  id: r.id,
  name: r.name,
  kind: r.kind as RunKind,
  algorithm: r.algorithm as RunSummary['algorithm'],
  state: r.state as RunState,
  stage: r.stage as Stage | null,
  iteration: r.iteration,
  iterations: r.iterations,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  error: r.error,
  bestPass1: r.best_pass1,
  bestIteration: r.best_iteration,
});

const toIteration = (r: IterationRow): IterationSummary => ({
  runId: r.run_id,
  iteration: r.iteration,
  stage: r.stage as Stage,
  trajectories: r.trajectories,
  correct: r.correct,
  pairs: r.pairs,
  skipped: JSON.parse(r.skipped) as Record<string, number>,
  pass1: r.pass1,
  passK: r.pass_k,
});

const toHeader = (r: HeaderRow): TrajectoryHeader => ({
  id: r.id,
  runId: r.run_id,
  iteration: r.iteration,
  promptId: r.prompt_id,
  sampleIndex: r.sample_index,
  split: r.split as Split,
  question: r.question,
  outcome: r.outcome as OutcomeLabel,
  reward: r.reward,
  extractedAnswer: r.extracted_answer,
  turns: r.num_turns,
  annotation: r.label as AnnotationLabel | null,
});

const toAnnotation = (r: AnnotationRow): Annotation => ({
  trajectoryId: r.trajectory_id,
  label: r.label as AnnotationLabel,
  note: r.note,
  turn: r.turn,
  rewardOverride: r.reward_override,
  author: r.author,
  updatedAt: r.updated_at,
});

const toEval = (r: EvalRow): EvalRecord => ({
  runId: r.run_id,
  iteration: r.iteration,
  pass1: r.pass1,
  passK: r.pass_k,
  k: r.k,
  n: r.n,
  ci95: [r.ci_low, r.ci_high],
  meanTurns: r.mean_turns,
  toolErrorRate: r.tool_error_rate,
  breakdown: r.breakdown === null ? null : (JSON.parse(r.breakdown) as EvalBreakdown),
  problems: JSON.parse(r.problems) as EvalProblem[],
  createdAt: r.created_at,
});

const toCheckpoint = (r: CheckpointRow): CheckpointRecord => ({
  id: r.id,
  runId: r.run_id,
  iteration: r.iteration,
  path: r.path,
  metrics: JSON.parse(r.metrics) as Record<string, number>,
  isBest: r.is_best === 1,
  createdAt: r.created_at,
});

const HEADER_COLUMNS = `t.id, t.run_id, t.iteration, t.prompt_id, t.sample_index, t.split, t.question, t.outcome, t.reward,
  t.extracted_answer, t.num_turns, a.label`;

export class Store {
  readonly path: string;
  readonly schemaVersion: number;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  private closed = false;

  constructor(path: string, opts: OpenStoreOptions = {}) {
    this.path = path;
    const inMemory = path === ':memory:' || path === '';
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    try {
      // The busy timeout first: switching a new file to WAL takes a lock that another process may hold.
      this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
      if (!inMemory) this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.schemaVersion = migrate(this.db, path, opts.migrations ?? MIGRATIONS);
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code === 'SQLITE_NOTADB') {
        throw new StoreVersionError(`${path} is not a SQLite database: point --db / MATHAGENT_DB at a MathAgent database or a new file`);
      }
      if (err instanceof StoreVersionError) throw err;
      throw new StoreVersionError(`cannot open the store at ${path}: ${(err as Error).message}`);
    }
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /**
   * Run `fn` in one transaction (nested calls become savepoints): all its writes commit together or not at all.
   * IMMEDIATE, so the write lock is taken at the start: a deferred transaction that reads first and writes later
   * fails at once with "database is locked" when another process (a second `mathagent run`, an experiment's
   * child) commits in between — the busy timeout cannot help it, its snapshot is stale. Immediate ones wait.
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // -------------------------------------------------------------------------------------------- runs

  createRun(input: CreateRunInput): RunSummary {
    const config = RunConfig.parse(input.config);
    const id = input.id ?? newRunId();
    const t = now();
    const kind = input.kind ?? 'train';
    if (kind !== 'train' && kind !== 'eval') throw new TypeError(`run kind must be 'train' or 'eval', got ${String(kind)}`);
    this.stmt(`INSERT INTO runs (id, name, kind, config, algorithm, iterations, state, stage, iteration, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`).run(id, input.name ?? config.name, kind, JSON.stringify(config), config.algorithm,
      config.iterations, input.state ?? 'queued', input.stage ?? null, t, t);
    return this.getRunSummary(id)!;
  }

  updateRun(runId: string, patch: RunPatch): RunSummary {
    const cols: Record<keyof RunPatch, string> = {
      name: 'name', state: 'state', stage: 'stage', iteration: 'iteration', error: 'error', bestPass1: 'best_pass1', bestIteration: 'best_iteration',
    };
    const sets: string[] = [];
    const vals: unknown[] = [];
    for (const k of Object.keys(cols) as (keyof RunPatch)[]) {
      if (patch[k] !== undefined) {
        sets.push(`${cols[k]} = ?`);
        vals.push(patch[k]);
      }
    }
    sets.push('updated_at = ?');
    vals.push(now());
    const r = this.stmt(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`).run(...vals, runId);
    if (r.changes === 0) throw new NotFoundError('run', runId);
    return this.getRunSummary(runId)!;
  }

  getRunSummary(runId: string): RunSummary | null {
    const r = this.stmt('SELECT * FROM runs WHERE id = ?').get(runId) as RunRow | undefined;
    return r ? toRun(r) : null;
  }

  /** The run and its full config (defaults filled in by the current schema). */
  getRun(runId: string): { run: RunSummary; config: RunConfig } | null {
    const r = this.stmt('SELECT * FROM runs WHERE id = ?').get(runId) as RunRow | undefined;
    if (!r) return null;
    const parsed = RunConfig.safeParse(JSON.parse(r.config));
    if (!parsed.success) throw new Error(`run ${runId} has a stored config this version cannot read: ${parsed.error.message}`);
    return { run: toRun(r), config: parsed.data };
  }

  /** Newest first. `states` filters, e.g. the unfinished runs to resume at daemon start. */
  listRuns(opts: { limit?: number; states?: RunState[] } = {}): RunSummary[] {
    const limit = opts.limit ?? 100;
    if (opts.states && opts.states.length === 0) return [];
    const where = opts.states ? `WHERE state IN (${opts.states.map(() => '?').join(', ')})` : '';
    const rows = this.stmt(`SELECT * FROM runs ${where} ORDER BY created_at DESC, rowid DESC LIMIT ?`).all(...(opts.states ?? []), limit) as RunRow[];
    return rows.map(toRun);
  }

  /** Deletes a run and everything stored for it, its annotations and resume state included. */
  deleteRun(runId: string): boolean {
    return this.transaction(() => {
      this.stmt('DELETE FROM annotations WHERE run_id = ?').run(runId);
      this.stmt('DELETE FROM run_state WHERE run_id = ?').run(runId);
      return this.stmt('DELETE FROM runs WHERE id = ?').run(runId).changes > 0;
    });
  }

  // -------------------------------------------------------------------------------------------- iterations

  upsertIteration(p: IterationPatch): IterationSummary {
    return this.transaction(() => {
      this.requireRun(p.runId);
      this.stmt(`INSERT INTO iterations (run_id, iteration, stage, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT(run_id, iteration) DO NOTHING`).run(p.runId, p.iteration, p.stage ?? 'sample', now());
      const cols = { stage: 'stage', trajectories: 'trajectories', correct: 'correct', pairs: 'pairs', skipped: 'skipped', pass1: 'pass1', passK: 'pass_k' } as const;
      const sets: string[] = ['updated_at = ?'];
      const vals: unknown[] = [now()];
      for (const k of Object.keys(cols) as (keyof typeof cols)[]) {
        const v = p[k];
        if (v !== undefined) {
          sets.push(`${cols[k]} = ?`);
          vals.push(k === 'skipped' ? JSON.stringify(v) : v);
        }
      }
      this.stmt(`UPDATE iterations SET ${sets.join(', ')} WHERE run_id = ? AND iteration = ?`).run(...vals, p.runId, p.iteration);
      return toIteration(this.stmt('SELECT * FROM iterations WHERE run_id = ? AND iteration = ?').get(p.runId, p.iteration) as IterationRow);
    });
  }

  listIterations(runId: string): IterationSummary[] {
    return (this.stmt('SELECT * FROM iterations WHERE run_id = ? ORDER BY iteration').all(runId) as IterationRow[]).map(toIteration);
  }

  // -------------------------------------------------------------------------------------------- trajectories

  /** Stores (or replaces, by id) a batch of trajectories in one transaction: all or none. */
  insertTrajectories(list: readonly Trajectory[], split: Split): number {
    if (split !== 'train' && split !== 'eval') throw new TypeError(`split must be 'train' or 'eval', got ${String(split)}`);
    const rows = list.map((t) => packTrajectory(t, split)); // encode before the transaction: a bad one aborts nothing
    const ins = this.stmt(`INSERT INTO trajectories (id, run_id, iteration, prompt_id, sample_index, split, policy, question, reference,
        template, prompt_text, prompt_token_ids, turns, num_turns, turn_token_ids, logprobs, token_ids, action_mask, extracted_answer,
        reward, outcome, truncation, retokenized, created_at)
      VALUES (@id, @run_id, @iteration, @prompt_id, @sample_index, @split, @policy, @question, @reference, @template, @prompt_text,
        @prompt_token_ids, @turns, @num_turns, @turn_token_ids, @logprobs, @token_ids, @action_mask, @extracted_answer, @reward,
        @outcome, @truncation, @retokenized, @created_at)
      ON CONFLICT(id) DO UPDATE SET run_id = excluded.run_id, iteration = excluded.iteration, prompt_id = excluded.prompt_id,
        sample_index = excluded.sample_index, split = excluded.split, policy = excluded.policy, question = excluded.question,
        reference = excluded.reference, template = excluded.template, prompt_text = excluded.prompt_text,
        prompt_token_ids = excluded.prompt_token_ids, turns = excluded.turns, num_turns = excluded.num_turns,
        turn_token_ids = excluded.turn_token_ids, logprobs = excluded.logprobs, token_ids = excluded.token_ids,
        action_mask = excluded.action_mask, turn_rewards = NULL, extracted_answer = excluded.extracted_answer, reward = excluded.reward,
        outcome = excluded.outcome, truncation = excluded.truncation, retokenized = excluded.retokenized, created_at = excluded.created_at`);
    this.transaction(() => {
      for (const r of rows) {
        try {
          ins.run(r);
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
            throw new NotFoundError('run', `${r.run_id} (create the run before storing trajectory ${r.id})`);
          }
          throw err;
        }
      }
    });
    return rows.length;
  }

  getTrajectory(id: string): Trajectory | null {
    const r = this.stmt('SELECT * FROM trajectories WHERE id = ?').get(id) as TrajectoryRow | undefined;
    return r ? unpackTrajectory(r) : null;
  }

  getTrajectoryHeader(id: string): TrajectoryHeader | null {
    const r = this.stmt(`SELECT ${HEADER_COLUMNS} FROM trajectories t LEFT JOIN annotations a ON a.trajectory_id = t.id WHERE t.id = ?`).get(id) as HeaderRow | undefined;
    return r ? toHeader(r) : null;
  }

  /** Full trajectories of one iteration (what pair building and training read), in prompt/sample order. */
  listTrajectories(runId: string, iteration: number, split?: Split): Trajectory[] {
    const rows = (split
      ? this.stmt('SELECT * FROM trajectories WHERE run_id = ? AND iteration = ? AND split = ? ORDER BY prompt_id, sample_index').all(runId, iteration, split)
      : this.stmt('SELECT * FROM trajectories WHERE run_id = ? AND iteration = ? ORDER BY split, prompt_id, sample_index').all(runId, iteration)) as TrajectoryRow[];
    return rows.map(unpackTrajectory);
  }

  listTrajectoryHeaders(filter: TrajectoryFilter): { trajectories: TrajectoryHeader[]; total: number } {
    const f = TrajectoryListParams.parse(filter);
    const where: string[] = ['t.run_id = ?'];
    const vals: unknown[] = [f.runId];
    if (f.iteration !== undefined) { where.push('t.iteration = ?'); vals.push(f.iteration); }
    if (f.split !== undefined) { where.push('t.split = ?'); vals.push(f.split); }
    if (f.promptId !== undefined) { where.push('t.prompt_id = ?'); vals.push(f.promptId); }
    if (f.outcomes !== undefined) {
      if (f.outcomes.length === 0) return { trajectories: [], total: 0 };
      where.push(`t.outcome IN (${f.outcomes.map(() => '?').join(', ')})`);
      vals.push(...f.outcomes);
    }
    if (f.failedOnly) where.push("t.outcome <> 'correct'");
    if (f.unannotatedOnly) where.push('a.trajectory_id IS NULL');
    const from = `FROM trajectories t LEFT JOIN annotations a ON a.trajectory_id = t.id WHERE ${where.join(' AND ')}`;
    const total = (this.stmt(`SELECT count(*) AS n ${from}`).get(...vals) as { n: number }).n;
    const rows = this.stmt(`SELECT ${HEADER_COLUMNS} ${from} ORDER BY t.iteration, t.split, t.prompt_id, t.sample_index, t.id LIMIT ? OFFSET ?`)
      .all(...vals, f.limit, f.offset) as HeaderRow[];
    return { trajectories: rows.map(toHeader), total };
  }

  /** Per-turn implicit rewards β·log(π/π_ref), stored once the run trained on the trajectory. */
  setTurnRewards(trajectoryId: string, rewards: readonly number[]): void {
    const r = this.stmt('UPDATE trajectories SET turn_rewards = ? WHERE id = ?').run(encodeFloat64(rewards), trajectoryId);
    if (r.changes === 0) throw new NotFoundError('trajectory', trajectoryId);
  }

  getTurnRewards(trajectoryId: string): number[] | null {
    const r = this.stmt('SELECT turn_rewards FROM trajectories WHERE id = ?').get(trajectoryId) as { turn_rewards: Buffer | null } | undefined;
    return r?.turn_rewards ? decodeFloat64(r.turn_rewards) : null;
  }

  /**
   * Resume: drop the (possibly partial) samples of an iteration — its trajectories and the pairs built on them —
   * so the stage can be redone without duplicates. Annotations are kept (they re-attach by trajectory id).
   */
  deleteIterationSamples(runId: string, iteration: number, split?: Split): { trajectories: number; pairs: number } {
    return this.transaction(() => {
      const pairs = this.stmt('DELETE FROM pairs WHERE run_id = ? AND iteration = ?').run(runId, iteration).changes;
      const trajectories = (split
        ? this.stmt('DELETE FROM trajectories WHERE run_id = ? AND iteration = ? AND split = ?').run(runId, iteration, split)
        : this.stmt('DELETE FROM trajectories WHERE run_id = ? AND iteration = ?').run(runId, iteration)).changes;
      return { trajectories, pairs };
    });
  }

  // -------------------------------------------------------------------------------------------- pairs

  insertPairs(pairs: readonly Pair[]): number {
    const ins = this.stmt(`INSERT INTO pairs (id, run_id, iteration, prompt_id, chosen_id, rejected_id) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET run_id = excluded.run_id, iteration = excluded.iteration, prompt_id = excluded.prompt_id,
        chosen_id = excluded.chosen_id, rejected_id = excluded.rejected_id`);
    this.transaction(() => {
      for (const p of pairs) {
        try {
          ins.run(p.id, p.runId, p.iteration, p.promptId, p.chosenId, p.rejectedId);
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
            throw new NotFoundError('trajectory or run', `${p.chosenId} / ${p.rejectedId} / ${p.runId} (store the run and both trajectories before pair ${p.id})`);
          }
          throw err;
        }
      }
    });
    return pairs.length;
  }

  listPairs(runId: string, iteration?: number): Pair[] {
    const rows = (iteration === undefined
      ? this.stmt('SELECT * FROM pairs WHERE run_id = ? ORDER BY iteration, prompt_id, id').all(runId)
      : this.stmt('SELECT * FROM pairs WHERE run_id = ? AND iteration = ? ORDER BY prompt_id, id').all(runId, iteration)) as
      { id: string; run_id: string; iteration: number; prompt_id: string; chosen_id: string; rejected_id: string }[];
    return rows.map((r) => ({ id: r.id, runId: r.run_id, iteration: r.iteration, promptId: r.prompt_id, chosenId: r.chosen_id, rejectedId: r.rejected_id }));
  }

  // -------------------------------------------------------------------------------------------- metrics

  insertMetrics(points: readonly MetricPoint[]): number {
    const ins = this.stmt('INSERT INTO metrics (run_id, iteration, step, name, value) VALUES (?, ?, ?, ?, ?)');
    this.transaction(() => {
      for (const p of points) {
        if (!Number.isFinite(p.value)) continue; // NaN/Infinity are not JSON: the panel could not plot them anyway
        ins.run(p.runId, p.iteration, p.step, p.name, p.value);
      }
    });
    return points.length;
  }

  getMetrics(runId: string, names?: readonly string[]): MetricPoint[] {
    if (names && names.length === 0) return [];
    const where = names ? ` AND name IN (${names.map(() => '?').join(', ')})` : '';
    const rows = this.stmt(`SELECT run_id, iteration, step, name, value FROM metrics WHERE run_id = ?${where} ORDER BY iteration, step, rowid`)
      .all(runId, ...(names ?? [])) as { run_id: string; iteration: number; step: number; name: string; value: number }[];
    return rows.map((r) => ({ runId: r.run_id, iteration: r.iteration, step: r.step, name: r.name, value: r.value }));
  }

  /** Resume of a training stage: drop the metric points it logged (from `fromStep` on) before redoing it. */
  deleteIterationMetrics(runId: string, iteration: number, fromStep = 0): number {
    return this.stmt('DELETE FROM metrics WHERE run_id = ? AND iteration = ? AND step >= ?').run(runId, iteration, fromStep).changes;
  }

  // -------------------------------------------------------------------------------------------- evaluations

  /** Stores (or replaces) the evaluation of an iteration, with its breakdown (none when absent). */
  insertEval(e: EvalInput): EvalRecord {
    this.stmt(`INSERT INTO evals (run_id, iteration, pass1, pass_k, k, n, ci_low, ci_high, mean_turns, tool_error_rate, problems, breakdown, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(run_id, iteration) DO UPDATE SET pass1 = excluded.pass1, pass_k = excluded.pass_k, k = excluded.k, n = excluded.n,
        ci_low = excluded.ci_low, ci_high = excluded.ci_high, mean_turns = excluded.mean_turns, tool_error_rate = excluded.tool_error_rate,
        problems = excluded.problems, breakdown = excluded.breakdown, created_at = excluded.created_at`).run(e.runId, e.iteration, e.pass1, e.passK, e.k, e.n,
      e.ci95[0], e.ci95[1], e.meanTurns, e.toolErrorRate, JSON.stringify(e.problems), e.breakdown ? JSON.stringify(e.breakdown) : null, e.createdAt ?? now());
    return this.getEval(e.runId, e.iteration)!;
  }

  getEval(runId: string, iteration: number): EvalRecord | null {
    const r = this.stmt('SELECT * FROM evals WHERE run_id = ? AND iteration = ?').get(runId, iteration) as EvalRow | undefined;
    return r ? toEval(r) : null;
  }

  listEvals(runId: string): EvalRecord[] {
    return (this.stmt('SELECT * FROM evals WHERE run_id = ? ORDER BY iteration').all(runId) as EvalRow[]).map(toEval);
  }

  // -------------------------------------------------------------------------------------------- annotations

  /** Creates or replaces the annotation of a stored trajectory (NotFoundError when the trajectory is unknown). */
  setAnnotation(input: AnnotationInput): Annotation {
    const a = Annotation.parse({ ...input, updatedAt: now() });
    const t = this.stmt('SELECT run_id FROM trajectories WHERE id = ?').get(a.trajectoryId) as { run_id: string } | undefined;
    if (!t) throw new NotFoundError('trajectory', a.trajectoryId);
    this.stmt(`INSERT INTO annotations (trajectory_id, run_id, label, note, turn, reward_override, author, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(trajectory_id) DO UPDATE SET run_id = excluded.run_id, label = excluded.label, note = excluded.note, turn = excluded.turn,
        reward_override = excluded.reward_override, author = excluded.author, updated_at = excluded.updated_at`)
      .run(a.trajectoryId, t.run_id, a.label, a.note, a.turn, a.rewardOverride, a.author, a.updatedAt);
    return a;
  }

  getAnnotation(trajectoryId: string): Annotation | null {
    const r = this.stmt('SELECT * FROM annotations WHERE trajectory_id = ?').get(trajectoryId) as AnnotationRow | undefined;
    return r ? toAnnotation(r) : null;
  }

  /** The run id an annotation belongs to (for the `annotation/changed` event). */
  annotationRunId(trajectoryId: string): string | null {
    const r = this.stmt('SELECT run_id FROM annotations WHERE trajectory_id = ?').get(trajectoryId) as { run_id: string } | undefined;
    return r?.run_id ?? null;
  }

  listAnnotations(runId?: string): Annotation[] {
    const rows = (runId === undefined
      ? this.stmt('SELECT * FROM annotations ORDER BY updated_at, trajectory_id').all()
      : this.stmt('SELECT * FROM annotations WHERE run_id = ? ORDER BY updated_at, trajectory_id').all(runId)) as AnnotationRow[];
    return rows.map(toAnnotation);
  }

  deleteAnnotation(trajectoryId: string): boolean {
    return this.stmt('DELETE FROM annotations WHERE trajectory_id = ?').run(trajectoryId).changes > 0;
  }

  /** trajectory id → the reward a person set in a `grader_disagreement` annotation; pair building uses these. */
  rewardOverrides(runId: string): Map<string, number> {
    const rows = this.stmt(`SELECT trajectory_id, reward_override FROM annotations
      WHERE run_id = ? AND label = 'grader_disagreement' AND reward_override IS NOT NULL`).all(runId) as { trajectory_id: string; reward_override: number }[];
    return new Map(rows.map((r) => [r.trajectory_id, r.reward_override]));
  }

  // -------------------------------------------------------------------------------------------- checkpoints

  /** Records a checkpoint; `isBest` moves the run's best mark to it. */
  addCheckpoint(c: CheckpointInput): CheckpointRecord {
    return this.transaction(() => {
      this.requireRun(c.runId);
      if (c.isBest) this.stmt('UPDATE checkpoints SET is_best = 0 WHERE run_id = ?').run(c.runId);
      const r = this.stmt('INSERT INTO checkpoints (run_id, iteration, path, metrics, is_best, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(c.runId, c.iteration, c.path, JSON.stringify(c.metrics), c.isBest ? 1 : 0, now());
      return toCheckpoint(this.stmt('SELECT * FROM checkpoints WHERE id = ?').get(r.lastInsertRowid) as CheckpointRow);
    });
  }

  /** Moves the run's best mark to the checkpoint of `iteration` (the pipeline calls it after an evaluation). */
  markBestCheckpoint(runId: string, iteration: number): void {
    this.transaction(() => {
      this.stmt('UPDATE checkpoints SET is_best = 0 WHERE run_id = ?').run(runId);
      this.stmt('UPDATE checkpoints SET is_best = 1 WHERE id = (SELECT id FROM checkpoints WHERE run_id = ? AND iteration = ? ORDER BY id DESC LIMIT 1)').run(runId, iteration);
    });
  }

  listCheckpoints(runId: string): CheckpointRecord[] {
    return (this.stmt('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY iteration, id').all(runId) as CheckpointRow[]).map(toCheckpoint);
  }

  bestCheckpoint(runId: string): CheckpointRecord | null {
    const r = this.stmt('SELECT * FROM checkpoints WHERE run_id = ? AND is_best = 1 ORDER BY id DESC LIMIT 1').get(runId) as CheckpointRow | undefined;
    return r ? toCheckpoint(r) : null;
  }

  // -------------------------------------------------------------------------------------------- compare

  /**
   * Held-out outcomes of two (run, iteration)s on the prompts both evaluated. Each side's trajectory for a prompt
   * is its lowest sample index on the eval split (the greedy sample).
   */
  compare(a: { runId: string; iteration: number }, b: { runId: string; iteration: number }): CompareResultT {
    const side = (s: { runId: string; iteration: number }) => {
      const rows = this.stmt(`SELECT ${HEADER_COLUMNS} FROM trajectories t LEFT JOIN annotations a ON a.trajectory_id = t.id
        WHERE t.run_id = ? AND t.iteration = ? AND t.split = 'eval' ORDER BY t.prompt_id, t.sample_index`).all(s.runId, s.iteration) as HeaderRow[];
      const byPrompt = new Map<string, TrajectoryHeader>();
      for (const r of rows) if (!byPrompt.has(r.prompt_id)) byPrompt.set(r.prompt_id, toHeader(r));
      return byPrompt;
    };
    const left = side(a);
    const right = side(b);
    const out: CompareResultT = { fixed: [], broken: [], sameCorrect: 0, sameWrong: 0 };
    for (const [promptId, ha] of left) {
      const hb = right.get(promptId);
      if (!hb) continue;
      const ca = ha.outcome === 'correct';
      const cb = hb.outcome === 'correct';
      if (ca && cb) out.sameCorrect++;
      else if (!ca && !cb) out.sameWrong++;
      else (cb ? out.fixed : out.broken).push({ promptId, question: ha.question, a: ha, b: hb });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------- events

  /**
   * Appends events (seq assigned by the EventBus) in one transaction and returns the last seq stored. Another
   * process writing to the same database (the experiment's parallel runs, a CLI run beside a daemon) may have
   * taken a seq already: such an event is stored with the next free seq, so no event is lost and seq stays
   * unique and increasing in the order each process emitted.
   */
  appendEvents(events: readonly DaemonEvent[]): number {
    if (events.length === 0) return 0;
    const ins = this.stmt('INSERT INTO events (seq, run_id, type, json) VALUES (?, ?, ?, ?)');
    // transaction() is IMMEDIATE: the write lock is taken before the last seq is read, so no other writer slips in between.
    return this.transaction(() => {
      let last = this.lastSeq();
      for (const e of events) {
        const seq = e.seq > last ? e.seq : last + 1;
        ins.run(seq, e.runId, e.type, JSON.stringify(seq === e.seq ? e : { ...e, seq }));
        last = seq;
      }
      return last;
    });
  }

  appendEvent(e: DaemonEvent): number {
    return this.appendEvents([e]);
  }

  /** Events with seq > afterSeq, oldest first, optionally of one run. */
  eventsAfter(afterSeq: number, runId?: string, limit = 10_000): DaemonEvent[] {
    const rows = (runId === undefined
      ? this.stmt('SELECT json FROM events WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit)
      : this.stmt('SELECT json FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(runId, afterSeq, limit)) as { json: string }[];
    return rows.map((r) => JSON.parse(r.json) as DaemonEvent);
  }

  /** A run's `run/status` events, oldest first (where its time went: stageTimes.ts). */
  statusEvents(runId: string): RunStatusEvent[] {
    const rows = this.stmt("SELECT json FROM events WHERE run_id = ? AND type = 'run/status' ORDER BY seq").all(runId) as { json: string }[];
    return rows.map((r) => JSON.parse(r.json) as RunStatusEvent);
  }

  lastSeq(): number {
    return (this.stmt('SELECT coalesce(max(seq), 0) AS s FROM events').get() as { s: number }).s;
  }

  /** Drops events with seq <= beforeSeq (housekeeping; clients that far behind re-read the store instead). */
  pruneEvents(beforeSeq: number): number {
    return this.stmt('DELETE FROM events WHERE seq <= ?').run(beforeSeq).changes;
  }

  // -------------------------------------------------------------------------------------------- resume state

  /** Opaque per-run resume state (the pipeline's own JSON: stage, rng state, checkpoint paths...). */
  setRunState(runId: string, state: unknown): void {
    this.stmt(`INSERT INTO run_state (run_id, json, updated_at) VALUES (?, ?, ?)
      ON CONFLICT(run_id) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at`).run(runId, JSON.stringify(state), now());
  }

  getRunState<T = unknown>(runId: string): T | null {
    const r = this.stmt('SELECT json FROM run_state WHERE run_id = ?').get(runId) as { json: string } | undefined;
    return r ? (JSON.parse(r.json) as T) : null;
  }

  // -------------------------------------------------------------------------------------------- lifecycle

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stmts.clear();
    this.db.close();
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  private requireRun(runId: string): void {
    if (!this.stmt('SELECT 1 FROM runs WHERE id = ?').get(runId)) throw new NotFoundError('run', runId);
  }
}

/** Opens (creating, and migrating when needed) the store at `path`; `':memory:'` for a throwaway one. */
export function openStore(path: string, opts?: OpenStoreOptions): Store {
  return new Store(path, opts);
}
