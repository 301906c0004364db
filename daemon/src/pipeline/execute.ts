/**
 * Algorithm 1 of the paper, one run: SFT (optional) → for t = 1..T: sample N trajectories per prompt from the
 * current policy (optionally a mixture with the previous one) → grade → build pairs → train (M-DPO, M-KTO, RAFT or
 * unmasked DPO) against reference = previous iteration (or the fixed SFT model) → evaluate greedy pass@1 and
 * pass@k on the held-out split → keep the best checkpoint.
 *
 * Every stage commits its results to the store before the next begins, and progress is kept in the run's resume
 * state, so a daemon killed at any point continues from the last committed state: sampled trajectories are
 * committed one by one (a restart samples only the missing ones), pairs and checkpoints once per iteration.
 */
import { join } from 'node:path';
import type { DaemonEventInput, RunConfig, Stage, Trajectory } from '@mathagent/shared';
import type { Store } from '../store';
import type { Demo, Problem } from '../data/types';
import { generateDemos, type Level } from '../data/synthetic';
import { generateCopyDrills } from '../data/copyDrills';
import { getProblems } from '../data';
import { dataDir } from '../data/datasets';
import { getTemplate, type ChatTemplate } from '../env/templates';
import { SandboxPool } from '../env/sandbox';
import { rollout, type RolloutItem } from '../env/rollout';
import { renderDemo } from '../env/demos';
import type { Policy } from '../env/policy';
import { buildPairs, raftTrainingSet } from './pairs';
import { evalBreakdown, summarizeEval } from './stats';
import { hashSeed } from './rng';
import { toHeader, trajectoryId } from './headers';
import type { Engine, ModelHandle, TrainSequence } from './engine';
import { PythonTool, pythonRiskMessage, withPython } from '../env/pythonTool';
import { OpenAIPolicy, resolveTokenizer } from '../policy';
import { ExternalTrainer, type ExternalStepState } from './externalTrainer';

/** What the run has committed so far (stored as the run's resume state). */
export interface ResumeState {
  /** Path of the SFT (iteration 0) checkpoint once it is committed. */
  sftCheckpoint: string | null;
  /** Checkpoint of the latest completed iteration (the current policy); null before SFT. */
  policyCheckpoint: string | null;
  /** Checkpoint of the iteration before it (for mixture sampling and the `previous` reference). */
  previousCheckpoint: string | null;
  /** Iteration in progress (1-based) and the last phase committed within it. */
  iteration: number;
  phase: 'start' | 'sampled' | 'paired' | 'trained' | 'evaluated';
  sftEvaluated: boolean;
  /** Global optimiser step counter (for metric x-axes across iterations). */
  step: number;
  /** The external trainer's last finished step (config `externalTrainer`). */
  external?: ExternalStepState | null;
  /** Best greedy pass@1 on the dev split so far (data.devPrompts > 0: the checkpoint is selected on dev, not eval). */
  bestDevPass1?: number | null;
}

/** Stands in for the local model when a remote policy samples (nothing to load or dispose). */
const REMOTE_MODEL: ModelHandle = { dispose() { /* the model lives on the servers */ } };

export interface ExecuteDeps {
  store: Store;
  emit: (e: DaemonEventInput) => void;
  engine: Engine;
  /** Folder for this run's checkpoints. */
  runDir: string;
  signal: AbortSignal;
}

const initialState = (): ResumeState => ({ sftCheckpoint: null, policyCheckpoint: null, previousCheckpoint: null, iteration: 1, phase: 'start', sftEvaluated: false, step: 0 });

/** `builtin:<name>` names a checkpoint shipped in data/checkpoints/; anything else is a path. */
export function resolveCheckpoint(spec: string): string {
  return spec.startsWith('builtin:') ? join(dataDir(), 'checkpoints', spec.slice('builtin:'.length)) : spec;
}

export class RunAborted extends Error { constructor() { super('run stopped'); } }

/**
 * The problems a run uses in one role: fresh training prompts every iteration (online), fixed dev and held-out sets
 * for every evaluation. Exported so `mathagent eval` checks the very problems its run will evaluate.
 */
