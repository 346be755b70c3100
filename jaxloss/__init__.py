"""jaxloss: differentiable loss functions for JAX, with one contract and safe numerics."""

from jaxloss._classification import brier_score, softmax_cross_entropy
from jaxloss._divergence import entropy, kl_divergence
from jaxloss._linear_cross_entropy import linear_softmax_cross_entropy
from jaxloss._margin import hinge_loss, multiclass_hinge_loss, squared_hinge_loss
from jaxloss._metrics import accuracy, classification_error
from jaxloss._parallel import vocab_parallel_softmax_cross_entropy
from jaxloss._reduce import reduce
from jaxloss._regression import squared_error

__version__ = "0.1.0"

__all__ = [
    "accuracy",
    "brier_score",
    "classification_error",
    "entropy",
    "hinge_loss",
    "kl_divergence",
    "linear_softmax_cross_entropy",
    "multiclass_hinge_loss",
    "reduce",
    "softmax_cross_entropy",
    "squared_error",
    "squared_hinge_loss",
    "vocab_parallel_softmax_cross_entropy",
]
