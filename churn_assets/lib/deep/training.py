"""Training the tabular MLP with JAX + optax; imported lazily, only when a model is fitted.

The network: numerics and one learned embedding per categorical feature, concatenated, then
``n_layers`` x (dense -> batch norm -> SiLU -> dropout) and a linear read-out to one logit.
Training is AdamW on (optionally class-weighted) binary cross-entropy with early stopping on
the validation loss. One epoch is a single jitted ``lax.scan`` over its mini-batches, so the
Python loop runs once per epoch, not once per step (a 2-layer MLP step is ~50 µs of compute
against ~100 µs of dispatch overhead).

Reproducibility: parameters come from a ``jax.random`` key and batches from a numpy
generator, both derived from the seed; XLA on CPU is deterministic for a fixed thread
configuration. The jitted functions live at module level with the architecture as a static
argument, so every fold and refit with the same architecture and shapes reuses one compile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from churn_assets.lib.deep.network import BATCH_NORM_EPS

# Running batch-norm statistics: new = (1 - momentum) * old + momentum * batch.
BATCH_NORM_MOMENTUM = 0.1
# Embedding init scale: small so that no category dominates the first layer at the start.
EMBEDDING_INIT_SCALE = 0.1

Params = dict[str, Any]
State = dict[str, Any]


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that changes the traced computation (a static ``jit`` argument)."""

    embedding_dim: int
    hidden_width: int
    n_layers: int
    dropout: float
    learning_rate: float
    weight_decay: float


@dataclass(frozen=True)
class TrainedNetwork:
    """Best parameters (by validation loss) as numpy, plus what early stopping saw."""

    params: Params
    state: State
    best_epoch: int
    epochs_run: int
    validation_loss: list[float]


def init_params(
    key: jax.Array, n_numeric: int, cardinalities: Sequence[int], config: NetworkConfig
) -> tuple[Params, State]:
    """He-initialised dense layers, small embeddings (row 0 = unknown), zero read-out."""
    keys = jax.random.split(key, len(cardinalities) + config.n_layers)
    embeddings = [
        EMBEDDING_INIT_SCALE * jax.random.normal(k, (cardinality + 1, config.embedding_dim))
        for k, cardinality in zip(keys[: len(cardinalities)], cardinalities, strict=True)
    ]
    width_in = n_numeric + len(cardinalities) * config.embedding_dim
    layers = []
    for k in keys[len(cardinalities) :]:
        layers.append(
            {
                "w": jax.random.normal(k, (width_in, config.hidden_width))
                * jnp.sqrt(2.0 / width_in),
                "b": jnp.zeros(config.hidden_width),
                "gamma": jnp.ones(config.hidden_width),
                "beta": jnp.zeros(config.hidden_width),
            }
        )
        width_in = config.hidden_width
    params = {
        "embeddings": embeddings,
        "layers": layers,
        "out_w": jnp.zeros(width_in),
        "out_b": jnp.zeros(()),
    }
    state = {
        "mean": [jnp.zeros(config.hidden_width) for _ in layers],
        "var": [jnp.ones(config.hidden_width) for _ in layers],
    }
    return params, state


def forward(
    params: Params,
    state: State,
    x_numeric: jax.Array,
    rows: jax.Array,
    config: NetworkConfig,
    *,
    train: bool,
    key: jax.Array | None = None,
) -> tuple[jax.Array, State]:
    """Logits and (in training) updated batch-norm running statistics."""
    parts = [x_numeric] + [table[rows[:, j]] for j, table in enumerate(params["embeddings"])]
    h = jnp.concatenate(parts, axis=1)
    means, variances = [], []
    for i, layer in enumerate(params["layers"]):
        z = h @ layer["w"] + layer["b"]
        if train:
            mean, var = z.mean(axis=0), z.var(axis=0)
            means.append((1 - BATCH_NORM_MOMENTUM) * state["mean"][i] + BATCH_NORM_MOMENTUM * mean)
            variances.append(
                (1 - BATCH_NORM_MOMENTUM) * state["var"][i] + BATCH_NORM_MOMENTUM * var
            )
        else:
            mean, var = state["mean"][i], state["var"][i]
        z = layer["gamma"] * (z - mean) / jnp.sqrt(var + BATCH_NORM_EPS) + layer["beta"]
        h = jax.nn.silu(z)
        if train and config.dropout > 0:
            assert key is not None, "dropout needs a PRNG key in training"
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1.0 - config.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - config.dropout), 0.0)
    logit = h @ params["out_w"] + params["out_b"]
    return logit, ({"mean": means, "var": variances} if train else state)


def _optimizer(config: NetworkConfig) -> optax.GradientTransformation:
    """AdamW; only dense and embedding matrices decay (biases and norm scales stay free)."""

    def decay_mask(params: Params) -> Any:
        return {
            "embeddings": [True for _ in params["embeddings"]],
            "layers": [
                {"w": True, "b": False, "gamma": False, "beta": False} for _ in params["layers"]
            ],
            "out_w": True,
            "out_b": False,
        }

    return optax.adamw(config.learning_rate, weight_decay=config.weight_decay, mask=decay_mask)


