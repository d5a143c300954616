"""Export one PGM inference forward pass to ONNX, for the onnxruntime-web peer of the bench.

  /usr/bin/python3 training/export_onnx.py --out bench/peer/out/D128-H4-B2-V8192-L128-n64-m8 \
      [--hidden-size 128 --n-heads 4 --blocks 2 --vocab-size 8192 --length 128 --clean 64 --queries 8]

`npm run bench` runs it with the shape of its mode when bench/peer/out/ lacks that folder.

Writes to --out, all from one seeded random-weight PGM (training/pgm/model.py):
- model.onnx: `torch.onnx.export` of encoder over n clean tokens, group swap, decoder over m
  query positions, output layer; inputs clean_tokens, clean_positions [1, n] and
  query_positions [1, m] (int64), output logits [1, m, V]. Batch 1 and n, m are fixed.
- model.ckpt: the same weights as a Lightning-layout checkpoint (EMA = raw weights), for our
  converter (`pgm convert`; bench/peer.ts reads it in memory).
- input.json (the `pgm logits` input format), logits.bin (PyTorch's fp32 CPU logits, float32
  little-endian, [1, m, V]) and meta.json.
"""
import argparse
import copy
import json
import random
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from torch.onnx import symbolic_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import pgm_logits, randomize, training_sections  # noqa: E402
from pgm.ckpt import save_checkpoint  # noqa: E402
from pgm.ema import EMA  # noqa: E402
from pgm.model import ModelConfig, build_model  # noqa: E402

OPSET = 17  # the newest torch 1.13 exports; has LayerNormalization


def unflatten(g, x, dim, sizes):
  """`aten::unflatten` (split_heads), which torch 1.13 cannot export: a Reshape to
  x.shape[:dim] + sizes + x.shape[dim + 1:]."""
  rank = symbolic_helper._get_tensor_rank(x)
  dim = symbolic_helper._get_const(dim, 'i', 'dim') % rank
  sizes = symbolic_helper._maybe_get_const(sizes, 'is')
  if not symbolic_helper._is_value(sizes):
    sizes = g.op('Constant', value_t=torch.tensor(sizes, dtype=torch.long))
  shape = g.op('Shape', x)
  before = symbolic_helper._slice_helper(g, shape, axes=[0], starts=[0], ends=[dim])
  after = symbolic_helper._slice_helper(g, shape, axes=[0], starts=[dim + 1], ends=[rank])
  return g.op('Reshape', x, g.op('Concat', before, sizes, after, axis_i=0))


def layer_norm(g, x, normalized_shape, weight, bias, eps, cudnn_enable):
  """`aten::layer_norm` whose normalized_shape may be traced from x.shape (pgm.model.LayerNorm),
  which torch 1.13's own symbolic refuses. A missing weight or bias becomes explicit ones or
  zeros: onnxruntime-web 1.30's WebGPU SkipLayerNormalization (which ORT fuses from Add +
  LayerNormalization) fails on a missing bias ("Beta must be 1D")."""
  shape = symbolic_helper._maybe_get_const(normalized_shape, 'is')
  k = len(symbolic_helper._unpack_list(shape) if symbolic_helper._is_value(shape) else shape)
  sizes = symbolic_helper._get_tensor_sizes(x)[-k:]
  if symbolic_helper._is_none(weight):
    weight = g.op('Constant', value_t=torch.ones(sizes))
  if symbolic_helper._is_none(bias):
    bias = g.op('Constant', value_t=torch.zeros(sizes))
  return g.op('LayerNormalization', x, weight, bias, epsilon_f=symbolic_helper._get_const(eps, 'f', 'eps'), axis_i=-k)


class Frozen(nn.Module):
  """A submodule's output for the only input it ever gets."""

  def __init__(self, value):
    super().__init__()
    self.register_buffer('value', value)

  def forward(self, _):
    return self.value


class PgmForward(nn.Module):
  """One sampling step's forward pass at batch 1 over n clean rows, all valid: logits [1, m, V].

  The conditioning c is constant (sigma = 0: the released models have no time conditioning),
  so, as our engine does at load, each adaLN_modulation(c) is computed once here and traced as
  a constant (neither torch 1.13 nor ORT folds them); so is the clean length (no padding mask).
  Works on a copy: the model itself keeps its modules.
  """

  def __init__(self, model, n):
    super().__init__()
    self.model = copy.deepcopy(model)
    self.clean_lengths = torch.tensor([n])
    c = self.model.condition(1, 'cpu')
    for module in self.model.modules():
      if hasattr(module, 'adaLN_modulation'):
        module.adaLN_modulation = Frozen(module.adaLN_modulation(c))
    self.model.condition = lambda batch, device: c

  def forward(self, clean_tokens, clean_positions, query_positions):
    return self.model.forward_infer(clean_tokens, clean_positions, self.clean_lengths, query_positions)


