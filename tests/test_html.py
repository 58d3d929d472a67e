"""udfs.html: main content kept, boilerplate dropped, bytes decoded, garbage never raises."""

from __future__ import annotations

import pytest

from udfs.html import EXTRACTOR_NAME, EXTRACTOR_VERSION, decode_html, html_to_text

ARTICLE = (
    "The river authority confirmed on Tuesday that the new flood barrier will be finished before "
    "the autumn storms, after engineers completed the last of the concrete sections ahead of plan. "
    "Residents who had campaigned for the barrier for more than a decade said the work had already "
    "changed how the town feels about living so close to the water."
)
SECOND = (
    "The project cost less than first estimated because the steel was ordered early, and the council "
    "says the savings will pay for a footpath along the new embankment next spring."
)

PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Flood barrier nearly finished</title></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/login">Sign in to your account</a></li></ul></nav>
<main><article>
<h1>Flood barrier nearly finished</h1>
<p>{ARTICLE}</p>
<p>{SECOND}</p>
</article></main>
<footer><p>Copyright 2024 Riverside Gazette Ltd. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/cookies">Cookie settings</a></footer>
</body></html>"""


def test_constants() -> None:
    assert EXTRACTOR_NAME == "trafilatura"
    assert EXTRACTOR_VERSION[0].isdigit()


@pytest.mark.parametrize("as_bytes", [False, True])
def test_article_kept_boilerplate_dropped(as_bytes: bool) -> None:
    text = html_to_text(PAGE.encode("utf-8") if as_bytes else PAGE, "https://example.org/news/barrier")
    assert ARTICLE in text
    assert SECOND in text
    for boilerplate in (
        "Sign in to your account",
        "All rights reserved",
        "Privacy policy",
        "Cookie settings",
    ):
        assert boilerplate not in text


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"   \n\t ",
        b"\x00\xff\xfe\x81" * 500,
        bytes(range(256)) * 40,
        b"<<<>>><html<body<<p>>" * 100,
        b"<html><body>" + b"<div>" * 5000,
        "",
        "\x00\x01\x02",
        "<?xml version='1.0' encoding='latin-1'?><root/>",
    ],
)
def test_garbage_returns_empty(garbage: str | bytes) -> None:
    assert html_to_text(garbage) == ""


def test_wrong_type_returns_empty() -> None:
    assert html_to_text(None) == ""  # type: ignore[arg-type]
    assert html_to_text(12345) == ""  # type: ignore[arg-type]


def test_declared_legacy_charset_decoded() -> None:
    # ISO-8859-1 bytes (0xfc = ü, 0xdf = ß); invalid as UTF-8, so the <meta> declaration decides.
    sentence = (
        "Die Bürgerinnen und Bürger der Gemeinde haben am Sonntag über den Bau einer neuen Brücke "
        "abgestimmt, die künftig beide Ufer des Flusses verbinden und den Verkehr in der Innenstadt "
        "spürbar entlasten soll; die Mehrheit für das Projekt war größer als erwartet."
    )
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        f"<title>Brücke</title></head><body><article><p>{sentence}</p><p>{sentence}</p></article></body></html>"
    )
    raw = page.encode("iso-8859-1")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert sentence in decode_html(raw)
    assert sentence in html_to_text(raw)


def test_undeclared_legacy_charset_detected_or_replaced() -> None:
    raw = ("<html><body><p>" + "Übergrößenträger für Möbel. " * 30 + "</p></body></html>").encode("cp1252")
    text = decode_html(raw)  # no declaration: detection, never an exception
    assert "Möbel" in text or "\ufffd" in text


def test_boms() -> None:
    assert decode_html(b"\xef\xbb\xbf<p>caf\xc3\xa9</p>") == "<p>café</p>"
    assert decode_html("<p>café</p>".encode("utf-16")) == "<p>café</p>"
