"""Generate the engine's test fixtures: small random-weight checkpoints in the authors' Lightning
layout and the fp32 CPU logits PyTorch computes for them (docs/model.md).

  /usr/bin/python3 training/make_fixtures.py [--out tests/fixtures] [--only NAME ...]

Deterministic: every fixture has its own seed. See tests/fixtures/README.md for the format.
"""
import argparse
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgm.ckpt import save_checkpoint  # noqa: E402
from pgm.ema import EMA  # noqa: E402
from pgm.model import ModelConfig, build_model, pgm_incremental_logits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GPT2_BOS = 50256


def pgm(**kw):
  return ModelConfig(arch='pgm', **kw)


# name -> (seed, config, storage dtype, keep optimizer moments, batch spec, notes)
#   PGM batch spec: list of (n clean tokens, m queries) or an explicit sequence dict.
#   A KV-set fixture has `passes` instead of `batch`: per sequence, per pass, (fresh tokens,
#   queries) or (fresh tokens, queries, 'refresh'); `adaptive` adds passes of the same form run
#   with the adaptive policy at `threshold`.
FIXTURES = {
  'pgm-learn-freqs-linear': dict(
    seed=1, storage=torch.float32, optimizer=True,
    cfg=pgm(vocab_size=67, hidden_size=48, n_heads=3, cond_dim=16, length=37,
            encoder_blocks=2, decoder_blocks=1, pre_query_mode='learn+freqs',
            query_process_mode='linear'),
    batch=[(7, 5), (15, 9), (2, 3)],
    notes='Released default mode. 2 encoder / 1 decoder blocks. Padded batch; clean and query '
          'positions unsorted; BOS at position 0 in every sequence.'),
  'pgm-first-step': dict(
    seed=2, storage=torch.float32, optimizer=False,
    cfg=pgm(vocab_size=67, hidden_size=32, n_heads=4, cond_dim=16, length=37,
            encoder_blocks=1, decoder_blocks=2, pre_query_mode='learn+freqs',
            query_process_mode='linear'),
    batch=[{'tokens': [65], 'positions': [0], 'queries': list(range(1, 37))}],
    notes='First sampling step: only BOS (= V-2 in this tiny vocabulary) at position 0, '
          'queries 1..L-1. 1 encoder / 2 decoder blocks.'),
  'pgm-learn-mlp4': dict(
    seed=3, storage=torch.float32, optimizer=False,
    cfg=pgm(vocab_size=61, hidden_size=32, n_heads=2, cond_dim=16, length=29,
            encoder_blocks=1, decoder_blocks=1, pre_query_mode='learn',
            query_process_mode='mlp4'),
    batch=[(1, 4), (9, 6), (4, 1)],
    notes="pre_query_mode 'learn' (no sinusoid), query_processor mlp4. Sequence 0 has n=1."),
  'pgm-mean-linear': dict(
    seed=4, storage=torch.float32, optimizer=False,
    cfg=pgm(vocab_size=67, hidden_size=40, n_heads=4, cond_dim=24, length=40,
            encoder_blocks=1, decoder_blocks=2, pre_query_mode='learn+freqs+mean',
            query_process_mode='linear'),
    batch=[(5, 7), (1, 2), (12, 10)],
    notes="pre_query_mode 'learn+freqs+mean' (mean over valid encoder rows only). dh=10. "
          'Sequence 1 has n=1.'),
  'pgm-logsumexp-mlp4': dict(
    seed=5, storage=torch.float32, optimizer=False,
    cfg=pgm(vocab_size=53, hidden_size=32, n_heads=2, cond_dim=16, length=33,
            encoder_blocks=2, decoder_blocks=1, pre_query_mode='learn+freqs+logsumexp',
            query_process_mode='mlp4'),
    batch=[(3, 3), (10, 8), (1, 5)],
    notes="pre_query_mode 'learn+freqs+logsumexp' (per channel, valid rows only), mlp4. "
          'Sequence 2 has n=1.'),
  'pgm-v50258': dict(
    seed=6, storage=torch.float16, optimizer=False, bos_id=GPT2_BOS,
    cfg=pgm(vocab_size=50258, hidden_size=8, n_heads=2, cond_dim=8, length=24,
            encoder_blocks=1, decoder_blocks=1, pre_query_mode='learn+freqs',
            query_process_mode='linear'),
    batch=[(6, 3)],
    notes='Real GPT-2 + mask vocabulary (BOS 50256, mask 50257), tiny D. Half storages '
          '(rotary_emb.inv_freq stays float32); expected logits computed in fp32 from the '
          'half-rounded weights. No optimizer_states / lr_schedulers (weights-only layout).'),
  'pgm-bf16': dict(
    seed=7, storage=torch.bfloat16, optimizer=False,
    cfg=pgm(vocab_size=67, hidden_size=32, n_heads=2, cond_dim=16, length=37,
            encoder_blocks=1, decoder_blocks=1, pre_query_mode='learn+freqs',
            query_process_mode='linear'),
    batch=[(6, 4), (2, 5)],
    notes='BFloat16 storages (rotary_emb.inv_freq stays float32); expected logits computed in '
          'fp32 from the bf16-rounded weights.'),
  'mdlm-tiny': dict(
    seed=8, storage=torch.float32, optimizer=True,
    cfg=ModelConfig(arch='mdlm', vocab_size=67, hidden_size=32, n_heads=2, cond_dim=16,
                    length=24, n_blocks=2),
    batch=[0.4, 0.7],  # mask fraction per sequence (BOS at 0 is never masked)
    notes='MDLM baseline (DIT), 2 blocks. Full sequences of length L, some tokens = mask_id '
          '(V-1); positions 0..L-1, no padding. Output [batch, L, V].'),
  'pgm-incremental': dict(
    seed=9, storage=torch.float32, optimizer=False,
    cfg=pgm(vocab_size=67, hidden_size=40, n_heads=4, cond_dim=24, length=37,
            encoder_blocks=2, decoder_blocks=2, pre_query_mode='learn+freqs+mean',
            query_process_mode='linear'),
    passes=[[(3, 5), (3, 4), (1, 6), (2, 5, 'refresh'), (4, 3)],
            [(2, 4), (4, 6), (2, 3), (1, 4, 'refresh'), (3, 5), (1, 2)]],
    adaptive=dict(threshold=0.3,
                  passes=[[(2, 3), (3, 2), (2, 4), (4, 1), (1, 5), (5, 3), (1, 2)],
                          [(4, 2), (2, 6), (6, 1), (1, 3), (3, 4, 'refresh'), (4, 2), (2, 1)]]),
    notes='Stale (incremental) KV set: each clean token is encoded once, in the pass in which it '
          'joins, against the rows cached before it (training/pgm/model.py '
          'pgm_incremental_logits). Pass 0: BOS at 0 and a prompt at 1.. ; later passes add '
          'tokens at positions the previous pass queried. A refresh pass re-encodes the whole '
          'clean set.'),
}


