"""PyTorch parity of the regression losses: values and gradients.

Mapping (torch.nn.functional → jaxloss), same argument order and reductions:

- ``mse_loss(p, t)`` → ``squared_error(p, t)``; ``l1_loss`` → ``absolute_error``;
- ``huber_loss(p, t, delta=d)`` → ``huber_loss(p, t, delta=d)``;
- ``smooth_l1_loss(p, t, beta=b)`` → ``smooth_l1_loss(p, t, beta=b)`` (``beta=0`` too);
- ``gaussian_nll_loss(mean, t, var, full=f, eps=e)`` → ``gaussian_nll_loss(mean, t, var,
  full=f, eps=e)``, for every variance shape torch accepts, and with variances below ``eps``;
- ``poisson_nll_loss(p, t, log_input=l, full=f, eps=e)`` → ``poisson_nll_loss(p, t,
  log_input=l, full=f, eps=e)``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is a test-only dependency of the parity suite and is not installed"
)
import torch.nn.functional as F  # noqa: E402
from torch_parity import check  # noqa: E402

import jaxloss  # noqa: E402

REDUCTIONS = ("none", "sum", "mean")
DTYPES = (np.float64, np.float32)
SHAPES = ((7,), (3, 4, 5))
# Every shape in float64; float32 on the first, to keep the suite quick.
SHAPES_DTYPES = [(SHAPES[0], np.float64), (SHAPES[1], np.float64), (SHAPES[0], np.float32)]


def _pairs(shape, seed):
    rng = np.random.default_rng(seed)
    return {"p": 2 * rng.normal(size=shape), "t": rng.normal(size=shape)}


def _elementwise_variants():
    pairs = [
        (jaxloss.squared_error, F.mse_loss, {}, {}),
        (jaxloss.absolute_error, F.l1_loss, {}, {}),
        (jaxloss.huber_loss, F.huber_loss, {}, {}),
        (jaxloss.huber_loss, F.huber_loss, {"delta": 0.6}, {"delta": 0.6}),
        (jaxloss.smooth_l1_loss, F.smooth_l1_loss, {}, {}),
        (jaxloss.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.4}, {"beta": 0.4}),
        (jaxloss.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}, {"beta": 0.0}),
    ]
    return [
        (
            lambda p, t, j=j, jk=jk, r=r: j(p, t, reduction=r, **jk),
            lambda p, t, f=f, tk=tk, r=r: f(p, t, reduction=r, **tk),
        )
        for (j, f, jk, tk), r in itertools.product(pairs, REDUCTIONS)
    ]


@pytest.mark.parametrize("shape, dtype", SHAPES_DTYPES, ids=str)
def test_mse_l1_huber_smooth_l1(shape, dtype):
    check(_elementwise_variants(), _pairs(shape, 0), ("p", "t"), dtype)


@pytest.mark.parametrize(
    "var_shape, dtype",
    [((4, 3), np.float64), ((4,), np.float64), ((4, 1), np.float64), ((4, 3), np.float32)],
    ids=str,
)
def test_gaussian_nll_loss(var_shape, dtype):
    rng = np.random.default_rng(1)
    var = rng.uniform(0.2, 2.0, size=var_shape)
    var.flat[1] = 1e-9  # below eps: clamped in the value, not in the gradient, by both
    inputs = {
        "mean": rng.normal(size=(4, 3)),
        "t": rng.normal(size=(4, 3)),
        "var": var,
    }
    variants = [
        (
            lambda mean, t, var, f=f, r=r: jaxloss.gaussian_nll_loss(
                mean, t, var, full=f, eps=1e-3, reduction=r
            ),
            lambda mean, t, var, f=f, r=r: F.gaussian_nll_loss(
                mean, t, var, full=f, eps=1e-3, reduction=r
            ),
        )
        for f, r in itertools.product((False, True), REDUCTIONS)
    ]
    check(variants, inputs, ("mean", "t", "var"), dtype)


def test_gaussian_nll_loss_float_variance():
    inputs = _pairs((5, 2), 2)
    check(
        [
            (
                lambda p, t, r=r: jaxloss.gaussian_nll_loss(p, t, 0.7, reduction=r),
                lambda p, t, r=r: F.gaussian_nll_loss(p, t, 0.7, reduction=r),
            )
            for r in REDUCTIONS
        ],
        inputs, ("p", "t"),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("log_input", [True, False])
def test_poisson_nll_loss(log_input, dtype):
    rng = np.random.default_rng(3)
    shape = (4, 5)
    predictions = rng.normal(size=shape) if log_input else rng.uniform(0.1, 4.0, size=shape)
    inputs = {"p": predictions, "t": rng.poisson(2.5, size=shape).astype(np.float64)}
    for full in (False, True):
        variants = [
            (
                lambda p, t, r=r, full=full: jaxloss.poisson_nll_loss(
                    p, t, log_input=log_input, full=full, eps=1e-6, reduction=r
                ),
                lambda p, t, r=r, full=full: F.poisson_nll_loss(
                    p, t, log_input=log_input, full=full, eps=1e-6, reduction=r
                ),
            )
            for r in REDUCTIONS
        ]
        # With full=True torch's gradient for a count of 0 is NaN (0·log 0 in the Stirling
        # term it then masks); compare the targets' gradient only without it.
        check(variants, inputs, ("p",) if full else ("p", "t"), dtype)
