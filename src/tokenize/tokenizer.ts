/**
 * Text -> token ids with Hugging Face's own tokenizer (the `tokenizers` package: the Rust
 * implementation behind transformers' fast tokenizers), configured by our rules rather than
 * whatever padding/truncation happens to be baked into tokenizer.json.
 *
 * Encoding runs on the tokenizers package's own threads (its encodeBatch is async), so the
 * event loop and the encoder are not starved while text is being split.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Tokenizer as HfTokenizer } from 'tokenizers';
import { UsageError } from '../util/errors.js';

const require = createRequire(import.meta.url);

/** One tokenized text (or text pair), unpadded. */
export interface Encoded {
  ids: Int32Array;
  typeIds: Int32Array;
  /** Tokens dropped by truncation (0 when the text fit). */
  droppedTokens: number;
}

/** A right-padded batch ready for the encoder. */
export interface PaddedBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batch: number;
  seqLen: number;
  /** Real (unpadded) length of each row. */
  lengths: Int32Array;
}

export interface TokenizerOptions {
  /** Maximum tokens per sequence, special tokens included. */
  maxLength: number;
  /** Id used for padding; defaults to the id of the tokenizer's pad token. */
  padId?: number;
}

export class TextTokenizer {
  /** Untruncated encoder: tells us how long a text really is, so truncation can be counted. */
  private readonly full: HfTokenizer;
  /** Truncating encoder, used only for the texts that do not fit. */
  private readonly truncating: HfTokenizer;
  readonly maxLength: number;
  readonly padId: number;
  readonly vocabSize: number;

  private constructor(full: HfTokenizer, truncating: HfTokenizer, maxLength: number, padId: number) {
    this.full = full;
    this.truncating = truncating;
    this.maxLength = maxLength;
    this.padId = padId;
    this.vocabSize = full.getVocabSize(true);
  }

  /** Loads `tokenizer.json` from a model folder (or the file itself). */
  static load(pathOrDir: string, options: TokenizerOptions): TextTokenizer {
    const file = pathOrDir.endsWith('.json') ? pathOrDir : join(pathOrDir, 'tokenizer.json');
    if (!existsSync(file)) {
      throw new UsageError(
        `No tokenizer found: ${file} does not exist. edu-train needs the fast-tokenizer file tokenizer.json ` +
          `(transformers writes it with tokenizer.save_pretrained(); vocab.txt alone is not enough).`,
      );
    }
    if (!Number.isInteger(options.maxLength) || options.maxLength < 2) {
      throw new UsageError(`max length must be an integer >= 2, got ${options.maxLength}`);
    }
    const { Tokenizer } = require('tokenizers') as typeof import('tokenizers');
    const open = (): HfTokenizer => {
      try {
        return Tokenizer.fromFile(file);
      } catch (err) {
        throw new UsageError(`Cannot read tokenizer ${file}: ${(err as Error).message}`);
      }
    };
    const full = open();
    const truncating = open();
    // tokenizer.json often carries a fixed padding (e.g. Fixed 128) and its own truncation: both would
    // silently change what the encoder sees, so they are replaced by ours (dynamic padding in pad()).
    for (const t of [full, truncating]) t.disablePadding();
    full.disableTruncation();
    truncating.setTruncation(options.maxLength); // longest-first, from the right: transformers' defaults
    const padId = options.padId ?? findPadId(full);
    return new TextTokenizer(full, truncating, options.maxLength, padId);
  }

  /** Tokenizes texts (and optional second segments), truncating each to maxLength tokens. */
  async encode(texts: readonly string[], pairs?: readonly string[]): Promise<Encoded[]> {
    if (pairs && pairs.length !== texts.length) {
      throw new UsageError(`got ${texts.length} texts but ${pairs.length} second segments`);
    }
    if (texts.length === 0) return [];
    const encodings = await encodeWith(this.full, texts, pairs);
    const out: Encoded[] = new Array(texts.length);
    const tooLong: number[] = [];
    for (let i = 0; i < encodings.length; i++) {
      const ids = encodings[i].getIds();
      if (ids.length > this.maxLength) {
        tooLong.push(i);
        continue;
      }
      out[i] = { ids: Int32Array.from(ids), typeIds: Int32Array.from(encodings[i].getTypeIds()), droppedTokens: 0 };
    }
    if (tooLong.length > 0) {
      const cut = await encodeWith(
        this.truncating,
        tooLong.map((i) => texts[i]),
        pairs && tooLong.map((i) => pairs[i]),
      );
      tooLong.forEach((row, j) => {
        const ids = cut[j].getIds();
        out[row] = {
          ids: Int32Array.from(ids),
          typeIds: Int32Array.from(cut[j].getTypeIds()),
          droppedTokens: encodings[row].getIds().length - ids.length,
        };
      });
    }
    return out;
  }

  /** Right-pads encoded rows to the longest of them (dynamic padding). */
  pad(rows: readonly Encoded[]): PaddedBatch {
    return padEncoded(rows, this.padId);
  }
}

/**
 * The node binding's encodeBatch takes single texts only; pairs go through encode() one by one,
 * which still runs on the tokenizer's threads, all in flight at once.
 */
function encodeWith(t: HfTokenizer, texts: readonly string[], pairs?: readonly string[]) {
  if (!pairs) return t.encodeBatch([...texts] as never);
  return Promise.all(texts.map((text, i) => t.encode(text, pairs[i])));
}

/** Right-pads rows to their longest length; padding gets padId, mask 0 and token type 0. */
export function padEncoded(rows: readonly Encoded[], padId: number): PaddedBatch {
  const batch = rows.length;
  let seqLen = 1;
  for (const r of rows) seqLen = Math.max(seqLen, r.ids.length);
  const inputIds = new Int32Array(batch * seqLen).fill(padId);
  const attentionMask = new Int32Array(batch * seqLen);
  const tokenTypeIds = new Int32Array(batch * seqLen);
  const lengths = new Int32Array(batch);
  rows.forEach((r, b) => {
    inputIds.set(r.ids, b * seqLen);
    tokenTypeIds.set(r.typeIds, b * seqLen);
    attentionMask.fill(1, b * seqLen, b * seqLen + r.ids.length);
    lengths[b] = r.ids.length;
  });
  return { inputIds, attentionMask, tokenTypeIds, batch, seqLen, lengths };
}

/** The pad token's id: from the tokenizer's padding config if any, else a token named like a pad token. */
function findPadId(tokenizer: HfTokenizer): number {
  for (const name of ['[PAD]', '<pad>', '<PAD>', '[pad]']) {
    const id = tokenizer.tokenToId(name);
    if (id !== null && id !== undefined) return id;
  }
  throw new UsageError('The tokenizer has no pad token ([PAD] or <pad>); cannot batch sequences of different lengths.');
}
