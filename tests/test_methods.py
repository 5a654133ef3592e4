"""Methods: each loss equals a short, separate reference implementation on random inputs.

The references below are written independently of disentkit.methods (per-pair Python loops,
torch.distributions for the KLs, variances instead of log-variances, the histogram binning of
disentanglement_lib for the adaptive threshold), as disent keeps "minimal" versions of its
frameworks to check the real ones against.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from disentkit.errors import UnknownNameError
from disentkit.methods import METHODS, build_method
from disentkit.methods.base import Batch, NonFiniteLossError
from disentkit.methods.weak import adaptive_shared_mask, pair_divergence

D, K, N = 6, 4, 5  # latent dims, factors, pairs


class TinyVAE(nn.Module):
    """A linear VAE on 1x4x4 images: enough to exercise every method's arithmetic."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(16, 2 * D)
        self.dec = nn.Linear(D, 16)

    def encode(self, x):
        h = self.enc(x.flatten(1))
        return h[:, :D], h[:, D:].clamp(-3, 3)

    def decode(self, z):
        return self.dec(z).view(-1, 1, 4, 4)


# ----------------------------------------------------------------------------- references
def ref_reconstruction(logits, x):
    p = torch.sigmoid(logits.double())
    x = x.double()
    return -(x * p.log() + (1 - x) * (1 - p).log()).sum(dim=(1, 2, 3))


def ref_kl_prior(mu, logvar):
    q = Normal(mu.double(), (0.5 * logvar.double()).exp())
    return kl_divergence(q, Normal(0.0, 1.0)).sum(1)


def ref_merge(m1, lv1, m2, lv2, kind):
    v1, v2 = lv1.exp(), lv2.exp()
    if kind == "average":
        return (m1 + m2) / 2, ((v1 + v2) / 2).log()
    v = 1 / (1 / v1 + 1 / v2)  # product of Gaussians
    return v * (m1 / v1 + m2 / v2), v.log()


def ref_shared(m1, lv1, m2, lv2, changed, method, divergence="symmetric"):
    """Bool [n, D] shared dimensions, one pair at a time."""
    out = torch.zeros(m1.shape, dtype=torch.bool)
    for i in range(len(m1)):
        if method == "gvae-labels":
            for d in range(D):
                out[i, d] = not (d < changed.shape[1] and bool(changed[i, d]))
            continue
        q1 = Normal(m1[i].double(), (0.5 * lv1[i].double()).exp())
        q2 = Normal(m2[i].double(), (0.5 * lv2[i].double()).exp())
        delta = kl_divergence(q1, q2)
        if divergence == "symmetric":
            delta = delta + kl_divergence(q2, q1)
        lo, hi = delta.min(), delta.max()
        bins = ((delta - lo) / ((hi - lo) / 2)).floor().clamp(0, 1)  # two equal-width bins
        out[i] = bins == 0
    return out


def ref_loss(model, batch, method, beta, seed, divergence="symmetric"):
    x = batch.x1 if batch.x2 is None else torch.cat([batch.x1, batch.x2])
    mu, logvar = model.encode(x)
    if batch.x2 is not None:
        (m1, m2), (l1, l2) = mu.chunk(2), logvar.chunk(2)
        shared = ref_shared(m1, l1, m2, l2, batch.changed, method, divergence)
        kind = "product" if method == "ada-ml-vae" else "average"
        nm, nl = ref_merge(m1, l1, m2, l2, kind)
        mu = torch.cat([torch.where(shared, nm, m1), torch.where(shared, nm, m2)])
        logvar = torch.cat([torch.where(shared, nl, l1), torch.where(shared, nl, l2)])
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
    logits = model.decode(mu + (0.5 * logvar).exp() * eps)
    recon = ref_reconstruction(logits, x).mean()
    kl = ref_kl_prior(mu, logvar).mean()
    return recon + beta * kl, recon, kl


