"""Train a PGM (or the MDLM baseline) on pre-chunked token files, on CPU.

Data: `train.bin` / `val.bin`, raw uint16 (or `--token-dtype int32`) model ids, or `.npy`,
already cut into chunks of `--length` tokens that each start with BOS.

  cd training && /usr/bin/python3 -m pgm.train --data DIR --out RUN --vocab-size V --bos-id B ...
  cd training && /usr/bin/python3 -m pgm.train --data DIR --out RUN --resume RUN/last.ckpt

Writes RUN/log.jsonl (train loss every --log-every steps; validation bound, in nats per token,
every --eval-every steps, with the EMA and the raw weights) and RUN/last.ckpt (+ RUN/step-N.ckpt
every --keep-every steps): Lightning-layout checkpoints the engine's converter reads.
"""
import argparse
import contextlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from .ckpt import load_checkpoint, model_config, save_checkpoint
from .ema import EMA
from .model import PRE_QUERY_MODES, QUERY_PROCESS_MODES, ModelConfig, build_model, mdlm_loss, \
  pgm_loss, sample_t


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--data', type=Path, required=True, help='folder with train.bin and val.bin')
  p.add_argument('--token-dtype', choices=['uint16', 'int32'], default='uint16')
  p.add_argument('--out', type=Path, required=True)
  p.add_argument('--resume', type=Path,
                 help='checkpoint to continue from (model, EMA, optimizer, LR schedule shape)')
  p.add_argument('--init', type=Path,
                 help='checkpoint whose weights (raw and EMA) start a new run: fresh optimizer, '
                      'LR schedule and step count; the architecture comes from the checkpoint')
  g = p.add_argument_group('model (ignored with --resume: taken from the checkpoint)')
  g.add_argument('--arch', choices=['pgm', 'mdlm'], default='pgm')
  g.add_argument('--vocab-size', type=int, help='V, including the mask id V-1')
  g.add_argument('--bos-id', type=int, help='every chunk must start with it')
  g.add_argument('--mask-id', type=int, help='must be V-1 (the default)')
  g.add_argument('--length', type=int, default=128)
  g.add_argument('--hidden-size', type=int, default=128)
  g.add_argument('--n-heads', type=int, default=4)
  g.add_argument('--cond-dim', type=int, default=64)
  g.add_argument('--mlp-ratio', type=int, default=4)
  g.add_argument('--encoder-blocks', type=int, default=2)
  g.add_argument('--decoder-blocks', type=int, default=2)
  g.add_argument('--n-blocks', type=int, default=4, help='MDLM blocks')
  g.add_argument('--pre-query-mode', choices=PRE_QUERY_MODES, default='learn+freqs')
  g.add_argument('--query-process-mode', choices=QUERY_PROCESS_MODES, default='linear')
  g.add_argument('--dropout', type=float, default=0.0)
  g = p.add_argument_group('optimisation')
  g.add_argument('--steps', type=int, default=1000, help='total optimizer steps')
  g.add_argument('--batch-size', type=int, default=16)
  g.add_argument('--lr', type=float, default=1e-3)
  g.add_argument('--min-lr-ratio', type=float, default=0.1, help='cosine floor, fraction of --lr')
  g.add_argument('--schedule', choices=['constant', 'cosine'], default='constant')
  g.add_argument('--warmup', type=int, default=100)
  g.add_argument('--beta1', type=float, default=0.9)
  g.add_argument('--beta2', type=float, default=0.999)
  g.add_argument('--weight-decay', type=float, default=0.0)
  g.add_argument('--grad-clip', type=float, default=1.0)
  g.add_argument('--ema', type=float, default=0.999)
  g.add_argument('--low-var', action='store_true', help='loss coefficient -1 instead of the ELBO weight')
  g.add_argument('--bf16', action='store_true', help='bf16 autocast (CPU)')
  g = p.add_argument_group('run')
  g.add_argument('--threads', type=int, default=2)
  g.add_argument('--seed', type=int, default=0)
  g.add_argument('--log-every', type=int, default=10)
  g.add_argument('--eval-every', type=int, default=200)
  g.add_argument('--val-batches', type=int, default=8)
  g.add_argument('--save-every', type=int, default=500, help='overwrite last.ckpt')
  g.add_argument('--keep-every', type=int, default=0, help='also keep step-N.ckpt (0: never)')
  g.add_argument('--deadline', type=float, default=0,
                 help='Unix time: past it, validate, save last.ckpt and stop early (0: none); '
                      'a later --resume continues to --steps')
  return p.parse_args(argv)


