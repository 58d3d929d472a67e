"""Minimal reproduction: in Sail's cluster modes a Delta write fails when the stage that holds the writer calls a
DataFusion built-in function by name.

Starts `sail spark server` in each mode asked for (default: local, then local-cluster), writes a tiny DataFrame
with one projection at a time, and prints ok / the first line of the error per case:

- as a Delta table with the projection in the writer's stage (`df.select(...).write.format("delta")`);
- the same behind a round-robin repartition (`pipelines.core.lake.write_delta`, what curate does);
- as Parquet, and collected, without a repartition.

Seen with pysail 0.7.2 on `local-cluster`: every by-name built-in (`upper`; `array_length`, which `element_at`,
`size` and `array_size` become; `array_has`, which `array_contains` becomes) fails the direct Delta write with
"ExtendedScalarUdf: no UDF found for <name>"; `sqrt`, the repartitioned Delta write, the Parquet write and
the collect all pass; `local` passes everything. When a Sail release passes the direct Delta write,
`write_delta` no longer needs its repartition.

    .venv/bin/python bench/sail_cluster_delta_write.py [--modes local local-cluster]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.core.lake import write_delta

SAIL = Path(sys.executable).parent / "sail"

CASES: dict[str, Callable[[], Column]] = {
    "upper(text)": lambda: F.upper("text"),
    "sqrt(length(text))": lambda: F.sqrt(F.length("text")),
    "element_at(a, 1)": lambda: F.element_at("a", 1),
    "size(a)": lambda: F.size("a"),
    "array_contains(a, 0.2)": lambda: F.array_contains("a", 0.2),
    "coalesce(element_at(t, 1), element_at(a, 1))": lambda: F.coalesce(F.element_at("t", 1), F.element_at("a", 1)),
}


def start_server(mode: str, cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "SAIL_MODE": mode, "RUST_LOG": "error"}
    server = subprocess.Popen(
        [str(SAIL), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sail server ({mode}) did not start") from None
            time.sleep(0.2)


def attempt(action: Callable[[], object]) -> str:
    try:
        action()
        return "ok"
    except Exception as exc:
        return "FAIL: " + str(exc).splitlines()[0][:120]


def one_case(src: DataFrame, expr: Column, out: Path) -> dict[str, str]:
    df = src.select("doc_id", expr.alias("x"))
    return {
        "delta": attempt(lambda: df.write.format("delta").mode("overwrite").save(str(out / "direct"))),
        "delta after repartition": attempt(lambda: write_delta(df, out / "shuffled", "overwrite")),
        "parquet": attempt(lambda: df.write.mode("overwrite").parquet(str(out / "parquet"))),
        "collect": attempt(df.collect),
    }


def run_mode(mode: str, work: Path) -> None:
    server, port = start_server(mode, work)
    try:
        spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()
        spark.conf.set("spark.sql.shuffle.partitions", "4")
        rows = [(str(i), f"text {i}", [0.1 * i, 0.2], [None, 0.5]) for i in range(10)]
        src = spark.createDataFrame(rows, "doc_id string, text string, a array<double>, t array<double>")
        print(f"\n== SAIL_MODE={mode}")
        for i, (name, expr) in enumerate(CASES.items()):
            print(f"{name:48} " + "  ".join(f"{k}: {v}" for k, v in one_case(src, expr(), work / str(i)).items()))
        spark.stop()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["local", "local-cluster"])
    args = parser.parse_args()
    for mode in args.modes:
        work = Path(tempfile.mkdtemp(prefix="sail-delta-write-"))
        try:
            run_mode(mode, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
