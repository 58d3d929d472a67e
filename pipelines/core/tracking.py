"""MLflow tracking: one MLflow run per pipeline run, in a sqlite store under the lake's `_state`.

The artifact location is set explicitly under `_state` too; otherwise MLflow writes `./mlruns` into
whatever directory the user happened to run from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.core.config import TrackingConfig

SECRET_HINTS = ("key", "token", "secret", "password")


def tracking_uri(state_dir: Path, cfg: TrackingConfig, *, create: bool = True) -> str:
    """The configured URI, else a sqlite store under the lake's state dir (created unless `create` is false)."""
    if cfg.tracking_uri:
        return cfg.tracking_uri
    if create:
        state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = "" if v is None else str(v)
    return out


def safe_params(params: Mapping[str, str]) -> dict[str, str]:
    """Config values that look like credentials never reach MLflow (names of env vars are fine)."""
    return {
        k: ("***" if any(h in k.lower() for h in SECRET_HINTS) and not k.endswith("_env") else v)
        for k, v in params.items()
    }


class Tracker:
    """A thin wrapper so the pipeline works the same with tracking disabled."""

    def __init__(self, run: Any | None) -> None:
        self._run = run

    @property
    def run_id(self) -> str | None:
        return None if self._run is None else self._run.info.run_id

    def params(self, params: Mapping[str, str]) -> None:
        if self._run is None:
            return
        import mlflow

        safe = safe_params(params)
        items = list(safe.items())
        for i in range(0, len(items), 90):  # the store caps params per batch
            mlflow.log_params(dict(items[i : i + 90]))

    def metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._run is None:
            return
        import mlflow

        clean = {k.replace(":", "__"): float(v) for k, v in metrics.items()}
        mlflow.log_metrics(clean, step=step)

    def text(self, text: str, name: str) -> None:
        if self._run is not None:
            import mlflow

            mlflow.log_text(text, name)

    def dict(self, data: Mapping[str, Any], name: str) -> None:
        self.text(json.dumps(data, indent=2, sort_keys=True, default=str), name)

    def figure(self, fig: Any, name: str) -> None:
        if self._run is not None:
            import mlflow

            mlflow.log_figure(fig, name)

    def artifacts(self, folder: Path, name: str) -> None:
        """Every file under `folder`, under `name` in the run's artifacts (models, reports)."""
        if self._run is not None:
            import mlflow

            mlflow.log_artifacts(str(folder), name)

    def tags(self, tags: Mapping[str, str]) -> None:
        if self._run is not None:
            import mlflow

            mlflow.set_tags(dict(tags))


@contextmanager
def track(state_dir: Path, cfg: TrackingConfig, run_name: str) -> Iterator[Tracker]:
    if not cfg.enabled:
        yield Tracker(None)
        return
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    uri = tracking_uri(state_dir, cfg)
    mlflow.set_tracking_uri(uri)
    # Explicit, or MLflow asks the active Spark session for one (and fails if that session has ended).
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is None:
        artifacts = (state_dir / "mlartifacts").resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri())
    else:
        exp_id = exp.experiment_id
    # Inside another command's run (a distillation inside an iteration round) this run is its child.
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, nested=mlflow.active_run() is not None) as run:
        tracker = Tracker(run)
        try:
            yield tracker
        except BaseException as exc:
            mlflow.set_tag("curate.status", "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
            raise
