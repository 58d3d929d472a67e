"""Language identification: langid vs lingua vs gcld3, on real labelled text, for accuracy and speed.

Why: the quality stage tags every document with `lang` / `lang_score` and drops what is outside the
allow-list, so the model must be right on web documents, cheap enough not to dominate the stage, and ship
inside a PyPI package (no model hub at run time). This script is how udfs/langid.py's choice was made.

Data (all real, none written by this project):
- **web**: the 150 trafilatura evaluation pages (../shared/data/html), labelled by their `<html lang>`
  attribute (149 have one: de, en, es, pl, fr, fi); text extracted with trafilatura (as ingest does).
  Document-level, the setting the quality stage runs in.
- **chat**: the chatterbot-corpus 1.3.3 wheel's conversations (BSD): one short document per conversation,
  in 27 languages (hinglish, code-mixed, left out). Short text is where detectors differ.
- **crawl**: the first N documents of crawl_dev.jsonl.gz (unlabelled, almost all English): the share each
  detector calls non-English is its false-drop rate on this crawl, and it gives the speed on real documents.

Each detector sees the first `--max-chars` characters (as udfs/langid.py does). Accuracy counts a prediction
right when its ISO 639-1 code equals the label. Speed: docs/s over the crawl sample, one thread, model load
excluded (reported separately).

Usage (in a venv that has the candidates: `pip install langid lingua-language-detector trafilatura` and,
for gcld3, protobuf-compiler + libprotobuf-dev from Debian then `pip install gcld3`):
    python bench/quality_langid.py --data ../shared/data --chatterbot DIR_OF_UNPACKED_WHEEL
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

CHAT_LANGS = {
    "bengali": "bn", "chinese": "zh", "dutch": "nl", "english": "en", "french": "fr", "german": "de",
    "hebrew": "he", "hindi": "hi", "indonesian": "id", "italian": "it", "japanese": "ja", "korean": "ko",
    "marathi": "mr", "oriya": "or", "persian": "fa", "portuguese": "pt", "russian": "ru", "spanish": "es",
    "swedish": "sv", "tamil": "ta", "telugu": "te", "thai": "th", "traditionalchinese": "zh", "turkish": "tr",
    "ukrainian": "uk", "urdu": "ur", "yoruba": "yo",
}  # fmt: skip
ALIASES = {"iw": "he", "zh-Latn": "zh", "ja-Latn": "ja", "in": "id"}


def web_docs(data: Path) -> list[tuple[str, str]]:
    import trafilatura

    out = []
    for page in sorted((data / "html" / "pages").glob("*.html")):
        raw = page.read_bytes().decode("utf-8", errors="replace")
        m = re.search(r"<html[^>]*\blang=[\"']?([a-zA-Z]{2})", raw, re.I)
        if not m:
            continue
        text = trafilatura.extract(raw, fast=True) or ""
        if len(text) >= 50:
            out.append((m.group(1).lower(), text))
    return out


def chat_docs(root: Path) -> list[tuple[str, str]]:
    import yaml

    out = []
    for d in sorted((root / "chatterbot_corpus" / "data").iterdir()):
        if d.name not in CHAT_LANGS:
            continue
        for f in sorted(d.glob("*.yml")):
            convs = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("conversations") or []
            for conv in convs:
                text = " ".join(str(x) for x in conv if x is not None)
                if len(text) >= 20:
                    out.append((CHAT_LANGS[d.name], text))
    return out


def crawl_docs(data: Path, n: int) -> list[str]:
    out = []
    with gzip.open(data / "crawl_dev.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def detectors() -> dict[str, Callable[[], Callable[[str], tuple[str, float]]]]:
    def langid_() -> Callable[[str], tuple[str, float]]:
        from langid.langid import LanguageIdentifier, model

        ident = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        return lambda t: ident.classify(t)

    def lingua_(low: bool) -> Callable[[], Callable[[str], tuple[str, float]]]:
        def make() -> Callable[[str], tuple[str, float]]:
            from lingua import LanguageDetectorBuilder

            b = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
            det = (b.with_low_accuracy_mode() if low else b).build()

            def f(t: str) -> tuple[str, float]:
                vals = det.compute_language_confidence_values(t)
                if not vals:
                    return "", 0.0
                return vals[0].language.iso_code_639_1.name.lower(), vals[0].value

            return f

        return make

    def gcld3_() -> Callable[[str], tuple[str, float]]:
        import gcld3

        det = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4000)

        def f(t: str) -> tuple[str, float]:
            r = det.FindLanguage(text=t)
            return r.language, r.probability

        return f

    return {"langid": langid_, "lingua": lingua_(False), "lingua-low": lingua_(True), "gcld3": gcld3_}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--chatterbot", required=True, help="directory of the unpacked chatterbot-corpus wheel")
    ap.add_argument("--crawl-docs", type=int, default=3000)
    ap.add_argument("--max-chars", type=int, default=2000)
    args = ap.parse_args()
    data = Path(args.data)
    sets = {"web": web_docs(data), "chat": chat_docs(Path(args.chatterbot))}
    crawl = crawl_docs(data, args.crawl_docs)
    print(f"web: {len(sets['web'])} pages {dict(Counter(lab for lab, _ in sets['web']))}")
    print(f"chat: {len(sets['chat'])} conversations in {len({lab for lab, _ in sets['chat']})} languages")
    print(f"crawl: {len(crawl)} documents, first {args.max_chars} chars each\n")
    rows = []
    for name, make in detectors().items():
        try:
            t0 = time.perf_counter()
            detect = make()
            detect("warm up the model with a sentence")
            load_s = time.perf_counter() - t0
        except ImportError as exc:
            print(f"{name}: not installed ({exc})")
            continue
        row: dict[str, object] = {"detector": name, "load_s": round(load_s, 2)}
        for set_name, docs in sets.items():
            per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for lab, text in docs:
                code, _ = detect(text[: args.max_chars])
                per[lab][0] += int(ALIASES.get(code, code) == lab)
                per[lab][1] += 1
            right = sum(r for r, _ in per.values())
            row[f"{set_name}_acc"] = round(100 * right / len(docs), 1)
            row[f"{set_name}_macro"] = round(100 * sum(r / n for r, n in per.values()) / len(per), 1)
            if set_name == "chat":
                row["chat_worst"] = sorted((round(100 * r / n), lab) for lab, (r, n) in per.items())[:3]
        t0 = time.perf_counter()
        preds = [detect(t[: args.max_chars]) for t in crawl]
        dt = time.perf_counter() - t0
        non_en = [p for p in preds if p[0] != "en"]
        row["crawl_non_en_pct"] = round(100 * len(non_en) / len(crawl), 2)
        row["crawl_docs_per_s"] = round(len(crawl) / dt)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False))
    print()
    cols = ["detector", "web_acc", "chat_acc", "chat_macro", "crawl_non_en_pct", "crawl_docs_per_s", "load_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()