export function runProblems(cfg: RunConfig, split: 'train' | 'eval' | 'dev', count: number, iteration = 0): Problem[] {
  const { dataset, difficulty } = cfg.data;
  if (split === 'train' && cfg.data.promptsFromDemos && dataset === 'synthetic') {
    const demos = taskDemos(cfg);
    if (demos.length === 0) throw new Error('data.promptsFromDemos needs SFT demonstrations: set sft.demos > 0');
    // Iteration t takes the next `count` problems (wrapping around), so iterations see different prompts.
    const start = (Math.max(0, iteration - 1) * count) % demos.length;
    return Array.from({ length: Math.min(count, demos.length) }, (_, i) => demos[(start + i) % demos.length]!.problem);
  }
  const seed = split === 'train' ? hashSeed(cfg.seed, 'train', iteration) : hashSeed(cfg.seed, split);
  return getProblems({ dataset, split, count, seed, level: difficulty as Level, heldOut: cfg.data.heldOut });
}

/** The task's SFT demonstrations of a run (without copy drills): a function of the config alone. */
function taskDemos(cfg: RunConfig): Demo[] {
  const { sft } = cfg;
  return generateDemos({ seed: hashSeed(cfg.seed, 'demos'), count: sft.demos, flawedShare: sft.flawedShare, level: cfg.data.difficulty as Level, flawFamilies: sft.flawFamilies ?? undefined, heldOut: cfg.data.heldOut });
}

/** The SFT demonstrations of a run and its copy drills: a function of the config alone. */
export function sftDemos(cfg: RunConfig): Demo[] {
  return [...taskDemos(cfg), ...generateCopyDrills(hashSeed(cfg.seed, 'drills'), Math.round(cfg.sft.demos * cfg.sft.copyDrills))];
}

/** A run that trains nothing (no iterations, no SFT steps): it only evaluates its starting model. */
export const isEvalOnly = (cfg: RunConfig): boolean => cfg.iterations === 0 && !(cfg.sft.enabled && cfg.sft.steps > 0);

export async function executeRun(runId: string, config: RunConfig, deps: ExecuteDeps): Promise<void> {
  const x = new Execution(runId, config, deps);
  try { await x.run(); } finally { await x.close(); }
}

class Execution {
  private readonly template: ChatTemplate;
  private readonly tools: SandboxPool;
  /** The mathjs pool, with python cells sent to the Python tool when `tool.python` is on. */
  private readonly toolProvider: Pick<SandboxPool, 'session'>;
  private readonly python: PythonTool | null;
  /** Remote policy (config `policy.kind: "openai"`): samples and evaluates instead of the local model. */
  private readonly remote: OpenAIPolicy | null;
  private readonly external: ExternalTrainer | null;
  private st: ResumeState;
  private policyModel: ModelHandle | null = null;
  /** cfg.limits, with maxTrajectoryTokens lowered to the model's context for an evaluation-only run. */
  private limits: RunConfig['limits'];

  constructor(private readonly runId: string, private readonly cfg: RunConfig, private readonly d: ExecuteDeps) {
    const pc = cfg.policy;
    if (pc.kind === 'openai' && !cfg.externalTrainer && cfg.iterations > 0) {
      throw new Error('policy.kind "openai" trains through externalTrainer (the model lives on the servers); set externalTrainer, or iterations: 0 to only sample and evaluate');
    }
    if (cfg.externalTrainer && pc.kind !== 'openai') throw new Error('externalTrainer needs policy.kind "openai": the checkpoint it trains is sampled through a server');
    this.template = getTemplate(pc.kind === 'openai' ? pc.template : 'mathagent');
    this.limits = cfg.limits;
    this.st = { ...initialState(), ...(d.store.getRunState<ResumeState>(runId) ?? {}) };
    this.tools = new SandboxPool({ timeoutMs: cfg.limits.toolTimeoutMs });
    this.python = cfg.tool.python ? new PythonTool({ timeoutMs: cfg.tool.pythonTimeoutMs }) : null;
    this.toolProvider = this.python ? withPython(this.tools, this.python) : this.tools;
    this.remote = pc.kind === 'openai' ? new OpenAIPolicy({
      endpoints: pc.endpoints, model: pc.model, template: this.template, tokenizer: resolveTokenizer(pc.tokenizer, this.template), sendTokenIds: pc.sendTokenIds,
      pool: { concurrency: pc.concurrency, timeoutMs: pc.timeoutMs, retries: pc.retries }, log: (line) => this.log(line, 'warn'),
    }) : null;
    this.external = cfg.externalTrainer && this.remote && pc.kind === 'openai' ? new ExternalTrainer(cfg.externalTrainer, {
      runDir: d.runDir, pool: this.remote.pool, policy: this.remote, apiKeyFile: pc.endpoints[0]?.apiKeyFile, signal: d.signal,
      log: (level, message) => this.d.emit({ type: 'log', runId: this.runId, level, message }),
      getState: () => this.st.external ?? null, setState: (external) => this.commit({ external }),
    }) : null;
  }

