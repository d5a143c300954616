"""Tiny torch checkpoints for tests/convert (edge cases the fixtures in tests/fixtures do not cover).

  /usr/bin/python3 tests/convert/data/make.py

Writes, next to this script (deterministic; each file < 200 KB):
  mdlm-edge.ckpt      MDLM DIT (V10 D8 H2 C4 F12 L8, 2 blocks) saved with torch.save under a
                      non-"archive" zip prefix: float16 / float64 / bfloat16 storages, a transposed
                      (non-contiguous) tensor, a tensor at a storage offset inside a shared storage,
                      a non-backbone parameter (`noise.sigma`) tracked by the EMA after the backbone,
                      hyper_parameters as a plain dict, a numpy scalar and an AttributeDict-like
                      dict subclass.
  mdlm-edge-deflate.ckpt  the same archive re-zipped with DEFLATE entries (python zipfile).
  expected.json       for mdlm-edge: {"ema"|"raw": {name: {"shape", "values"}}} as float64 lists,
                      plus "ignored" and "config".
  bad-ema-count.ckpt  EMA with one shadow tensor missing.
  bad-ema-shape.ckpt  EMA whose 3rd shadow tensor has the wrong shape.
  no-ema.ckpt         no "ema" entry (converts only with --no-ema).
  unknown-arch.ckpt   a backbone with GPT-2 style names.
  evil.ckpt           data.pkl calls os.system through REDUCE (must be refused, never run).
  pickles.json        one value pickled with protocols 0-5 by CPython: [{"protocol", "hex"}] and
                      "expected", the value as src/convert/checkpoint.ts `toPlain` renders it.
"""
import collections
import json
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
V, D, H, C, F, L, NBLOCKS = 10, 8, 2, 4, 12, 8, 2


class AttributeDict(dict):
  """Pickled like Lightning's AttributeDict: a dict subclass (NEWOBJ + SETITEMS)."""


def stand_in(cls, module):
  """Pickle `cls` under `module` (as if that package were installed) without importing it."""
  parts = module.split('.')
  for i in range(len(parts)):
    sys.modules.setdefault('.'.join(parts[:i + 1]), types.ModuleType('.'.join(parts[:i + 1])))
  cls.__module__ = module
  setattr(sys.modules[module], cls.__name__, cls)


stand_in(AttributeDict, 'lightning_fabric.utilities.data')


class DictConfig:
  """Stand-in for omegaconf's DictConfig: its pickled state holds `_content` of value nodes."""
  def __init__(self, content):
    self._content = content
    self._parent = None
    self._metadata = None

  def __getstate__(self):
    return {'_content': self._content, '_parent': self._parent, '_metadata': self._metadata}

  def __setstate__(self, state):
    self.__dict__.update(state)


class AnyNode:
  def __init__(self, val, parent=None):
    self._val = val
    self._parent = parent


stand_in(DictConfig, 'omegaconf.dictconfig')
stand_in(AnyNode, 'omegaconf.nodes')


