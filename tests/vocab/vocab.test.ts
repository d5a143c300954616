import { describe, expect, it } from 'vitest';
import { decode as gpt2Decode } from 'gpt-tokenizer/esm/encoding/r50k_base';
import { PgmError } from '../../src/errors.js';
import { GPT2_EOT, GPT2_VOCAB_SIZE, gpt2EncodeText, gpt2TokenBytes, Vocabulary } from '../../src/text/vocab.js';

const SAMPLES = [
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.',
  'Café naïve façade — “curly quotes” and ‘single’ ones… Ærøskøbing, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어.',
  'Emoji: 🤗🐋👩‍👩‍👧‍👦 🏳️‍🌈 and flags 🇯🇵🇫🇷.',
  '  leading spaces,\ttabs,\n\nnewlines\r\n and trailing   ',
  'Rare words: floccinaucinihilipilification, pneumonoultramicroscopic, Xylophagous qwzx-vbnm_1234567890.',
  'Literal <|endoftext|> stays text.',
  '\u00a0\u200b\ufeff zero-width and non-breaking spaces',
  '',
];

// A small corpus: the reduced vocabulary learns its frequent tokens, everything else is split.
const CORPUS = [
  'The whale, the whale! It is the whale that swims in the sea, and the sea is wide.',
  'Mr. Darcy and Elizabeth walked in the garden; the garden was green and the day was fine.',
  'In the beginning God created the heavens and the earth.',
].join('\n\n');

function countsOf(text: string): Float64Array {
  const counts = new Float64Array(GPT2_EOT + 1);
  for (const id of gpt2EncodeText(text)) counts[id]++;
  return counts;
}

describe('GPT-2 token bytes', () => {
  it('covers every id; ids 0..255 are the single bytes, each byte once', () => {
    const bytes = gpt2TokenBytes();
    expect(bytes.length).toBe(GPT2_EOT + 1);
    const seen = new Set<number>();
    for (let id = 0; id < 256; id++) {
      expect(bytes[id].length).toBe(1);
      seen.add(bytes[id][0]);
    }
    expect(seen.size).toBe(256);
    expect(new TextDecoder().decode(bytes[GPT2_EOT])).toBe('<|endoftext|>');
  });
});

describe('Vocabulary.gpt2 (identity)', () => {
  const vocab = Vocabulary.gpt2();

  it('follows the BOS = V-2, mask = V-1 convention', () => {
    expect(vocab.size).toBe(GPT2_VOCAB_SIZE);
    expect(vocab.bosId).toBe(GPT2_EOT);
    expect(vocab.maskId).toBe(50257);
    expect(vocab.vocabMap[vocab.maskId]).toBe(-1);
    expect(vocab.isIdentity).toBe(true);
  });

  it.each(SAMPLES)('round-trips %j and matches gpt-tokenizer', (text) => {
    const ids = vocab.encode(text);
    expect(ids).toEqual(gpt2EncodeText(text));
    expect(vocab.decode(ids)).toBe(text);
    expect(vocab.decode(ids)).toBe(gpt2Decode(ids));
  });

  it('decodes BOS as <|endoftext|> and maps ids to themselves', () => {
    expect(vocab.decode([vocab.bosId, ...vocab.encode(' hi')])).toBe('<|endoftext|> hi');
    expect(vocab.toGpt2(1234)).toBe(1234);
    expect(vocab.fromGpt2Ids([1234, GPT2_EOT])).toEqual([1234, GPT2_EOT]);
  });

  it('fromMap recognises the identity map', () => {
    expect(Vocabulary.fromMap(vocab.vocabMap).isIdentity).toBe(true);
  });
});