  async close(): Promise<void> {
    this.policyModel?.dispose();
    this.remote?.dispose();
    this.python?.close();
    await this.external?.close();
    await this.tools.close();
  }

  private commit(patch: Partial<ResumeState>): void {
    this.st = { ...this.st, ...patch };
    this.d.store.setRunState(this.runId, this.st);
  }

  private checkAbort(): void { if (this.d.signal.aborted) throw new RunAborted(); }

  private status(stage: Stage | null, iteration: number, progress: { kind: 'begin' | 'report' | 'end'; done: number; total: number; message?: string } | null): void {
    this.d.store.updateRun(this.runId, { stage, iteration });
    this.d.emit({ type: 'run/status', runId: this.runId, state: 'running', stage, iteration, progress, error: null });
  }

  /** begin/report/end progress for one stage; reports are throttled to ~4 per second. */
  private progress(stage: Stage, iteration: number, total: number, message?: string) {
    let last = 0;
    this.status(stage, iteration, { kind: 'begin', done: 0, total, message });
    return {
      report: (done: number) => {
        const now = Date.now();
        if (now - last < 250 && done < total) return;
        last = now;
        this.d.emit({ type: 'run/status', runId: this.runId, state: 'running', stage, iteration, progress: { kind: 'report', done, total, message }, error: null });
      },
      end: (done = total) => this.d.emit({ type: 'run/status', runId: this.runId, state: 'running', stage, iteration, progress: { kind: 'end', done, total, message }, error: null }),
    };
  }

  private log(message: string, level: 'info' | 'warn' = 'info'): void {
    this.d.emit({ type: 'log', runId: this.runId, level, message });
  }

  // ------------------------------------------------------------------------------------------------ data

  private problems(split: 'train' | 'eval' | 'dev', count: number, iteration = 0): Problem[] {
    return runProblems(this.cfg, split, count, iteration);
  }

  /**
   * Training needs whole trajectories inside the model's context; an evaluation-only run instead generates at most
   * a context's worth (a checkpoint trained with shorter trajectories is still evaluated, as `mathagent eval` did).
   */
  private fitContext(model: ModelHandle): void {
    const context = this.d.engine.contextLength(model);
    if (context >= this.limits.maxTrajectoryTokens) return;
    if (isEvalOnly(this.cfg)) {
      this.log(`limits.maxTrajectoryTokens ${this.limits.maxTrajectoryTokens} lowered to the model's context length ${context}`);
      this.limits = { ...this.limits, maxTrajectoryTokens: context, maxTurnTokens: Math.min(this.limits.maxTurnTokens, context) };
      return;
    }
    model.dispose();
    throw new Error(`limits.maxTrajectoryTokens (${this.limits.maxTrajectoryTokens}) exceeds the model's context length (${context}) of ${this.cfg.model.init}; lower limits.maxTrajectoryTokens`);
  }

  // ------------------------------------------------------------------------------------------------ stages

