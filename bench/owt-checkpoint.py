"""A random-weight checkpoint at the shape of the authors' released OpenWebText models, in their
layout (Lightning .ckpt with EMA weights, AdamW moments and scheduler state: 2.75 GB for the PGM),
for bench/full-size.ts. Random weights (training/make_fixtures.py's), so its text is noise.

  /usr/bin/python3 bench/owt-checkpoint.py pgm|mdlm OUT.ckpt

PGM: 6 encoder + 6 decoder blocks; MDLM: 12 blocks; both D768, 12 heads, V50258, L1024.
Written to OUT.ckpt.part, then renamed: a file at OUT.ckpt is always whole.
"""
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'training'))
from make_fixtures import fake_optimizer, pgm, random_model, training_sections  # noqa: E402
from pgm.ckpt import save_checkpoint  # noqa: E402
from pgm.model import ModelConfig  # noqa: E402

SHAPE = dict(vocab_size=50258, hidden_size=768, n_heads=12, cond_dim=128, length=1024)


def main():
  if len(sys.argv) != 3 or sys.argv[1] not in ('pgm', 'mdlm'):
    sys.exit('usage: owt-checkpoint.py pgm|mdlm OUT.ckpt')
  arch, out = sys.argv[1], Path(sys.argv[2])
  cfg = (pgm(**SHAPE, encoder_blocks=6, decoder_blocks=6) if arch == 'pgm'
         else ModelConfig(arch='mdlm', **SHAPE, n_blocks=12))
  model, ema, gen, _ = random_model(dict(seed=23, cfg=cfg))
  opt, sched = fake_optimizer(model, gen, 1234)
  part = out.with_name(out.name + '.part')
  save_checkpoint(part, model, {**training_sections(cfg), **cfg.to_sections()}, ema_state=ema.state_dict(),
                  optimizer_state=opt, scheduler_state=sched, global_step=1234)
  os.replace(part, out)
  print(f'{out}: {out.stat().st_size} bytes')


if __name__ == '__main__':
  main()
