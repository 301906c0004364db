/**
 * Schema migrations. Each entry moves the schema from version i to i+1 and runs in its own transaction with the
 * version bump, so a crash mid-migration leaves the previous version intact. Append new entries; never edit an
 * entry that has shipped (databases in the wild already ran it).
 */
import type { Database } from 'better-sqlite3';
import { StoreVersionError } from './errors';

export type Migration = (db: Database) => void;

export const MIGRATIONS: readonly Migration[] = [
  // 1: the run store.
  (db) => {
    db.exec(`
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        iterations INTEGER NOT NULL,
        state TEXT NOT NULL,
        stage TEXT,
        iteration INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        best_pass1 REAL,
        best_iteration INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX runs_created ON runs(created_at);

      CREATE TABLE iterations (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        stage TEXT NOT NULL,
        trajectories INTEGER NOT NULL DEFAULT 0,
        correct INTEGER NOT NULL DEFAULT 0,
        pairs INTEGER NOT NULL DEFAULT 0,
        skipped TEXT NOT NULL DEFAULT '{}',
        pass1 REAL,
        pass_k REAL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, iteration)
      );

      CREATE TABLE trajectories (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        prompt_id TEXT NOT NULL,
        sample_index INTEGER NOT NULL,
        split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
        policy TEXT NOT NULL,
        question TEXT NOT NULL,
        reference TEXT NOT NULL,
        template TEXT NOT NULL,
        prompt_text TEXT NOT NULL,
        prompt_token_ids BLOB NOT NULL,
        turns TEXT NOT NULL,
        num_turns INTEGER NOT NULL,
        turn_token_ids BLOB NOT NULL,
        logprobs BLOB NOT NULL,
        token_ids BLOB,
        action_mask BLOB,
        turn_rewards BLOB,
        extracted_answer TEXT,
        reward REAL NOT NULL,
        outcome TEXT NOT NULL,
        truncation TEXT,
        retokenized INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
      );
      CREATE INDEX trajectories_run_iter ON trajectories(run_id, iteration, split, prompt_id, sample_index);
      CREATE INDEX trajectories_prompt ON trajectories(run_id, prompt_id);

      CREATE TABLE pairs (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        prompt_id TEXT NOT NULL,
        chosen_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
        rejected_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE
      );
      CREATE INDEX pairs_run_iter ON pairs(run_id, iteration);
      CREATE INDEX pairs_chosen ON pairs(chosen_id);
      CREATE INDEX pairs_rejected ON pairs(rejected_id);

      CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL
      );
      CREATE INDEX metrics_run ON metrics(run_id, iteration, step);

      CREATE TABLE evals (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        pass1 REAL NOT NULL,
        pass_k REAL,
        k INTEGER NOT NULL,
        n INTEGER NOT NULL,
        ci_low REAL NOT NULL,
        ci_high REAL NOT NULL,
        mean_turns REAL NOT NULL,
        tool_error_rate REAL NOT NULL,
        problems TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, iteration)
      );

      -- No foreign key to trajectories on purpose: a person's annotations outlive re-sampling and resume
      -- (deleteIterationSamples) and re-attach when a trajectory with the same id is stored again.
      CREATE TABLE annotations (
        trajectory_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        label TEXT NOT NULL,
        note TEXT NOT NULL,
        turn INTEGER,
        reward_override REAL,
        author TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX annotations_run ON annotations(run_id);

      CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        path TEXT NOT NULL,
        metrics TEXT NOT NULL,
        is_best INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
      );
      CREATE INDEX checkpoints_run ON checkpoints(run_id, iteration);

      -- Events are not tied to runs by a foreign key: replay must work even for a deleted run's history.
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        type TEXT NOT NULL,
        json TEXT NOT NULL
      );
      CREATE INDEX events_run ON events(run_id, seq);

      CREATE TABLE run_state (
        run_id TEXT PRIMARY KEY,
        json TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `);
  },
  // 2: evaluation-only runs (`mathagent eval`) and the per-subject / per-level breakdown of an evaluation.
  (db) => {
    db.exec(`
      ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'train' CHECK (kind IN ('train', 'eval'));
      -- JSON {subject: [...], level: [...]} (shared EvalBreakdown), NULL when the dataset has no subjects.
      ALTER TABLE evals ADD COLUMN breakdown TEXT;
    `);
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Bring `db` to `target` (default: the latest). Throws when the file was written by a newer MathAgent, rather
 * than guessing at a schema it does not know.
 */
export function migrate(db: Database, where: string, migrations: readonly Migration[] = MIGRATIONS, target = migrations.length): number {
  const latest = migrations.length;
  // Each step reads the version and runs at most one migration inside one IMMEDIATE transaction: two processes
  // opening a brand-new database at the same moment take turns, and the second finds the step done instead of
  // running migration 1 again on tables that exist.
  const step = db.transaction((): { version: number; done: boolean } => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    if (!row) db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
    const current = row?.version ?? 0;
    if (current > latest) {
      throw new StoreVersionError(
        `database ${where} has schema version ${current}, but this mathagent understands up to version ${latest}: ` +
          'upgrade mathagent, or point --db / MATHAGENT_DB at another file',
      );
    }
    if (current >= target) return { version: current, done: true };
    migrations[current]!(db);
    db.prepare('UPDATE schema_version SET version = ?').run(current + 1);
    return { version: current + 1, done: current + 1 >= target };
  });
  for (;;) {
    const r = step.immediate();
    if (r.done) return r.version;
  }
}