  async run(): Promise<void> {
    const { engine } = this.d;
    if (this.python) this.log(pythonRiskMessage(this.python.info(), this.python.timeoutMs), 'warn');
    if (this.remote) {
      // The served model is the starting policy: no local model, no SFT stage.
      this.policyModel = REMOTE_MODEL;
      if (this.st.policyCheckpoint === null) this.commit({ policyCheckpoint: this.cfg.model.init ?? '', iteration: 1, phase: 'start' });
      // A restarted daemon lost the server it had started for the latest trained checkpoint: start it again.
      const ex = this.st.external;
      if (this.external && ex?.step === 'served') await this.external.serve(ex.checkpoint, ex.iteration);
    } else if (!this.st.policyCheckpoint) {
      // SFT stage (iteration 0).
      const init = this.cfg.model.init ? resolveCheckpoint(this.cfg.model.init) : null;
      const model = init ? await engine.load(init) : engine.newModel(this.cfg.model.preset, this.cfg.seed, this.cfg.limits.maxTrajectoryTokens);
      this.fitContext(model);
      // With `model.init`, SFT (when enabled) continues from that checkpoint.
      if (this.cfg.sft.enabled && this.cfg.sft.steps > 0) await this.sft(model);
      // An evaluation-only run of an existing checkpoint evaluates it where it is (no copy of the weights).
      const path = init && isEvalOnly(this.cfg) ? init : join(this.d.runDir, 'iter-0');
      if (path !== init) await engine.save(model, path, { runId: this.runId, iteration: 0 });
      this.d.store.addCheckpoint({ runId: this.runId, iteration: 0, path, metrics: {} });
      this.policyModel = model;
      this.commit({ sftCheckpoint: path, policyCheckpoint: path, previousCheckpoint: null, iteration: 1, phase: 'start' });
    } else {
      this.policyModel = await engine.load(this.st.policyCheckpoint);
      this.fitContext(this.policyModel);
    }
    if (!this.st.sftEvaluated && this.cfg.eval.initial) {
      await this.evaluate(0, this.policyModel);
      this.commit({ sftEvaluated: true });
    }
    while (this.st.iteration <= this.cfg.iterations) {
      await this.iteration(this.st.iteration);
    }
    this.status('done', this.cfg.iterations, null);
  }

  private async sft(model: ModelHandle): Promise<void> {
    const { sft } = this.cfg;
    const demos = sftDemos(this.cfg);
    const p = this.progress('sft', 0, demos.length, 'rendering demonstrations');
    const seqs: TrainSequence[] = [];
    // Each demonstration gets its own interpreter session (its own variables), rendered a few at a time.
    let done = 0;
    const render = async (demo: (typeof demos)[number]) => {
      const session = this.tools.session();
      try { return await renderDemo(demo, this.template, this.d.engine.tokenizer, session); } finally { session.dispose(); }
    };
    for (let i = 0; i < demos.length; i += 16) {
      this.checkAbort();
      const rendered = await Promise.all(demos.slice(i, i + 16).map(render));
      for (const r of rendered) seqs.push({ tokenIds: r.tokenIds, actionMask: r.actionMask });
      p.report((done += rendered.length));
    }
    p.end();
    const t = this.progress('sft', 0, sft.steps, 'supervised fine-tuning');
    await this.d.engine.trainSft(model, seqs, {
      steps: sft.steps, lr: sft.lr, batchSize: sft.batchSize, warmupSteps: Math.min(20, Math.floor(sft.steps / 10)), schedule: sft.schedule, seed: this.cfg.seed,
      signal: this.d.signal,
      onStep: (step, metrics) => { this.metrics(0, step, 'sft', metrics); t.report(step); },
    });
    t.end();
  }

  private metrics(iteration: number, step: number, phase: 'sft' | 'pref', metrics: Record<string, number>): void {
    const globalStep = phase === 'sft' ? step : this.st.step + step;
    this.d.store.insertMetrics(Object.entries(metrics).map(([name, value]) => ({ runId: this.runId, iteration, step: globalStep, name: phase === 'sft' ? `sft/${name}` : name, value })));
    this.d.emit({ type: 'train/metrics', runId: this.runId, iteration, step: globalStep, phase, metrics });
  }

