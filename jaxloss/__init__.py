"""jaxloss: differentiable loss functions for JAX, with one contract and safe numerics."""

from jaxloss._classification import (
    binary_cross_entropy,
    brier_score,
    poly1_cross_entropy,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    softmax_cross_entropy,
    softmax_focal_loss,
)
from jaxloss._divergence import (
    entropy,
    generalized_kl_divergence,
    js_divergence,
    kl_divergence,
)
from jaxloss._linear_cross_entropy import linear_softmax_cross_entropy
from jaxloss._margin import (
    hinge_loss,
    margin_ranking_loss,
    multiclass_hinge_loss,
    multiclass_perceptron_loss,
    perceptron_loss,
    squared_hinge_loss,
)
from jaxloss._metrics import accuracy, classification_error
from jaxloss._parallel import (
    vocab_parallel_linear_softmax_cross_entropy,
    vocab_parallel_softmax_cross_entropy,
)
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
    "binary_cross_entropy",
    "brier_score",
    "classification_error",
    "entropy",
    "gaussian_nll_loss",
    "generalized_kl_divergence",
    "hinge_loss",
    "huber_loss",
    "js_divergence",
    "kl_divergence",
    "linear_softmax_cross_entropy",
    "log_cosh",
    "margin_ranking_loss",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "perceptron_loss",
    "pinball_loss",
    "poisson_nll_loss",
    "poly1_cross_entropy",
    "reduce",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
    "squared_error",
    "squared_hinge_loss",
    "vocab_parallel_linear_softmax_cross_entropy",
    "vocab_parallel_softmax_cross_entropy",
]