describe('reduced vocabulary', () => {
  const vocab = Vocabulary.fromCounts(countsOf(CORPUS), 300);

  it('holds the byte tokens, the corpus tokens, BOS at K-2 and the mask at K-1', () => {
    expect(vocab.size).toBe(300);
    expect(vocab.bosId).toBe(298);
    expect(vocab.maskId).toBe(299);
    expect(vocab.vocabMap[298]).toBe(GPT2_EOT);
    expect(vocab.vocabMap[299]).toBe(-1);
    expect(Array.from(vocab.vocabMap.slice(0, 256))).toEqual(Array.from({ length: 256 }, (_, i) => i));
    const the = gpt2EncodeText(' the')[0];
    expect(vocab.vocabMap.indexOf(the)).toBe(256); // most frequent token comes first
    expect(vocab.isIdentity).toBe(false);
  });

  it.each([...SAMPLES, CORPUS])('round-trips %j exactly like the GPT-2 ids do', (text) => {
    const ids = vocab.encode(text);
    expect(vocab.decode(ids)).toBe(text);
    const gpt2Ids = gpt2EncodeText(text);
    expect(vocab.decode(ids)).toBe(Vocabulary.gpt2().decode(gpt2Ids));
    expect(vocab.fromGpt2Ids(gpt2Ids)).toEqual(ids);
  });

  it('splits out-of-set tokens greedily into in-set pieces only', () => {
    const text = SAMPLES.join(' ');
    const gpt2Ids = gpt2EncodeText(text);
    const ids = vocab.encode(text);
    expect(ids.length).toBeGreaterThan(gpt2Ids.length);
    for (const id of ids) {
      expect(Number.isInteger(id) && id >= 0 && id < vocab.bosId).toBe(true);
    }
    const table = gpt2TokenBytes();
    for (const gpt2Id of new Set(gpt2Ids)) {
      const pieces = vocab.fromGpt2Ids([gpt2Id]);
      const bytes = Array.from(table[gpt2Id]);
      expect(pieces.flatMap((p) => Array.from(vocab.tokenBytes(p)))).toEqual(bytes);
      // greedy: each piece is the longest in-set prefix of what is left
      let offset = 0;
      for (const piece of pieces) {
        const length = vocab.tokenBytes(piece).length;
        for (let longer = length + 1; offset + longer <= bytes.length; longer++) {
          const candidate = bytes.slice(offset, offset + longer);
          const inSet = Array.from(vocab.vocabMap.slice(0, vocab.bosId)).some((g) => {
            const b = table[g];
            return b.length === candidate.length && b.every((x, i) => x === candidate[i]);
          });
          expect(inSet).toBe(false);
        }
        offset += length;
      }
    }
  });

  it('keeps in-set tokens whole and maps <|endoftext|> to BOS', () => {
    const the = gpt2EncodeText(' the')[0];
    expect(vocab.fromGpt2Ids([the, GPT2_EOT])).toEqual([256, vocab.bosId]);
    expect(vocab.toGpt2(vocab.bosId)).toBe(GPT2_EOT);
  });

  it('survives a JSON round trip through vocab.json', () => {
    const json = JSON.parse(JSON.stringify(vocab.toJSON()));
    expect(json).toMatchObject({ size: 300, bos: 298, mask: 299 });
    const again = Vocabulary.fromMap(json.vocabMap);
    expect(again.encode(SAMPLES[2])).toEqual(vocab.encode(SAMPLES[2]));
  });
});

describe('decodePartial', () => {
  const vocab = Vocabulary.fromCounts(countsOf(CORPUS), 300);
  const ids = vocab.encode('The whale swims in the sea.');

  it('renders unknown (-1) and mask positions with one placeholder each', () => {
    const partial = ids.map((id, i) => (i % 2 === 1 ? -1 : id));
    partial[2] = vocab.maskId;
    const text = vocab.decodePartial(partial);
    expect([...text].filter((c) => c === '▯').length).toBe(
      partial.filter((id) => id < 0 || id === vocab.maskId).length,
    );
    expect(text.startsWith(vocab.decode([ids[0]]))).toBe(true);
  });

  it('uses a configurable placeholder and equals decode when nothing is hidden', () => {
    expect(vocab.decodePartial(ids)).toBe(vocab.decode(ids));
    expect(vocab.decodePartial([-1, ...ids.slice(1)], '·')).toBe('·' + vocab.decode(ids.slice(1)));
    expect(vocab.decodePartial([-1, -1], '<?>')).toBe('<?><?>');
  });
});

