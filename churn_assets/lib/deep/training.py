"""Training the tabular MLP with JAX + optax; imported lazily, only when a model is fitted.

The network: numerics and one learned embedding per categorical feature, concatenated, then
``n_layers`` x (dense -> batch norm -> SiLU -> dropout) and a linear read-out to one logit.
Training is AdamW on (optionally class-weighted) binary cross-entropy with early stopping on
the validation loss.

Speed on a shared CPU is mostly compile time, paid once per architecture (each Optuna trial):
one epoch is a single jitted ``lax.scan`` over its mini-batches, initialisation is one jitted
call, and all categoricals share one embedding table (one gather instead of one per feature,
which halved compile time on Telco's 16 categoricals). Validation runs on the exported numpy
network, so early stopping judges exactly the model that will be saved and no prediction
function needs compiling.

Every compiled architecture keeps ~350 memory mappings until its executables are dropped; a
process that compiled ~120 architectures (five 20-trial studies) hit the kernel's
65,530-mapping limit and crashed (measured), so tuning calls :func:`release_compiled` after
each trial.

Reproducibility: parameters and dropout masks come from a ``jax.random`` key and batches from
a numpy generator, both derived from the seed. XLA on CPU gave bit-identical weights with
one or several threads (tested); bit-identity across CPU models is not promised.
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

from churn_assets.lib.deep import network

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
    """Parameters of the kept epoch (numpy), plus what early stopping saw."""

    params: Params
    state: State
    best_epoch: int
    epochs_run: int
    validation_loss: list[float]


def _optimizer(config: NetworkConfig) -> optax.GradientTransformation:
    """AdamW; dense and embedding matrices decay, biases and norm parameters stay free."""

    def decay_mask(params: Params) -> Any:
        return {
            "embedding": True,
            "layers": [
                {"w": True, "b": False, "gamma": False, "beta": False} for _ in params["layers"]
            ],
            "out_w": True,
            "out_b": False,
        }

    return optax.adamw(config.learning_rate, weight_decay=config.weight_decay, mask=decay_mask)


@partial(jax.jit, static_argnames=("n_numeric", "n_categorical", "table_rows", "config"))
def _init(
    key: jax.Array,
    prior_logit: jax.Array,
    n_numeric: int,
    n_categorical: int,
    table_rows: int,
    config: NetworkConfig,
) -> tuple[Params, State, Any]:
    """He-initialised dense layers, small embeddings, read-out starting at the prior log-odds
    (so the first epochs learn ranking, not the base rate), and the optimizer state."""
    keys = jax.random.split(key, config.n_layers + 1)
    width_in = n_numeric + n_categorical * config.embedding_dim
    layers = []
    for k in keys[1:]:
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
        "embedding": EMBEDDING_INIT_SCALE
        * jax.random.normal(keys[0], (table_rows, config.embedding_dim)),
        "layers": layers,
        "out_w": jnp.zeros(width_in),
        "out_b": prior_logit.astype(jnp.float32),
    }
    state = {
        "mean": [jnp.zeros(config.hidden_width) for _ in layers],
        "var": [jnp.ones(config.hidden_width) for _ in layers],
    }
    return params, state, _optimizer(config).init(params)


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
    """Logits and (in training) updated batch-norm running statistics.

    In inference mode this is the reference that the exported numpy network must reproduce.
    """
    embedded = params["embedding"][rows].reshape(rows.shape[0], -1)
    h = jnp.concatenate([x_numeric, embedded], axis=1)
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
        z = layer["gamma"] * (z - mean) / jnp.sqrt(var + network.BATCH_NORM_EPS) + layer["beta"]
        h = jax.nn.silu(z)
        if train and config.dropout > 0:
            assert key is not None, "dropout needs a PRNG key in training"
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1.0 - config.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - config.dropout), 0.0)
    logit = h @ params["out_w"] + params["out_b"]
    return logit, ({"mean": means, "var": variances} if train else state)


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
        w = weight[idx]
        bce = optax.sigmoid_binary_cross_entropy(logit, y[idx])
        return jnp.sum(bce * w) / jnp.sum(w), new_state

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


def release_compiled() -> None:
    """Drop every compiled JAX executable in this process (compiling again is deterministic).

    Tuning compiles one architecture per trial and never reuses it; without this a long
    study or repeated studies in one process exhaust the memory-mapping limit.
    """
    jax.clear_caches()


def sample_weights(
    y: np.ndarray, pos_weight: float, row_weight: np.ndarray | None = None
) -> np.ndarray:
    """Class weight of every row, times its own weight (season balancing) if any."""
    weight = np.where(y == 1, pos_weight, 1.0)
    return weight if row_weight is None else weight * row_weight


def weighted_log_loss(y: np.ndarray, logit: np.ndarray, weight: np.ndarray) -> float:
    """Numerically stable binary cross-entropy from logits, in float64."""
    losses = np.logaddexp(0.0, logit) - y * logit
    return float(np.sum(losses * weight) / np.sum(weight))


def train(
    x_numeric: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    *,
    offsets: np.ndarray,
    cardinalities: Sequence[int],
    config: NetworkConfig,
    batch_size: int,
    max_epochs: int,
    patience: int,
    pos_weight: float,
    seed: int,
    eval_set: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    row_weight: np.ndarray | None = None,
    eval_weight: np.ndarray | None = None,
) -> TrainedNetwork:
    """Fit the network; with ``eval_set`` (x_numeric, rows, y) stop early on its loss.

    ``rows`` index the shared embedding table whose per-feature blocks start at ``offsets``
    (reserved unknown row first, then ``cardinalities[j]`` known rows). The validation loss
    carries the same class weights as the training loss: it measures how well the objective
    being optimised generalises, where an unweighted loss would penalise the deliberate prior
    shift of class weighting (the calibrator undoes that shift later). Without ``eval_set``
    exactly ``max_epochs`` epochs run: the refit after tuning uses the epoch count the
    validation folds chose, as XGBoost reuses its best round count.
    """
    weight = sample_weights(y, pos_weight, row_weight)
    prior = float(np.sum(weight * y) / np.sum(weight))
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    params, state, opt_state = _init(
        init_key,
        jnp.asarray(np.log(prior / (1.0 - prior))),
        x_numeric.shape[1],
        rows.shape[1],
        int(sum(c + 1 for c in cardinalities)),
        config,
    )
    data = (
        jnp.asarray(x_numeric, dtype=jnp.float32),
        jnp.asarray(rows, dtype=jnp.int32),
        jnp.asarray(y, dtype=jnp.float32),
        jnp.asarray(weight, dtype=jnp.float32),
    )
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
            *data,
            jnp.asarray(order, dtype=jnp.int32),
            jax.random.fold_in(train_key, epoch),
            config,
        )
        if eval_set is None:
            best = (params, state)
            continue
        x_val, rows_val, y_val = eval_set
        current_params, current_state = jax.device_get((params, state))
        exported = network.export(current_params, current_state, rows, offsets, cardinalities)
        val_logit = network.logits(
            network.network_inputs(x_val, rows_val, exported.table),
            exported.weights,
            exported.biases,
            exported.output_weight,
            exported.output_bias,
        )
        loss = weighted_log_loss(y_val, val_logit, sample_weights(y_val, pos_weight, eval_weight))
        history.append(loss)
        if loss < best_loss:
            best, best_loss, best_epoch, waited = (params, state), loss, epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break
    params_np, state_np = jax.device_get(best)
    return TrainedNetwork(
        params=params_np,
        state=state_np,
        best_epoch=best_epoch,
        epochs_run=epoch,
        validation_loss=history,
    )
