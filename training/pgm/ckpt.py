"""Checkpoints in the PyTorch Lightning layout of the authors' released `.ckpt` files.

The file is what `torch.save` writes (zip, pickle protocol 2) and holds what a real one
holds: `state_dict` (keys prefixed `backbone.`, including the buffer
`backbone.rotary_emb.inv_freq`), `ema`, `hyper_parameters` with an OmegaConf `DictConfig`
and a tokenizer object pickled as `transformers...GPT2TokenizerFast`, `loops`, `callbacks`,
`optimizer_states`, `lr_schedulers`. Storages can be tagged `cuda:0`, as in released files.

No `transformers` here: a stand-in class is pickled under the real global name, so the
engine's restricted unpickler meets the same opcodes and class names as in a real file.
"""
import contextlib
import sys
import types
from collections import OrderedDict

import torch
from omegaconf import OmegaConf

LIGHTNING_VERSION = '2.2.1'
TOKENIZER_MODULE = 'transformers.models.gpt2.tokenization_gpt2_fast'
TOKENIZERS_MODULE = 'tokenizers'


class GPT2TokenizerFast:
  """Inert stand-in for the Hugging Face tokenizer object found in real checkpoints."""


class Tokenizer:
  """Stand-in for the Rust `tokenizers.Tokenizer`, pickled with a JSON string as its state."""

  def __init__(self, json_text=''):
    self.json_text = json_text

  def __getstate__(self):
    return self.json_text.encode()

  def __setstate__(self, state):
    self.json_text = state.decode()


class AddedToken:
  def __init__(self, content='', special=True):
    self.content, self.single_word, self.lstrip, self.rstrip = content, False, False, False
    self.normalized, self.special = False, special

  def __getstate__(self):
    return dict(self.__dict__)

  def __setstate__(self, state):
    self.__dict__.update(state)


_STAND_INS = {TOKENIZER_MODULE: [GPT2TokenizerFast], TOKENIZERS_MODULE: [Tokenizer, AddedToken]}


@contextlib.contextmanager
def _stand_in_modules():
  """Make pickle record the real module paths for the stand-in classes."""
  names = ['transformers', 'transformers.models', 'transformers.models.gpt2', TOKENIZER_MODULE,
           TOKENIZERS_MODULE]
  added = [n for n in names if n not in sys.modules]
  for name in added:
    sys.modules[name] = types.ModuleType(name)
  saved = {cls: cls.__module__ for classes in _STAND_INS.values() for cls in classes}
  try:
    for module, classes in _STAND_INS.items():
      for cls in classes:
        cls.__module__ = module
        setattr(sys.modules[module], cls.__name__, cls)
    yield
  finally:
    for cls, module in saved.items():
      cls.__module__ = module
    for name in added:
      del sys.modules[name]


def make_tokenizer(vocab_size, bos_id, mask_id):
  """A tokenizer object with state shaped like the real one (a sample, not a vocabulary)."""
  tok = GPT2TokenizerFast()
  bos = AddedToken('<|endoftext|>')
  mask = AddedToken('[MASK]')
  vocab_sample = {'!': 0, '"': 1, '#': 2, 'the': 1169, 'Ġthe': 262, '<|endoftext|>': bos_id}
  tok._tokenizer = Tokenizer('{"version":"1.0","model":{"type":"BPE","vocab":%s}}'
                             % str(vocab_sample).replace("'", '"'))
  tok.name_or_path = 'gpt2'
  tok.model_max_length = 1024
  tok.padding_side = 'right'
  tok.truncation_side = 'right'
  tok.init_kwargs = {'bos_token': bos, 'eos_token': bos, 'unk_token': bos, 'add_prefix_space': False,
                     'model_max_length': 1024, 'name_or_path': 'gpt2'}
  tok._special_tokens_map = {'bos_token': bos, 'eos_token': bos, 'unk_token': bos,
                             'pad_token': bos, 'mask_token': mask}
  tok._added_tokens_decoder = {bos_id: bos, mask_id: mask}
  tok.vocab_size_hint = vocab_size
  return tok


def _location_tagger(storage):
  return 'cuda:0' if _tag_cuda.active and storage.device.type == 'cpu' else None


def _location_restorer(storage, location):
  if location.startswith('cuda') and not torch.cuda.is_available():
    return storage
  return None


class _TagCuda:
  active = False


_tag_cuda = _TagCuda()
torch.serialization.register_package(5, _location_tagger, _location_restorer)


