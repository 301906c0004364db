/**
 * Where the daemon is and how to authenticate to it, without vscode: URL checks, the local token file path
 * (same rule as the daemon: `<XDG_CONFIG_HOME or ~/.config>/mathagent/daemon.token`), reading it.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_DAEMON_URL = 'ws://127.0.0.1:8765';

/** Parse a daemon URL; throws with what to fix. */
export function parseDaemonUrl(url: string): URL {
  let u: URL;
  try { u = new URL(url.trim()); } catch { throw new Error(`mathagent.daemonUrl "${url}" is not a URL (expected e.g. ${DEFAULT_DAEMON_URL})`); }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`mathagent.daemonUrl must start with ws:// or wss:// (got ${u.protocol}//)`);
  return u;
}

/** True when the daemon runs on this machine, so its token file is readable here. */
export function isLocalUrl(url: string): boolean {
  try {
    const h = parseDaemonUrl(url).hostname;
    return h === '127.0.0.1' || h === 'localhost' || h === '[::1]' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
  } catch { return false; }
}

export function defaultTokenFile(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.trim() ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(base, 'mathagent', 'daemon.token');
}

/** Expand a leading `~/` as a shell would (settings are often written that way). */
export function expandHome(p: string, home: string = homedir()): string {
  return p === '~' ? home : p.startsWith('~/') ? join(home, p.slice(2)) : p;
}

/** The token in a token file, or undefined when the file does not exist. Throws on a malformed file. */
export async function readTokenFile(path: string): Promise<string | undefined> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the daemon token file ${path}: ${(e as Error).message}`);
  }
  const token = text.trim();
  if (!/^\S{16,}$/.test(token)) throw new Error(`the daemon token file ${path} does not hold a token (one line, no spaces)`);
  return token;
}

/** The first stdout line of `mathagent daemon --json`. */
export interface DaemonHello { url: string; tokenFile: string }

export function parseDaemonHello(line: string): DaemonHello {
  let o: unknown;
  try { o = JSON.parse(line); } catch { throw new Error(`the daemon's first output line is not JSON: ${line.slice(0, 120)}`); }
  const r = o as Partial<DaemonHello>;
  if (typeof r?.url !== 'string' || typeof r.tokenFile !== 'string') throw new Error(`the daemon's first output line lacks url/tokenFile: ${line.slice(0, 120)}`);
  parseDaemonUrl(r.url);
  return { url: r.url, tokenFile: r.tokenFile };
}

/** Split a command setting into argv (double/single quotes group words; no shell is involved). */
export function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(cmd))) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}
