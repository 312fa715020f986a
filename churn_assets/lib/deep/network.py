"""The fitted MLP as plain numpy: forward pass, input gradients and integrated gradients.

Scoring and explaining must not need JAX (the API loads a model per request path and a JAX
import costs ~1 s and ~350 MB), so the trained network is exported as numpy arrays with batch
norm folded into the dense layers. What remains is ``h -> silu(h @ W + b)`` per hidden layer
and a linear read-out, whose gradient is cheap to write by hand. SiLU (not ReLU) keeps the
network smooth, which lets a few Gauss-Legendre nodes integrate the gradients along the
integrated-gradients path almost exactly instead of a hundred Riemann steps around kinks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Batch-norm epsilon, shared with training so the folded layers reproduce it exactly.
BATCH_NORM_EPS = 1e-5


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function (tanh form)."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def silu(z: np.ndarray) -> np.ndarray:
    return z * sigmoid(z)


def silu_derivative(z: np.ndarray) -> np.ndarray:
    s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def fold_batch_norm(
    weight: np.ndarray,
    bias: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense layer followed by inference-mode batch norm, as one dense layer.

    ``gamma * (x @ W + b - mean) / sqrt(var + eps) + beta`` is affine in ``x``, so folding
    it removes four arrays per layer from the saved model and one branch from the gradient.
    """
    scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(
        np.asarray(var, np.float64) + BATCH_NORM_EPS
    )
    folded_weight = np.asarray(weight, dtype=np.float64) * scale[None, :]
    folded_bias = (np.asarray(bias, np.float64) - mean) * scale + np.asarray(beta, np.float64)
    return folded_weight, folded_bias


def network_inputs(
    x_numeric: np.ndarray, rows: np.ndarray, embeddings: Sequence[np.ndarray]
) -> np.ndarray:
    """First-layer input: numerics, then each categorical's embedding row, side by side.

    ``rows`` are embedding-table rows (0 is the reserved unknown row), one column per
    categorical feature.
    """
    parts = [np.asarray(x_numeric, dtype=np.float64)]
    parts += [table[rows[:, j]] for j, table in enumerate(embeddings)]
    return np.concatenate(parts, axis=1)


def logits(
    inputs: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    output_weight: np.ndarray,
    output_bias: float,
) -> np.ndarray:
    """Log-odds of churn for first-layer inputs (see :func:`network_inputs`)."""
    h = inputs
    for weight, bias in zip(weights, biases, strict=True):
        h = silu(h @ weight + bias)
    return np.asarray(h @ output_weight + output_bias)


def logit_gradient(
    inputs: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    output_weight: np.ndarray,
) -> np.ndarray:
    """d logit / d inputs, row by row (hand-written backpropagation through the MLP)."""
    pre_activations = []
    h = inputs
    for weight, bias in zip(weights, biases, strict=True):
        z = h @ weight + bias
        pre_activations.append(z)
        h = silu(z)
    grad = np.broadcast_to(output_weight, h.shape)
    for weight, z in zip(reversed(weights), reversed(pre_activations), strict=True):
        grad = (grad * silu_derivative(z)) @ weight.T
    return np.asarray(grad)


def integrated_gradients(
    inputs: np.ndarray,
    baseline: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    output_weight: np.ndarray,
    *,
    n_steps: int,
    chunk_rows: int = 512,
) -> np.ndarray:
    """Integrated gradients of the logit from ``baseline`` to each row of ``inputs``.

    ``(x - x0) * integral_0^1 grad(x0 + a (x - x0)) da`` per input dimension, with the
    integral taken by ``n_steps``-point Gauss-Legendre quadrature. The attributions of a row
    sum to ``logit(x) - logit(x0)`` up to the quadrature error (completeness), which is what
    makes them read as additive log-odds contributions like TreeSHAP's.
    """
    nodes, node_weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, alpha_weights = (nodes + 1.0) / 2.0, node_weights / 2.0
    out = np.empty_like(inputs, dtype=np.float64)
    for start in range(0, len(inputs), chunk_rows):
        delta = inputs[start : start + chunk_rows] - baseline
        path = baseline + alphas[:, None, None] * delta[None, :, :]
        grads = logit_gradient(path.reshape(-1, delta.shape[1]), weights, biases, output_weight)
        averaged = np.tensordot(alpha_weights, grads.reshape(path.shape), axes=1)
        out[start : start + chunk_rows] = delta * averaged
    return out