def load_chunks(path, length, dtype, bos_id):
  """[n_chunks, length] view of a token file (memory-mapped)."""
  tokens = np.load(path, mmap_mode='r') if path.suffix == '.npy' else np.memmap(path, dtype=dtype, mode='r')
  if tokens.size % length:
    raise ValueError(f'{path}: {tokens.size} tokens is not a multiple of --length {length}')
  chunks = tokens.reshape(-1, length)
  bad = np.flatnonzero(chunks[:1000, 0] != bos_id)
  if bad.size:
    raise ValueError(f'{path}: chunk {bad[0]} starts with {chunks[bad[0], 0]}, not BOS {bos_id}; '
                     'check --length, --bos-id and --token-dtype')
  return chunks


def lr_factor(step, args):
  if step < args.warmup:
    return (step + 1) / args.warmup
  if args.schedule == 'constant':
    return 1.0
  progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
  return args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_generator(seed, step):
  """Batch and noise randomness depend on (seed, step) only, so a resumed run continues exactly."""
  return np.random.default_rng([seed, step]), torch.Generator().manual_seed(seed * 1_000_003 + step)


def batch_loss(model, x0, gen, low_var=False):
  t = sample_t(x0.shape[0], generator=gen)
  loss_fn = pgm_loss if model.cfg.arch == 'pgm' else mdlm_loss
  return loss_fn(model, x0, t, generator=gen, low_var=low_var)


@torch.no_grad()
def validate(model, val_chunks, args, autocast):
  """Mean bound (nats per token) over the first --val-batches batches, fixed noise."""
  model.eval()
  total, n = 0.0, 0
  gen = torch.Generator().manual_seed(12345)
  for i in range(args.val_batches):
    rows = val_chunks[i * args.batch_size:(i + 1) * args.batch_size]
    if len(rows) == 0:
      break
    with autocast():
      _, bound = batch_loss(model, torch.from_numpy(rows.astype(np.int64)), gen)
    total, n = total + bound.item() * len(rows), n + len(rows)
  model.train()
  return total / n


def config_sections(cfg, args):
  data = dict(path=str(args.data), bos_id=args.bos_id, token_dtype=args.token_dtype)
  vocab = vocab_map(args)
  if vocab:
    data['vocab_map'] = vocab
  return {**cfg.to_sections(),
          'training': dict(ema=args.ema, antithetic_sampling=True, sampling_eps=1e-3,
                           low_var=args.low_var, bf16=args.bf16),
          'optim': dict(name='adamw', lr=args.lr, beta1=args.beta1, beta2=args.beta2, eps=1e-8,
                        weight_decay=args.weight_decay),
          'lr_scheduler': dict(schedule=args.schedule, warmup=args.warmup,
                               min_lr_ratio=args.min_lr_ratio, steps=args.steps),
          'loader': dict(batch_size=args.batch_size),
          'data': data}


def vocab_map(args):
  """The reduced vocabulary (model id -> GPT-2 id, -1 for the mask) from the corpus build's
  vocab.json next to train.bin; the converter writes it into the model's config.json."""
  path = args.data / 'vocab.json'
  return json.load(open(path))['vocabMap'] if path.exists() else None


