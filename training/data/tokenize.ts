/**
 * Tokenizes the extracted documents, builds the reduced vocabulary and writes the
 * training data (see README.md in this folder).
 *
 *   npx tsx training/data/tokenize.ts --docs training/data/out/docs --out training/data/out \
 *     [--seq-len 128] [--vocab-size 8192] [--weights austen=2,mobydick=2,...] [--report-sizes 8192,12288,16384]
 *
 * Writes train.bin / val.bin (little-endian uint16 model ids, chunks of exactly L tokens,
 * each [BOS] + (L-2 tokens) + [EOS]), vocab.json and stats.json.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GPT2_EOT, gpt2EncodeText, Vocabulary } from '../../src/text/vocab.js';
import { seededUniform } from '../../src/reference/random.js';

const DEFAULT_WEIGHTS = 'austen=2,mobydick=2,brown=2,web=1,tdavid=0.5,mhcc=0.5';
/** Document i of a source is held out for validation when i % VAL_EVERY === VAL_EVERY - 1 (2%). */
const VAL_EVERY = 50;
const SHUFFLE_SEED = 20250524;

interface Doc {
  source: string;
  id: string;
  index: number; // position within its source file
  gpt2: Uint16Array; // GPT-2 ids, ending with <|endoftext|>
}

const { values: args } = parseArgs({
  options: {
    docs: { type: 'string', default: 'training/data/out/docs' },
    out: { type: 'string', default: 'training/data/out' },
    'seq-len': { type: 'string', default: '128' },
    'vocab-size': { type: 'string', default: '8192' },
    weights: { type: 'string', default: DEFAULT_WEIGHTS },
    'report-sizes': { type: 'string', default: '8192,12288,16384' },
  },
});

const seqLen = Number(args['seq-len']);
const vocabSize = Number(args['vocab-size']);
if (!Number.isInteger(seqLen) || seqLen < 3) throw new Error(`--seq-len ${args['seq-len']}: use an integer >= 3`);
const weights = new Map(
  args.weights!.split(',').map((entry) => {
    const [name, value] = entry.split('=');
    const weight = Number(value);
    if (!name || !(weight >= 0)) throw new Error(`--weights: bad entry "${entry}"; use name=weight,...`);
    return [name, weight] as const;
  }),
);
const reportSizes = args['report-sizes']!.split(',').map(Number);

function shuffle<T>(items: T[], seed: number): T[] {
  const random = seededUniform(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Copies of a training document under its source weight: floor(w), plus one for a deterministic fraction of documents. */
function copies(doc: Doc, weight: number): number {
  const whole = Math.floor(weight);
  const fraction = weight - whole;
  // golden-ratio sequence spreads the kept fraction evenly over the source
  return whole + (((doc.index * 0.6180339887498949) % 1) < fraction ? 1 : 0);
}

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const source of weights.keys()) {
    const path = join(args.docs!, `${source}.jsonl`);
    if (!existsSync(path)) throw new Error(`${path} is missing: run training/data/build_corpus.sh (or drop "${source}" from --weights)`);
    const lines = readFileSync(path, 'utf8').split('\n').filter((line) => line.length > 0);
    lines.forEach((line, index) => {
      const { id, text } = JSON.parse(line) as { id: string; text: string };
      const ids = gpt2EncodeText(text);
      ids.push(GPT2_EOT);
      docs.push({ source, id, index, gpt2: Uint16Array.from(ids) });
    });
  }
  return docs;
}

