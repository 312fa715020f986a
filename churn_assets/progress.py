"""What ``make run`` prints: one line per step with its duration and key figure, failed checks
and warnings in full, and every DEBUG line of Dagster, dbt and MLflow in a log file instead.

A Dagster logger receives every log record of a run, with the Dagster event (step start,
success, failure, materialization, check evaluation) attached; it keeps the few a person reads
and writes all of them to the file whose path the CLI prints.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

KEY_FIGURES = (
    "dagster/row_count",
    "chosen",
    "test_roc_auc",
    "decision",
    "status",
    "share_drifted",
)
"""The metadata entry that says the most about a step's result, in order of preference."""


CONSOLE: TextIO = sys.stdout
"""Where progress goes: the terminal, even after :func:`log_to_file` redirected the process's
own stdout and stderr (and so dbt's and every library's output) to the log file."""


def log_to_file(path: Path) -> TextIO:
    """Send everything but progress to the file: Python logging and warnings (MLflow, dbt
    adapters, Dagster's own) and the output of child processes (dbt), by pointing file
    descriptors 1 and 2 at it. Returns the stream that still reaches the terminal."""
    global CONSOLE
    path.parent.mkdir(parents=True, exist_ok=True)
    CONSOLE = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    log = path.open("a", buffering=1)
    os.dup2(log.fileno(), sys.stdout.fileno())
    os.dup2(log.fileno(), sys.stderr.fileno())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(handlers=[handler], level=logging.INFO, force=True)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return CONSOLE


def _figure(metadata: dict[str, Any]) -> str:
    for name in KEY_FIGURES:
        if name in metadata:
            value = getattr(metadata[name], "value", metadata[name])
            shown = f"{value:,}" if isinstance(value, int) else str(value)
            return f"{name.removeprefix('dagster/')}={shown}"
    return ""


class ProgressHandler(logging.Handler):
    """One line per step on the console; failures and warnings in full."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.started: dict[str, float] = {}
        self.figures: dict[str, str] = {}
        self.open_line = False

    def _print(self, text: str, end: str = "\n") -> None:
        if self.open_line and end == "\n" and not text.startswith("  "):
            CONSOLE.write("\n")
        CONSOLE.write(text + end)
        CONSOLE.flush()
        self.open_line = end != "\n"

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is None:
            if record.levelno >= logging.WARNING:
                self._print(f"  ! {meta.get('orig_message', record.getMessage())}")
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            self._print(f"  {step:<44}", end="")
        elif kind == "ASSET_MATERIALIZATION":
            figure = _figure(dict(event.event_specific_data.materialization.metadata))
            if figure:
                self.figures[step] = figure
        elif kind == "STEP_SUCCESS":
            seconds = time.perf_counter() - self.started.get(step, time.perf_counter())
            line = f"{seconds:6.1f} s  {self.figures.get(step, '')}".rstrip()
            if self.open_line:
                self._print(line)
            else:
                self._print(f"  {step:<44}{line}")
        elif kind == "STEP_FAILURE":
            error = event.event_specific_data.error
            self._print(f"  {step}: FAILED\n{error.to_string() if error else record.getMessage()}")
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                severity = evaluation.severity.value
                self._print(
                    f"    {severity} check {evaluation.check_name} on "
                    f"{evaluation.asset_key.to_user_string()} failed"
                )


@dg.logger(
    config_schema={"log_file": dg.Field(str, description="Where every log line goes.")},
    description="Concise progress on the console, everything in a file.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("churn_assets.progress", level=logging.DEBUG)
    file = logging.FileHandler(init_context.logger_config["log_file"])
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(file)
    logger.addHandler(ProgressHandler())
    return logger