def _weighted_bce(logit: jax.Array, y: jax.Array, weight: jax.Array) -> jax.Array:
    return jnp.sum(optax.sigmoid_binary_cross_entropy(logit, y) * weight) / jnp.sum(weight)


@partial(jax.jit, static_argnames=("config",))
def _train_epoch(
    params: Params,
    state: State,
    opt_state: Any,
    x_numeric: jax.Array,
    rows: jax.Array,
    y: jax.Array,
    weight: jax.Array,
    batches: jax.Array,
    key: jax.Array,
    config: NetworkConfig,
) -> tuple[Params, State, Any]:
    """One pass over ``batches`` (n_batches x batch_size row indices) as a single scan."""
    optimizer = _optimizer(config)

    def loss(p: Params, s: State, idx: jax.Array, k: jax.Array) -> tuple[jax.Array, State]:
        logit, new_state = forward(p, s, x_numeric[idx], rows[idx], config, train=True, key=k)
        return _weighted_bce(logit, y[idx], weight[idx]), new_state

    def step(carry: tuple[Params, State, Any], inputs: tuple[jax.Array, jax.Array]) -> Any:
        p, s, o = carry
        idx, k = inputs
        (_, new_state), grads = jax.value_and_grad(loss, has_aux=True)(p, s, idx, k)
        updates, o = optimizer.update(grads, o, p)
        return (optax.apply_updates(p, updates), new_state, o), None

    step_keys = jax.random.split(key, batches.shape[0])
    (params, state, opt_state), _ = jax.lax.scan(
        step, (params, state, opt_state), (batches, step_keys)
    )
    return params, state, opt_state


@partial(jax.jit, static_argnames=("config",))
def predict_logits(
    params: Params, state: State, x_numeric: jax.Array, rows: jax.Array, config: NetworkConfig
) -> jax.Array:
    """Inference-mode logits (running batch-norm statistics, no dropout)."""
    return forward(params, state, x_numeric, rows, config, train=False)[0]


def _weights(y: np.ndarray, pos_weight: float) -> np.ndarray:
    return np.where(y == 1, pos_weight, 1.0).astype(np.float32)


def _weighted_log_loss(y: np.ndarray, logit: np.ndarray, weight: np.ndarray) -> float:
    """Numerically stable BCE from logits, in float64 so early stopping compares exactly."""
    logit = logit.astype(np.float64)
    losses = np.logaddexp(0.0, logit) - y * logit
    return float(np.sum(losses * weight) / np.sum(weight))


def train(
    x_numeric: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    *,
    cardinalities: Sequence[int],
    config: NetworkConfig,
    batch_size: int,
    max_epochs: int,
    patience: int,
    pos_weight: float,
    seed: int,
    eval_set: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> TrainedNetwork:
    """Fit the network; with ``eval_set`` (x_numeric, rows, y) stop early on its loss.

    The validation loss carries the same class weights as the training loss: it measures how
    well the objective being optimised generalises, and an unweighted loss would penalise the
    deliberate prior shift of class weighting (the calibrator undoes that shift later).
    Without ``eval_set`` exactly ``max_epochs`` epochs run: the refit after tuning uses the
    epoch count the validation folds chose, as XGBoost reuses its best round count.
    """
    y = np.asarray(y, dtype=np.float32)
    weight = _weights(y, pos_weight)
    key = jax.random.PRNGKey(seed)
    init_key, train_key = jax.random.split(key)
    params, state = init_params(init_key, x_numeric.shape[1], cardinalities, config)
    # Start at the weighted base rate: the first epochs then learn ranking, not the prior.
    rate = float(np.sum(weight * y) / np.sum(weight))
    params["out_b"] = jnp.asarray(np.log(rate / (1.0 - rate)), dtype=jnp.float32)
    opt_state = _optimizer(config).init(params)

    x_j = jnp.asarray(x_numeric, dtype=jnp.float32)
    rows_j = jnp.asarray(rows, dtype=jnp.int32)
    y_j, weight_j = jnp.asarray(y), jnp.asarray(weight)
    batch = min(batch_size, len(y))
    n_batches = len(y) // batch
    shuffler = np.random.default_rng(seed)

    best = (params, state)
    best_loss, best_epoch, waited = np.inf, max_epochs, 0
    history: list[float] = []
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        order = shuffler.permutation(len(y))[: n_batches * batch].reshape(n_batches, batch)
        params, state, opt_state = _train_epoch(
            params,
            state,
            opt_state,
            x_j,
            rows_j,
            y_j,
            weight_j,
            jnp.asarray(order, dtype=jnp.int32),
            jax.random.fold_in(train_key, epoch),
            config,
        )
        if eval_set is None:
            continue
        x_val, rows_val, y_val = eval_set
        val_logit = np.asarray(
            predict_logits(params, state, jnp.asarray(x_val, jnp.float32), rows_val, config)
        )
        loss = _weighted_log_loss(y_val, val_logit, _weights(y_val, pos_weight))
        history.append(loss)
        if loss < best_loss:
            best, best_loss, best_epoch, waited = (params, state), loss, epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break
    if eval_set is None:
        best = (params, state)
    params_np, state_np = jax.device_get(best)
    return TrainedNetwork(
        params=params_np,
        state=state_np,
        best_epoch=best_epoch,
        epochs_run=epoch,
        validation_loss=history,
    )