def training_sections(cfg: ModelConfig):
  """Everything the authors' config holds besides model/algo/sampling (not used by inference),
  including unresolved interpolations with custom resolvers, as their pickled configs have."""
  return dict(
    mode='train', seed=1, neg_infinity_mode='true-inf' if cfg.arch == 'pgm' else 'large-finite',
    noise=dict(type='log-linear', eps=1e-3),
    training=dict(ema=0.9999, antithetic_sampling=True, importance_sampling=False,
                  sampling_eps=1e-3, change_of_variables=False, loss_precision='bf16'),
    optim=dict(weight_decay=0, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8),
    lr_scheduler=dict(_target_='transformers.get_constant_schedule_with_warmup',
                      num_warmup_steps=2500),
    loader=dict(global_batch_size=512, eval_global_batch_size='${.global_batch_size}',
                batch_size='${div_up:${.global_batch_size}, '
                           '${eval:${trainer.devices} * ${trainer.num_nodes}}}',
                num_workers=12, pin_memory=True),
    data=dict(train='openwebtext-split', valid='openwebtext-split',
              tokenizer_name_or_path='gpt2', wrap=True, streaming=False),
    trainer=dict(_target_='lightning.Trainer', accelerator='cuda', num_nodes=1,
                 devices='${device_count:}', precision='bf16', gradient_clip_val=1.0,
                 max_steps=1_000_000),
    checkpointing=dict(save_dir='${cwd:}', resume_from_ckpt=True,
                       resume_ckpt_path='${.save_dir}/checkpoints/last.ckpt'),
  )


