"""The engine factory: one function that yields a Spark session for the configured engine.

- `sail` (default): the Sail Spark Connect server embedded in this process, started on a free loopback
  port and stopped when the context exits.
- `remote`: any Spark Connect endpoint (`sc://host:port`): Spark 4 with Delta, Databricks, a Sail cluster.
- `classic`: local JVM PySpark. Without the Delta JARs it cannot read or write Delta, so here it is the
  conformance engine (stage transforms over Parquet); on a cluster with delta-spark it is a production one.

Only the DataFrame API and Spark SQL are used anywhere: no RDDs, no SparkContext, no JVM access.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipelines.core.config import EngineConfig
from pipelines.core.interrupt import bounded, on_interrupt

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class EngineError(RuntimeError):
    """The engine could not be started or reached."""


@contextmanager
def spark_session(cfg: EngineConfig | None = None) -> Iterator[SparkSession]:
    cfg = cfg or EngineConfig()
    if cfg.kind == "sail":
        with _sail(cfg) as spark:
            yield spark
    elif cfg.kind == "remote":
        with _remote(cfg.remote or "", cfg) as spark:
            yield spark
    elif cfg.kind == "classic":
        with _classic(cfg) as spark:
            yield spark
    else:
        raise EngineError(f"unknown engine kind {cfg.kind!r}: use sail, remote or classic")


def _configure(spark: SparkSession, cfg: EngineConfig) -> None:
    spark.conf.set("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
    spark.conf.set("spark.sql.session.timeZone", "UTC")


@contextmanager
def _sail(cfg: EngineConfig) -> Iterator[SparkSession]:
    # Sail logs every session at INFO on stderr; keep the CLI readable unless the user asks for more.
    os.environ.setdefault("RUST_LOG", "error")
    # Sail drops a session after 15 idle minutes; a nightly run's driver can be busy longer than that (LLM calls).
    os.environ.setdefault("SAIL_SPARK__SESSION_TIMEOUT_SECS", str(24 * 3600))
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    try:
        _, port = server.listening_address
        # The server lives in this process, so it cannot go away while a call waits for it, only answer slowly: on
        # 2 busy cores it once did not answer a reconnect within the 20 s a remote endpoint gets, and a 28-minute
        # dedup run failed at minute 22 (bench/README.md, "Dedup at 1M"). Retry it for minutes, not seconds.
        retry_s = max(cfg.connect_timeout_s, EMBEDDED_RETRY_S)
        with _remote(f"sc://127.0.0.1:{port}", cfg, retry_s=retry_s) as spark:
            yield spark
    finally:
        bounded(server.stop)


def endpoint(url: str) -> tuple[str, int]:
    """(host, port) of `sc://host[:port][/;params]` (Spark Connect's default port is 15002)."""
    m = re.fullmatch(r"sc://(\[[^\]]+\]|[^:/;]+)(?::(\d+))?(?:/.*|;.*)?", url)
    if not m:
        raise EngineError(f"a Spark Connect URL looks like sc://host:15002, got {url!r}")
    return m.group(1).strip("[]"), int(m.group(2) or 15002)


def wait_for_endpoint(url: str, timeout_s: float) -> None:
    """Fail within `timeout_s` when nothing accepts connections at `url`.

    The Spark Connect client retries an unreachable endpoint for about ten minutes before it reports anything;
    a scheduler's run should instead end at once with a message saying what to start.
    """
    host, port = endpoint(url)
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    last: OSError | None = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
                return
        except OSError as exc:
            last = exc
        # a host that answers "refused" is up with nothing on that port: only a server still starting deserves
        # a wait, and REFUSED_GRACE_S covers one; silence (a dropped packet, a slow network) gets the whole timeout
        if isinstance(last, ConnectionRefusedError):
            deadline = min(deadline, t0 + REFUSED_GRACE_S)
        if time.monotonic() >= deadline:
            break
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise EngineError(
        f"nothing accepts connections at {url} ({reason}, waited {time.monotonic() - t0:.0f}s): start the Spark "
        "Connect server (e.g. `sail spark server --port 15002`) or fix --remote / engine.remote"
    )


#: how long a port that refuses connections is retried (a server that is starting up)
REFUSED_GRACE_S = 2.0


def fail_fast_if_refused(url: str) -> None:
    """Before a command imports its engine and models (seconds): an endpoint whose host refuses the connection fails
    the command within REFUSED_GRACE_S. Anything else (up, or silent) is left to `wait_for_endpoint`'s timeout."""
    host, port = endpoint(url)
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except ConnectionRefusedError:
        wait_for_endpoint(url, REFUSED_GRACE_S)
    except OSError:
        return


#: how long a call retries the in-process (embedded) Sail server before the run fails
EMBEDDED_RETRY_S = 300.0


def _bounded_retries(spark: SparkSession, timeout_s: float) -> None:
    """A lost connection fails the call after about `timeout_s` of retrying, not after Spark's ten minutes."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    # backoff 0.05, 0.2, 0.8, 3.2 s then capped at 5 s: the sum of the waits stays within timeout_s
    waits, total, backoff = 0, 0.0, 0.05
    while total + min(backoff, 5.0) <= timeout_s:
        total += min(backoff, 5.0)
        backoff *= 4
        waits += 1
    client = spark.client  # type: ignore[attr-defined]
    client.set_retry_policies([DefaultPolicy(max_retries=max(1, waits), max_backoff=5000, jitter=0)])


def _no_retries(spark: SparkSession) -> None:
    """After Ctrl-C the client asks the server to cancel the running operation, and retries that request (and every
    later call) under the session's policy, minutes for the embedded engine: one attempt each is enough now."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    spark.client.set_retry_policies([DefaultPolicy(max_retries=0)])  # type: ignore[attr-defined]


@contextmanager
def _remote(url: str, cfg: EngineConfig, retry_s: float | None = None) -> Iterator[SparkSession]:
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    wait_for_endpoint(url, cfg.connect_timeout_s)
    previous = ConnectSession.getActiveSession()
    try:
        # create(), not getOrCreate(): the latter hands back whichever Connect session is already active in
        # this process (another lake's, a notebook's), and our stop() would then close it under its owner.
        spark = SparkSession.builder.remote(url).create()
        _bounded_retries(spark, retry_s or cfg.connect_timeout_s)
        _configure(spark, cfg)
    except Exception as exc:
        raise EngineError(f"cannot reach Spark Connect at {url}: {exc}") from exc
    try:
        with on_interrupt(lambda: _no_retries(spark)):
            yield spark
    finally:
        bounded(spark.stop)
        # create() made ours the process's active and default session and stop() cleared both: hand them back to
        # the session that was active before (a notebook's, a caller's), which code resolving the active session
        # (`SparkSession.active()`) would otherwise lose
        if previous is not None and not previous.is_stopped:
            ConnectSession._set_default_and_active_session(previous)


@contextmanager
def _classic(cfg: EngineConfig) -> Iterator[SparkSession]:
    # Python workers must run this interpreter, or they cannot import pandas/pyarrow from our venv.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    if "SPARK_CONNECT_MODE_ENABLED" in os.environ or "SPARK_REMOTE" in os.environ:
        # pyspark.sql.functions dispatches on this process-wide flag: classic and Connect sessions cannot
        # share a Python process. Run the classic engine in a process of its own.
        raise EngineError(
            "SPARK_CONNECT_MODE_ENABLED or SPARK_REMOTE is set (a Spark Connect session ran in this process, or a "
            "parent exported it): start classic PySpark in a new process without them"
        )
    spark = _classic_builder(SparkSession, cfg).getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


def _classic_builder(SparkSession: type, cfg: EngineConfig) -> SparkSession.Builder:
    return (
        SparkSession.builder.master(f"local[{cfg.parallelism}]")
        .config("spark.api.mode", "classic")
        .appName("curate-conformance")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )


@contextmanager
def keepalive(spark: SparkSession, every_s: float = 60.0) -> Iterator[None]:
    """Touch the session while the driver does long work of its own, so a remote endpoint's idle timeout does not
    end it mid-run."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                spark.sql("SELECT 1").collect()
            except Exception:
                return

    thread = threading.Thread(target=beat, name="spark-keepalive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def engine_name(spark: SparkSession) -> str:
    """A short label for logs and the `runs` table."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        if isinstance(spark, ConnectSession):
            return "spark-connect"
    except ImportError:  # pragma: no cover - pyspark[connect] is a dependency
        pass
    return "classic"
