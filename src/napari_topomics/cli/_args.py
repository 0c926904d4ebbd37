"""Parsing of the CLI's compound option values (``name=value`` pairs and lists)."""

from __future__ import annotations

from ..io._errors import TopomicsInputError


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    """``["rna=nb", "protein=multinomial"]`` (or comma-joined) → ``{"rna": "nb", ...}``."""
    if not values:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, setting = item.partition("=")
            if not sep or not name.strip() or not setting.strip():
                raise TopomicsInputError(
                    f"{option} expects MODALITY=VALUE pairs, got '{item}' "
                    f"(example: {option} rna=nb)."
                )
            pairs[name.strip()] = setting.strip()
    return pairs


def parse_modalities(value: str | None) -> list[str] | dict[str, str] | None:
    """``"rna,protein"`` → a list; ``"rna=table_rna,protein=table_prot"`` → a dict."""
    if not value:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if any("=" in item for item in items):
        return parse_pairs(items, "--modalities")
    return items
