"""`curate sql`'s guards: a query is read-only unless `--write` says otherwise, and DESCRIBE is emulated where the
engine does not parse it.
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.cli.common import CLIError

# statement keywords that change a table or the session (REPLACE is left out: it is also a string function, and
# CREATE OR REPLACE is caught by CREATE)
_WRITE_WORDS = frozenset(
    {
        *("INSERT", "DELETE", "UPDATE", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE", "OVERWRITE", "RESTORE"),
        *("VACUUM", "OPTIMIZE", "CACHE", "UNCACHE", "REFRESH", "LOAD", "MSCK", "REPAIR", "GRANT", "REVOKE"),
        *("USE", "SET", "RESET", "CLONE"),
    }
)


_READ_FIRST = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE", "FROM", "("})


def _sql_words(query: str) -> list[str]:
    """The statement's words, upper-cased, with comments, string literals and quoted identifiers removed."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S)
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", " ", text)
    return [w.upper() for w in re.findall(r"\(|[A-Za-z_]+", text)]


#: First words of statements a Spark SQL engine knows that are neither reads nor in `_WRITE_WORDS`: still refused
#: without --write (they change tables or the session), but they are statements, not typos.
_OTHER_STATEMENTS = frozenset({"ADD", "ANALYZE", "COMMENT", "REPLACE", "CALL", "CONVERT", "GENERATE", "LIST"})


class SqlSyntaxError(ValueError):
    """The query does not start with a statement keyword (a typo such as SELEC): said before any engine starts."""


def read_only_problem(query: str) -> str | None:
    """Why `query` is not a read-only statement (None when it is): `curate sql` writes only with --write.
    Raises SqlSyntaxError when its first word is no statement at all: that is a typo, not a write."""
    words = _sql_words(query)
    if not words:
        return "the query is empty"
    first = words[0]
    if first not in _READ_FIRST and first not in _WRITE_WORDS and first not in _OTHER_STATEMENTS:
        raise SqlSyntaxError(
            f"syntax error: {first} is not a SQL statement (a query starts with SELECT, WITH, SHOW, DESCRIBE, "
            "EXPLAIN, VALUES, TABLE or FROM)"
        )
    if first not in _READ_FIRST:
        return f"{first} statements change the lake"
    writes = sorted(_WRITE_WORDS.intersection(words))
    return f"the statement contains {', '.join(writes)}" if writes else None


_DESCRIBE = re.compile(
    r"^\s*(?:DESCRIBE|DESC)\s+(?:TABLE\s+)?(?:EXTENDED\s+|FORMATTED\s+)?(?P<a>[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$"
    r"|^\s*SHOW\s+COLUMNS\s+(?:FROM|IN)\s+(?P<b>[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$",
    re.I,
)


def describe_rows(lake: Any, query: str) -> tuple[list[str], list[dict[str, Any]]] | None:
    """`DESCRIBE t` / `SHOW COLUMNS FROM t` for a contract table, answered from the Delta table's own schema
    (the engine returns no columns for them); None when the query is not one of those."""
    from schemas import TABLES

    m = _DESCRIBE.match(query)
    if not m:
        return None
    table = (m.group("a") or m.group("b") or "").lower()
    if table not in TABLES:
        raise CLIError(f"unknown table {table!r} (tables in this lake: {', '.join(TABLES)})")
    contract = {f.name for f in TABLES[table].fields}
    # a table no run has written yet is described by its contract; reading it would create it (a write)
    fields = lake.read(table).schema.fields if lake.exists(table) else TABLES[table].fields
    if m.group("b"):
        return ["col_name"], [{"col_name": f.name} for f in fields]
    rows = [
        {
            "col_name": f.name,
            "data_type": f.dataType.simpleString(),
            "comment": "" if f.name in contract else "not in the contract (schemas/tables.py)",
        }
        for f in fields
    ]
    return ["col_name", "data_type", "comment"], rows