def _batch(pairs, seed=0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.rand(N, 1, 4, 4, generator=g)
    if not pairs:
        return Batch(x1=torch.cat([x1, torch.rand(N, 1, 4, 4, generator=g)]))
    changed = torch.zeros(N, K, dtype=torch.bool)
    changed[torch.arange(N), torch.randint(0, K, (N,), generator=g)] = True
    return Batch(x1=x1, x2=torch.rand(N, 1, 4, 4, generator=g), changed=changed)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_reference(name, seed):
    torch.manual_seed(seed)
    model = TinyVAE()
    method = build_method(name, beta=2.5)
    batch = _batch(method.uses_pairs, seed)
    terms = method.loss(model, batch, 2.5, torch.Generator().manual_seed(seed))
    loss, recon, kl = ref_loss(model, batch, name, 2.5, seed)
    torch.testing.assert_close(terms.reconstruction.double(), recon, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(terms.kl.double(), kl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(terms.loss.double(), loss, rtol=1e-5, atol=1e-4)


def test_forward_divergence_option_equals_reference():
    torch.manual_seed(3)
    model, batch = TinyVAE(), _batch(True, 3)
    method = build_method("ada-gvae", divergence="forward")
    terms = method.loss(model, batch, 1.0, torch.Generator().manual_seed(3))
    loss, _, _ = ref_loss(model, batch, "ada-gvae", 1.0, 3, divergence="forward")
    torch.testing.assert_close(terms.loss.double(), loss, rtol=1e-5, atol=1e-4)


def test_symmetric_selection_ignores_pair_order_and_is_per_pair():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(8, D, generator=g), torch.randn(8, D, generator=g)
    l1, l2 = torch.randn(8, D, generator=g), torch.randn(8, D, generator=g)
    a = adaptive_shared_mask(pair_divergence(m1, l1, m2, l2))
    b = adaptive_shared_mask(pair_divergence(m2, l2, m1, l1))
    assert torch.equal(a, b)
    # scaling one pair's divergences must not move another pair's selection (per-pair threshold)
    delta = pair_divergence(m1, l1, m2, l2)
    scaled = delta.clone()
    scaled[0] *= 1000
    assert torch.equal(adaptive_shared_mask(scaled)[1:], adaptive_shared_mask(delta)[1:])
    assert a.any(dim=1).all() and (~a).any(dim=1).all()  # each pair shares some, keeps some


def test_gvae_labels_keeps_the_changed_dimension_only():
    torch.manual_seed(0)
    model, batch = TinyVAE(), _batch(True)
    mu, logvar = model.encode(torch.cat([batch.x1, batch.x2]))
    out_mu, _ = build_method("gvae-labels").aggregate(mu, logvar, batch)
    own = torch.zeros(N, D, dtype=torch.bool)
    own[:, :K] = batch.changed
    first, second = out_mu.chunk(2)
    assert torch.equal(first[own], mu[:N][own])  # the changed factor's dimension keeps its own
    assert torch.allclose(first[~own], second[~own])  # every other dimension is shared


def test_gvae_labels_needs_a_dimension_per_changed_factor():
    batch = _batch(True)
    batch.changed = torch.zeros(N, D + 2, dtype=torch.bool)
    batch.changed[:, D + 1] = True
    mu = torch.zeros(2 * N, D)
    with pytest.raises(ValueError, match="latent_dim"):
        build_method("gvae-labels").aggregate(mu, mu, batch)


def test_pair_methods_refuse_single_images():
    with pytest.raises(ValueError, match="trains on pairs"):
        build_method("ada-gvae").loss(TinyVAE(), _batch(False), 1.0, None)


def test_beta_warmup_is_linear_then_constant():
    m = build_method("beta-vae", beta=2.0, warmup_steps=4)
    assert [m.beta_at(s) for s in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert build_method("beta-vae", beta=2.0).beta_at(0) == 2.0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_gradients_reach_every_parameter(name):
    from disentkit.models import build_model

    torch.manual_seed(0)
    for arch in ("locatello", "paper"):
        model = build_model(arch, 1, 6)
        g = torch.Generator().manual_seed(0)
        x1, x2 = torch.rand(3, 1, 64, 64, generator=g), torch.rand(3, 1, 64, 64, generator=g)
        changed = torch.zeros(3, 4, dtype=torch.bool)
        changed[:, 1] = True
        method = build_method(name)
        batch = Batch(x1, x2, changed) if method.uses_pairs else Batch(torch.cat([x1, x2]))
        method.loss(model, batch, 1.0, g).loss.backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{arch}: {pname}"
            assert p.grad.abs().sum() > 0, f"{arch}: no gradient reaches {pname}"


def test_training_step_clips_and_stops_on_non_finite_loss():
    torch.manual_seed(0)
    model = TinyVAE()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves weights alone
    method = build_method("ada-gvae")
    method.training_step(model, opt, _batch(True), 0, None, grad_clip=1e-3)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm <= 1e-3 * 1.0001
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = _batch(True)
    bad.x1[0, 0, 0, 0] = float("nan")
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    with pytest.raises(NonFiniteLossError, match="non-finite reconstruction .* at step 7") as info:
        method.training_step(model, opt, bad, 7, None)
    assert info.value.term == "reconstruction"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_registry_errors_list_valid_names_and_options():
    with pytest.raises(UnknownNameError, match="ada-gvae, ada-ml-vae, beta-vae, gvae-labels"):
        build_method("factor-vae")
    with pytest.raises(ValueError, match="does not take option"):
        build_method("beta-vae", divergence="forward")
    with pytest.raises(ValueError, match="beta must be"):
        build_method("beta-vae", beta=-1.0)
    with pytest.raises(ValueError, match="divergence must be"):
        build_method("ada-gvae", divergence="js")