def pickle_corpus():
  """A value touching most opcodes across protocols (memo sharing, big ints, sets, classes)."""
  shared = [1, 2]
  cfg = DictConfig({'lr': AnyNode(3e-4), 'name': AnyNode('pgm'), 'inner': DictConfig({'n': AnyNode(6)})})
  cfg._content['inner']._parent = cfg  # a cycle through _parent, as in real configs
  value = {
    'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**40, -2**40, 2**53 - 1, 2**70, -2**70],
    'floats': [0.5, -3.25, 1e-300, 3.141592653589793],
    'flags': [True, False, None],
    'strings': ['', 'a', 'h\u00e9llo \u2603', 'x' * 300, 'quote\' "and\\back\nslash'],
    'bytes': [b'', b'\x00\xff', bytes(range(256)) * 2, bytearray(b'ab')],
    'tuples': [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    'sets': [{3, 1, 2}, frozenset([7])],
    'od': collections.OrderedDict([('b', 1), ('a', 2)]),
    'shared': [shared, shared],
    'numpy': [np.float64(1.5), np.int64(-3), np.float32(0.25), np.bool_(True)],
    'config': cfg,
    7: 'int key',
  }
  expected = {
    'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**40, -2**40, 2**53 - 1, str(2**70), str(-2**70)],
    'floats': [0.5, -3.25, 1e-300, 3.141592653589793],
    'flags': [True, False, None],
    'strings': value['strings'],
    'bytes': ['<0 bytes>', '<2 bytes>', '<512 bytes>', '<2 bytes>'],
    'tuples': [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]],
    'sets': [[1, 2, 3], [7]],
    'od': {'b': 1, 'a': 2},
    'shared': [[1, 2], [1, 2]],
    'numpy': [1.5, -3, 0.25, True],
    'config': {'lr': 3e-4, 'name': 'pgm', 'inner': {'n': 6}},
    '7': 'int key',
  }
  return {'pickles': [{'protocol': p, 'hex': pickle.dumps(value, protocol=p).hex()} for p in range(6)], 'expected': expected}


class Evil:
  def __reduce__(self):
    return (os.system, ('touch /tmp/pgm-convert-test-pwned',))