  private async iteration(t: number): Promise<void> {
    const { engine, store } = this.d;
    const policy = this.policyModel!;
    const trainProblems = this.problems('train', this.cfg.data.trainPrompts, t);
    // 1. Sample (committed trajectory by trajectory; a resume samples only what is missing).
    if (this.st.phase === 'start') {
      store.upsertIteration({ runId: this.runId, iteration: t, stage: 'sample' });
      await this.sample(t, trainProblems, policy);
      this.commit({ phase: 'sampled' });
    }
    this.checkAbort();
    const trajs = store.listTrajectories(this.runId, t, 'train');
    // 2. Pairs (or the RAFT selection).
    if (this.st.phase === 'sampled') {
      this.status('pairs', t, null);
      const overrides = store.rewardOverrides(this.runId);
      const { pairs, skipped, droppedToolErrorCorrect } = buildPairs(trajs, { seed: hashSeed(this.cfg.seed, 'pairs', t), pairsPerPrompt: this.cfg.train.pairsPerPrompt, overrides });
      store.insertPairs(pairs.map((p, i) => ({ id: `${this.runId}:p${t}:${i}`, runId: this.runId, iteration: t, promptId: p.promptId, chosenId: p.chosen.id, rejectedId: p.rejected.id })));
      store.upsertIteration({ runId: this.runId, iteration: t, stage: 'pairs', trajectories: trajs.length, correct: trajs.filter((x) => x.reward >= 1).length, pairs: pairs.length, skipped: { ...skipped, dropped_tool_error_correct: droppedToolErrorCorrect } });
      this.log(`iteration ${t}: ${pairs.length} pairs from ${trainProblems.length} prompts (skipped: ${skipped.all_correct} all-correct, ${skipped.all_wrong} all-wrong, ${skipped.only_tool_error_correct} tool-error-only)`);
      this.commit({ phase: 'paired' });
    }
    this.checkAbort();
    // 3. Train against the reference, then save the new policy (or hand the pairs to the external trainer).
    if (this.st.phase === 'paired' && this.external) await this.trainExternal(t, trajs);
    if (this.st.phase === 'paired') {
      const pairs = this.storedPairs(t, trajs);
      store.upsertIteration({ runId: this.runId, iteration: t, stage: 'train' });
      // The model being trained starts as a copy of the current policy, which stays the reference/previous policy.
      const student = await engine.load(this.st.policyCheckpoint!);
      let steps = 0;
      const tr = this.cfg.train;
      if (this.cfg.algorithm === 'raft') {
        const kept = raftTrainingSet(trajs, pairs, { from: tr.raftFrom, seed: hashSeed(this.cfg.seed, 'raft', t), keep: tr.raftKeep, overrides: store.rewardOverrides(this.runId) });
        const total = Math.ceil((kept.length * tr.epochs) / tr.batchSize);
        const p = this.progress('train', t, total, `RAFT on ${kept.length} trajectories`);
        if (kept.length) {
          steps = await engine.trainSft(student, kept.map((k) => ({ tokenIds: k.tokenIds, actionMask: k.actionMask })), {
            steps: total, lr: tr.lr, batchSize: tr.batchSize, warmupSteps: tr.warmupSteps, seed: hashSeed(this.cfg.seed, 'train', t), signal: this.d.signal,
            onStep: async (step, m) => { this.metrics(t, step, 'pref', m); p.report(step); if (step < total) await this.stepEval(t, step, student); },
          });
        }
        p.end();
      } else if (pairs.length) {
        const reference = tr.reference === 'sft' ? await engine.load(this.st.sftCheckpoint!) : policy;
        const total = Math.ceil((pairs.length * tr.epochs) / tr.batchSize);
        const p = this.progress('train', t, total, `${this.cfg.algorithm} on ${pairs.length} pairs`);
        try {
          steps = await engine.trainPreference(student, reference, pairs, {
            algorithm: this.cfg.algorithm, ...tr, seed: hashSeed(this.cfg.seed, 'train', t), signal: this.d.signal,
            onStep: async (step, m) => { this.metrics(t, step, 'pref', m); p.report(step); if (step < total) await this.stepEval(t, step, student); },
          });
        } finally { if (reference !== policy) reference.dispose(); }
        p.end();
      } else {
        this.log(`iteration ${t}: no pairs, the policy is unchanged`, 'warn');
      }
      this.checkAbort();
      const path = join(this.d.runDir, `iter-${t}`);
      await engine.save(student, path, { runId: this.runId, iteration: t });
      store.addCheckpoint({ runId: this.runId, iteration: t, path, metrics: {} });
      this.policyModel?.dispose();
      this.policyModel = student;
      this.commit({ phase: 'trained', previousCheckpoint: this.st.policyCheckpoint, policyCheckpoint: path, step: this.st.step + steps });
    }
    this.checkAbort();
    // 4. Evaluate the new policy on the held-out split.
    if (this.st.phase === 'trained') {
      await this.evaluate(t, this.policyModel!);
      this.commit({ phase: 'evaluated' });
    }
    this.commit({ iteration: t + 1, phase: 'start' });
  }

