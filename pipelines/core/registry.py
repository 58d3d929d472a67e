"""The model registry: where champions live, how their names are spelled, and how a run finds them.

Scoring needs this and training writes it; neither imports the other. The registry URI is resolved here and
nowhere else (`resolve`): a configured `classify.registry_uri`, else the lake's own MLflow store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.config import RunConfig
from pipelines.core.tracking import tracking_uri

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pipelines.core.constitution import Constitution

#: The alias that marks the model the nightly run scores with.
CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    principle: str
    model_uri: str  # models:/<name>/<version>
    # where the model's files are stored (the registry's download URI: file://<lake>/_state/mlartifacts/...,
    # s3://..., mlflow-artifacts:/...): what a worker on any machine fetches; never a driver-local copy
    artifact_uri: str


def model_name(prefix: str, principle: str) -> str:
    return f"{prefix}_{principle}"


def resolve(cfg: RunConfig, state_dir: Path) -> RunConfig:
    """`cfg` with `classify.registry_uri` filled in: the one place that decides which registry a command uses."""
    if cfg.classify.registry_uri:
        return cfg
    uri = tracking_uri(state_dir, cfg.tracking, create=False)
    return dataclasses.replace(cfg, classify=dataclasses.replace(cfg.classify, registry_uri=uri))


def client(uri: str) -> Any:
    """An MLflow client on `uri`, with the process-wide URIs pointed there too (model logging reads those)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def current_champion(mlflow_client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _has_store(uri: str) -> bool:
    # A sqlite store that does not exist yet has no models; do not create one just to look.
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def resolve_champions(
    constitution: Constitution, registry_uri: str | None, *, prefix: str = "curate", enabled: bool = True
) -> dict[str, Champion]:
    """Principle -> its champion, for principles that have one.

    Resolved once per run to `models:/<name>/<version>` and that version's storage URI, so every worker scores
    with the same version even if the alias moves mid-run, and fetches it itself (`fetch_model`).
    """
    if not enabled or not registry_uri or not _has_store(registry_uri):
        return {}
    import mlflow

    mc = mlflow.MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    out: dict[str, Champion] = {}
    for name in constitution.names:
        registered = model_name(prefix, name)
        mv = current_champion(mc, registered)
        if mv is None:
            continue
        uri = f"models:/{registered}/{mv.version}"
        out[name] = Champion(name, uri, str(mc.get_model_version_download_uri(registered, mv.version)))
    return out


def fetch_model(artifact_uri: str, registry_uri: str | None = None) -> Path:
    """The model directory for `artifact_uri` in this process's machine-local cache, downloaded once per machine.

    Runs where the model is used - on a worker, the worker - so the driver's file system never matters. Concurrent
    workers on one machine download to private temporary directories and rename atomically: one copy wins.
    """
    import os
    import shutil

    import mlflow

    cache = Path(tempfile.gettempdir()) / "curate-models" / "by-uri"
    dest = cache / hashlib.sha256(artifact_uri.encode()).hexdigest()[:24]
    if (dest / "MLmodel").is_file():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    if registry_uri and artifact_uri.split(":", 1)[0] in ("runs", "models", "mlflow-artifacts"):
        mlflow.set_tracking_uri(registry_uri)  # these schemes are resolved through the tracking server
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=cache))
    try:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(tmp)))
        if not (got / "MLmodel").is_file():
            raise FileNotFoundError(f"{artifact_uri} holds no MLflow model (no MLmodel file)")
        try:
            os.rename(got, dest)
        except OSError:
            if not (dest / "MLmodel").is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def champions_for(constitution: Constitution, cfg: RunConfig) -> dict[str, Champion]:
    """The champions a resolved config scores with (`classify.use_champion`, `classify.model_prefix`)."""
    c = cfg.classify
    return resolve_champions(constitution, c.registry_uri, prefix=c.model_prefix, enabled=c.use_champion)


def _client(cfg: RunConfig) -> Any | None:
    uri = cfg.classify.registry_uri
    if not uri or not _has_store(uri):
        return None
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion_of(cfg: RunConfig, principle: str, model_uri: str) -> Champion:
    """The Champion record of a registered version (`models:/<name>/<version>`) that the alias does not name yet."""
    name, version = model_uri.removeprefix("models:/").rsplit("/", 1)
    mc = _client(cfg)
    if mc is None:
        raise RuntimeError(f"no model registry to resolve {model_uri}")
    return Champion(principle, model_uri, str(mc.get_model_version_download_uri(name, version)))


def move_champions(cfg: RunConfig, versions: Mapping[str, int]) -> None:
    """Point each principle's `champion` alias at its version; 0 = no champion (the alias is removed)."""
    mc = _client(cfg)
    if mc is None or not versions:
        return
    for principle, version in versions.items():
        name = model_name(cfg.classify.model_prefix, principle)
        if version:
            mc.set_registered_model_alias(name, CHAMPION, str(version))
        elif current_champion(mc, name) is not None:
            mc.delete_registered_model_alias(name, CHAMPION)


def champion_versions(constitution: Constitution, cfg: RunConfig) -> dict[str, int]:
    """Principle -> the version its `champion` alias names now, 0 where none does (what `runs` records); empty when
    there is no registry to ask (nothing known is better than a wrong 0)."""
    mc = _client(cfg)
    if mc is None:
        return {}
    out = dict.fromkeys(constitution.names, 0)
    for p in constitution.names:
        mv = current_champion(mc, model_name(cfg.classify.model_prefix, p))
        out[p] = 0 if mv is None else int(mv.version)
    return out
