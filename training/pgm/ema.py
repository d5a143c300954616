"""Exponential moving average of parameters, with the state layout of the authors' checkpoints
(`{decay, num_updates, shadow_params}`; shadow_params in named_parameters() order)."""
import torch


class EMA:
  def __init__(self, parameters, decay):
    self.decay = decay
    self.num_updates = 0
    self.shadow_params = [p.detach().clone() for p in parameters]
    self._backup = None

  @torch.no_grad()
  def update(self, parameters):
    self.num_updates += 1
    # Warm-up: early averages forget the random initialisation quickly.
    decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
    for shadow, p in zip(self.shadow_params, parameters):
      shadow.lerp_(p.detach().to(shadow.dtype), 1 - decay)

  @torch.no_grad()
  def swap_in(self, parameters):
    """Load the averaged weights into `parameters`, keeping the live ones for `swap_out`."""
    parameters = list(parameters)
    self._backup = [p.detach().clone() for p in parameters]
    for shadow, p in zip(self.shadow_params, parameters):
      p.copy_(shadow)

  @torch.no_grad()
  def swap_out(self, parameters):
    for saved, p in zip(self._backup, parameters):
      p.copy_(saved)
    self._backup = None

  def state_dict(self):
    return {'decay': self.decay, 'num_updates': self.num_updates,
            'shadow_params': self.shadow_params}

  def load_state_dict(self, state):
    self.decay = state['decay']
    self.num_updates = state['num_updates']
    self.shadow_params = [t.clone() for t in state['shadow_params']]