@torch.no_grad()
def randomize(model, gen):
  """Random weights that make every part of the network matter (adaLN included)."""
  cond_dim = model.cfg.cond_dim
  for name, p in model.named_parameters():
    randn = lambda: torch.randn(p.shape, generator=gen)
    if 'adaLN_modulation' in name:  # shift/scale/gate of order 0.1-1
      p.copy_(randn() * (1.2 / cond_dim ** 0.5) if name.endswith('weight') else 0.3 * randn())
    elif name.endswith('norm1.weight') or name.endswith('norm2.weight') or 'norm_final' in name \
        or name.endswith('pre_query_norm.weight'):
      p.copy_(1 + 0.25 * randn())
    elif name in ('vocab_embed.embedding', 'decoder.group_swap.base_embedding'):
      p.copy_(randn())
    elif name.endswith('bias'):
      p.copy_(0.2 * randn())
    else:
      p.copy_(randn() / p.shape[1] ** 0.5)
  # sigma_map.mlp.0 sees [1 x128, 0 x128] at sigma = 0: scale so that c is O(1)
  w = model.sigma_map.mlp[0].weight
  w.mul_(16 / 128 ** 0.5)


def ema_from(model, gen, num_updates):
  """EMA state whose shadow params clearly differ from the raw weights."""
  ema = EMA(model.parameters(), decay=0.9999)
  for shadow in ema.shadow_params:
    shadow.add_(0.15 * shadow.pow(2).mean().sqrt() * torch.randn(shadow.shape, generator=gen))
  ema.num_updates = num_updates
  return ema


def fake_optimizer(model, gen, step):
  """Adam moments the shape of a real run's (random values), via a real AdamW state_dict."""
  opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
  saved = [p.detach().clone() for p in model.parameters()]
  for p in model.parameters():
    p.grad = torch.randn(p.shape, generator=gen)
  opt.step()
  with torch.no_grad():
    for p, s in zip(model.parameters(), saved):
      p.copy_(s)
      p.grad = None
  sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 2500))
  state = opt.state_dict()
  for st in state['state'].values():
    st['step'] = torch.tensor(float(step))
  return state, sched.state_dict()


def round_params(model, dtype):
  with torch.no_grad():
    for p in model.parameters():
      p.copy_(p.to(dtype).float())


def pgm_sequences(rng, cfg, spec, bos_id):
  seqs = []
  for item in spec:
    if isinstance(item, dict):
      seqs.append(item)
      continue
    n, m = item
    if n > 1:
      picked = rng.sample(range(1, cfg.length), n - 1 + m)
      clean, queries = [0] + picked[:n - 1], picked[n - 1:]
    else:  # one token away from position 0, so that its key position matters
      picked = rng.sample(range(1, cfg.length), 1 + m)
      clean, queries = picked[:1], picked[1:]
    rng.shuffle(clean)
    tokens = [bos_id if p == 0 else rng.randrange(cfg.vocab_size - 1) for p in clean]
    seqs.append({'tokens': tokens, 'positions': clean, 'queries': queries})
  return seqs


