"""The loss conventions and the one template training step every method shares (docs/architecture.md, "Contracts").

Conventions, stated once and used by every method so that β means the same thing everywhere:

* reconstruction: Bernoulli negative log-likelihood on the decoder's *logits*, summed over pixels
  and channels, averaged over the batch (targets in [0, 1] are allowed, as in disentanglement_lib);
* KL: KL(q(z|x) ‖ N(0, I)) summed over latent dimensions, averaged over the batch;
* loss = reconstruction + β_t · KL, with β_t warmed up linearly from 0 to β over ``warmup_steps``
  (the paper warms up over 50k of 400k steps, Dapueto et al. 2024 §4.1);
* for pairs, both images of every pair are encoded and decoded in one batch of 2n, so the mean
  over the 2n samples is the mean of the two halves' terms (the paper's 0.5·x1 + 0.5·x2).

A method only overrides :meth:`Method.aggregate`: how the posteriors of a batch are combined
before sampling (identity for β-VAE; the pair's shared dimensions for the weakly-supervised ones).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from disentkit.errors import DisentkitError


class NonFiniteLossError(DisentkitError):
    """A loss term or the gradient became NaN or infinite; the weights were not updated."""

    def __init__(self, step: int, term: str, value: float, detail: str = ""):
        self.step, self.term, self.value = step, term, value
        message = f"non-finite {term} ({value}) at step {step}"
        super().__init__(f"{message}; {detail}" if detail else message)


@dataclass
class Batch:
    """Tensors of one training batch. Pairs set ``x2`` and ``changed`` (bool [n, K])."""

    x1: torch.Tensor
    x2: torch.Tensor | None = None
    changed: torch.Tensor | None = None

    @property
    def num_images(self) -> int:
        return len(self.x1) * (1 if self.x2 is None else 2)


@dataclass
class LossTerms:
    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    beta: float
    #: device boolean "every term and the gradient norm finite" (lazy guard only, else None)
    finite: torch.Tensor | None = None


def bernoulli_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample Bernoulli NLL [n]: cross-entropy on logits, summed over channels and pixels."""
    nll = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
    return nll.flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(N(mu, exp(logvar)) ‖ N(0, I)) [n], summed over latent dimensions."""
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).sum(1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None):
    """z = mu + sigma * eps with eps ~ N(0, I) drawn from ``generator`` (one draw of mu's shape)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def autocast_context(device_type: str, precision: str):
    """``torch.autocast`` for ``precision="bf16"``, a no-op for ``"fp32"``."""
    if precision == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(f"precision must be 'fp32' or 'bf16' here, found {precision!r}")


class Method:
    """A loss on a network. Subclasses set ``name``/``uses_pairs`` and may override ``aggregate``."""

    name = ""
    uses_pairs = False

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0):
        if not (beta >= 0 and math.isfinite(beta)):
            raise ValueError(f"beta must be a finite number >= 0, found {beta}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, found {warmup_steps}")
        self.beta = float(beta)
        self.warmup_steps = int(warmup_steps)

    def beta_at(self, step: int) -> float:
        """β for the update at 0-based ``step``: linear from 0 to β over ``warmup_steps``."""
        if self.warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, step / self.warmup_steps)

    def check(self, dataset, latent_dim: int) -> None:
        """Raise ``ValueError`` (saying why) when this method cannot train on ``dataset`` with
        ``latent_dim`` latent dimensions; called once before the first step. No constraint here."""

    def aggregate(self, mu: torch.Tensor, logvar: torch.Tensor, batch: Batch):
        """Posterior parameters used for sampling and for the KL term (identity by default)."""
        return mu, logvar

    def loss(self, model, batch: Batch, beta: float, generator: torch.Generator | None) -> LossTerms:
        """The template: encode → aggregate → sample → decode → reconstruction + β·KL."""
        x = batch.x1 if batch.x2 is None else torch.cat([batch.x1, batch.x2])
        mu, logvar = model.encode(x)
        mu, logvar = self.aggregate(mu.float(), logvar.float(), batch)
        z = reparameterize(mu, logvar, generator)
        logits = model.decode(z)
        reconstruction = bernoulli_reconstruction(logits, x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return LossTerms(reconstruction + beta * kl, reconstruction, kl, beta)

    def training_step(
        self,
        model,
        optimizer: torch.optim.Optimizer,
        batch: Batch,
        step: int,
        generator: torch.Generator | None = None,
        grad_clip: float | None = None,
        precision: str = "fp32",
        *,
        lazy_guard: bool = False,
    ) -> LossTerms:
        """One update at 0-based ``step``: loss, backward, optional clipping by global norm, Adam.

        A non-finite term raises :class:`NonFiniteLossError` *before* the weights change, so the
        model and the last checkpoint stay good. ``lazy_guard`` (accelerators: each check would
        stall the host until the device catches up) raises nothing: ``terms.finite`` is a device
        boolean the caller reads every ``log_every`` steps and before every checkpoint, so a bad
        step still never reaches a saved checkpoint, only the model in memory.
        """
        with autocast_context(batch.x1.device.type, precision):
            terms = self.loss(model, batch, self.beta_at(step), generator)
        if not lazy_guard:
            for name, value in (("reconstruction", terms.reconstruction), ("kl", terms.kl),
                                ("loss", terms.loss)):
                if not torch.isfinite(value):
                    raise NonFiniteLossError(step, name, float(value.detach()))
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        if grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        else:  # checked without clipping too: an infinite gradient would corrupt Adam's moments
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if lazy_guard:
            terms.finite = torch.isfinite(torch.stack([
                terms.reconstruction.detach().float(), terms.kl.detach().float(),
                terms.loss.detach().float(), norm.detach().float().to(terms.loss.device)])).all()
        elif not torch.isfinite(norm):
            raise NonFiniteLossError(step, "gradient norm", float(norm.detach()))
        optimizer.step()
        return terms
