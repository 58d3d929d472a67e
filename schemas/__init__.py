"""Table contracts (StructTypes) and the column checks every stage applies at its boundary."""

from schemas.tables import ACTIONS, TABLES

__all__ = ["ACTIONS", "TABLES", "MissingColumnsError", "require_columns"]


class MissingColumnsError(ValueError):
    """A stage was handed a DataFrame without the columns its contract needs."""


def require_columns(columns: list[str], needed: list[str] | tuple[str, ...], stage: str) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise MissingColumnsError(f"{stage}: input lacks column(s) {', '.join(missing)}")
