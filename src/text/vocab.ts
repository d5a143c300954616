/**
 * Model vocabularies that always speak GPT-2.
 *
 * A model id indexes the embedding / output rows; `vocabMap[modelId]` is the GPT-2 id it
 * stands for. The full GPT-2 vocabulary is the identity map (V = 50258). A reduced
 * vocabulary keeps K ids: the 256 single-byte GPT-2 tokens, the most frequent GPT-2 ids
 * of a corpus, `<|endoftext|>` at K-2 (BOS/EOS) and the mask at K-1 (`vocabMap[K-1] = -1`).
 * A GPT-2 token outside the set is split greedily (longest in-set prefix of its byte
 * string, left to right), so no text is ever unknown and decoding is plain GPT-2 bytes.
 *
 * Browser-safe: no node: imports.
 */
// The esm/ paths exist as files, so they resolve with or without package exports (Parcel 2 reads none by default).
import { encode as gpt2Encode } from 'gpt-tokenizer/esm/encoding/r50k_base';
import gpt2Ranks from 'gpt-tokenizer/esm/bpeRanks/r50k_base';
import { fail } from '../errors.js';

/** `<|endoftext|>`, GPT-2's BOS/EOS. */
export const GPT2_EOT = 50256;
/** GPT-2 ids (50257) plus the appended mask id. */
export const GPT2_VOCAB_SIZE = 50258;
const GPT2_TOKENS = GPT2_EOT + 1;
const EOT_TEXT = '<|endoftext|>';

/** What `decodePartial` shows for a position that is not known yet. */
export const DEFAULT_PLACEHOLDER = '▯';

let gpt2Bytes: Uint8Array[] | undefined;

/** The byte string of every GPT-2 id (0..50256); `<|endoftext|>` decodes to its literal text. */
export function gpt2TokenBytes(): readonly Uint8Array[] {
  if (!gpt2Bytes) {
    const utf8 = new TextEncoder();
    // gpt-tokenizer stores a rank as its UTF-8 text, or as raw bytes when not valid UTF-8
    gpt2Bytes = gpt2Ranks.map((rank) => (typeof rank === 'string' ? utf8.encode(rank) : Uint8Array.from(rank)));
    if (gpt2Bytes.length !== GPT2_EOT) {
      fail(
        'config',
        `gpt-tokenizer r50k_base has ${gpt2Bytes.length} ranks, expected ${GPT2_EOT}; reinstall gpt-tokenizer`,
      );
    }
    gpt2Bytes.push(utf8.encode(EOT_TEXT));
  }
  return gpt2Bytes;
}

/** GPT-2 ids of `text`; `<|endoftext|>` inside the text is ordinary text, not the special id. */
export function gpt2EncodeText(text: string): number[] {
  return gpt2Encode(text, { disallowedSpecial: new Set() });
}

// Byte strings as Map keys: one char per byte.
function byteKey(bytes: Uint8Array, start: number, end: number): string {
  let key = '';
  for (let i = start; i < end; i++) key += String.fromCharCode(bytes[i]);
  return key;
}

export interface VocabularyJson {
  vocabMap: number[];
  size: number;
  bos: number;
  mask: number;
}

export class Vocabulary {
  /** K: number of model ids, including BOS (K-2) and mask (K-1). */
  readonly size: number;
  readonly bosId: number;
  readonly maskId: number;
  /** model id -> GPT-2 id; the mask is -1. */
  readonly vocabMap: Int32Array;
  readonly isIdentity: boolean;
  // GPT-2 id -> model id, -1 where the token is outside the set
  private readonly gpt2ToModel: Int32Array;
  private readonly splitCache = new Map<number, number[]>();
  private pieceIds: Map<string, number> | undefined;
  private maxPieceLength = 0;
  private readonly utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

  private constructor(vocabMap: Int32Array, isIdentity: boolean) {
    this.vocabMap = vocabMap;
    this.size = vocabMap.length;
    this.bosId = this.size - 2;
    this.maskId = this.size - 1;
    this.isIdentity = isIdentity;
    this.gpt2ToModel = new Int32Array(GPT2_TOKENS).fill(-1);
    for (let id = 0; id < this.maskId; id++) this.gpt2ToModel[vocabMap[id]] = id;
  }

  /** The full GPT-2 vocabulary: model id = GPT-2 id, V = 50258. */
  static gpt2(): Vocabulary {
    const map = new Int32Array(GPT2_VOCAB_SIZE);
    for (let id = 0; id < GPT2_TOKENS; id++) map[id] = id;
    map[GPT2_VOCAB_SIZE - 1] = -1;
    return new Vocabulary(map, true);
  }

