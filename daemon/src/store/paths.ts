/**
 * Where the daemon keeps its files by default (XDG base directories): the database under the data dir, the
 * token file under the config dir. Environment overrides exist so tests and several daemons never collide.
 */
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** `$XDG_DATA_HOME/mathagent` (default `~/.local/share/mathagent`). */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.trim() ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share');
  return join(base, 'mathagent');
}

/** `$XDG_CONFIG_HOME/mathagent` (default `~/.config/mathagent`): the token file lives here. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.trim() ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'mathagent');
}

/** The database path: `$MATHAGENT_DB` if set, else `<dataDir>/mathagent.db`. */
export function defaultDbPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MATHAGENT_DB && env.MATHAGENT_DB.trim()) return env.MATHAGENT_DB;
  return join(dataDir(env), 'mathagent.db');
}

/** Where the runs of a database keep their checkpoint folders: `runs/` next to it. */
export function runsDirFor(dbPath: string): string {
  return join(dirname(dbPath), 'runs');
}
