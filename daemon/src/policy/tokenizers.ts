/**
 * Named tokenizers for remote policies: the tokenizer that encodes prompts and observations and re-encodes
 * text-only results. `byte` is our byte tokenizer with the chat template's special strings (what `mathagent
 * serve` uses for checkpoints trained with that template); a checkpoint folder gives that checkpoint's own
 * tokenizer (its config.json lists the specials).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '../env/policy';
import type { ChatTemplate } from '../env/templates';
import { ByteTokenizer } from '../model/tokenizer';

export function resolveTokenizer(name: string, template: ChatTemplate): Tokenizer {
  if (name === 'byte') return new ByteTokenizer(template.specialTokens);
  const cfg = join(name, 'config.json');
  if (existsSync(cfg)) {
    let specials: unknown;
    try { specials = (JSON.parse(readFileSync(cfg, 'utf8')) as { tokenizer?: { specials?: unknown } }).tokenizer?.specials; } catch (e) {
      throw new Error(`tokenizer "${name}": ${cfg} is not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(specials) || !specials.every((s) => typeof s === 'string')) throw new Error(`tokenizer "${name}": ${cfg} has no tokenizer.specials list (not a MathAgent checkpoint?)`);
    return new ByteTokenizer(specials as string[]);
  }
  throw new Error(`unknown tokenizer "${name}": use "byte" (byte-level with the template's specials) or a MathAgent checkpoint folder`);
}