def _loops(global_step, epoch):
  def progress(n):
    return {'total': {'ready': n, 'started': n, 'processed': n, 'completed': n},
            'current': {'ready': n, 'started': n, 'processed': n, 'completed': n}}
  optim_step = {'total': {'ready': global_step, 'completed': global_step},
                'current': {'ready': global_step, 'completed': global_step}}
  fit = {
    'state_dict': {},
    'epoch_loop.state_dict': {'_batches_that_stepped': global_step},
    'epoch_loop.batch_progress': {**progress(global_step), 'is_last_batch': False},
    'epoch_loop.scheduler_progress': {'total': {'ready': global_step, 'completed': global_step},
                                      'current': {'ready': global_step, 'completed': global_step}},
    'epoch_loop.automatic_optimization.state_dict': {},
    'epoch_loop.automatic_optimization.optim_progress': {
      'optimizer': {'step': optim_step, 'zero_grad': progress(global_step)}},
    'epoch_loop.manual_optimization.state_dict': {},
    'epoch_loop.manual_optimization.optim_step_progress': optim_step,
    'epoch_loop.val_loop.state_dict': {},
    'epoch_loop.val_loop.batch_progress': {**progress(0), 'is_last_batch': False},
    'epoch_progress': progress(epoch),
  }
  return {'fit_loop': fit,
          'validate_loop': {'state_dict': {}, 'batch_progress': {**progress(0), 'is_last_batch': False}},
          'test_loop': {'state_dict': {}, 'batch_progress': {**progress(0), 'is_last_batch': False}},
          'predict_loop': {'state_dict': {}, 'batch_progress': progress(0)}}


def save_checkpoint(path, model, config_sections, *, ema_state, optimizer_state=None,
                    scheduler_state=None, global_step=0, epoch=0, tokenizer=None,
                    dtype=None, cuda_tags=True, extra=None):
  """Write a Lightning-layout checkpoint.

  config_sections: nested dict (model/algo/sampling/... sections), stored as a DictConfig.
  ema_state: `EMA.state_dict()`. dtype: cast state_dict and EMA tensors (not the rotary
  buffer) to this storage type. optimizer_state: an optimizer `state_dict()`, or None to
  omit `optimizer_states` and `lr_schedulers` (Lightning's weights-only layout).
  extra: more top-level entries (e.g. the training loop's own state).
  """
  def cast(name, t):
    return t.detach().to(dtype) if dtype is not None and name != 'rotary_emb.inv_freq' else t.detach()

  state_dict = OrderedDict(('backbone.' + k, cast(k, v).clone()) for k, v in model.state_dict().items())
  names = [n for n, _ in model.named_parameters()]
  shadow = [cast(n, t).clone() for n, t in zip(names, ema_state['shadow_params'])]
  mask_id = model.cfg.mask_id
  ckpt = {
    'epoch': epoch,
    'global_step': global_step,
    'pytorch-lightning_version': LIGHTNING_VERSION,
    'state_dict': state_dict,
    'loops': _loops(global_step, epoch),
    'callbacks': {
      "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 500, "
      "'every_n_epochs': None, 'train_time_interval': None}": {
        'monitor': None, 'best_model_score': None, 'best_model_path': '', 'current_score': None,
        'dirpath': 'checkpoints', 'best_k_models': {}, 'kth_best_model_path': '',
        'kth_value': torch.tensor(float('inf')), 'last_model_path': 'checkpoints/last.ckpt'}},
    'hparams_name': 'kwargs',
    'hyper_parameters': {
      'config': OmegaConf.create(config_sections),
      'tokenizer': tokenizer or make_tokenizer(model.cfg.vocab_size, mask_id - 1, mask_id)},
    'ema': {'decay': ema_state['decay'], 'num_updates': ema_state['num_updates'],
            'shadow_params': shadow},
    'sampler': {'random_state': None},
  }
  if optimizer_state is not None:
    ckpt['optimizer_states'] = [optimizer_state]
    ckpt['lr_schedulers'] = [scheduler_state] if scheduler_state is not None else []
  ckpt.update(extra or {})
  _tag_cuda.active = cuda_tags
  try:
    # Saved to a file object, as Lightning saves to a buffer: the zip's folder is then "archive/"
    # (byte for byte what a BytesIO gets), without a second copy of the file in memory.
    with open(path, 'wb') as f, _stand_in_modules():
      torch.save(ckpt, f)
  finally:
    _tag_cuda.active = False


def load_checkpoint(path):
  """Load a checkpoint written by `save_checkpoint` (trusted files only: this unpickles)."""
  with _stand_in_modules():
    return torch.load(path, map_location='cpu')


def backbone_state(ckpt, use_ema):
  """The backbone's state_dict (prefix removed), with EMA weights in place of the raw ones if
  asked: shadow params map onto the state_dict keys without buffers, in order."""
  state = OrderedDict((k[len('backbone.'):], v) for k, v in ckpt['state_dict'].items()
                      if k.startswith('backbone.'))
  if use_ema:
    params = [k for k in state if k != 'rotary_emb.inv_freq']
    shadow = ckpt['ema']['shadow_params']
    if len(params) != len(shadow):
      raise ValueError(f'ema has {len(shadow)} shadow params, state_dict {len(params)} parameters')
    for k, t in zip(params, shadow):
      if state[k].shape != t.shape:
        raise ValueError(f'ema shadow for {k}: shape {tuple(t.shape)} != {tuple(state[k].shape)}')
      state[k] = t
  return state


def model_config(ckpt):
  """ModelConfig from a checkpoint's config and the embedding's shape (V is not in the config)."""
  from .model import ModelConfig
  cfg = OmegaConf.to_container(ckpt['hyper_parameters']['config'])
  vocab_size = ckpt['state_dict']['backbone.vocab_embed.embedding'].shape[0]
  return ModelConfig.from_sections(cfg, vocab_size)