def pgm_logits(model, seqs):
  b = len(seqs)
  n = max(len(s['tokens']) for s in seqs)
  m = max(len(s['queries']) for s in seqs)
  tokens = torch.zeros(b, n, dtype=torch.long)
  positions = torch.zeros(b, n, dtype=torch.long)
  queries = torch.zeros(b, m, dtype=torch.long)
  for i, s in enumerate(seqs):
    tokens[i, :len(s['tokens'])] = torch.tensor(s['tokens'])
    positions[i, :len(s['positions'])] = torch.tensor(s['positions'])
    queries[i, :len(s['queries'])] = torch.tensor(s['queries'])
  clean_lengths = torch.tensor([len(s['tokens']) for s in seqs])
  query_lengths = torch.tensor([len(s['queries']) for s in seqs])
  return model.forward_infer(tokens, positions, clean_lengths, queries, query_lengths)


def mdlm_sequences(rng, cfg, spec, bos_id):
  seqs = []
  for frac in spec:
    tokens = [bos_id] + [rng.randrange(cfg.vocab_size - 1) for _ in range(cfg.length - 1)]
    for p in rng.sample(range(1, cfg.length), round(frac * (cfg.length - 1))):
      tokens[p] = cfg.mask_id
    seqs.append({'tokens': tokens})
  return seqs


def random_model(spec):
  """The fixture's model with random weights, an EMA state that differs from them, and the
  generators (torch, then `random` for the inputs), all seeded with spec['seed']."""
  seed = spec['seed']
  torch.manual_seed(seed)
  gen = torch.Generator().manual_seed(seed)
  rng = random.Random(seed)
  model = build_model(spec['cfg']).eval()
  randomize(model, gen)
  ema = ema_from(model, gen, num_updates=1234)
  return model, ema, gen, rng


def storage_name(dtype):
  return {torch.float32: 'float32', torch.float16: 'float16', torch.bfloat16: 'bfloat16'}[dtype]


def write_fixture(d, spec, model, ema, seqs, bos_id, logits, meta, checkpoint='model.ckpt',
                  optimizer_state=None, scheduler_state=None):
  """Write fixture folder d: the checkpoint, input.json, each of `logits` (file name ->
  tensor; 'logits.bin' gives meta's shape) as float32 little-endian, and meta.json (the
  common fields, then `meta`). Returns the folder's size in bytes."""
  cfg = spec['cfg']
  d.mkdir(parents=True, exist_ok=True)
  save_checkpoint(d / checkpoint, model, {**training_sections(cfg), **cfg.to_sections()},
                  ema_state=ema.state_dict(), optimizer_state=optimizer_state,
                  scheduler_state=scheduler_state, global_step=1234, epoch=0,
                  dtype=spec['storage'])
  (d / 'input.json').write_text(json.dumps({'sequences': seqs}) + '\n')
  for file, values in logits.items():
    values.numpy().astype('<f4').tofile(d / file)
  meta = {
    'arch': cfg.arch,
    'shape': list(logits['logits.bin'].shape),
    'ema': True,
    'storage_dtype': storage_name(spec['storage']),
    'vocab_size': cfg.vocab_size,
    'bos_id': bos_id,
    'mask_id': cfg.mask_id,
    'config': cfg.to_sections(),
    'max_abs_logit': round(logits['logits.bin'].abs().max().item(), 4),
    **meta,
  }
  (d / 'meta.json').write_text(json.dumps(meta, indent=2) + '\n')
  return sum(f.stat().st_size for f in d.iterdir())