  private async trainExternal(t: number, trajs: Trajectory[]): Promise<void> {
    const pairs = this.storedPairs(t, trajs);
    this.d.store.upsertIteration({ runId: this.runId, iteration: t, stage: 'train' });
    this.status('train', t, null);
    const path = await this.external!.trainIteration(t, pairs, this.st.policyCheckpoint || null);
    this.d.store.addCheckpoint({ runId: this.runId, iteration: t, path, metrics: {} });
    this.commit({ phase: 'trained', previousCheckpoint: this.st.policyCheckpoint, policyCheckpoint: path });
  }

  /** The iteration's committed pairs with their trajectories (pairs whose trajectories are gone are skipped). */
  private storedPairs(t: number, trajs: Trajectory[]): Array<{ chosen: Trajectory; rejected: Trajectory }> {
    const byId = new Map(trajs.map((x) => [x.id, x]));
    return this.d.store.listPairs(this.runId, t).flatMap((p) => {
      const chosen = byId.get(p.chosenId);
      const rejected = byId.get(p.rejectedId);
      return chosen && rejected ? [{ chosen, rejected }] : [];
    });
  }

  private async sample(t: number, problems: Problem[], policyModel: ModelHandle): Promise<void> {
    const { store, engine } = this.d;
    const { samplesPerPrompt: n, previousPolicyShare } = this.cfg.sampling;
    const done = new Set(store.listTrajectories(this.runId, t, 'train').map((x) => x.id));
    // Mixture sampling needs the previous model locally; a remote pool serves only the current one.
    const nPrev = this.st.previousCheckpoint && !this.remote ? Math.round(n * previousPolicyShare) : 0;
    const items: Array<RolloutItem & { fromPrevious: boolean }> = [];
    for (const problem of problems) {
      for (let k = 0; k < n; k++) {
        const id = trajectoryId(this.runId, t, problem.id, k, 'train');
        if (!done.has(id)) items.push({ id, runId: this.runId, iteration: t, sampleIndex: k, problem, fromPrevious: k < nPrev });
      }
    }
    if (done.size) this.log(`iteration ${t}: resuming sampling, ${done.size} trajectories already committed, ${items.length} to go`);
    const total = problems.length * n;
    const p = this.progress('sample', t, total, `sampling ${n} per prompt`);
    let count = done.size;
    const groups: Array<[boolean, typeof items]> = [[false, items.filter((i) => !i.fromPrevious)], [true, items.filter((i) => i.fromPrevious)]];
    for (const [fromPrevious, group] of groups) {
      if (!group.length) continue;
      const model = fromPrevious ? await engine.load(this.st.previousCheckpoint!) : policyModel;
      const policy = this.remote ?? engine.policy(model, fromPrevious ? `iter${t - 2}` : `iter${t - 1}`);
      try {
        await this.rollout(policy, group, { temperature: this.cfg.sampling.temperature, seed: hashSeed(this.cfg.seed, 'sample', t, fromPrevious ? 1 : 0) }, 'train', () => p.report(++count));
      } finally { if (model !== policyModel) model.dispose(); }
    }
    p.end(count);
  }