function countGpt2(docs: Array<[Doc, number]>): Float64Array {
  const counts = new Float64Array(GPT2_EOT + 1);
  for (const [doc, times] of docs) for (const id of doc.gpt2) counts[id] += times;
  return counts;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/** Concatenates documents (already in model ids) and cuts [BOS] + (L-2 tokens) + [EOS] chunks; drops the tail. */
function chunk(streams: number[][], vocab: Vocabulary): Uint16Array {
  const body = seqLen - 2;
  const total = sum(streams.map((s) => s.length));
  const chunks = Math.floor(total / body);
  const out = new Uint16Array(chunks * seqLen);
  let chunkIndex = 0;
  let filled = 0;
  for (const stream of streams) {
    for (const id of stream) {
      if (chunkIndex === chunks) break;
      if (filled === 0) out[chunkIndex * seqLen] = vocab.bosId;
      out[chunkIndex * seqLen + 1 + filled] = id;
      if (++filled === body) {
        out[chunkIndex * seqLen + seqLen - 1] = vocab.bosId; // EOS = BOS id
        chunkIndex++;
        filled = 0;
      }
    }
  }
  return out;
}

function unigramEntropyNats(tokens: Uint16Array, size: number): number {
  const counts = new Float64Array(size);
  for (const id of tokens) counts[id]++;
  let entropy = 0;
  for (const count of counts) if (count > 0) entropy -= (count / tokens.length) * Math.log(count / tokens.length);
  return entropy;
}

function writeUint16(path: string, data: Uint16Array): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('this writer assumes a little-endian host');
  writeFileSync(path, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

const started = performance.now();
const docs = loadDocs();
const isVal = (doc: Doc) => doc.index % VAL_EVERY === VAL_EVERY - 1;
const trainDocs: Array<[Doc, number]> = docs.filter((d) => !isVal(d)).map((d) => [d, copies(d, weights.get(d.source)!)] as [Doc, number]).filter(([, n]) => n > 0);
// Validation documents count once; a source's fractional weight thins them as it thins training.
const valDocs: Array<[Doc, number]> = docs.filter((d) => isVal(d) && copies(d, weights.get(d.source)!) > 0).map((d) => [d, 1]);

const trainCounts = countGpt2(trainDocs);
const trainGpt2Tokens = sum(trainCounts);
const valGpt2Tokens = sum(valDocs.map(([d]) => d.gpt2.length));

function modelTokens(vocab: Vocabulary, set: Array<[Doc, number]>): number {
  return sum(set.map(([doc, times]) => vocab.fromGpt2Ids(doc.gpt2).length * times));
}

const vocabReport = reportSizes.map((size) => {
  const vocab = Vocabulary.fromCounts(trainCounts, size);
  let covered = 0;
  for (let id = 0; id <= GPT2_EOT; id++) if (trainCounts[id] > 0 && vocab.fromGpt2Ids([id]).length === 1) covered += trainCounts[id];
  const train = modelTokens(vocab, trainDocs);
  const val = modelTokens(vocab, valDocs);
  return {
    size,
    trainTokenCoverage: covered / trainGpt2Tokens,
    trainExpansion: train / trainGpt2Tokens - 1,
    valExpansion: val / valGpt2Tokens - 1,
  };
});

const vocab = Vocabulary.fromCounts(trainCounts, vocabSize);
const trainStreams = shuffle(trainDocs.flatMap(([doc, times]) => Array.from({ length: times }, () => doc)), SHUFFLE_SEED).map((d) => vocab.fromGpt2Ids(d.gpt2));
const valStreams = shuffle(valDocs.map(([doc]) => doc), SHUFFLE_SEED + 1).map((d) => vocab.fromGpt2Ids(d.gpt2));
const train = chunk(trainStreams, vocab);
const val = chunk(valStreams, vocab);

mkdirSync(args.out!, { recursive: true });
writeUint16(join(args.out!, 'train.bin'), train);
writeUint16(join(args.out!, 'val.bin'), val);
writeFileSync(
  join(args.out!, 'vocab.json'),
  JSON.stringify({
    ...vocab.toJSON(),
    tokenizer: 'gpt2 r50k_base (npm gpt-tokenizer)',
    note: 'model id -> GPT-2 id; 0..255 are the single-byte tokens, then by training-split frequency; out-of-set GPT-2 tokens split greedily into in-set pieces',
  }) + '\n',
);

const perSource = [...weights.keys()].map((source) => {
  const all = docs.filter((d) => d.source === source);
  const tr = trainDocs.filter(([d]) => d.source === source);
  const va = valDocs.filter(([d]) => d.source === source);
  return {
    source,
    weight: weights.get(source),
    documents: all.length,
    gpt2Tokens: sum(all.map((d) => d.gpt2.length)),
    trainDocuments: tr.length,
    trainGpt2TokensWeighted: sum(tr.map(([d, n]) => d.gpt2.length * n)),
    trainModelTokensWeighted: modelTokens(vocab, tr),
    valDocuments: va.length,
    valGpt2Tokens: sum(va.map(([d]) => d.gpt2.length)),
    valModelTokens: modelTokens(vocab, va),
  };
});

const stats = {
  seqLen,
  vocabSize: vocab.size,
  bos: vocab.bosId,
  mask: vocab.maskId,
  valRule: `document i of each source (0-based, file order) is validation when i % ${VAL_EVERY} == ${VAL_EVERY - 1}`,
  shuffleSeed: SHUFFLE_SEED,
  trainChunks: train.length / seqLen,
  valChunks: val.length / seqLen,
  trainTokens: train.length,
  valTokens: val.length,
  trainGpt2TokensWeighted: trainGpt2Tokens,
  valGpt2Tokens,
  expansionVsGpt2: { train: modelTokens(vocab, trainDocs) / trainGpt2Tokens - 1, val: modelTokens(vocab, valDocs) / valGpt2Tokens - 1 },
  trainUnigramEntropyNats: unigramEntropyNats(train, vocab.size),
  valUnigramEntropyNats: unigramEntropyNats(val, vocab.size),
  sources: perSource,
  vocabularySizes: vocabReport,
};
writeFileSync(join(args.out!, 'stats.json'), JSON.stringify(stats, null, 2) + '\n');
console.log(JSON.stringify({ ...stats, sources: undefined }, null, 2));
for (const s of perSource) console.log(`${s.source}: ${s.documents} docs, ${s.gpt2Tokens} GPT-2 tokens, weight ${s.weight}, train ${s.trainModelTokensWeighted} model tokens, val ${s.valModelTokens}`);
console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
