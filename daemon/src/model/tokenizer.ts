/**
 * Byte-level tokenizer: ids 0..255 are the UTF-8 bytes, ids 256.. are the chat template's special strings,
 * one id each. Any text round-trips exactly (encode then decode gives it back), because special strings are
 * matched first and everything else is its UTF-8 bytes. A small BPE would shorten sequences ~3x but needs a
 * trained merge table per corpus; byte level keeps token-in/token-out trivially exact, so it is what we use.
 */
import type { Tokenizer } from '../env/policy';

const BYTE_COUNT = 256;

export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte';
  readonly vocabSize: number;
  readonly eosId: number | null;
  /** Id used to right-pad batches (masked out by the caller): '<|pad|>' when present, else eos, else 0. */
  readonly padId: number;
  readonly specials: readonly string[];
  private readonly specialIds = new Map<string, number>();
  /** Specials sorted longest first, so that a special that is a prefix of another never wins. */
  private readonly byLength: string[];
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');

  constructor(specials: readonly string[] = []) {
    specials.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) throw new Error(`ByteTokenizer: special token #${i} must be a non-empty string`);
      if (this.specialIds.has(s)) throw new Error(`ByteTokenizer: special token '${s}' is listed twice`);
      this.specialIds.set(s, BYTE_COUNT + i);
    });
    this.specials = [...specials];
    this.byLength = [...specials].sort((a, b) => b.length - a.length);
    this.vocabSize = BYTE_COUNT + specials.length;
    this.eosId = this.specialIds.get('<|end|>') ?? null;
    this.padId = this.specialIds.get('<|pad|>') ?? this.eosId ?? 0;
  }

  /** The id of a special string, or undefined. */
  specialId(s: string): number | undefined {
    return this.specialIds.get(s);
  }

  isSpecial(id: number): boolean {
    return id >= BYTE_COUNT && id < this.vocabSize;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    let start = 0;
    const pushBytes = (s: string) => {
      for (const b of this.encoder.encode(s)) out.push(b);
    };
    if (this.byLength.length === 0) {
      pushBytes(text);
      return out;
    }
    let i = 0;
    while (i < text.length) {
      // Specials all start with a character we can test quickly before trying each one.
      let matched: string | undefined;
      for (const s of this.byLength) {
        if (text.startsWith(s, i)) {
          matched = s;
          break;
        }
      }
      if (matched === undefined) {
        i++;
        continue;
      }
      if (i > start) pushBytes(text.slice(start, i));
      out.push(this.specialIds.get(matched)!);
      i += matched.length;
      start = i;
    }
    if (start < text.length) pushBytes(text.slice(start));
    return out;
  }

  decode(ids: readonly number[]): string {
    let text = '';
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) text += this.decoder.decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (const id of ids) {
      if (Number.isInteger(id) && id >= 0 && id < BYTE_COUNT) bytes.push(id);
      else if (this.isSpecial(id)) {
        flush();
        text += this.specials[id - BYTE_COUNT];
      } else throw new RangeError(`ByteTokenizer.decode: id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    flush();
    return text;
  }

  /**
   * Text of one id for the token view: the special string, the character for a printable ASCII byte, or
   * `<0xNN>` for a byte that is only part of a multi-byte character (it has no text of its own).
   */
  tokenText(id: number): string {
    if (this.isSpecial(id)) return this.specials[id - BYTE_COUNT]!;
    if (!Number.isInteger(id) || id < 0 || id >= BYTE_COUNT) throw new RangeError(`ByteTokenizer.tokenText: id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    if (id < 0x80) return String.fromCharCode(id);
    return `<0x${id.toString(16).toUpperCase().padStart(2, '0')}>`;
  }
}

/**
 * Incremental UTF-8 decoding of a growing id sequence, for stop-string checks while sampling: returns the
 * text that became complete with each new id (a multi-byte character appears when its last byte arrives).
 */
export class StreamDecoder {
  private readonly decoder = new TextDecoder('utf-8');
  private text = '';
  constructor(private readonly tok: ByteTokenizer) {}

  push(id: number): string {
    let piece: string;
    if (this.tok.isSpecial(id)) piece = this.decoder.decode() + this.tok.tokenText(id);
    else piece = this.decoder.decode(Uint8Array.of(id), { stream: true });
    this.text += piece;
    return piece;
  }

  /** All text so far (complete characters only). */
  get value(): string {
    return this.text;
  }
}