def step_inputs(rng, cfg, n, m, bos_id):
  """BOS at position 0 plus n - 1 random clean positions, m other positions to predict."""
  picked = rng.sample(range(1, cfg.length), n - 1 + m)
  clean, queries = [0] + picked[:n - 1], picked[n - 1:]
  tokens = [bos_id] + [rng.randrange(cfg.vocab_size - 2) for _ in clean[1:]]
  return {'tokens': tokens, 'positions': clean, 'queries': queries}


@torch.no_grad()
def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', type=Path, required=True)
  parser.add_argument('--hidden-size', type=int, default=128)
  parser.add_argument('--n-heads', type=int, default=4)
  parser.add_argument('--blocks', type=int, default=2, help='encoder blocks = decoder blocks')
  parser.add_argument('--cond-dim', type=int, default=128)
  parser.add_argument('--vocab-size', type=int, default=8192, help='V, the mask token included')
  parser.add_argument('--length', type=int, default=128)
  parser.add_argument('--clean', type=int, default=64, help='n: clean tokens, BOS included')
  parser.add_argument('--queries', type=int, default=8, help='m: positions to predict')
  parser.add_argument('--seed', type=int, default=1)
  args = parser.parse_args()
  if not (1 <= args.clean and 1 <= args.queries and args.clean + args.queries <= args.length):
    parser.error(f'need 1 <= n, 1 <= m and n + m <= L, got n={args.clean} m={args.queries} L={args.length}')
  torch.set_num_threads(1)

  cfg = ModelConfig(arch='pgm', vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                    n_heads=args.n_heads, cond_dim=args.cond_dim, length=args.length,
                    encoder_blocks=args.blocks, decoder_blocks=args.blocks)
  torch.manual_seed(args.seed)
  model = build_model(cfg).eval()
  randomize(model, torch.Generator().manual_seed(args.seed))
  bos_id = cfg.vocab_size - 2
  seq = step_inputs(random.Random(args.seed), cfg, args.clean, args.queries, bos_id)
  logits = pgm_logits(model, [seq])                                   # [1, m, V]

  wrapper = PgmForward(model, args.clean).eval()
  inputs = tuple(torch.tensor([seq[k]]) for k in ('tokens', 'positions', 'queries'))
  traced = wrapper(*inputs)
  assert torch.equal(traced, logits), 'the wrapper and pgm_logits disagree'

  out = args.out
  out.mkdir(parents=True, exist_ok=True)
  torch.onnx.register_custom_op_symbolic('aten::unflatten', unflatten, OPSET)
  torch.onnx.register_custom_op_symbolic('aten::layer_norm', layer_norm, OPSET)
  # Shapes traced as constants are what we want: batch 1 and n, m are fixed by design.
  warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
  torch.onnx.export(wrapper, inputs, str(out / 'model.onnx'), opset_version=OPSET,
                    input_names=['clean_tokens', 'clean_positions', 'query_positions'],
                    output_names=['logits'], do_constant_folding=True)
  sections = {**training_sections(cfg), **cfg.to_sections()}
  save_checkpoint(out / 'model.ckpt', model, sections,
                  ema_state=EMA(model.parameters(), decay=0.9999).state_dict(),
                  dtype=torch.float32)
  (out / 'input.json').write_text(json.dumps({'sequences': [seq]}) + '\n')
  logits.numpy().astype('<f4').tofile(out / 'logits.bin')
  meta = {
    'shape': list(logits.shape),
    'clean': args.clean,
    'queries': args.queries,
    'seed': args.seed,
    'bos_id': bos_id,
    'config': cfg.to_sections(),
    'params': sum(p.numel() for p in model.parameters()),
    'torch': torch.__version__,
    'opset': OPSET,
    'max_abs_logit': round(logits.abs().max().item(), 4),
  }
  (out / 'meta.json').write_text(json.dumps(meta, indent=2) + '\n')
  print(f'{out}: PGM D{cfg.hidden_size} H{cfg.n_heads} {args.blocks}/{args.blocks} V{cfg.vocab_size} '
        f'L{cfg.length}, n={args.clean} m={args.queries}, logits {list(logits.shape)}, '
        f'ONNX {(out / "model.onnx").stat().st_size / 1e6:.1f} MB')


if __name__ == '__main__':
  main()
