/** Seeded choices without global state: the data generator's mulberry32, and a string hash for per-item seeds. */
import { mulberry32 } from '../data/rng';
export { mulberry32 };

/** FNV-1a 32-bit hash of the parts, for per-item seeds that survive a resume. */
export function hashSeed(...parts: Array<string | number>): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('\u0000')) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function pick<T>(xs: readonly T[], rand: () => number): T {
  return xs[Math.floor(rand() * xs.length)]!;
}
