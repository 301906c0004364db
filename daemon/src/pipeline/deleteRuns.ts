/** Deleting runs (CLI `mathagent runs delete`, daemon `run/delete`): the store's rows and the run's folder. */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { Store } from '../store';

/** A delete refused as asked (active run, checkpoints in use): nothing was deleted; the message says what to do. */
export class RunDeleteRefused extends Error {
  override name = 'RunDeleteRefused';
}

/**
 * Delete runs with their stored rows and their folder of checkpoints (`<db folder>/runs/<id>`). Refuses, naming
 * what to do, a run that may still be executing (running, queued or stopping: another process may own it; a
 * killed one stays `running` until a daemon resumes it) and a run whose checkpoints another run starts from
 * (`model.init`: an experiment's arms start from its SFT runs); `force` deletes anyway. Nothing is deleted when
 * any id is refused. `activeHere`: runs this process executes are refused even with `force`. `forceHint`: how the
 * caller's user forces (the CLI's `add --force`).
 */
export function deleteRuns(store: Store, runsDir: string, ids: string[], opts: { force?: boolean; activeHere?: (runId: string) => boolean; forceHint?: string } = {}): string[] {
  const problems: string[] = [];
  const hint = opts.forceHint ?? 'add --force';
  // Which checkpoint each other run starts from, read once (not once per id).
  const inits = store.listRuns({ limit: 100_000 }).filter((r) => !ids.includes(r.id)).flatMap((r) => {
    const init = store.getRun(r.id)?.config.model.init;
    return init ? [{ id: r.id, init: resolve(init) }] : [];
  });
  for (const id of ids) {
    const run = store.getRunSummary(id);
    if (!run) { problems.push(`no run with id ${id}; see \`mathagent runs list\``); continue; }
    if (opts.activeHere?.(id)) { problems.push(`run ${id} is executing in this daemon: stop it first`); continue; }
    if (opts.force) continue;
    if (run.state === 'running' || run.state === 'queued' || run.state === 'stopping') {
      problems.push(`run ${id} is ${run.state}: stop it first (or, if no process runs it any more, ${hint})`);
    }
    const dir = resolve(runsDir, id);
    const users = inits.filter((u) => u.init === dir || u.init.startsWith(dir + sep));
    if (users.length) problems.push(`run ${id}: ${users.map((u) => u.id).join(', ')} start${users.length === 1 ? 's' : ''} from its checkpoints (model.init); delete ${users.length === 1 ? 'it' : 'them'} too, or ${hint}`);
  }
  if (problems.length) throw new RunDeleteRefused(problems.join('\n'));
  return ids.map((id) => {
    store.deleteRun(id);
    const dir = join(runsDir, id);
    const had = existsSync(dir);
    if (had) rmSync(dir, { recursive: true, force: true });
    return `deleted run ${id}${had ? ` and ${dir}` : ''}`;
  });
}
