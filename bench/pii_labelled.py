"""Generate the labelled PII set (tests/data/pii_labelled.jsonl.gz): planted values of every kind the pii stage
redacts, and the hard negatives it must leave alone, each in a short carrier paragraph.

Every record: {"id", "label", "text", "value"} where `label` is a kind (email, phone, ip, card, iban, ssn) or
`neg:<what>` (version, date, isbn, hash, timestamp, table, maths, code_user_host, private_ip, bad_luhn, bad_iban,
mac), and `value` is the planted string. Values are built here from the formats' definitions (check digits
computed by this script, not by udfs/pii.py), with a fixed seed, so the file is byte-identical on every run:

    python bench/pii_labelled.py            # writes tests/data/pii_labelled.jsonl.gz
    python bench/pii_labelled.py --per 500  # values per label (default 500)
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import string
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_labelled.jsonl.gz"
FIRST = ["maria", "john", "li", "fatima", "olu", "sven", "ana", "raj", "chloe", "diego", "yuki", "tom", "ines", "omar"]
LAST = ["keller", "smith", "wang", "haddad", "adeyemi", "berg", "silva", "patel", "martin", "lopez", "sato", "nowak"]
DOMAINS = ["postfach.de", "mail.co.uk", "uni-hamburg.de", "acme.io", "correio.pt", "example-shop.fr", "bank.nl"]
CARRIERS = [
    "Thanks for the quick reply yesterday. {} Let me know if anything else is needed before Friday.",
    "The committee met on the second floor and agreed on the plan. Contact: {}. Minutes follow next week.",
    "Our team has moved to the new building near the station. {} We look forward to hearing from you.",
    "Please keep this for your records. Reference {} appears on the invoice and the receipt.",
]
IBAN_SPECS = {"DE": "18n", "GB": "4a14n", "FR": "23n", "NL": "4a10n", "ES": "20n", "IT": "1a22n", "BE": "12n"}


def luhn_digit(body: str) -> str:
    """The check digit that makes body+digit pass Luhn (computed from the definition)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def iban(rng: random.Random, country: str) -> str:
    spec = IBAN_SPECS[country]
    letters = int(spec.split("a")[0]) if "a" in spec else 0
    digits = int(spec.split("a")[-1].rstrip("n"))
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters)) + "".join(
        rng.choice(string.digits) for _ in range(digits)
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def group4(s: str, sep: str = " ") -> str:
    return sep.join(s[i : i + 4] for i in range(0, len(s), 4))


def card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    number = body + luhn_digit(body)
    style = rng.random()
    if style < 0.4:
        return group4(number)
    if style < 0.7:
        return group4(number, "-")
    return number


def public_ipv4(rng: random.Random) -> str:
    while True:
        a = rng.choice([8, 23, 31, 45, 52, 66, 81, 93, 104, 151, 185, 203, 212])
        ip = f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if not ip.startswith(("100.6", "100.7", "100.8", "100.9", "100.1")):
            return ip


def public_ipv6(rng: random.Random) -> str:
    head = rng.choice(["2a00:1450", "2606:4700", "2a03:2880", "2001:4860", "2400:cb00"])
    groups = [f"{rng.randrange(65536):x}" for _ in range(rng.choice([2, 3, 6]))]
    return (
        f"{head}:{':'.join(groups)}" if len(groups) == 6 else f"{head}:{':'.join(groups)}::{rng.randrange(1, 65536):x}"
    )


def phone(rng: random.Random) -> str:
    d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    area = str(rng.randrange(201, 990))
    return rng.choice(
        [
            f"+1 {area} {d(3)} {d(4)}",
            f"({area}) {d(3)}-{d(4)}",
            f"{area}-{d(3)}-{d(4)}",
            f"{area}.{d(3)}.{d(4)}",
            f"+44 20 {d(4)} {d(4)}",
            f"020 {d(4)} {d(4)}",
            f"+49 30 {d(6)} {d(2)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+91 {d(5)} {d(5)}",
            f"+351 21 {d(3)} {d(4)}",
        ]
    )


def ssn(rng: random.Random) -> str:
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def email(rng: random.Random) -> str:
    sep = rng.choice([".", "_", "", "-"])
    first, last = rng.choice(FIRST), rng.choice(LAST)
    number = rng.randrange(100) if rng.random() < 0.3 else ""
    return f"{first}{sep}{last}{number}@{rng.choice(DOMAINS)}"


def negative(rng: random.Random, what: str) -> str:
    d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    hexs = lambda k: "".join(rng.choice("0123456789abcdef") for _ in range(k))  # noqa: E731
    if what == "version":
        return rng.choice(
            [
                f"v{rng.randrange(1, 9)}.{rng.randrange(30)}.{rng.randrange(30)}",
                f"version {rng.randrange(1, 9)}.{rng.randrange(9)}.{rng.randrange(9)}.{rng.randrange(99)}",
            ]
        )
    if what == "date":
        y, m, dd = rng.randrange(1990, 2030), rng.randrange(1, 13), rng.randrange(1, 29)
        return rng.choice([f"{y}-{m:02d}-{dd:02d}", f"{dd:02d}/{m:02d}/{y}", f"{dd}.{m}.{y}"])
    if what == "isbn":
        body = "978" + d(9)
        total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
        full = body + str((10 - total % 10) % 10)
        return f"ISBN {full[:3]}-{full[3]}-{full[4:6]}-{full[6:12]}-{full[12]}"
    if what == "hash":
        return rng.choice([hexs(40), hexs(64), hexs(7), hexs(32)])
    if what == "timestamp":
        hh, mm, ss = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        day = f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"
        return rng.choice([f"{day}T{hh:02d}:{mm:02d}:{ss:02d}Z", f"{hh:02d}:{mm:02d}:{ss:02d}", f"17{d(8)}"])
    if what == "table":
        return f"| {d(7)} | {rng.randrange(100)}.{d(1)} | {d(4)} | {d(5)} |"
    if what == "maths":
        return f"{d(1)}.{d(5)} * {d(1)}.{d(5)} = {d(2)}.{d(4)} and {d(4)} + {d(4)} = {d(5)}"
    if what == "code_user_host":
        return rng.choice(
            [
                f"ssh deploy@buildhost{rng.randrange(9)}",
                f"scp notes.txt admin@fileserver:/srv/{d(2)}",
                "postgres@localhost",
            ]
        )
    if what == "private_ip":
        return rng.choice(
            [
                f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "127.0.0.1",
            ]
        )
    if what == "bad_luhn":
        body = "4" + d(14)
        return group4(body + str((int(luhn_digit(body)) + 1 + rng.randrange(9)) % 10))
    if what == "bad_iban":
        good = iban(rng, rng.choice(sorted(IBAN_SPECS)))
        return good[:2] + f"{(int(good[2:4]) + 1 + rng.randrange(90)) % 97 + 2:02d}"[-2:] + good[4:]
    if what == "mac":
        return ":".join(hexs(2) for _ in range(6))
    raise ValueError(what)


KINDS = {"email": email, "phone": phone, "ip": None, "card": card, "iban": None, "ssn": ssn}
NEGATIVES = (
    "version", "date", "isbn", "hash", "timestamp", "table", "maths", "code_user_host", "private_ip", "bad_luhn",
    "bad_iban", "mac",
)  # fmt: skip


def build(per: int, seed: int = 13) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for kind in KINDS:
        for _ in range(per):
            if kind == "ip":
                value = public_ipv4(rng) if rng.random() < 0.7 else public_ipv6(rng)
            elif kind == "iban":
                value = iban(rng, rng.choice(sorted(IBAN_SPECS)))
                value = group4(value) if rng.random() < 0.5 else value
            else:
                value = KINDS[kind](rng)  # type: ignore[misc]
            rows.append({"label": kind, "value": value, "text": rng.choice(CARRIERS).format(value)})
    for what in NEGATIVES:
        for _ in range(per):
            value = negative(rng, what)
            rows.append({"label": f"neg:{what}", "value": value, "text": rng.choice(CARRIERS).format(value)})
    return [{"id": str(i), **r} for i, r in enumerate(rows)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per", type=int, default=500)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = build(args.per)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    args.out.write_bytes(gzip.compress(payload, mtime=0))
    print(f"{len(rows)} records -> {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
