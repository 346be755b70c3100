"""jaxloss: differentiable loss functions for JAX, with one contract and safe numerics."""

from jaxloss._classification import brier_score, softmax_cross_entropy
from jaxloss._divergence import entropy, kl_divergence
from jaxloss._margin import hinge_loss, multiclass_hinge_loss, squared_hinge_loss
from jaxloss._metrics import accuracy, classification_error
from jaxloss._reduce import reduce
from jaxloss._regression import (
    absolute_error,
    gaussian_nll_loss,
    huber_loss,
    log_cosh,
    pinball_loss,
    poisson_nll_loss,
    smooth_l1_loss,
    squared_error,
)

__version__ = "0.1.0"

__all__ = [
    "absolute_error",
    "accuracy",
    "brier_score",
    "classification_error",
    "entropy",
    "gaussian_nll_loss",
    "hinge_loss",
    "huber_loss",
    "kl_divergence",
    "log_cosh",
    "multiclass_hinge_loss",
    "pinball_loss",
    "poisson_nll_loss",
    "reduce",
    "smooth_l1_loss",
    "softmax_cross_entropy",
    "squared_error",
    "squared_hinge_loss",
]