@torch.no_grad()
def make_fixture(name, spec, out_dir):
  cfg = spec['cfg']
  bos_id = spec.get('bos_id', cfg.vocab_size - 2)
  model, ema, gen, rng = random_model(spec)
  optimizer_state, scheduler_state = (fake_optimizer(model, gen, step=1234) if spec['optimizer']
                                      else (None, None))
  if spec['storage'] != torch.float32:
    round_params(model, spec['storage'])
    ema.shadow_params = [s.to(spec['storage']).float() for s in ema.shadow_params]

  if cfg.arch == 'pgm':
    seqs = pgm_sequences(rng, cfg, spec['batch'], bos_id)
    run = lambda: pgm_logits(model, seqs)
  else:
    seqs = mdlm_sequences(rng, cfg, spec['batch'], bos_id)
    run = lambda: model(torch.tensor([s['tokens'] for s in seqs]))

  raw_logits = run()
  ema.swap_in(model.parameters())
  ema_logits = run()
  ema.swap_out(model.parameters())
  diff = (ema_logits - raw_logits).abs().max().item()
  assert diff > 0.1, f'{name}: EMA and raw logits too close ({diff})'
  assert torch.isfinite(ema_logits).all()

  meta = {
    'max_abs_diff_ema_vs_raw': round(diff, 4),
    'notes': spec['notes'] + ' logits.bin: EMA weights; logits-raw.bin: raw state_dict weights; '
             'float32 little-endian, row-major; padded query rows are 0.',
  }
  size = write_fixture(out_dir / name, spec, model, ema, seqs, bos_id,
                       {'logits.bin': ema_logits, 'logits-raw.bin': raw_logits}, meta,
                       optimizer_state=optimizer_state, scheduler_state=scheduler_state)
  print(f'{name}: logits {list(ema_logits.shape)}, ema-vs-raw {diff:.3f}, {size / 1e6:.2f} MB')


def incremental_sequences(rng, cfg, spec, bos_id):
  """Per sequence, the passes of a KV set (see pgm_incremental_logits). Pass 0 holds BOS at 0
  and a prompt at 1.. (rows shuffled); a later pass adds tokens at the first positions the
  previous pass queried (a random sample of the unknown positions); a refresh pass lists the
  whole clean set: the earlier rows in row order, then the tokens joining now."""
  seqs = []
  for seq_spec in spec:
    unknown = list(range(cfg.length))
    clean_tokens, clean_positions, passes, queries = [], [], [], []
    for k, (fresh, m, *flag) in enumerate(seq_spec):
      if k == 0:
        positions = list(range(fresh))
        rng.shuffle(positions)
      else:
        assert fresh <= len(queries), 'a pass adds at most what the previous one queried'
        positions = queries[:fresh]
      tokens = [bos_id if p == 0 else rng.randrange(cfg.vocab_size - 1) for p in positions]
      unknown = [p for p in unknown if p not in positions]
      queries = rng.sample(unknown, m)
      refresh = flag == ['refresh']
      passes.append({'tokens': clean_tokens + tokens if refresh else tokens,
                     'positions': clean_positions + positions if refresh else positions,
                     'queries': queries, 'refresh': refresh})
      clean_tokens, clean_positions = clean_tokens + tokens, clean_positions + positions
    seqs.append({'passes': passes})
  return seqs


def max_diff(a, b):
  return max((x - y).abs().max().item() for x, y in zip(a, b))


@torch.no_grad()
def adaptive_passes(model, rng, cfg, spec, bos_id):
  """The adaptive policy's passes (pgm_incremental_logits with a threshold): per sequence the
  passes, the kept rows' unseen shares before each and the rows it re-encoded; and the logits.
  Checks that every decision stands clear of float rounding (each share at least 1e-3 from the
  threshold, and where the cap cuts, the last row taken 1e-3 above the first left), that some
  pass re-encodes rows and some pass is cut by the cap."""
  threshold = spec['threshold']
  seqs = incremental_sequences(rng, cfg, spec['passes'], bos_id)
  logits, cut = [], False
  for seq in seqs:
    out, unseen, picks = pgm_incremental_logits(model, seq['passes'], threshold)
    for p, u, rows in zip(seq['passes'], unseen, picks):
      assert all(abs(x - threshold) > 1e-3 for x in u.tolist()), f'a share is within 1e-3 of the threshold: {u}'
      stale = sorted((x for x in u.tolist() if x > threshold), reverse=True)
      if len(stale) > len(rows):
        cut = True
        assert stale[len(rows) - 1] - stale[len(rows)] > 1e-3, f'the cap cuts between near-equal shares: {stale}'
    seq['unseen'] = [[round(x, 6) for x in u.tolist()] for u in unseen]
    seq['reencoded'] = picks
    logits += out
  assert any(seq['reencoded'][k] for seq in seqs for k in range(1, len(seq['reencoded']))), 'no pass re-encodes'
  assert cut, 'the cap never cuts'
  return {'threshold': threshold, 'sequences': seqs}, torch.cat(logits)


