"""PyTorch parity of the KL divergence: values and gradients.

Mapping: ``torch.nn.functional.kl_div(input=log q, target=p, log_target=l)`` is
``jaxloss.kl_divergence(log q, p, log_targets=l)`` = KL(p ‖ q) per example (classes on the
last axis; ``axis=1`` for torch's channel layout), where:

- torch ``"batchmean"`` (sum / N) is jaxloss ``"mean"`` for 2-D inputs (mean over examples);
- torch ``"sum"`` is jaxloss ``"sum"``;
- torch ``"none"`` is elementwise; jaxloss's ``"none"`` is its sum over the class axis;
- torch ``"mean"`` averages over every element, N·C: jaxloss's ``"sum"`` / (N·C).

jaxloss normalises its input with a log-softmax (it takes logits), which leaves
log-probabilities unchanged; gradients agree through a log_softmax layer, as below.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is a test-only dependency of the parity suite and is not installed"
)
import torch.nn.functional as F  # noqa: E402
from torch_parity import check  # noqa: E402

import jaxloss  # noqa: E402

DTYPES = (np.float64, np.float32)


def _variants(log_target):
    def ours(reduction, scale=1.0):
        return lambda z, p: scale * jaxloss.kl_divergence(
            jax.nn.log_softmax(z, axis=-1), p, log_targets=log_target, reduction=reduction
        )

    def theirs(reduction, post=lambda out: out):
        return lambda z, p: post(F.kl_div(
            F.log_softmax(z, dim=-1), p, reduction=reduction, log_target=log_target
        ))

    n, c = 6, 5
    return [
        (ours("mean"), theirs("batchmean")),
        (ours("sum"), theirs("sum")),
        (ours("none"), theirs("none", lambda out: out.sum(-1))),
        (ours("sum", 1.0 / (n * c)), theirs("mean")),
    ]


# torch warns that its "mean" will change; it is compared here as it is today.
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target, dtype):
    rng = np.random.default_rng(0)
    z = 2 * rng.normal(size=(6, 5))
    p = np.exp(rng.normal(size=(6, 5)))
    p /= p.sum(-1, keepdims=True)
    inputs = {"z": z, "p": np.log(p) if log_target else p}
    check(_variants(log_target), inputs, ("z", "p"), dtype)