  /**
   * A vocabulary from its `vocabMap` (as stored in vocab.json / config.json). Checks the
   * conventions: `<|endoftext|>` at K-2, -1 at K-1, unique GPT-2 ids, all 256 byte tokens.
   */
  static fromMap(vocabMap: ArrayLike<number>, source = 'vocabMap'): Vocabulary {
    const size = vocabMap.length;
    if (size < 259)
      fail('config', `${source}: ${size} entries; a vocabulary needs the 256 byte tokens, <|endoftext|> and the mask`);
    if (vocabMap[size - 2] !== GPT2_EOT)
      fail(
        'config',
        `${source}[${size - 2}] must be ${GPT2_EOT} (<|endoftext|> = BOS at V-2), got ${vocabMap[size - 2]}`,
      );
    if (vocabMap[size - 1] !== -1)
      fail('config', `${source}[${size - 1}] must be -1 (the mask at V-1), got ${vocabMap[size - 1]}`);
    const map = Int32Array.from(vocabMap);
    const seen = new Uint8Array(GPT2_TOKENS);
    for (let id = 0; id < size - 1; id++) {
      const gpt2Id = vocabMap[id];
      if (!Number.isInteger(gpt2Id) || gpt2Id < 0 || gpt2Id > GPT2_EOT)
        fail('config', `${source}[${id}] = ${gpt2Id} is not a GPT-2 id (0..${GPT2_EOT})`);
      if (seen[gpt2Id])
        fail('config', `${source}: GPT-2 id ${gpt2Id} appears twice; each GPT-2 id may have one model id`);
      seen[gpt2Id] = 1;
    }
    const bytes = gpt2TokenBytes();
    let singleBytes = 0;
    for (let gpt2Id = 0; gpt2Id < GPT2_EOT; gpt2Id++) if (seen[gpt2Id] && bytes[gpt2Id].length === 1) singleBytes++;
    if (singleBytes !== 256)
      fail(
        'config',
        `${source}: has ${singleBytes} of the 256 single-byte GPT-2 tokens; all are needed so every text can be encoded`,
      );
    let identity = size === GPT2_VOCAB_SIZE;
    for (let id = 0; identity && id < GPT2_TOKENS; id++) identity = map[id] === id;
    return new Vocabulary(map, identity);
  }

  /**
   * A reduced vocabulary of `size` ids from GPT-2 token counts (`counts[gpt2Id]`, length
   * 50257): the 256 byte tokens (model ids 0..255, in GPT-2 order), then the most frequent
   * other ids (ties: lower GPT-2 id first), then `<|endoftext|>` and the mask.
   */
  static fromCounts(counts: ArrayLike<number>, size: number): Vocabulary {
    if (!Number.isInteger(size) || size < 259 || size > GPT2_VOCAB_SIZE)
      fail('option', `vocabulary size ${size}: use an integer in 259..${GPT2_VOCAB_SIZE}`);
    const bytes = gpt2TokenBytes();
    const byteTokens: number[] = [];
    const others: number[] = [];
    for (let gpt2Id = 0; gpt2Id < GPT2_EOT; gpt2Id++) (bytes[gpt2Id].length === 1 ? byteTokens : others).push(gpt2Id);
    others.sort((a, b) => (counts[b] ?? 0) - (counts[a] ?? 0) || a - b);
    const map = [...byteTokens, ...others.slice(0, size - 2 - byteTokens.length), GPT2_EOT, -1];
    return Vocabulary.fromMap(map);
  }

  /** Model ids of `text` (no BOS). */
  encode(text: string): number[] {
    return this.fromGpt2Ids(gpt2EncodeText(text));
  }

  /** Model ids for GPT-2 ids; a token outside the set becomes its greedy in-set pieces. */
  fromGpt2Ids(gpt2Ids: ArrayLike<number>): number[] {
    const out: number[] = [];
    for (let i = 0; i < gpt2Ids.length; i++) {
      const gpt2Id = gpt2Ids[i];
      const id = this.gpt2ToModel[gpt2Id];
      if (id === undefined) fail('shape', `GPT-2 id ${gpt2Id} is out of range 0..${GPT2_EOT}`);
      if (id >= 0) out.push(id);
      else for (const piece of this.split(gpt2Id)) out.push(piece);
    }
    return out;
  }

