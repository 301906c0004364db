/**
 * The wire protocol between the daemon and its clients (the VS Code extension, the CLI, tests).
 * JSON-RPC 2.0 over one WebSocket per client; one text frame = one JSON-RPC message.
 *
 * Conventions (after vscode-languageserver-node):
 * - every request is `namespace/verb` with a zod `Params` and `Result` schema, and a doc comment that says who
 *   sends it and why;
 * - error policy: params failing their schema → InvalidParams; unknown method → MethodNotFound; malformed JSON →
 *   ParseError; a handler that throws → InternalError (message says what to fix); the connection stays usable;
 * - events are notifications `event` with a typed payload union; each carries the `runId` and a daemon-wide,
 *   monotonically increasing `seq`, so a client that reconnects asks `events/replay` for everything after its
 *   last `seq` and misses nothing;
 * - the daemon sends `connected` (protocol version, daemon version) as the first message on every connection.
 */
import { z } from 'zod';
import { Annotation, AnnotationLabel, OutcomeLabel, Pair, Trajectory, Turn } from './trajectory';
import { Algorithm, RunConfig } from './runConfig';

export const PROTOCOL_VERSION = 1;

export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Not authorised (never sent: the upgrade is refused instead), kept for completeness. */
  Unauthorized: -32001,
  /** The requested run/trajectory does not exist. */
  NotFound: -32004,
  /** Too many messages per second from this client. */
  RateLimited: -32029,
  /** A valid request the daemon declined (e.g. deleting an active run); the message says what to do (LSP's code). */
  RequestFailed: -32803,
} as const;

// ---------------------------------------------------------------------------------------------------------
// Shared shapes
// ---------------------------------------------------------------------------------------------------------

export const RunState = z.enum(['queued', 'running', 'stopping', 'stopped', 'finished', 'failed']);
export type RunState = z.infer<typeof RunState>;

export const Stage = z.enum(['sft', 'sample', 'grade', 'pairs', 'train', 'eval', 'done']);
export type Stage = z.infer<typeof Stage>;

/**
 * What a run does: `train` runs Algorithm 1 (SFT, then sample → pairs → train → eval per iteration); `eval` only
 * evaluates a checkpoint or a served model (iteration 0, no training): what `mathagent eval` stores.
 */
export const RunKind = z.enum(['train', 'eval']);
export type RunKind = z.infer<typeof RunKind>;