def main(argv=None):
  args = parse_args(argv)
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  args.out.mkdir(parents=True, exist_ok=True)

  if args.resume and args.init:
    raise SystemExit('--resume and --init exclude each other')
  ckpt = load_checkpoint(args.resume or args.init) if (args.resume or args.init) else None
  if ckpt is not None:
    cfg = model_config(ckpt)
    saved = ckpt['hyper_parameters']['config']
    if args.bos_id is None:
      args.bos_id = saved['data']['bos_id']
    if args.resume:
      for key in ('schedule', 'warmup', 'min_lr_ratio'):  # --steps may change: it extends the run
        setattr(args, key, saved['lr_scheduler'][key])
  else:
    if args.vocab_size is None or args.bos_id is None:
      raise SystemExit('--vocab-size and --bos-id are required for a new run')
    cfg = ModelConfig(
      arch=args.arch, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
      n_heads=args.n_heads, cond_dim=args.cond_dim, length=args.length, mlp_ratio=args.mlp_ratio,
      n_blocks=args.n_blocks, encoder_blocks=args.encoder_blocks,
      decoder_blocks=args.decoder_blocks, pre_query_mode=args.pre_query_mode,
      query_process_mode=args.query_process_mode, dropout=args.dropout)
  if args.mask_id is not None and args.mask_id != cfg.mask_id:
    raise SystemExit(f'--mask-id must be V-1 = {cfg.mask_id}: the engine assumes it')

  model = build_model(cfg)
  optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                                eps=1e-8, weight_decay=args.weight_decay)
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args))
  ema = EMA(model.parameters(), args.ema)
  step = 0
  if ckpt is not None:
    model.load_state_dict({k[len('backbone.'):]: v.float() for k, v in ckpt['state_dict'].items()})
    ema.load_state_dict(ckpt['ema'])
    if args.resume:
      optimizer.load_state_dict(ckpt['optimizer_states'][0])
      scheduler.load_state_dict(ckpt['lr_schedulers'][0])
      step = ckpt['global_step']
    del ckpt

  train_chunks = load_chunks(args.data / 'train.bin', cfg.length, args.token_dtype, args.bos_id)
  val_chunks = load_chunks(args.data / 'val.bin', cfg.length, args.token_dtype, args.bos_id)
  n_params = sum(p.numel() for p in model.parameters())
  print(f'{cfg.arch}: {n_params / 1e6:.2f}M parameters, {len(train_chunks)} train chunks, '
        f'{len(val_chunks)} val chunks, starting at step {step}')

  autocast = ((lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if args.bf16
              else contextlib.nullcontext)
  log = open(args.out / 'log.jsonl', 'a')

  def write(record):
    log.write(json.dumps(record) + '\n')
    log.flush()
    print(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in record.items()))

  def evaluate():
    ema.swap_in(model.parameters())
    val_ema = validate(model, val_chunks, args, autocast)
    ema.swap_out(model.parameters())
    write({'step': step, 'val_bound': val_ema, 'val_bound_raw': validate(model, val_chunks, args, autocast)})

  def save(path):
    save_checkpoint(path, model, config_sections(cfg, args), ema_state=ema.state_dict(),
                    optimizer_state=optimizer.state_dict(), scheduler_state=scheduler.state_dict(),
                    global_step=step, cuda_tags=False)

  model.train()
  losses, t0, tokens = [], time.time(), 0
  while step < args.steps:
    if args.deadline and time.time() > args.deadline:
      write({'step': step, 'stopped': 'deadline'})
      evaluate()
      save(args.out / 'last.ckpt.tmp')
      os.replace(args.out / 'last.ckpt.tmp', args.out / 'last.ckpt')
      break
    rng, gen = step_generator(args.seed, step)
    rows = rng.integers(0, len(train_chunks), size=args.batch_size)
    x0 = torch.from_numpy(train_chunks[np.sort(rows)].astype(np.int64))
    with autocast():
      loss, _ = batch_loss(model, x0, gen, args.low_var)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
    optimizer.step()
    scheduler.step()
    ema.update(model.parameters())
    step += 1
    losses.append(loss.item())
    tokens += x0.numel()
    if step % args.log_every == 0:
      elapsed = time.time() - t0
      write({'step': step, 'loss': float(np.mean(losses)), 'lr': scheduler.get_last_lr()[0],
             'tokens_per_s': tokens / elapsed})
      losses, t0, tokens = [], time.time(), 0
    if step % args.eval_every == 0 or step == args.steps:
      evaluate()
    if step % args.save_every == 0 or step == args.steps:
      save(args.out / 'last.ckpt.tmp')
      os.replace(args.out / 'last.ckpt.tmp', args.out / 'last.ckpt')
    if args.keep_every and step % args.keep_every == 0:
      save(args.out / f'step-{step}.ckpt')


if __name__ == '__main__':
  main()
