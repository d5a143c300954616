"""PartitionDIT (PGM encoder-decoder) and DIT (MDLM baseline), as specified in docs/model.md.

Module and parameter names reproduce the authors' state_dict keys exactly, so a
`state_dict()` of these modules loads into (and from) their checkpoints.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

PRE_QUERY_MODES = ('learn', 'learn+freqs', 'learn+freqs+mean', 'learn+freqs+logsumexp')
QUERY_PROCESS_MODES = ('linear', 'mlp4')
NOISE_EPS = 1e-3  # log-linear schedule: alpha(t) = 1 - (1 - eps) t


@dataclass
class ModelConfig:
  """The checkpoint config keys that shape the network (`model.*`, `algo.*`)."""
  arch: str                 # 'pgm' (algo.backbone encoder-decoder) or 'mdlm' (dit)
  vocab_size: int           # not in the authors' config: V = rows of vocab_embed.embedding
  hidden_size: int
  n_heads: int
  cond_dim: int
  length: int
  mlp_ratio: int = 4
  n_blocks: int = 0         # mdlm
  encoder_blocks: int = 0   # pgm
  decoder_blocks: int = 0   # pgm
  pre_query_mode: str = 'learn+freqs'
  query_process_mode: str = 'linear'
  dropout: float = 0.0
  p_nucleus: float = 1.0

  @property
  def mask_id(self):
    return self.vocab_size - 1

  def to_sections(self):
    """The nested `model` / `algo` / `sampling` sections of the authors' Hydra config."""
    model = dict(name='small', type='encoder-decoder' if self.arch == 'pgm' else 'ddit',
                 hidden_size=self.hidden_size, cond_dim=self.cond_dim, length=self.length,
                 n_heads=self.n_heads, mlp_ratio=self.mlp_ratio, scale_by_sigma=True,
                 dropout=self.dropout, tie_word_embeddings=False)
    if self.arch == 'pgm':
      model.update(encoder=dict(n_blocks=self.encoder_blocks),
                   decoder=dict(n_blocks=self.decoder_blocks),
                   swap=dict(pre_query_mode=self.pre_query_mode,
                             query_process_mode=self.query_process_mode,
                             normalize_mode='layernorm'))
      algo = dict(name='partition-mdlm', backbone='encoder-decoder', parameterization='subs',
                  time_conditioning=False, T=0, causal_attention=False, ignore_bos=False,
                  loss_type='elbo', sampling_mode='efficient-uniform', post_process_mode='efficient')
    else:
      model.update(n_blocks=self.n_blocks)
      algo = dict(name='mdlm', backbone='dit', parameterization='subs', time_conditioning=False,
                  T=0, causal_attention=False, ignore_bos=False, loss_type='elbo',
                  post_process_mode='orig')
    sampling = dict(predictor='ddpm_cache', steps=128, p_nucleus=self.p_nucleus,
                    noise_removal='ancestral', use_float64=True, inject_bos=True)
    return dict(model=model, algo=algo, sampling=sampling)

  @classmethod
  def from_sections(cls, cfg, vocab_size):
    """Inverse of `to_sections` (accepts a DictConfig or plain nested dicts)."""
    m, algo = cfg['model'], cfg['algo']
    common = dict(vocab_size=vocab_size, hidden_size=m['hidden_size'], n_heads=m['n_heads'],
                  cond_dim=m['cond_dim'], length=m['length'], mlp_ratio=m.get('mlp_ratio', 4),
                  dropout=m.get('dropout', 0.0),
                  p_nucleus=cfg.get('sampling', {}).get('p_nucleus', 1.0))
    if algo['backbone'] == 'encoder-decoder':
      return cls(arch='pgm', encoder_blocks=m['encoder']['n_blocks'],
                 decoder_blocks=m['decoder']['n_blocks'],
                 pre_query_mode=m['swap']['pre_query_mode'],
                 query_process_mode=m['swap']['query_process_mode'], **common)
    if algo['backbone'] == 'dit':
      return cls(arch='mdlm', n_blocks=m['n_blocks'], **common)
    raise ValueError(f"unsupported algo.backbone {algo['backbone']!r}")


