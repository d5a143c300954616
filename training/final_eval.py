"""Final validation of a training run: the per-token bound on the held-out split, tokens seen,
training time. Prints (and with --out writes) one JSON object.

  cd training && /usr/bin/python3 final_eval.py runs/pgm-small [--ckpt FILE] [--out eval.json]

The bound is `pgm.train.validate` itself (same `batch_loss` -> `pgm_loss` / `mdlm_loss`, same
fixed noise generator seed 12345, same batch size as training), run with EMA weights over all
of `val.bin` (or its first --max-chunks chunks):
- PGM: mean over tokens of the group-1 ELBO terms (`pgm_loss`'s `bound`), nats per token;
- MDLM: mean over tokens of the masked-token ELBO terms (`mdlm_loss`'s `bound`), nats per token.
With --max-chunks 48 (3 batches of 16) it reproduces the run's logged `val_bound` at the
checkpoint's step exactly (a built-in cross-check: see --check-log).

Training time: the sum over `log.jsonl` train records of (steps since the previous record x
batch x L) / tokens_per_s, i.e. the wall time of the training loop including its validations
and checkpoint saves (train.py resets its timer at every log line), excluding process start-up
and the steps after the last log line. Cross-checked against file times (run dir `pid` file or
first-line-of-stdout.log mtime -> last.ckpt mtime) when those exist.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgm.ckpt import backbone_state, load_checkpoint, model_config  # noqa: E402
from pgm.model import build_model  # noqa: E402
from pgm.train import load_chunks, validate  # noqa: E402

from omegaconf import OmegaConf  # noqa: E402

TRAINING = Path(__file__).resolve().parent


def f16_round(state):
  """Each floating tensor rounded to float16 and back: exactly what an f16 model dir holds."""
  return {k: (v.to(torch.float16).to(torch.float32) if k != 'rotary_emb.inv_freq' else v.float())
          for k, v in state.items()}


def load_model(ckpt, use_ema=True, f16=False):
  cfg = model_config(ckpt)
  model = build_model(cfg)
  state = {k: v.float() for k, v in backbone_state(ckpt, use_ema).items()}
  if f16:
    state = f16_round(state)
  model.load_state_dict(state)
  model.eval()
  return model, cfg


def read_log(path):
  records = []
  if path.exists():
    for line in path.read_text().splitlines():
      line = line.strip()
      if line:
        records.append(json.loads(line))
  return records


def training_time(records, batch, length, run_dir, ckpt_path):
  """Seconds of training loop wall time from log.jsonl, plus a file-time cross-check."""
  total, prev_step, intervals = 0.0, 0, 0
  for r in records:
    if 'tokens_per_s' in r and r.get('tokens_per_s'):
      steps = r['step'] - prev_step
      total += steps * batch * length / r['tokens_per_s']
      intervals += 1
    if 'step' in r and 'val_bound' not in r:
      prev_step = r['step']
  out = {'seconds': round(total, 1), 'hours': round(total / 3600, 3),
         'method': 'log.jsonl: sum of (steps x batch x L) / tokens_per_s over the train records '
                   '(loop wall time incl. validation and saves; excl. start-up and any steps after '
                   'the last log line)',
         'logIntervals': intervals}
  pid = run_dir / 'pid'
  start = pid.stat().st_mtime if pid.exists() else None
  if start is not None:
    out['fileTimes'] = {'start': 'run dir pid file mtime (launch)', 'end': 'checkpoint mtime'}
  if start is not None and ckpt_path.exists():
    out['fileTimes']['seconds'] = round(ckpt_path.stat().st_mtime - start, 1)
    out['fileTimes']['startUtc'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))
    out['fileTimes']['endUtc'] = time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                              time.gmtime(ckpt_path.stat().st_mtime))
  return out


def repo_relative(path):
  """`path` relative to the repository root when it is inside it (no machine paths in outputs)."""
  root = Path(__file__).resolve().parent.parent
  try:
    return str(Path(path).resolve().relative_to(root))
  except ValueError:
    return str(path)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('run', type=Path, help='run directory (log.jsonl, last.ckpt)')
  p.add_argument('--ckpt', type=Path, help='checkpoint (default RUN/last.ckpt)')
  p.add_argument('--data', type=Path, help='folder with val.bin (default: the config data.path, '
                 'relative to training/)')
  p.add_argument('--max-chunks', type=int, default=0,
                 help='validate on the first N chunks of val.bin only (0: all)')
  p.add_argument('--f16', action='store_true', help='also evaluate the f16-rounded EMA weights')
  p.add_argument('--raw', action='store_true', help='also evaluate the raw (non-EMA) weights')
  p.add_argument('--threads', type=int, default=1)
  p.add_argument('--check-log', action='store_true',
                 help='also run the run\'s own 3-batch validation and compare with log.jsonl')
  p.add_argument('--label', help='run path to report (default: RUN), e.g. when RUN is a copy')
  p.add_argument('--out', type=Path)
  args = p.parse_args(argv)
  torch.set_num_threads(args.threads)

  ckpt_path = args.ckpt or args.run / 'last.ckpt'
  ckpt = load_checkpoint(ckpt_path)
  conf = OmegaConf.to_container(ckpt['hyper_parameters']['config'])
  step = int(ckpt['global_step'])
  batch = int(conf['loader']['batch_size'])
  model, cfg = load_model(ckpt, use_ema=True)
  data = args.data or (TRAINING / conf['data']['path'])
  val = load_chunks(data / 'val.bin', cfg.length, conf['data'].get('token_dtype', 'uint16'),
                    conf['data']['bos_id'])
  n_chunks = len(val) if not args.max_chunks else min(args.max_chunks, len(val))
  val = val[:n_chunks]
  vargs = SimpleNamespace(batch_size=batch, val_batches=math.ceil(n_chunks / batch))
  null = __import__('contextlib').nullcontext

  result = {'run': args.label or str(args.run),
            'checkpoint': str(Path(args.label) / ckpt_path.name) if args.label else str(ckpt_path), 'arch': cfg.arch,
            'globalStep': step, 'batchSize': batch, 'length': cfg.length,
            'tokensSeen': step * batch * cfg.length,
            'params': sum(p.numel() for p in model.parameters())}
  t0 = time.time()
  bound = validate(model, val, vargs, null)
  key = 'pgmBound' if cfg.arch == 'pgm' else 'mdlmBound'
  result['val'] = {
    key: round(bound, 5), 'unit': 'nats per token (all L tokens, BOS included)',
    'what': ('group-1 ELBO terms (pgm_loss bound)' if cfg.arch == 'pgm'
             else 'masked-token ELBO terms (mdlm_loss bound)'),
    'weights': 'ema', 'split': repo_relative(data / 'val.bin'), 'chunks': n_chunks,
    'chunksTotal': int(len(load_chunks(data / 'val.bin', cfg.length,
                                       conf['data'].get('token_dtype', 'uint16'),
                                       conf['data']['bos_id']))),
    'tokens': n_chunks * cfg.length, 'noiseSeed': 12345,
    'seconds': round(time.time() - t0, 1)}
  if args.f16:
    m16, _ = load_model(ckpt, use_ema=True, f16=True)
    result['val'][key + 'F16'] = round(validate(m16, val, vargs, null), 5)
  if args.raw:
    mraw, _ = load_model(ckpt, use_ema=False)
    result['val'][key + 'Raw'] = round(validate(mraw, val, vargs, null), 5)

  records = read_log(args.run / 'log.jsonl')
  logged = [r for r in records if 'val_bound' in r and r['step'] == step]
  if args.check_log:
    short = validate(model, load_chunks(data / 'val.bin', cfg.length, 'uint16',
                                        conf['data']['bos_id']),
                     SimpleNamespace(batch_size=batch, val_batches=3), null)
    result['logCheck'] = {'recomputed3Batches': round(short, 6),
                          'logged': logged[-1]['val_bound'] if logged else None}
  if logged:
    result['loggedValBound3Batches'] = logged[-1]['val_bound']
  stops = [r for r in records if r.get('stopped')]
  result['stoppedEarly'] = bool(stops) and step < int(conf['lr_scheduler']['steps'])
  result['plannedSteps'] = int(conf['lr_scheduler']['steps'])
  result['trainingTime'] = training_time(records, batch, cfg.length, args.run, ckpt_path)
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + '\n')


if __name__ == '__main__':
  main()