export const RunSummary = z.object({
  id: z.string(),
  name: z.string(),
  /** Defaults to `train` so a daemon older than run kinds still parses. */
  kind: RunKind.default('train'),
  algorithm: Algorithm,
  state: RunState,
  stage: Stage.nullable(),
  iteration: z.number().int(),
  iterations: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  error: z.string().nullable(),
  /** Best held-out greedy pass@1 so far and the iteration it came from. */
  bestPass1: z.number().nullable(),
  bestIteration: z.number().int().nullable(),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const IterationSummary = z.object({
  runId: z.string(),
  iteration: z.number().int(),
  stage: Stage,
  trajectories: z.number().int(),
  correct: z.number().int(),
  pairs: z.number().int(),
  /** Prompts that gave no pair, by reason: all_correct, all_wrong, only_tool_error_correct. */
  skipped: z.record(z.string(), z.number().int()),
  pass1: z.number().nullable(),
  passK: z.number().nullable(),
});
export type IterationSummary = z.infer<typeof IterationSummary>;

/** A trajectory without its token arrays: what lists and trees need. */
export const TrajectoryHeader = z.object({
  id: z.string(),
  runId: z.string(),
  iteration: z.number().int(),
  promptId: z.string(),
  sampleIndex: z.number().int(),
  split: z.enum(['train', 'eval']),
  question: z.string(),
  outcome: OutcomeLabel,
  reward: z.number(),
  extractedAnswer: z.string().nullable(),
  turns: z.number().int(),
  annotation: AnnotationLabel.nullable(),
});
export type TrajectoryHeader = z.infer<typeof TrajectoryHeader>;

export const MetricPoint = z.object({
  runId: z.string(),
  iteration: z.number().int(),
  step: z.number().int(),
  /** e.g. `loss`, `rewards/chosen`, `rewards/margins`, `logps/rejected`, `grad_norm`, `lr`, `eval/pass1`. */
  name: z.string(),
  value: z.number(),
});
export type MetricPoint = z.infer<typeof MetricPoint>;

/** Greedy pass@1 of one group of held-out problems (one subject, or one level). */
export const BreakdownRow = z.object({
  /** The subject (e.g. `Algebra`) or the level (`1`..`5`). */
  key: z.string(),
  n: z.number().int().min(0),
  correct: z.number().int().min(0),
  pass1: z.number(),
});
export type BreakdownRow = z.infer<typeof BreakdownRow>;

/** Greedy pass@1 by subject and by level, sorted by key; only datasets whose problems have subjects (MATH, MATH-500). */
export const EvalBreakdown = z.object({ subject: z.array(BreakdownRow), level: z.array(BreakdownRow) });
export type EvalBreakdown = z.infer<typeof EvalBreakdown>;

/** The held-out evaluation of one iteration's model: greedy pass@1 with its Wilson 95% interval, pass@k, breakdown. */
export const EvalResult = z.object({
  iteration: z.number().int(),
  pass1: z.number(),
  ci95: z.tuple([z.number(), z.number()]),
  /** null when only the greedy sample was drawn (k = 1). */
  passK: z.number().nullable(),
  k: z.number().int(),
  n: z.number().int(),
  meanTurns: z.number(),
  /** Share of greedy trajectories in which a tool call failed. */
  toolErrorRate: z.number(),
  breakdown: EvalBreakdown.nullable(),
});
export type EvalResult = z.infer<typeof EvalResult>;

// ---------------------------------------------------------------------------------------------------------
// Requests (client → daemon)
// ---------------------------------------------------------------------------------------------------------

/** Client → daemon: what the daemon is (version, backend, datasets, presets). Sent after `connected`. */
export const DaemonInfoParams = z.object({}).strict().default({});
export const DaemonInfoResult = z.object({
  protocolVersion: z.number().int(),
  version: z.string(),
  backend: z.string(),
  backendsAvailable: z.array(z.string()),
  presets: z.array(z.string()),
  datasets: z.array(z.string()),
  lastSeq: z.number().int(),
});

/**
 * Client → daemon: start a run from a preset and/or a config (config fields override the preset). `kind: "eval"`
 * starts an evaluation-only run: the config must have `iterations: 0`, SFT off, and `model.init` or a remote policy.
 */
export const RunStartParams = z.object({
  preset: z.string().optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  kind: RunKind.optional(),
});
export const RunStartResult = z.object({ runId: z.string() });

/** Client → daemon: ask a run to stop at the next safe point (it can be resumed later). */
export const RunStopParams = z.object({ runId: z.string() });
export const RunStopResult = z.object({ stopped: z.boolean() });

/**
 * Client → daemon: delete a run with its trajectories, pairs, metrics, annotations and checkpoint folder (the Runs
 * view's "Delete Run"). Declined with RequestFailed, deleting nothing, when the run looks active or another run
 * starts from its checkpoints, unless `force`; a run this daemon is executing is always declined (stop it first).
 */
export const RunDeleteParams = z.object({ runId: z.string(), force: z.boolean().default(false) });
export const RunDeleteResult = z.object({ deleted: z.boolean() });

/** Client → daemon: resume a stopped or interrupted run from its last committed state. */
export const RunResumeParams = z.object({ runId: z.string() });
export const RunResumeResult = z.object({ resumed: z.boolean() });

/** Client → daemon: all runs, newest first. */
export const RunListParams = z.object({ limit: z.number().int().min(1).max(1000).default(100) }).default({ limit: 100 });
export const RunListResult = z.object({ runs: z.array(RunSummary) });

/**
 * Client → daemon: one run with its config, per-iteration summaries and held-out evaluations (one per evaluated
 * iteration, oldest first, each with its per-subject / per-level breakdown when the dataset has subjects).
 */
export const RunGetParams = z.object({ runId: z.string() });
export const RunGetResult = z.object({
  run: RunSummary,
  config: RunConfig,
  iterations: z.array(IterationSummary),
  /** Defaults to [] so a daemon older than this field still parses. */
  evals: z.array(EvalResult).default([]),
});

/** Client → daemon: trajectory headers of a run, filtered. */
export const TrajectoryListParams = z.object({
  runId: z.string(),
  iteration: z.number().int().optional(),
  split: z.enum(['train', 'eval']).optional(),
  outcomes: z.array(OutcomeLabel).optional(),
  failedOnly: z.boolean().optional(),
  unannotatedOnly: z.boolean().optional(),
  promptId: z.string().optional(),
  offset: z.number().int().min(0).default(0),
  limit: z.number().int().min(1).max(5000).default(500),
});
export const TrajectoryListResult = z.object({ trajectories: z.array(TrajectoryHeader), total: z.number().int() });

/** Client → daemon: one full trajectory (turns, token ids, mask) and its annotation. */
export const TrajectoryGetParams = z.object({ trajectoryId: z.string(), withTokens: z.boolean().default(true) });
export const TrajectoryGetResult = z.object({
  trajectory: Trajectory,
  annotation: Annotation.nullable(),
  /** Decoded text of each token (for the token view), when `withTokens`. */
  tokenTexts: z.array(z.string()).nullable(),
  /** Per-turn implicit reward β·log(π/π_ref) once the run trained on it, else null. */
  turnRewards: z.array(z.number()).nullable(),
});

/** Client → daemon: the pairs of an iteration. */
export const PairListParams = z.object({ runId: z.string(), iteration: z.number().int().optional() });
export const PairListResult = z.object({ pairs: z.array(Pair) });

/** Client → daemon: held-out outcomes of two (run, iteration)s on the same prompts, for Compare. */
export const CompareParams = z.object({
  a: z.object({ runId: z.string(), iteration: z.number().int() }),
  b: z.object({ runId: z.string(), iteration: z.number().int() }),
});
export const CompareRow = z.object({ promptId: z.string(), question: z.string(), a: TrajectoryHeader, b: TrajectoryHeader });
export const CompareResult = z.object({
  fixed: z.array(CompareRow),
  broken: z.array(CompareRow),
  sameCorrect: z.number().int(),
  sameWrong: z.number().int(),
});

/** Client → daemon: create or replace the annotation of a trajectory. */
export const AnnotationSetParams = Annotation.omit({ updatedAt: true });
export const AnnotationSetResult = z.object({ annotation: Annotation });

/** Client → daemon: annotations of a run (for export and the tree). */
export const AnnotationListParams = z.object({ runId: z.string().optional() });
export const AnnotationListResult = z.object({ annotations: z.array(Annotation) });

/** Client → daemon: all metric points of a run (the metrics panel's initial fill; live points arrive as events). */
export const MetricsGetParams = z.object({ runId: z.string(), names: z.array(z.string()).optional() });
export const MetricsGetResult = z.object({ points: z.array(MetricPoint) });

/** Client → daemon: events after `afterSeq` (reconnect without loss). Returns them in order. */
export const EventsReplayParams = z.object({ afterSeq: z.number().int().min(0), runId: z.string().optional(), limit: z.number().int().min(1).max(100_000).default(10_000) });

// ---------------------------------------------------------------------------------------------------------
// Events (daemon → client notifications, method `event`)
// ---------------------------------------------------------------------------------------------------------

const base = { seq: z.number().int(), runId: z.string(), time: z.string() };

export const DaemonEvent = z.discriminatedUnion('type', [
  /** Run state or stage changed; `progress` is begin/report/end of the current stage. */
  z.object({ ...base, type: z.literal('run/status'), state: RunState, stage: Stage.nullable(), iteration: z.number().int(),
    progress: z.object({ kind: z.enum(['begin', 'report', 'end']), done: z.number(), total: z.number(), message: z.string().optional() }).nullable(),
    error: z.string().nullable() }),
  /** A trajectory started sampling. */
  z.object({ ...base, type: z.literal('trajectory/started'), trajectoryId: z.string(), iteration: z.number().int(), promptId: z.string(), question: z.string(), split: z.enum(['train', 'eval']) }),
  /** A model turn (and its observation) finished: the trajectory grows live. */
  z.object({ ...base, type: z.literal('trajectory/turn'), trajectoryId: z.string(), turn: Turn }),
  /** A trajectory was graded and stored. */
  z.object({ ...base, type: z.literal('trajectory/finished'), header: TrajectoryHeader }),
  /** One optimiser step's metrics (TRL names: loss, rewards/chosen, rewards/margins, logps/rejected, ...). */
  z.object({ ...base, type: z.literal('train/metrics'), iteration: z.number().int(), step: z.number().int(), phase: z.enum(['sft', 'pref']), metrics: z.record(z.string(), z.number()) }),
  /** Held-out evaluation of an iteration's model. */
  z.object({ ...base, type: z.literal('eval/result'), iteration: z.number().int(), pass1: z.number(), passK: z.number().nullable(), k: z.number().int(), n: z.number().int(), ci95: z.tuple([z.number(), z.number()]), meanTurns: z.number(), toolErrorRate: z.number() }),
  /**
   * A run was deleted through this daemon (`run/delete`): clients drop it from their views and close its panels.
   * (A run deleted by the CLI beside a running daemon has no event; it disappears at the next refresh.)
   */
  z.object({ ...base, type: z.literal('run/deleted') }),
  /** An annotation was created or changed (so other windows see it). */
  z.object({ ...base, type: z.literal('annotation/changed'), annotation: Annotation }),
  /** A log line for the output channel. */
  z.object({ ...base, type: z.literal('log'), level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string() }),
]);
export type DaemonEvent = z.infer<typeof DaemonEvent>;
export type DaemonEventType = DaemonEvent['type'];
/** A `run/status` event: state, stage and progress (the extension's views; where a run's time went). */
export type RunStatusEvent = Extract<DaemonEvent, { type: 'run/status' }>;
/** An event before the bus assigns `seq` and `time`. */
export type DaemonEventInput = DaemonEvent extends infer E ? (E extends DaemonEvent ? Omit<E, 'seq' | 'time'> : never) : never;

export const EventsReplayResult = z.object({ events: z.array(DaemonEvent), lastSeq: z.number().int() });

/** First message on each connection (daemon → client), Vite-HMR style hello. */
export const ConnectedNotification = z.object({ protocolVersion: z.number().int(), version: z.string(), lastSeq: z.number().int() });

// ---------------------------------------------------------------------------------------------------------
// The method table: one place that names every request and its schemas.
// ---------------------------------------------------------------------------------------------------------

export const Methods = {
  'daemon/info': { params: DaemonInfoParams, result: DaemonInfoResult },
  'run/start': { params: RunStartParams, result: RunStartResult },
  'run/stop': { params: RunStopParams, result: RunStopResult },
  'run/resume': { params: RunResumeParams, result: RunResumeResult },
  'run/delete': { params: RunDeleteParams, result: RunDeleteResult },
  'run/list': { params: RunListParams, result: RunListResult },
  'run/get': { params: RunGetParams, result: RunGetResult },
  'trajectory/list': { params: TrajectoryListParams, result: TrajectoryListResult },
  'trajectory/get': { params: TrajectoryGetParams, result: TrajectoryGetResult },
  'pair/list': { params: PairListParams, result: PairListResult },
  'compare/iterations': { params: CompareParams, result: CompareResult },
  'annotation/set': { params: AnnotationSetParams, result: AnnotationSetResult },
  'annotation/list': { params: AnnotationListParams, result: AnnotationListResult },
  'metrics/get': { params: MetricsGetParams, result: MetricsGetResult },
  'events/replay': { params: EventsReplayParams, result: EventsReplayResult },
} as const;

export type MethodName = keyof typeof Methods;
export type ParamsOf<M extends MethodName> = z.input<(typeof Methods)[M]['params']>;
export type ResultOf<M extends MethodName> = z.infer<(typeof Methods)[M]['result']>;

/** Notification method names (daemon → client). `lsp/*` carries language-server traffic for run configs. */
export const Notifications = { connected: 'connected', event: 'event', lsp: 'lsp/message' } as const;

/** Limits every daemon enforces (documented here so clients know them). */
export const Limits = { maxMessageBytes: 1 << 20, maxRequestsPerSecond: 200 } as const;

/**
 * WebSocket close codes the daemon uses. `SlowConsumer`: the client fell too far behind the event stream (its
 * send queue passed the daemon's bound); reconnect and call `events/replay` with the last `seq` you saw.
 * `MessageTooBig` (1009): a message exceeded `Limits.maxMessageBytes`.
 */
export const CloseCodes = { Normal: 1000, GoingAway: 1001, MessageTooBig: 1009, SlowConsumer: 4008 } as const;