def build_model(cfg: ModelConfig):
  return PartitionDIT(cfg) if cfg.arch == 'pgm' else DIT(cfg)


# ----------------------------------------------------------------------------- pieces

def modulate(x, shift, scale):
  return x * (1 + scale) + shift


def rope(x, positions, inv_freq):
  """Non-interleaved rotary embedding. x: [B, S, H, dh], positions: [B, S] sequence positions."""
  angle = positions.to(inv_freq.dtype)[..., None] * inv_freq          # [B, S, dh/2]
  cos, sin = angle.cos()[:, :, None, :], angle.sin()[:, :, None, :]
  x1, x2 = x.float().chunk(2, dim=-1)
  return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def attention(q, k, v, key_mask):
  """Multi-head attention. q: [B, M, H, dh], k/v: [B, N, H, dh], key_mask: [B, M|1, N] bool.

  A query whose keys are all masked gets a zero output (training can draw an empty group).
  """
  scores = torch.einsum('bmhd,bnhd->bhmn', q, k) / math.sqrt(q.shape[-1])
  mask = key_mask[:, None]                                             # [B, 1, M|1, N]
  scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
  probs = scores.softmax(dim=-1) * mask
  return torch.einsum('bhmn,bnhd->bmhd', probs, v).flatten(2)         # [B, M, D]


def split_heads(x, n_heads):
  return x.unflatten(-1, (n_heads, x.shape[-1] // n_heads))


class LayerNorm(nn.Module):
  """LayerNorm without bias (weight only), computed in float32."""

  def __init__(self, dim):
    super().__init__()
    self.weight = nn.Parameter(torch.ones(dim))

  def forward(self, x):
    return F.layer_norm(x.float(), x.shape[-1:]) * self.weight


class EmbeddingLayer(nn.Module):
  def __init__(self, dim, vocab_size):
    super().__init__()
    self.embedding = nn.Parameter(torch.empty(vocab_size, dim))
    nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

  def forward(self, tokens):
    return self.embedding[tokens]


class Rotary(nn.Module):
  def __init__(self, head_dim, base=10_000):
    super().__init__()
    self.register_buffer('inv_freq', 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim))


class TimestepEmbedder(nn.Module):
  """sigma -> C; the backbones apply one more SiLU to the output (docs/model.md)."""
  FREQ_DIM = 256

  def __init__(self, cond_dim):
    super().__init__()
    self.mlp = nn.Sequential(nn.Linear(self.FREQ_DIM, cond_dim), nn.SiLU(),
                             nn.Linear(cond_dim, cond_dim))

  def forward(self, sigma):                                            # [B] -> [B, C]
    half = self.FREQ_DIM // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=sigma.device) / half)
    args = sigma.float()[:, None] * freqs
    return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))


def zero_linear(d_in, d_out):
  """adaLN-Zero initialisation: blocks start as identities, logits start at 0."""
  layer = nn.Linear(d_in, d_out)
  nn.init.zeros_(layer.weight)
  nn.init.zeros_(layer.bias)
  return layer


def make_mlp(dim, ratio):
  return nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(approximate='tanh'),
                       nn.Linear(ratio * dim, dim))


