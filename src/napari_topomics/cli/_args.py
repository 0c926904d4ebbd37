"""Parsing of the CLI's compound option values (``name=value`` pairs and lists)."""

from __future__ import annotations

from ..io._errors import TopomicsInputError
from ..workflow._sweep import parse_topic_range

__all__ = ["parse_modalities", "parse_pairs", "parse_topic_range"]


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



def fit_topics(value: str) -> int | str:
    """The ``fit --topics`` value: a number of topics, or ``auto`` (sweep, then fit)."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"expects a number of topics or 'auto', got '{value}'"
        ) from None
