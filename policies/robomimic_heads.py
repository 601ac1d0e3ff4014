"""Heads built from robomimic 0.3.0's actor networks: a Gaussian-mixture MLP (``gmm``) and a
recurrent policy (``rnn``, LSTM/GRU, optionally with a GMM output as in BC-RNN-GMM).

The frozen features and the proprioception are standardised and concatenated into one
low-dimensional observation key, ``policy_input``, which is all robomimic's observation
encoder sees (identity core, no randomiser). robomimic is imported lazily.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
from collections import OrderedDict

import torch

from .base import Policy
from .registry import register_policy

OBS_KEY = "policy_input"
_LOW_DIM_KWARGS = {
    "low_dim": {"core_class": None, "core_kwargs": {}, "obs_randomizer_class": None, "obs_randomizer_kwargs": {}}
}


def _robomimic():
    """Import robomimic's networks quietly and make sure ``policy_input`` is a low-dim key.

    robomimic keeps a process-global key -> modality table; we add our key to it instead of
    replacing it, so other robomimic users in the same process keep their mapping.
    """
    with contextlib.redirect_stdout(io.StringIO()):  # its import prints a macro-file warning
        import robomimic.utils.obs_utils as obs_utils
        from robomimic.models import policy_nets
    if obs_utils.OBS_KEYS_TO_MODALITIES is None:
        obs_utils.initialize_obs_modality_mapping_from_dict({"low_dim": [OBS_KEY]})
    elif OBS_KEY not in obs_utils.OBS_KEYS_TO_MODALITIES:
        obs_utils.OBS_KEYS_TO_MODALITIES[OBS_KEY] = "low_dim"
        obs_utils.OBS_MODALITIES_TO_KEYS.setdefault("low_dim", []).append(OBS_KEY)
    return policy_nets


@register_policy("gmm")
class GMMPolicy(Policy):
    """robomimic ``GMMActorNetwork``: an MLP predicting a mixture of ``num_modes`` diagonal
    Gaussians over actions; trained by negative log-likelihood. At evaluation robomimic's
    low-noise mode samples (almost exactly) one mixture mean."""

    seq_len = 1

    @dataclasses.dataclass(frozen=True)
    class Options:
        hidden: tuple = (1024, 1024)      # widths of the MLP's hidden layers
        num_modes: int = 5                # Gaussians in the mixture
        min_std: float = 0.0001           # added to every mixture component's standard deviation
        std_activation: str = "softplus"  # network output -> std: softplus, or exp (the output is a log std)

    def __init__(self, feature_dim, proprio_dim, action_dim, options: "GMMPolicy.Options"):
        super().__init__(feature_dim, proprio_dim, action_dim, options)
        nets = _robomimic()
        self.net = nets.GMMActorNetwork(
            obs_shapes=OrderedDict({OBS_KEY: (feature_dim + proprio_dim,)}),
            ac_dim=action_dim,
            mlp_layer_dims=[int(h) for h in options.hidden],
            num_modes=options.num_modes,
            min_std=options.min_std,
            std_activation=options.std_activation,
            low_noise_eval=True,
            encoder_kwargs=_LOW_DIM_KWARGS,
        )

    def distribution(self, features, proprio):
        x = self.normalized_input(features, proprio)
        lead = x.shape[:-1]
        dist = self.net.forward_train({OBS_KEY: x.reshape(-1, x.shape[-1])})
        return dist, lead

    def loss(self, features, proprio, actions):
        dist, _ = self.distribution(features, proprio)
        return -dist.log_prob(actions.reshape(-1, self.action_dim)).mean()

    @torch.no_grad()
    def act(self, features, proprio, state=None):
        dist, lead = self.distribution(features, proprio)
        return dist.sample().reshape(*lead, self.action_dim), state


@register_policy("rnn")
class RNNPolicy(Policy):
    """robomimic ``RNNActorNetwork`` (or ``RNNGMMActorNetwork`` with ``gmm: true``) trained
    on windows of ``seq_len`` consecutive demo steps; the hidden state is carried through a
    rollout from ``initial_state``. Deterministic actions are tanh-squashed (MSE loss)."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        seq_len: int = 10                 # consecutive demo steps per training window
        rnn_type: str = "LSTM"            # LSTM or GRU
        hidden_dim: int = 400             # units of each recurrent layer
        num_layers: int = 2               # stacked recurrent layers
        mlp_hidden: tuple = ()            # widths of an MLP between the RNN and the action output (none: direct)
        gmm: bool = False                 # true: a Gaussian-mixture output (BC-RNN-GMM), NLL loss
        num_modes: int = 5                # gmm only: Gaussians in the mixture
        min_std: float = 0.0001           # gmm only: added to every component's standard deviation

    def __init__(self, feature_dim, proprio_dim, action_dim, options: "RNNPolicy.Options"):
        super().__init__(feature_dim, proprio_dim, action_dim, options)
        if options.rnn_type not in ("LSTM", "GRU"):
            raise ValueError(f"policy 'rnn': rnn_type must be LSTM or GRU, got {options.rnn_type!r}")
        if options.seq_len < 1:
            raise ValueError(f"policy 'rnn': seq_len must be >= 1, got {options.seq_len}")
        self.seq_len = int(options.seq_len)
        nets = _robomimic()
        common = dict(
            obs_shapes=OrderedDict({OBS_KEY: (feature_dim + proprio_dim,)}),
            ac_dim=action_dim,
            mlp_layer_dims=[int(h) for h in options.mlp_hidden],
            rnn_hidden_dim=options.hidden_dim,
            rnn_num_layers=options.num_layers,
            rnn_type=options.rnn_type,
            rnn_kwargs={},
            encoder_kwargs=_LOW_DIM_KWARGS,
        )
        if options.gmm:
            self.net = nets.RNNGMMActorNetwork(num_modes=options.num_modes, min_std=options.min_std,
                                               low_noise_eval=True, **common)
        else:
            self.net = nets.RNNActorNetwork(**common)

    def _seq(self, features, proprio):
        x = self.normalized_input(features, proprio)
        return x if x.dim() == 3 else x.unsqueeze(1)  # [B, L, D]

    def loss(self, features, proprio, actions):
        x = self._seq(features, proprio)
        actions = actions if actions.dim() == 3 else actions.unsqueeze(1)
        if self.options.gmm:
            dist = self.net.forward_train({OBS_KEY: x})
            return -dist.log_prob(actions).mean()
        return torch.nn.functional.mse_loss(self.net({OBS_KEY: x}), actions)

    def initial_state(self, num_envs: int):
        return self.net.get_rnn_init_state(num_envs, device=self.input_mean.device)

    @torch.no_grad()
    def act(self, features, proprio, state=None):
        x = self.normalized_input(features, proprio)
        if state is None:
            state = self.initial_state(x.shape[0])
        action, state = self.net.forward_step({OBS_KEY: x}, rnn_state=state)
        return action, state