@torch.no_grad()
def make_incremental_fixture(name, spec, out_dir):
  """A KV-set fixture: stale logits of every pass, and the exact logits over the same clean
  sets. Checks that passing every clean token again (a refresh) at every pass is the exact
  forward, and that the stale passes do differ from it."""
  cfg = spec['cfg']
  bos_id = cfg.vocab_size - 2
  model, ema, _, rng = random_model(spec)
  ema.swap_in(model.parameters())
  seqs = incremental_sequences(rng, cfg, spec['passes'], bos_id)
  stale, exact = [], []
  for b, seq in enumerate(seqs):
    clean, always_refreshed = {'tokens': [], 'positions': []}, []
    for p in seq['passes']:
      clean = {key: (p[key] if p['refresh'] else clean[key] + p[key]) for key in clean}
      always_refreshed.append({**clean, 'queries': p['queries'], 'refresh': True})
    exact_b = [pgm_logits(model, [s])[0] for s in always_refreshed]
    stale_b = pgm_incremental_logits(model, seq['passes'])
    diff = max_diff(pgm_incremental_logits(model, always_refreshed), exact_b)
    assert diff < 1e-5, f'{name} sequence {b}: refreshing every pass is not exact ({diff})'
    exact_passes = [i for i, p in enumerate(seq['passes']) if i == 0 or p['refresh']]
    diff = max_diff([stale_b[i] for i in exact_passes], [exact_b[i] for i in exact_passes])
    assert diff < 1e-5, f'{name} sequence {b}: first or refresh pass differs from exact ({diff})'
    stale += stale_b
    exact += exact_b
  stale_vs_exact = max_diff(stale, exact)
  assert stale_vs_exact > 1e-3, f'{name}: stale logits equal the exact ones ({stale_vs_exact})'
  stale_logits, exact_logits = torch.cat(stale), torch.cat(exact)
  assert torch.isfinite(stale_logits).all()

  meta = {
    'checkpoint': 'incremental.ckpt',
    'rows': [[len(p['queries']) for p in s['passes']] for s in seqs],
    'max_abs_diff_stale_vs_exact': round(stale_vs_exact, 4),
    'notes': spec['notes'] + ' logits.bin: stale logits; logits-exact.bin: the exact forward '
             'over the same clean tokens; both from the EMA weights, float32 little-endian, '
             '[sum of rows, V]: the passes of sequence 0 in order, then those of sequence 1 '
             '(rows[b][k] = queries of pass k of sequence b), no padding.',
  }
  adaptive, adaptive_logits = adaptive_passes(model, rng, cfg, spec['adaptive'], bos_id)
  ema.swap_out(model.parameters())
  meta['adaptive_rows'] = [[len(p['queries']) for p in s['passes']] for s in adaptive['sequences']]
  size = write_fixture(out_dir / name, spec, model, ema, seqs, bos_id,
                       {'logits.bin': stale_logits, 'logits-exact.bin': exact_logits,
                        'logits-adaptive.bin': adaptive_logits}, meta,
                       checkpoint=meta['checkpoint'])
  (out_dir / name / 'adaptive.json').write_text(json.dumps(adaptive) + '\n')
  print(f'{name}: logits {list(stale_logits.shape)}, stale-vs-exact {stale_vs_exact:.3f}, '
        f'{size / 1e6:.2f} MB')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', type=Path, default=ROOT / 'tests' / 'fixtures')
  parser.add_argument('--only', nargs='*', choices=sorted(FIXTURES))
  args = parser.parse_args()
  torch.set_num_threads(1)
  for name, spec in FIXTURES.items():
    if not args.only or name in args.only:
      (make_incremental_fixture if 'passes' in spec else make_fixture)(name, spec, args.out)


if __name__ == '__main__':
  main()