class DiTBlock(nn.Module):
  """Self-attention block with adaLN (encoder blocks and MDLM blocks)."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    dim = cfg.hidden_size
    self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
    self.norm1 = LayerNorm(dim)
    self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
    self.attn_out = nn.Linear(dim, dim, bias=False)
    self.norm2 = LayerNorm(dim)
    self.mlp = make_mlp(dim, cfg.mlp_ratio)
    self.adaLN_modulation = zero_linear(cfg.cond_dim, 6 * dim)

  def forward(self, x, c, positions, inv_freq, key_mask):
    """x: [B, S, D], c: [B, C], positions: [B, S], key_mask: [B, S|1, S] or None."""
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
      self.adaLN_modulation(c)[:, None].chunk(6, dim=-1))
    h = modulate(self.norm1(x), shift_msa, scale_msa)
    q, k, v = (split_heads(t, self.n_heads) for t in self.attn_qkv(h).chunk(3, dim=-1))
    if key_mask is None:
      key_mask = torch.ones(x.shape[0], 1, x.shape[1], dtype=torch.bool, device=x.device)
    h = attention(rope(q, positions, inv_freq), rope(k, positions, inv_freq), v, key_mask)
    x = x + gate_msa * F.dropout(self.attn_out(h), self.dropout, self.training)
    h = self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
    return x + gate_mlp * F.dropout(h, self.dropout, self.training)


class CrossAttnBlock(nn.Module):
  """Decoder block: queries cross-attend to the encoder output, never to each other."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    dim = cfg.hidden_size
    self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
    self.q_norm1 = LayerNorm(dim)
    self.kv_norm1 = LayerNorm(dim)
    self.norm2 = LayerNorm(dim)
    self.attn_q = nn.Linear(dim, dim, bias=False)
    self.attn_kv = nn.Linear(dim, 2 * dim, bias=False)
    self.attn_out = nn.Linear(dim, dim, bias=False)
    self.mlp = make_mlp(dim, cfg.mlp_ratio)
    self.adaLN_modulation = zero_linear(cfg.cond_dim, 6 * dim)

  def forward(self, y, encoder_out, c, query_positions, key_positions, inv_freq, key_mask):
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
      self.adaLN_modulation(c)[:, None].chunk(6, dim=-1))
    a = modulate(self.q_norm1(y), shift_msa, scale_msa)
    q = split_heads(self.attn_q(a), self.n_heads)
    k, v = (split_heads(t, self.n_heads)
            for t in self.attn_kv(self.kv_norm1(encoder_out)).chunk(2, dim=-1))
    h = attention(rope(q, query_positions, inv_freq), rope(k, key_positions, inv_freq), v, key_mask)
    y = y + gate_msa * F.dropout(self.attn_out(h), self.dropout, self.training)
    h = self.mlp(modulate(self.norm2(y), shift_mlp, scale_mlp))
    return y + gate_mlp * F.dropout(h, self.dropout, self.training)


