"""Personal data in text: find it, check it, replace it with a placeholder. Pure Python, no Spark.

Kinds (Presidio's entity names for the placeholders): email addresses, phone numbers (international `+CC` and the
NANP and European trunk-prefix national formats), IPv4/IPv6 addresses (public ones by default, as datatrove's
formatter: 10.0.0.1 or 127.0.0.1 identifies nobody), payment card numbers (Luhn-valid with a card network's
prefix), IBANs (country length and the ISO 7064 mod-97 checksum) and US SSNs (the SSA's area/group/serial rules).

A regular expression only proposes a candidate; the checks decide. That is what lets the hard negatives survive:
a version string or a date does not have a phone number's shape, a 16-digit table value is rarely Luhn-valid with
a card prefix, a random uppercase token fails mod-97, `user@host` in a shell sample has no top-level domain,
a timestamp or MAC address is not an IPv6 address. The values found are never returned, only kind and offsets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

KINDS = ("email", "phone", "ip", "card", "iban", "ssn")
PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL_ADDRESS>",
    "phone": "<PHONE_NUMBER>",
    "ip": "<IP_ADDRESS>",
    "card": "<CREDIT_CARD>",
    "iban": "<IBAN_CODE>",
    "ssn": "<US_SSN>",
}
KEEP = "keep"  # a placeholder of `keep` leaves that kind in the text (it is still counted)

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)
# +CC then 6-14 more digits in groups; or NANP (xxx) xxx-xxxx / xxx-xxx-xxxx / xxx.xxx.xxxx; or a European
# national number with its trunk 0 and space-separated groups (020 7946 0958, 030 12345678).
PHONE_RE = re.compile(
    r"(?<![\w+.-])(?:"
    r"\+[1-9]\d{0,2}(?:[ .-]?\(0?\d{1,4}\))?(?:[ .-]?\d{1,5}){2,5}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d{3}([.-])\d{3}\1\d{4}"
    r"|0\d{2,4} \d{3,4} ?\d{3,4}"
    r")(?![\w.-]\d|\w)"
)
IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD_RE = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
SSN_RE = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
_VERSION_CONTEXT = re.compile(r"\b(?:v|version|ver\.?|release|build)\s*$", re.IGNORECASE)

# ISO 13616 lengths of the IBAN registry's countries
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network_ok(digits: str) -> bool:
    """A card network's prefix and length (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay)."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    return (
        (digits[0] == "4" and n in (13, 16, 19))
        or ((51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16)
        or (p2 in (34, 37) and n == 15)
        or ((digits.startswith("6011") or digits.startswith("65") or 644 <= int(digits[:3]) <= 649) and n in (16, 19))
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)
        or ((300 <= int(digits[:3]) <= 305 or p2 in (36, 38)) and n == 14)
        or (digits.startswith("62") and 16 <= n <= 19)
    )


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def _ip_ok(text: str, start: int, value: str, public_only: bool) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if ip.version == 4 and _VERSION_CONTEXT.search(text[max(0, start - 12) : start]):
        return False  # "version 2.0.1.5", "v1.2.3.4": a release number shaped like an address
    if text[start + len(value) : start + len(value) + 1] == "/":
        return False  # a CIDR network ("64:ff9b:1::/48", "10.0.0.0/8"): an address block, not a host
    if ip.version == 4 and all(len(o) == 1 for o in value.split(".")[:3]):
        # "8.6.4.10. Class Patterns": section numbering (the Python docs are full of it). The addresses lost are
        # mostly public resolvers such as 8.8.8.8 and 1.1.1.1, which identify nobody.
        return False
    return ip.is_global if public_only else True


