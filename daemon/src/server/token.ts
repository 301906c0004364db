/**
 * The daemon's access token: 32 random bytes as hex in a file only the user can read (0600, directory 0700 when
 * we create it). A valid existing token is reused so a restarted daemon does not lock out connected editors.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { configDir } from '../store/paths';

const TOKEN_RE = /^[0-9a-f]{64}$/;

export function defaultTokenFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'daemon.token');
}

/** Reads the token file if it holds a valid token, else writes a new one. Returns the token. */
export function ensureToken(file: string): string {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let existing: string | null = null;
  try {
    existing = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read token file ${file}: ${(err as Error).message}`);
  }
  if (existing !== null && TOKEN_RE.test(existing)) {
    // Someone may have loosened the mode; a token readable by others is no secret.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return existing;
  }
  const token = randomBytes(32).toString('hex');
  // Write then rename: a client reading the file never sees half a token.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return token;
}

/** Constant-time comparison (hashing first makes the lengths equal, so the length leaks nothing either). */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token from an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}