  /** The GPT-2 id of a model id (the mask has none). */
  toGpt2(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.maskId) {
      fail('shape', `model id ${id} has no GPT-2 token (valid: 0..${this.maskId - 1}; ${this.maskId} is the mask)`);
    }
    return this.vocabMap[id];
  }

  toGpt2Ids(ids: ArrayLike<number>): number[] {
    return Array.from(ids, (id) => this.toGpt2(id));
  }

  /** The bytes a model id stands for. */
  tokenBytes(id: number): Uint8Array {
    return gpt2TokenBytes()[this.toGpt2(id)];
  }

  /**
   * Text of model ids: their GPT-2 bytes, concatenated, decoded as UTF-8. A byte sequence that
   * is no UTF-8 (a model can sample a lone byte token) shows as U+FFFD, one per maximal
   * ill-formed subsequence, as TextDecoder does.
   */
  decode(ids: ArrayLike<number>): string {
    return this.utf8.decode(this.concatBytes(ids, 0, ids.length));
  }

  /**
   * Text of a partly revealed sequence: -1 (unknown) and the mask id render as
   * `placeholder`, one per position; runs of known ids decode as in `decode`, except that a
   * character whose bytes reach into an unknown position (byte-level tokens split multi-byte
   * characters) is left out until they are known, instead of showing as U+FFFD.
   */
  decodePartial(ids: ArrayLike<number>, placeholder = DEFAULT_PLACEHOLDER): string {
    let text = '';
    let runStart = 0;
    for (let i = 0; i <= ids.length; i++) {
      const unknown = i < ids.length && (ids[i] === -1 || ids[i] === this.maskId);
      if (i === ids.length || unknown) {
        if (i > runStart) text += this.runText(this.concatBytes(ids, runStart, i), runStart > 0, unknown);
        if (unknown) text += placeholder;
        runStart = i + 1;
      }
    }
    return text;
  }

  /**
   * UTF-8 text of a run of known bytes; `openStart`/`openEnd`: an unknown position comes
   * before/after it. Up to 3 leading continuation bytes may belong to a character begun in the
   * unknown position before, and a trailing incomplete character may be finished by the one
   * after: both are left out. Anything else that is no UTF-8 is U+FFFD, as in `decode`.
   */
  private runText(bytes: Uint8Array, openStart: boolean, openEnd: boolean): string {
    let start = 0;
    if (openStart) while (start < Math.min(3, bytes.length) && (bytes[start] & 0xc0) === 0x80) start++;
    if (!openEnd) return this.utf8.decode(bytes.subarray(start));
    // Streaming holds back a trailing incomplete character; the flush that follows discards it.
    const text = this.utf8.decode(bytes.subarray(start), { stream: true });
    this.utf8.decode();
    return text;
  }

  toJSON(): VocabularyJson {
    return { vocabMap: Array.from(this.vocabMap), size: this.size, bos: this.bosId, mask: this.maskId };
  }

  private concatBytes(ids: ArrayLike<number>, start: number, end: number): Uint8Array {
    const table = gpt2TokenBytes();
    let length = 0;
    for (let i = start; i < end; i++) length += table[this.toGpt2(ids[i])].length;
    const out = new Uint8Array(length);
    let offset = 0;
    for (let i = start; i < end; i++) {
      const piece = table[this.vocabMap[ids[i]]];
      out.set(piece, offset);
      offset += piece.length;
    }
    return out;
  }

  // Greedy longest-prefix split of an out-of-set GPT-2 token into in-set model ids.
  private split(gpt2Id: number): number[] {
    const cached = this.splitCache.get(gpt2Id);
    if (cached) return cached;
    const pieceIds = this.pieceTable();
    const bytes = gpt2TokenBytes()[gpt2Id];
    const pieces: number[] = [];
    for (let start = 0; start < bytes.length;) {
      for (let length = Math.min(this.maxPieceLength, bytes.length - start); length > 0; length--) {
        const id = pieceIds.get(byteKey(bytes, start, start + length));
        if (id !== undefined) {
          pieces.push(id);
          start += length;
          break;
        }
      }
    }
    this.splitCache.set(gpt2Id, pieces);
    return pieces;
  }

  private pieceTable(): Map<string, number> {
    if (!this.pieceIds) {
      const table = gpt2TokenBytes();
      this.pieceIds = new Map();
      // `<|endoftext|>` is special: it never stands for its literal text
      for (let id = 0; id < this.bosId; id++) {
        const bytes = table[this.vocabMap[id]];
        this.pieceIds.set(byteKey(bytes, 0, bytes.length), id);
        this.maxPieceLength = Math.max(this.maxPieceLength, bytes.length);
      }
    }
    return this.pieceIds;
  }
}