def mdlm_state(gen):
  """Backbone state_dict in DIT module order, with rotary buffer."""
  def t(*shape):
    return torch.randn(*shape, generator=gen)
  sd = collections.OrderedDict()
  sd['vocab_embed.embedding'] = t(V, D)
  sd['rotary_emb.inv_freq'] = 1.0 / (10000 ** (torch.arange(0, D // H, 2).float() / (D // H)))
  sd['sigma_map.mlp.0.weight'] = t(C, 256)
  sd['sigma_map.mlp.0.bias'] = t(C)
  sd['sigma_map.mlp.2.weight'] = t(C, C)
  sd['sigma_map.mlp.2.bias'] = t(C)
  for i in range(NBLOCKS):
    p = f'blocks.{i}.'
    sd[p + 'norm1.weight'] = t(D)
    sd[p + 'attn_qkv.weight'] = t(3 * D, D)
    sd[p + 'attn_out.weight'] = t(D, D)
    sd[p + 'norm2.weight'] = t(D)
    sd[p + 'mlp.0.weight'] = t(F, D)
    sd[p + 'mlp.0.bias'] = t(F)
    sd[p + 'mlp.2.weight'] = t(D, F)
    sd[p + 'mlp.2.bias'] = t(D)
    sd[p + 'adaLN_modulation.weight'] = t(6 * D, C)
    sd[p + 'adaLN_modulation.bias'] = t(6 * D)
  sd['output_layer.norm_final.weight'] = t(D)
  sd['output_layer.linear.weight'] = t(V, D)
  sd['output_layer.linear.bias'] = t(V)
  sd['output_layer.adaLN_modulation.weight'] = t(2 * D, C)
  sd['output_layer.adaLN_modulation.bias'] = t(2 * D)
  return sd


def stored(sd):
  """Vary storage dtype and layout. Returns (stored tensors, their exact float values)."""
  out = collections.OrderedDict()
  for k, v in sd.items():
    if k == 'blocks.0.attn_out.weight':
      v = v.t().contiguous().t()  # non-contiguous: stride (1, D)
    elif k == 'blocks.1.mlp.0.weight':
      v = v.half()
    elif k == 'output_layer.linear.weight':
      v = v.double()
    elif k == 'blocks.1.mlp.2.weight':
      v = v.bfloat16()
    out[k] = v
  # Two tensors sharing one storage, the second at a storage offset.
  shared = torch.cat([out['output_layer.linear.bias'].flatten(), out['output_layer.norm_final.weight'].flatten()])
  out['output_layer.linear.bias'] = shared[:V]
  out['output_layer.norm_final.weight'] = shared[V:]
  return out


def exact(sd):
  return {k: {'shape': list(v.shape), 'values': v.double().flatten().tolist()} for k, v in sd.items() if k != 'rotary_emb.inv_freq'}


def lightning(state, shadow, hyper, extra=None):
  ckpt = {
    'epoch': 3,
    'global_step': 1234,
    'pytorch-lightning_version': '2.2.1',
    'state_dict': state,
    'loops': {'fit_loop': {'state_dict': {}, 'epoch_progress': {'total': {'ready': 4}}}},
    'callbacks': {"ModelCheckpoint{'monitor': 'val/nll'}": {'best_model_score': torch.tensor(3.25), 'best_k_models': {}, 'last_score': np.float64(3.25)}},
    'hyper_parameters': hyper,
  }
  if shadow is not None:
    ckpt['ema'] = {'decay': 0.9999, 'num_updates': 1234, 'shadow_params': shadow, 'collected_params': None}
  ckpt.update(extra or {})
  return ckpt


def main():
  gen = torch.Generator().manual_seed(7)
  raw = stored(mdlm_state(gen))
  ema = collections.OrderedDict((k, v if k == 'rotary_emb.inv_freq' else (v.float() + 0.01 * torch.randn(v.shape, generator=gen)).to(v.dtype)) for k, v in raw.items())
  noise = torch.tensor([0.5, 2.0])
  state = collections.OrderedDict([('backbone.' + k, v) for k, v in raw.items()] + [('noise.sigma', noise)])
  shadow = [v for k, v in ema.items() if k != 'rotary_emb.inv_freq'] + [noise + 0.1]
  config = {
    'model': {'hidden_size': D, 'cond_dim': C, 'length': L, 'n_heads': H, 'n_blocks': NBLOCKS, 'mlp_ratio': 1.5},
    'algo': {'name': 'mdlm', 'backbone': 'dit', 'time_conditioning': False},
    'sampling': {'p_nucleus': 0.9},
  }
  hyper = AttributeDict(config=config, note='plain dict config')
  torch.save(lightning(state, shadow, hyper), HERE / 'mdlm-edge.ckpt')
  with open(HERE / 'expected.json', 'w') as f:
    json.dump({'ema': exact(ema), 'raw': exact(raw), 'ignored': ['noise.sigma'], 'config': config}, f)

  with zipfile.ZipFile(HERE / 'mdlm-edge.ckpt') as src, zipfile.ZipFile(HERE / 'mdlm-edge-deflate.ckpt', 'w', zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
      dst.writestr(info.filename, src.read(info.filename))

  params = [k for k in raw if k != 'rotary_emb.inv_freq']
  backbone = collections.OrderedDict(('backbone.' + k, v) for k, v in raw.items())
  short = [ema[k] for k in params][:-1]
  torch.save(lightning(backbone, short, {'config': config}), HERE / 'bad-ema-count.ckpt')
  wrong = [ema[k] for k in params]
  wrong[2] = torch.zeros(C + 1, C)
  torch.save(lightning(backbone, wrong, {'config': config}), HERE / 'bad-ema-shape.ckpt')
  torch.save(lightning(backbone, None, {'config': config}), HERE / 'no-ema.ckpt')
  gpt = collections.OrderedDict([('backbone.transformer.wte.weight', torch.zeros(V, D)), ('backbone.transformer.h.0.attn.c_attn.weight', torch.zeros(D, 3 * D))])
  torch.save(lightning(gpt, None, {'config': config}), HERE / 'unknown-arch.ckpt')
  torch.save({'state_dict': backbone, 'hyper_parameters': {'payload': Evil()}}, HERE / 'evil.ckpt')

  with open(HERE / 'pickles.json', 'w') as f:
    json.dump(pickle_corpus(), f)

  for p in sorted(HERE.glob('*.ckpt')):
    assert p.stat().st_size < 200_000, p


if __name__ == '__main__':
  main()