def sinusoidal_table(length, dim, base=10_000):
  """sinus(p) for p < length: concat(cos(p / den), sin(p / den)), den_i = base^(2i/dim)."""
  den = base ** (2 * torch.arange(dim // 2) / dim)
  arg = torch.arange(length)[:, None] / den
  return torch.cat([arg.cos(), arg.sin()], dim=-1)                    # [length, dim]


class GroupSwap(nn.Module):
  """One vector per query position, cross-attending to the other group's encoder states."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    dim = cfg.hidden_size
    if cfg.pre_query_mode not in PRE_QUERY_MODES:
      raise ValueError(f'pre_query_mode {cfg.pre_query_mode!r} not in {PRE_QUERY_MODES}')
    if cfg.query_process_mode not in QUERY_PROCESS_MODES:
      raise ValueError(f'query_process_mode {cfg.query_process_mode!r} not in {QUERY_PROCESS_MODES}')
    self.n_heads, self.mode = cfg.n_heads, cfg.pre_query_mode
    self.base_embedding = nn.Parameter(torch.randn(1, dim))
    self.pre_query_norm = nn.LayerNorm(dim)
    if cfg.query_process_mode == 'linear':
      self.query_processor = nn.Linear(dim, dim)
    else:
      self.query_processor = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(),
                                           nn.Linear(4 * dim, dim))
    self.hidden_to_key_value = nn.Linear(dim, 2 * dim)
    self.output_linear = nn.Linear(dim, dim)
    self.register_buffer('pos_freqs', sinusoidal_table(cfg.length, dim), persistent=False)

  def statistic(self, encoder_out, members):
    """Per-channel mean or logsumexp of encoder_out [B, S, D] over rows with members [B, S]; [B, D].

    0 where a row set is empty.
    """
    m = members[..., None]
    if self.mode.endswith('+mean'):
      return (encoder_out * m).sum(1) / members.sum(1, keepdim=True).clamp(min=1)
    lse = encoder_out.masked_fill(~m, -math.inf).logsumexp(1)
    return lse.masked_fill(lse.isinf(), 0.0)

  def forward(self, encoder_out, query_positions, key_positions, inv_freq, key_mask, extra):
    """encoder_out: [B, N, D]; query_positions: [B, M]; extra: per-query statistic [B, M|1, D] or None."""
    q0 = self.base_embedding.expand(*query_positions.shape, -1)        # [B, M, D]
    if 'freqs' in self.mode:
      q0 = q0 + self.pos_freqs[query_positions]
    if extra is not None:
      q0 = q0 + extra
    queries = split_heads(self.query_processor(self.pre_query_norm(q0)), self.n_heads)
    keys, values = (split_heads(t, self.n_heads)
                    for t in self.hidden_to_key_value(encoder_out).chunk(2, dim=-1))
    out = attention(rope(queries, query_positions, inv_freq), rope(keys, key_positions, inv_freq),
                    values, key_mask)
    return self.output_linear(out)                                     # [B, M, D]


class Encoder(nn.Module):
  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.encoder_blocks))


class Decoder(nn.Module):
  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.group_swap = GroupSwap(cfg)
    self.layers = nn.ModuleList(CrossAttnBlock(cfg) for _ in range(cfg.decoder_blocks))


class FinalLayer(nn.Module):
  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.norm_final = LayerNorm(cfg.hidden_size)
    self.linear = zero_linear(cfg.hidden_size, cfg.vocab_size)
    self.adaLN_modulation = zero_linear(cfg.cond_dim, 2 * cfg.hidden_size)

  def forward(self, x, c):
    """x: [B, S, D] with c: [B, C], or x: [K, D] with one conditioning row per x row."""
    mod = self.adaLN_modulation(c)
    shift, scale = (mod[:, None] if x.dim() == 3 else mod).chunk(2, dim=-1)
    return self.linear(modulate(self.norm_final(x), shift, scale))


class Backbone(nn.Module):
  """What both models share: token embedding and the (constant, sigma = 0) conditioning."""

  def condition(self, batch, device):
    sigma = torch.zeros(batch, device=device)  # released models: time_conditioning False
    return F.silu(self.sigma_map(sigma))                               # [B, C]


class PartitionDIT(Backbone):
  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.cfg = cfg
    self.vocab_embed = EmbeddingLayer(cfg.hidden_size, cfg.vocab_size)
    self.rotary_emb = Rotary(cfg.hidden_size // cfg.n_heads)
    self.sigma_map = TimestepEmbedder(cfg.cond_dim)
    self.encoder = Encoder(cfg)
    self.decoder = Decoder(cfg)
    self.output_layer = FinalLayer(cfg)

  def _run(self, tokens, key_positions, query_positions, enc_mask, cross_mask, extra_fn):
    inv_freq = self.rotary_emb.inv_freq
    c = self.condition(tokens.shape[0], tokens.device)
    x = self.vocab_embed(tokens)
    for block in self.encoder.blocks:
      x = block(x, c, key_positions, inv_freq, enc_mask)
    extra = extra_fn(x) if self.cfg.pre_query_mode.startswith('learn+freqs+') else None
    y = self.decoder.group_swap(x, query_positions, key_positions, inv_freq, cross_mask, extra)
    for layer in self.decoder.layers:
      y = layer(y, x, c, query_positions, key_positions, inv_freq, cross_mask)
    return y, c

  def forward_infer(self, clean_tokens, clean_positions, clean_lengths, query_positions,
                    query_lengths=None):
    """Logits [B, M, V] for the query positions given the clean tokens.

    clean_tokens/clean_positions: [B, N] (row b valid up to clean_lengths[b], padding after);
    query_positions: [B, M] (valid up to query_lengths[b]; padded query rows return 0).
    """
    n = clean_tokens.shape[1]
    key_valid = torch.arange(n, device=clean_tokens.device) < clean_lengths[:, None]  # [B, N]
    key_mask = key_valid[:, None, :]
    stat = lambda enc: self.decoder.group_swap.statistic(enc, key_valid)[:, None]
    y, c = self._run(clean_tokens, clean_positions, query_positions, key_mask, key_mask, stat)
    logits = self.output_layer(y, c)
    if query_lengths is not None:
      m = query_positions.shape[1]
      query_valid = torch.arange(m, device=logits.device) < query_lengths[:, None]
      logits = logits * query_valid[..., None]
    return logits

  def forward_train(self, tokens, groups):
    """Training mode: every token is predicted from the other group only.

    tokens, groups: [B, L] (groups in {0, 1}). Returns the decoder output [B, L, D] and c;
    apply `self.output_layer` to the rows that carry a loss.
    """
    b, length = tokens.shape
    positions = torch.arange(length, device=tokens.device).expand(b, length)
    same = groups[:, :, None] == groups[:, None, :]                    # [B, L, L]
    swap = self.decoder.group_swap

    def other_group_stat(enc):
      stat0, stat1 = swap.statistic(enc, groups == 0), swap.statistic(enc, groups == 1)
      return torch.where(groups[..., None] == 1, stat0[:, None], stat1[:, None])

    return self._run(tokens, positions, positions, same, ~same, other_group_stat)


class DIT(Backbone):
  """MDLM baseline: bidirectional DiT over all L positions."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.cfg = cfg
    self.vocab_embed = EmbeddingLayer(cfg.hidden_size, cfg.vocab_size)
    self.sigma_map = TimestepEmbedder(cfg.cond_dim)
    self.rotary_emb = Rotary(cfg.hidden_size // cfg.n_heads)
    self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.n_blocks))
    self.output_layer = FinalLayer(cfg)

  def hidden(self, tokens):
    """Final hidden states [B, L, D] (before the output layer) and c [B, C]."""
    b, length = tokens.shape
    positions = torch.arange(length, device=tokens.device).expand(b, length)
    c = self.condition(b, tokens.device)
    x = self.vocab_embed(tokens)
    for block in self.blocks:
      x = block(x, c, positions, self.rotary_emb.inv_freq, None)
    return x, c

  def forward(self, tokens):
    return self.output_layer(*self.hidden(tokens))                     # [B, L, V]


# ----------------------------------------------------------------------------- incremental

REENCODE_PER_FRESH = 1  # the adaptive policy re-encodes at most this many kept rows per fresh row (src/model/kv-set.ts)


@torch.no_grad()
def pgm_incremental_logits(model: PartitionDIT, passes, threshold=None):
  """The stale ("incremental") PGM forward of one sequence over a series of passes.

  Each pass is a dict: `tokens` and `positions` (the m >= 1 clean tokens joining the set now,
  appended as its last rows), `queries` (positions to predict) and `refresh` (True: empty the
  cache first, so `tokens` must then be the whole clean set, the earlier rows in row order
  followed by the ones joining now). A fresh row runs through the encoder: in each block it
  attends to every cached row and to the rows encoded with it, and everything computed from it
  (per block its rotary-applied key and value, its encoder output E, the group swap's and each
  decoder layer's rotary-applied key and value) is cached. The query side is the exact one
  (docs/model.md steps 3-5) over the cached rows; the +mean / +logsumexp statistic is taken
  over the cached E rows. Returns one [m, V] tensor per pass.

  `threshold` (the adaptive policy): the cache also keeps the first block's rotary-applied
  queries and, per row and head, the log-sum-exp of its first-block attention scores over every
  key in the set (`all`) and over the keys it saw when it was last encoded (`seen`). Before a
  pass, the kept rows whose unseen share, mean over heads of 1 - exp(seen - all), exceeds
  `threshold` are re-encoded with the fresh ones, stalest first (ties: the lower row), at most
  REENCODE_PER_FRESH x m of them: they run through every block again, their keys and values
  replaced in place from the second block on (the first block's depend only on token and
  position) and their E with them. After the first block, `all` of every other row takes in
  the fresh keys, and the encoded rows' `all` and `seen` are computed over the whole set. Then
  returns (logits, unseen, picks): per pass the kept rows' unseen shares before it and the rows
  it re-encoded.
  """
  cfg, swap = model.cfg, model.decoder.group_swap
  inv_freq = model.rotary_emb.inv_freq
  c = model.condition(1, inv_freq.device)
  heads = lambda t: split_heads(t, cfg.n_heads)
  cache = {}                                                            # name -> [1, n, ...]

  def place(name, own, picks, m):
    """The rows of `own` [1, m + len(picks), ...]: the first m appended, the rest written over `picks`."""
    if name in cache and picks:
      cache[name][:, picks] = own[:, m:]
    cache[name] = own[:, :m] if name not in cache else torch.cat([cache[name], own[:, :m]], dim=1)
    return cache[name]

  out, unseen_per_pass, picks_per_pass = [], [], []
  for step in passes:
    if step.get('refresh', False):
      cache.clear()
    m = len(step['tokens'])
    picks, unseen = [], torch.zeros(0)
    if threshold is not None and 'tokens' in cache:
      unseen = (1 - (cache['seen'] - cache['all']).exp()).mean(-1)[0]  # [kept]
      stale = [r for r in range(unseen.shape[0]) if unseen[r] > threshold]
      picks = sorted(stale, key=lambda r: (-unseen[r].item(), r))[:REENCODE_PER_FRESH * m]
    unseen_per_pass.append(unseen)
    picks_per_pass.append(picks)
    own_tokens = torch.tensor([step['tokens']])
    own_positions = torch.tensor([step['positions']])
    if picks:
      own_tokens = torch.cat([own_tokens, cache['tokens'][:, picks]], dim=1)
      own_positions = torch.cat([own_positions, cache['positions'][:, picks]], dim=1)
    place('tokens', own_tokens, picks, m)
    positions = place('positions', own_positions, picks, m)
    query_positions = torch.tensor([step['queries']])                  # [1, q]
    x = model.vocab_embed(own_tokens)                                  # [1, m + picks, D]
    n = positions.shape[1]
    all_rows = torch.ones(1, 1, n, dtype=torch.bool)

    for i, block in enumerate(model.encoder.blocks):
      shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
        block.adaLN_modulation(c)[:, None].chunk(6, dim=-1))
      h = modulate(block.norm1(x), shift_msa, scale_msa)
      q, k, v = (heads(t) for t in block.attn_qkv(h).chunk(3, dim=-1))
      q, k = rope(q, own_positions, inv_freq), rope(k, own_positions, inv_freq)
      kept = [] if i == 0 else picks                                   # first block: exact, kept
      keys = place(f'encoder.{i}.k', k, kept, m)
      values = place(f'encoder.{i}.v', v, kept, m)
      if i == 0 and threshold is not None:
        first_queries = place('encoder.0.q', q, [], m)                # [1, n, H, dh]
        scores = torch.einsum('bmhd,bnhd->bmhn', first_queries, keys) / math.sqrt(keys.shape[-1])
        fresh_keys = scores[..., n - m:].logsumexp(-1)                 # [1, n, H]
        every_key = scores.logsumexp(-1)
        old = n - m
        all_lse = torch.cat([torch.logaddexp(cache['all'], fresh_keys[:, :old]) if old else fresh_keys[:, :0],
                             every_key[:, old:]], dim=1)
        seen = cache['seen'] if old else every_key[:, :0]
        seen = torch.cat([seen, every_key[:, old:]], dim=1)
        encoded = picks + list(range(old, n))
        all_lse[:, encoded] = every_key[:, encoded]
        seen[:, encoded] = every_key[:, encoded]
        cache['all'], cache['seen'] = all_lse, seen
      h = attention(q, keys, values, all_rows)
      x = x + gate_msa * block.attn_out(h)
      x = x + gate_mlp * block.mlp(modulate(block.norm2(x), shift_mlp, scale_mlp))
    encoder_out = place('E', x, picks, m)

    k, v = (heads(t) for t in swap.hidden_to_key_value(x).chunk(2, dim=-1))
    place('swap.k', rope(k, own_positions, inv_freq), picks, m)
    place('swap.v', v, picks, m)
    for j, layer in enumerate(model.decoder.layers):
      k, v = (heads(t) for t in layer.attn_kv(layer.kv_norm1(x)).chunk(2, dim=-1))
      place(f'decoder.{j}.k', rope(k, own_positions, inv_freq), picks, m)
      place(f'decoder.{j}.v', v, picks, m)

    q0 = swap.base_embedding.expand(*query_positions.shape, -1)       # [1, q, D]
    if 'freqs' in swap.mode:
      q0 = q0 + swap.pos_freqs[query_positions]
    if swap.mode.endswith('+mean'):
      q0 = q0 + encoder_out.mean(dim=1, keepdim=True)
    elif swap.mode.endswith('+logsumexp'):
      q0 = q0 + encoder_out.logsumexp(dim=1, keepdim=True)
    queries = heads(swap.query_processor(swap.pre_query_norm(q0)))
    y = swap.output_linear(attention(rope(queries, query_positions, inv_freq),
                                     cache['swap.k'], cache['swap.v'], all_rows))
    for j, layer in enumerate(model.decoder.layers):
      shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
        layer.adaLN_modulation(c)[:, None].chunk(6, dim=-1))
      q = heads(layer.attn_q(modulate(layer.q_norm1(y), shift_msa, scale_msa)))
      h = attention(rope(q, query_positions, inv_freq), cache[f'decoder.{j}.k'],
                    cache[f'decoder.{j}.v'], all_rows)
      y = y + gate_msa * layer.attn_out(h)
      y = y + gate_mlp * layer.mlp(modulate(layer.norm2(y), shift_mlp, scale_mlp))
    out.append(model.output_layer(y, c)[0])
  return out if threshold is None else (out, unseen_per_pass, picks_per_pass)