def _phone_ok(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    return 9 <= digits <= 15 if value.startswith("+") else 10 <= digits <= 11


@dataclass(frozen=True)
class Options:
    public_ip_only: bool = True
    keep_email_domains: tuple[str, ...] = ()  # e.g. example.com: documentation addresses left alone


def find(text: str, kinds: tuple[str, ...] = KINDS, options: Options | None = None) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every checked finding, in text order, without overlaps (an IBAN is not also read as
    a phone number; the kind tried first wins: the order of `KINDS` by specificity below)."""
    opts = options or Options()
    found: list[tuple[str, int, int]] = []
    finders: dict[str, Callable[[], list[tuple[int, int]]]] = {
        "email": lambda: [
            m.span()
            for m in EMAIL_RE.finditer(text)
            if not m.group().rsplit("@", 1)[1].lower().endswith(tuple(opts.keep_email_domains) or ("\0",))
        ],
        "iban": lambda: [m.span() for m in IBAN_RE.finditer(text) if iban_ok(m.group())],
        "card": lambda: [
            m.span()
            for m in CARD_RE.finditer(text)
            if (d := re.sub(r"\D", "", m.group())) and 13 <= len(d) <= 19 and card_network_ok(d) and luhn_ok(d)
        ],
        "ssn": lambda: [m.span() for m in SSN_RE.finditer(text) if ssn_ok(*m.groups())],
        "ip": lambda: [
            m.span()
            for rx in (IPV4_RE, IPV6_RE)
            for m in rx.finditer(text)
            if ("." in m.group() or m.group().count(":") >= 2)
            and _ip_ok(text, m.start(), m.group(), opts.public_ip_only)
        ],
        "phone": lambda: [m.span() for m in PHONE_RE.finditer(text) if _phone_ok(m.group())],
    }
    taken: list[tuple[int, int]] = []
    for kind in ("email", "iban", "card", "ssn", "ip", "phone"):
        if kind not in kinds:
            continue
        # cheap pre-checks: most documents have no '@' and no long digit runs
        if kind == "email" and "@" not in text:
            continue
        for s, e in finders[kind]():
            if all(e <= ts or s >= te for ts, te in taken):
                taken.append((s, e))
                found.append((kind, s, e))
    return sorted(found, key=lambda f: f[1])


def redact(
    text: str,
    placeholders: Mapping[str, str] = PLACEHOLDERS,
    options: Options | None = None,
) -> tuple[str, list[tuple[str, int, int]]]:
    """(text with each finding replaced by its kind's placeholder, the findings as (kind, start, end) in the
    input text). Kinds missing from `placeholders` are not looked for; a placeholder of `keep` counts the kind
    but leaves it in the text."""
    kinds = tuple(k for k in KINDS if k in placeholders)
    if not text or not kinds:
        return text or "", []
    found = find(text, kinds, options)
    if not found:
        return text, []
    out: list[str] = []
    pos = 0
    for kind, s, e in found:
        if placeholders[kind] == KEEP:
            continue
        out.append(text[pos:s])
        out.append(placeholders[kind])
        pos = e
    out.append(text[pos:])
    return "".join(out), found


def redact_udf(placeholders: Mapping[str, str], options: Options) -> Any:
    """Iterator Arrow UDF: text -> struct<text, kinds, starts, ends> (`redact`'s text and findings; a null text
    stays null with no findings)."""
    from pyspark.sql.functions import arrow_udf

    places = dict(placeholders)

    @arrow_udf("struct<text string, kinds array<string>, starts array<int>, ends array<int>>")  # type: ignore[call-overload]
    def redact_pii(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for texts in batches:
            out_text: list[str | None] = []
            kinds: list[list[str]] = []
            starts: list[list[int]] = []
            ends: list[list[int]] = []
            for t in texts.to_pylist():
                red, found = redact(t, places, options) if t else (t, [])
                out_text.append(red)
                kinds.append([k for k, _, _ in found])
                starts.append([s for _, s, _ in found])
                ends.append([e for _, _, e in found])
            yield pa.StructArray.from_arrays(
                [
                    pa.array(out_text, type=pa.string()),
                    pa.array(kinds, type=pa.list_(pa.string())),
                    pa.array(starts, type=pa.list_(pa.int32())),
                    pa.array(ends, type=pa.list_(pa.int32())),
                ],
                names=["text", "kinds", "starts", "ends"],
            )

    return redact_pii
