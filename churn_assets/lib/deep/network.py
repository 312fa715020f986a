"""The fitted MLP as plain numpy: forward pass, input gradients and integrated gradients.

Scoring and explaining must not need JAX (importing it costs ~1.3 s and its wheel ~340 MB,
which the scoring API should not pay), so the trained network is exported as numpy arrays with
batch norm folded into the dense layers. What remains is ``h -> silu(h @ W + b)`` per hidden layer
and a linear read-out, whose gradient is cheap to write by hand. SiLU (not ReLU) keeps the
network smooth, which lets a few Gauss-Legendre nodes integrate the gradients along the
integrated-gradients path almost exactly instead of a hundred Riemann steps around kinks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

# Batch-norm epsilon, shared with training so the folded layers reproduce it exactly.
BATCH_NORM_EPS = 1e-5


class ExportedNetwork(NamedTuple):
    """Inference-ready arrays: embedding table, folded hidden layers, linear read-out."""

    table: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    output_weight: np.ndarray
    output_bias: float


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


def export(
    params: Mapping[str, Any],
    state: Mapping[str, Any],
    rows: np.ndarray,
    offsets: np.ndarray,
    cardinalities: Sequence[int],
) -> ExportedNetwork:
    """The trained parameters as float64 numpy, batch norm folded, unknown rows filled.

    ``rows`` are the training rows' embedding-table rows. Each categorical's reserved
    unknown row becomes the frequency-weighted mean of its known rows: training never sees
    an unknown category, so its initial random row would be arbitrary, while the mean
    embedding reads as "a typical category".
    """
    table = np.array(params["embedding"], dtype=np.float64)
    for j, (offset, cardinality) in enumerate(zip(offsets, cardinalities, strict=True)):
        known = slice(offset + 1, offset + 1 + cardinality)
        local = rows[:, j] - offset - 1
        counts = np.bincount(local[local >= 0], minlength=cardinality)
        table[offset] = counts.astype(np.float64) @ table[known] / max(counts.sum(), 1)
    weights, biases = [], []
    for layer, mean, var in zip(params["layers"], state["mean"], state["var"], strict=True):
        weight, bias = fold_batch_norm(
            layer["w"], layer["b"], layer["gamma"], layer["beta"], mean, var
        )
        weights.append(weight)
        biases.append(bias)
    return ExportedNetwork(
        table, weights, biases, np.asarray(params["out_w"], np.float64), float(params["out_b"])
    )


def network_inputs(x_numeric: np.ndarray, rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """First-layer input: numerics, then each categorical's embedding, side by side.

    ``rows`` index the shared embedding ``table`` (one column per categorical feature, each
    feature's block starting with its reserved unknown row).
    """
    embedded = table[rows].reshape(len(rows), -1)
    return np.concatenate([np.asarray(x_numeric, dtype=np.float64), embedded], axis=1)


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