  /** Roll out items with live events; each finished trajectory is committed immediately. */
  private async rollout(policy: Policy, items: RolloutItem[], o: { temperature: number; seed: number }, split: 'train' | 'eval', onDone?: () => void, persist = true): Promise<Trajectory[]> {
    const { limits } = this;
    const { sampling } = this.cfg;
    return rollout(policy, items, {
      template: this.template, maxTurns: limits.maxTurns, maxTurnTokens: limits.maxTurnTokens, maxTrajectoryTokens: limits.maxTrajectoryTokens,
      temperature: o.temperature, topP: sampling.topP, batchSize: sampling.batchSize, seed: o.seed, python: this.cfg.tool.python, signal: this.d.signal,
    }, this.toolProvider, {
      onStart: (item) => { if (persist) this.d.emit({ type: 'trajectory/started', runId: this.runId, trajectoryId: item.id, iteration: item.iteration, promptId: item.problem.id, question: item.problem.question, split }); },
      onTurn: (id, turn) => { if (persist) this.d.emit({ type: 'trajectory/turn', runId: this.runId, trajectoryId: id, turn }); },
      onFinish: (traj) => {
        if (persist) {
          this.d.store.insertTrajectories([traj], split);
          this.d.emit({ type: 'trajectory/finished', runId: this.runId, header: toHeader(traj, split) });
        }
        onDone?.();
      },
    });
  }

  private async evaluate(t: number, model: ModelHandle): Promise<void> {
    const { store, engine } = this.d;
    const problems = this.problems(this.cfg.eval.split, this.cfg.data.evalPrompts);
    const { passKPrompts, passKAt } = this.cfg.eval;
    // pass@k only at the ends (the starting model and the final iteration) when asked: k samples cost k greedy passes.
    const k = passKAt === 'every' || t === 0 || t === this.cfg.iterations ? this.cfg.eval.passK : 1;
    const policy = this.remote ?? engine.policy(model, `iter${t}`);
    const greedyItems = problems.map((problem) => ({ id: trajectoryId(this.runId, t, problem.id, 0, 'eval'), runId: this.runId, iteration: t, sampleIndex: 0, problem }));
    const kItems = k > 1 ? problems.slice(0, passKPrompts ?? problems.length).flatMap((problem) => Array.from({ length: k }, (_, s) => ({ id: `${trajectoryId(this.runId, t, problem.id, s + 1, 'eval')}:k`, runId: this.runId, iteration: t, sampleIndex: s + 1, problem }))) : [];
    const total = greedyItems.length + kItems.length;
    const p = this.progress('eval', t, total, `greedy pass@1 on ${problems.length} ${this.cfg.eval.split === 'eval' ? 'held-out' : this.cfg.eval.split} problems` + (k > 1 ? `, pass@${k}` : ''));
    let done = 0;
    // Greedy trajectories committed before an interruption are kept (same ids); only the missing ones are sampled.
    const existing = new Set(store.listTrajectories(this.runId, t, 'eval').map((x) => x.id));
    done = existing.size;
    await this.rollout(policy, greedyItems.filter((i) => !existing.has(i.id)), { temperature: 0, seed: hashSeed(this.cfg.seed, 'eval', t) }, 'eval', () => p.report(++done));
    const allGreedy = store.listTrajectories(this.runId, t, 'eval');
    const sampled = kItems.length ? await this.rollout(policy, kItems, { temperature: this.cfg.eval.evalTemperature, seed: hashSeed(this.cfg.seed, 'evalk', t) }, 'eval', () => p.report(++done), false) : [];
    p.end(done);
    const byPrompt = new Map<string, number>();
    for (const s of sampled) byPrompt.set(s.promptId, (byPrompt.get(s.promptId) ?? 0) + (s.reward >= 1 ? 1 : 0));
    const { pass1, passK, n, ci95, meanTurns, toolErrorRate } = summarizeEval(allGreedy, k, byPrompt);
    store.insertEval({ runId: this.runId, iteration: t, pass1, passK, k, n, ci95, meanTurns, toolErrorRate, breakdown: evalBreakdown(problems, allGreedy),
      problems: allGreedy.map((x) => ({ promptId: x.promptId, correct: x.reward >= 1, correctK: k > 1 ? byPrompt.get(x.promptId) ?? null : null, trajectoryId: x.id })) });
    store.upsertIteration({ runId: this.runId, iteration: t, stage: 'eval', pass1, passK });
    this.d.emit({ type: 'eval/result', runId: this.runId, iteration: t, pass1, passK, k, n, ci95, meanTurns, toolErrorRate });
    const run = store.getRunSummary(this.runId);
    const dev = await this.devScore(t, policy);
    const better = dev !== null
      ? this.st.bestDevPass1 === undefined || this.st.bestDevPass1 === null || dev > this.st.bestDevPass1
      : run !== null && (run.bestPass1 === null || pass1 > run.bestPass1);
    if (run && better) {
      // bestPass1 is the held-out score of the selected checkpoint, whichever split selected it.
      store.updateRun(this.runId, { bestPass1: pass1, bestIteration: t });
      store.markBestCheckpoint(this.runId, t);
      if (dev !== null) this.commit({ bestDevPass1: dev });
    }
  }

