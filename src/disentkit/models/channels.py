"""Channel adaptation: a network trained on 1-channel images meets 3-channel ones (and back).

Transfers cross channel counts (white dSprites -> colour targets, RGB -> depth): the first
convolution and the last transposed convolution are rewritten by a fixed rule that keeps the
model's behaviour on grey content (:func:`adapt_channels`). This is model surgery, so it lives
with the networks; the transfer records the rule (:data:`CHANNEL_RULE`) in ``transfer.json``.
"""

from __future__ import annotations

import torch
from torch import nn

from disentkit.models import build_model


def _channel_layers(model, channels: int):
    """Names of the input convolution (first Conv2d reading ``channels``) and the output
    transposed convolution (last ConvTranspose2d writing ``channels``)."""
    first = last = None
    for name, module in model.named_modules():
        if first is None and isinstance(module, nn.Conv2d) and module.in_channels == channels:
            first = name
        if isinstance(module, nn.ConvTranspose2d) and module.out_channels == channels:
            last = name
    if first is None or last is None:
        raise ValueError(
            f"cannot adapt channels of a {type(model).__name__}: expected a Conv2d reading "
            f"{channels} channels and a ConvTranspose2d writing {channels}"
        )
    return first, last


def adapt_channels(model, channels: int):
    """A copy of ``model`` that takes and produces ``channels``-channel images.

    The rule (documented in ``transfer.json`` and the report) keeps the zero-shot model's
    behaviour on grey content:

    * 1 → 3 channels: the input kernel is replicated over R, G, B and divided by 3, so the model
      sees an RGB image through its grey mean exactly as the source saw grey images; the output
      kernel and bias are replicated, so every colour channel reconstructs the grey logit.
    * 3 → 1 channel: the input kernels are summed over R, G, B, so a grey image gives exactly the
      response the source gave to the same grey image as RGB; the output kernel and bias are
      averaged over R, G, B (the grey logit is the mean of the colour logits).

    Other channel changes raise ``ValueError``. The model itself is not modified.
    """
    src = int(model.in_channels)
    if src == channels:
        return model
    if {src, channels} != {1, 3}:
        raise ValueError(f"channel adaptation handles 1 <-> 3 channels, found {src} -> {channels}")
    first, last = _channel_layers(model, src)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    w_in, w_out, b_out = weights[f"{first}.weight"], weights[f"{last}.weight"], weights.get(f"{last}.bias")
    if channels == 3:
        weights[f"{first}.weight"] = w_in.repeat(1, 3, 1, 1) / 3.0
        weights[f"{last}.weight"] = w_out.repeat(1, 3, 1, 1)
        if b_out is not None:
            weights[f"{last}.bias"] = b_out.repeat(3)
    else:
        weights[f"{first}.weight"] = w_in.sum(dim=1, keepdim=True)
        weights[f"{last}.weight"] = w_out.mean(dim=1, keepdim=True)
        if b_out is not None:
            weights[f"{last}.bias"] = b_out.mean().reshape(1)
    with torch.random.fork_rng(devices=[]):
        adapted = build_model(model.arch, channels, model.latent_dim)
    adapted.load_state_dict(weights)
    return adapted.to(next(model.parameters()).device).eval()


CHANNEL_RULE = {
    (1, 3): "1->3: input kernel replicated over RGB /3 (grey mean); output kernel+bias replicated",
    (3, 1): "3->1: input kernels summed over RGB; output kernel+bias averaged over RGB",
}