describe('characters split across byte-level tokens', () => {
  const reduced = Vocabulary.fromCounts(countsOf(CORPUS), 300);
  const utf8 = new TextEncoder();

  /**
   * The oracle: the text of `ids` with `hidden` positions unknown, character by character. A
   * character shows, at the position of its last byte, when every position its bytes span is
   * known; an unknown position shows the placeholder.
   */
  function expectedPartial(vocab: Vocabulary, ids: number[], hidden: boolean[]): string {
    const tokenOfByte = ids.flatMap((id, position) => Array.from(vocab.tokenBytes(id), () => position));
    const shownAt: string[] = ids.map(() => '');
    let byte = 0;
    for (const char of vocab.decode(ids)) {
      const positions = tokenOfByte.slice(byte, (byte += utf8.encode(char).length));
      if (positions.every((p) => !hidden[p])) shownAt[positions[positions.length - 1]] += char;
    }
    return ids.map((_, p) => (hidden[p] ? '▯' : shownAt[p])).join('');
  }

  const cases: [string, Vocabulary, string][] = [
    ['reduced vocabulary (every non-ASCII character in single bytes)', reduced, 'é “x” 🤗'],
    ['reduced vocabulary, longer text', reduced, SAMPLES[1]],
    ['GPT-2 (emoji split across tokens)', Vocabulary.gpt2(), SAMPLES[2]],
  ];

  it.each(cases)(
    '%s: no U+FFFD in any partly revealed text, and each character shows once its bytes are known',
    (_, vocab, text) => {
      const ids = vocab.encode(text);
      expect(vocab.decode(ids)).toBe(text);
      const split = ids.filter((id) => new TextDecoder().decode(vocab.tokenBytes(id)).includes('\uFFFD')).length;
      expect(split, 'the text has tokens that hold part of a character').toBeGreaterThan(0);
      // Every subset of unknown positions for a short text; random subsets (and any-order reveals) for longer ones.
      const masks =
        ids.length <= 14
          ? Array.from({ length: 2 ** ids.length }, (_, m) => ids.map((__, p) => Boolean(m & (1 << p))))
          : [];
      let seed = 7;
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let k = 0; k < 400; k++) masks.push(ids.map(() => random() < (k % 4) / 4));
      for (const hidden of masks) {
        const partial = vocab.decodePartial(ids.map((id, p) => (hidden[p] ? -1 : id)));
        expect(partial).not.toContain('\uFFFD');
        expect(partial).toBe(expectedPartial(vocab, ids, hidden));
      }
    },
  );

  it('a byte sequence that is no UTF-8 shows as U+FFFD, as TextDecoder shows it, once no unknown position can complete it', () => {
    const byteId = (b: number) =>
      Array.from({ length: 256 }, (_, id) => id).find((id) => reduced.tokenBytes(id)[0] === b)!;
    const [lead, cont, a, e0] = [byteId(0xe2), byteId(0x80), byteId(0x41), byteId(0xe0)];
    const bytesOf = (ids: number[]) => Uint8Array.from(ids.flatMap((id) => Array.from(reduced.tokenBytes(id))));
    for (const ids of [
      [lead, a],
      [a, lead],
      [cont, a],
      [lead, cont, a],
      [e0, cont, a],
    ]) {
      const text = new TextDecoder().decode(bytesOf(ids));
      expect(text).toContain('\uFFFD');
      expect(reduced.decode(ids)).toBe(text);
      expect(reduced.decodePartial(ids)).toBe(text);
    }
    // Next to an unknown position, a character's start or end waits for it ...
    expect(reduced.decodePartial([a, lead, -1])).toBe('A▯');
    expect(reduced.decodePartial([a, lead, cont, -1])).toBe('A▯');
    expect(reduced.decodePartial([-1, cont, a])).toBe('▯A');
    expect(reduced.decodePartial([-1, cont, cont, cont, a])).toBe('▯A');
    // ... unless no bytes there could complete it: E0 80 starts no character, and a character has at most 3 continuation bytes.
    expect(reduced.decodePartial([e0, cont, -1])).toBe('\uFFFD\uFFFD▯');
    expect(reduced.decodePartial([-1, cont, cont, cont, cont, a])).toBe('▯\uFFFDA');
    expect(reduced.decodePartial([lead, a, -1])).toBe('\uFFFDA▯');
  });
});

describe('validation', () => {
  const base = Array.from(Vocabulary.fromCounts(countsOf(CORPUS), 300).vocabMap);

  it.each([
    ['too short', [0, 1, GPT2_EOT, -1]],
    ['BOS not at K-2', [...base.slice(0, 298), 5000, -1]],
    ['mask not -1 at K-1', [...base.slice(0, 299), 7]],
    ['duplicate id', [...base.slice(0, 297), 0, GPT2_EOT, -1]],
    ['missing byte token', [999, ...base.slice(1)]],
    ['not a GPT-2 id', [...base.slice(0, 297), 50257, GPT2_EOT, -1]],
  ])('fromMap rejects a map with %s', (_, map) => {
    expect(() => Vocabulary.fromMap(map as number[])).toThrow(PgmError);
  });

  it('rejects ids without a GPT-2 token', () => {
    const vocab = Vocabulary.fromMap(base);
    expect(() => vocab.decode([vocab.maskId])).toThrow(/mask/);
    expect(() => vocab.decode([300])).toThrow(PgmError);
    expect(() => vocab.fromGpt2Ids([50257])).toThrow(PgmError);
  });
});