  /**
   * eval.everySteps > 0: greedy pass@1 of the model being trained on the held-out problems every K optimiser
   * steps, stored as the metric `eval/pass1` at the global step (a curve within the iteration; the iteration's
   * own evaluation, pass@k and the checkpoint selection still happen once the iteration's training ends).
   */
  private async stepEval(t: number, step: number, model: ModelHandle): Promise<void> {
    const k = this.cfg.eval.everySteps;
    if (k === 0 || step % k !== 0 || this.remote) return;
    const problems = this.problems(this.cfg.eval.split, this.cfg.data.evalPrompts);
    const policy = this.d.engine.policy(model, `iter${t}-step${step}`);
    const pass1 = await this.greedyPass1(t, policy, problems, `step${step}`, hashSeed(this.cfg.seed, 'eval', t));
    const globalStep = this.st.step + step;
    this.d.store.insertMetrics([{ runId: this.runId, iteration: t, step: globalStep, name: 'eval/pass1', value: pass1 }]);
    this.d.emit({ type: 'train/metrics', runId: this.runId, iteration: t, step: globalStep, phase: 'pref', metrics: { 'eval/pass1': pass1 } });
  }

  /**
   * Greedy pass@1 on the dev split (data.devPrompts problems), or null when devPrompts is 0. Selecting the best
   * checkpoint on dev keeps the held-out eval split an unbiased estimate of the selected model.
   */
  private async devScore(t: number, policy: Policy): Promise<number | null> {
    const count = this.cfg.data.devPrompts;
    if (count === 0 || this.cfg.eval.split === 'dev') return null;
    const problems = this.problems('dev', count);
    const p = this.progress('eval', t, problems.length, `greedy pass@1 on ${problems.length} dev problems (checkpoint selection)`);
    let done = 0;
    const score = await this.greedyPass1(t, policy, problems, 'dev', hashSeed(this.cfg.seed, 'dev', t), () => p.report(++done));
    p.end(done);
    this.d.store.insertMetrics([{ runId: this.runId, iteration: t, step: this.st.step, name: 'dev/pass1', value: score }]);
    this.log(`iteration ${t}: dev pass@1 ${(100 * score).toFixed(1)}% on ${problems.length} problems`);
    return score;
  }

  /** Greedy pass@1 of a policy on problems, without storing the trajectories (ids tagged so they never clash). */
  private async greedyPass1(t: number, policy: Policy, problems: Problem[], tag: string, seed: number, onDone?: () => void): Promise<number> {
    const items = problems.map((problem) => ({ id: `${trajectoryId(this.runId, t, problem.id, 0, 'eval')}:${tag}`, runId: this.runId, iteration: t, sampleIndex: 0, problem }));
    const trajs = await this.rollout(policy, items, { temperature: 0, seed }, 'eval', onDone, false);
    return trajs.filter((x) => x.reward >= 1).length / Math.max(1, trajs.length);
  }
}