# ----------------------------------------------------------------------------- losses

def alpha(t):
  return 1 - (1 - NOISE_EPS) * t


DALPHA = -(1 - NOISE_EPS)


def sample_t(batch, generator=None, device=None):
  """Antithetic (stratified) t in [eps, 1]: t_b = ((u_b + b) / B mod 1) rescaled."""
  u = torch.rand(batch, generator=generator, device=device)
  u = (u / batch + torch.arange(batch, device=device) / batch) % 1
  return (1 - NOISE_EPS) * u + NOISE_EPS


def _log_prob(model, h, c, targets, mask_id):
  """log p(targets) from final hidden rows h: [K, D], c: [K, C], targets: [K]."""
  logits = model.output_layer(h, c).float()
  logits[:, mask_id] = -math.inf
  return logits.log_softmax(-1).gather(-1, targets[:, None])[:, 0]


def pgm_loss(model: PartitionDIT, x0, t, generator=None, low_var=False):
  """PGM objective. x0: [B, L] clean tokens, t: [B]. Returns (train_loss, bound).

  train_loss: mean over tokens of both directions' terms, / 2 (what is optimised; with
  low_var the coefficient is -1). bound: mean over tokens of the group-1 ELBO terms only
  (group 1 playing the masked tokens at time t), the per-token NELBO the authors validate.
  """
  mask_id = model.cfg.mask_id
  alpha_t = alpha(t)[:, None]
  groups = (torch.rand(x0.shape, generator=generator, device=x0.device) < 1 - alpha_t).long()
  y, c = model.forward_train(x0, groups)
  c_rows = c[:, None].expand(*x0.shape, -1)
  log_p = _log_prob(model, y.flatten(0, 1), c_rows.flatten(0, 1), x0.flatten(), mask_id)
  log_p = log_p.view_as(x0)
  alpha_tok = torch.where(groups == 1, alpha_t, alpha(1 - t)[:, None])  # group 0: t' = 1 - t
  elbo = DALPHA / (1 - alpha_tok) * log_p                              # [B, L], >= 0
  train = -log_p if low_var else elbo
  return train.mean() / 2, torch.where(groups == 1, elbo, torch.zeros_like(elbo)).mean()


def mdlm_loss(model: DIT, x0, t, generator=None, low_var=False):
  """MDLM objective. Returns (train_loss, bound), equal unless low_var: mean over all tokens
  of the masked tokens' terms. Logits are computed at the masked positions only."""
  mask_id = model.cfg.mask_id
  alpha_t = alpha(t)[:, None]
  masked = torch.rand(x0.shape, generator=generator, device=x0.device) < 1 - alpha_t
  h, c = model.hidden(torch.where(masked, torch.full_like(x0, mask_id), x0))
  c_rows = c[:, None].expand(*x0.shape, -1)
  log_p = _log_prob(model, h[masked], c_rows[masked], x0[masked], mask_id)
  elbo = (DALPHA / (1 - alpha_t.expand_as(x0)[masked]) * log_p).sum() / x0.numel()
  return (-log_p.sum() / x0.numel() if low_var else elbo), elbo
