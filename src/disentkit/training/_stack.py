"""M networks as one: stacked weights, one vmapped loss, one Adam, per-member state dicts.

The machinery of :mod:`disentkit.training.ensemble` (see its docstring for why and how); kept apart
so that the training driver reads top to bottom, and so that ``bench/grid_throughput.py`` can time
:func:`ensemble_step` on pre-made batches.
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call, stack_module_state, vmap

from disentkit.methods.base import Batch, autocast_context, bernoulli_reconstruction, gaussian_kl


class _MemberLoss(torch.nn.Module):
    """The loss of one member as a module, so :func:`functional_call` can swap its weights.

    The template of :meth:`disentkit.methods.base.Method.loss` with the noise ``eps`` given
    (drawn outside vmap by the member's own generator) and β a tensor (one per member).
    """

    def __init__(self, net: torch.nn.Module, method):
        super().__init__()
        self.net, self.method = net, method

    def forward(self, x1, x2, changed, eps, beta):
        x = x1 if x2 is None else torch.cat([x1, x2])
        mu, logvar = self.net.encode(x)
        mu, logvar = self.method.aggregate(mu.float(), logvar.float(), Batch(x1, x2, changed))
        z = mu + torch.exp(0.5 * logvar) * eps
        reconstruction = bernoulli_reconstruction(self.net.decode(z), x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return torch.stack([reconstruction + beta * kl, reconstruction, kl])


class Stack:
    """M networks as stacked tensors, one Adam over them, and per-member state dicts."""

    def __init__(self, models: list[torch.nn.Module], method, lr: float, device):
        self.size, self.latent_dim = len(models), int(models[0].latent_dim)
        self.names = [n for n, _ in models[0].named_parameters()]
        self.state_keys = list(models[0].state_dict())
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=lr)
        template = _MemberLoss(copy.deepcopy(models[0]).to("meta"), method)

        def one(p, b, x1, x2, changed, eps, beta):
            weights = {f"net.{k}": v for k, v in {**p, **b}.items()}
            return functional_call(template, weights, (x1, x2, changed, eps, beta))

        self.loss = vmap(one, in_dims=(0, 0, 0, 0, 0, 0, 0))
        self.loss_single = vmap(one, in_dims=(0, 0, 0, None, None, 0, 0))

    def member_model(self, m: int) -> dict[str, torch.Tensor]:
        both = {**self.params, **self.buffers}
        return {k: both[k][m].detach() for k in self.state_keys}

    def member_optimizer(self, m: int) -> dict:
        sd = self.optimizer.state_dict()
        state = {i: {k: (v[m] if v.dim() > 0 else v.clone()) for k, v in entry.items()}
                 for i, entry in sd["state"].items()}
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_optimizers(self, states: list[dict]) -> None:
        """Stack M single-run optimiser state dicts into the ensemble's Adam."""
        first = states[0]
        state = {}
        for i, entry in first["state"].items():
            state[i] = {k: (torch.stack([s["state"][i][k] for s in states]) if v.dim() > 0
                            else v.clone()) for k, v in entry.items()}
        self.optimizer.load_state_dict({"state": state, "param_groups": first["param_groups"]})

    def clip_(self, max_norm: float | None) -> torch.Tensor:
        """Clip each member's gradient to ``max_norm`` (as ``clip_grad_norm_`` does for one
        network); returns each member's gradient norm [M] (all finite when not clipping)."""
        grads = [p.grad for p in self.params.values()]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1)
        total = torch.linalg.vector_norm(norms, dim=1)
        if max_norm is not None:
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            for g in grads:
                g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))
        return total


def ensemble_step(stack: Stack, methods, noises, batch: dict, step: int,
                  grad_clip: float | None, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of every member on ``batch`` (tensors [M, n, ...] on the device) at 0-based
    ``step``: returns the loss terms [M, 3] (loss, reconstruction, KL) and the non-finite flags
    [M], both on the device (no synchronisation). A flagged member's gradient is zeroed."""
    x1 = batch["x1"]
    images = x1.shape[1] * (2 if "x2" in batch else 1)
    eps = torch.stack([torch.randn((images, stack.latent_dim), generator=g, device=x1.device)
                       for g in noises])
    betas = torch.tensor([m.beta_at(step) for m in methods], device=x1.device)
    p, b = stack.params, stack.buffers
    with autocast_context(x1.device.type, precision):
        if "x2" in batch:
            terms = stack.loss(p, b, x1, batch["x2"], batch["changed"], eps, betas)
        else:
            terms = stack.loss_single(p, b, x1, None, None, eps, betas)
    stack.optimizer.zero_grad(set_to_none=True)
    terms[:, 0].sum().backward()
    norm = stack.clip_(grad_clip)
    bad = ~torch.isfinite(terms).all(dim=1) | ~torch.isfinite(norm)
    for t in p.values():  # a failing member does not move (nor does any other)
        t.grad.masked_fill_(bad.view((-1,) + (1,) * (t.dim() - 1)), 0.0)
    stack.optimizer.step()
    return terms, bad
