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


def parse_topic_range(value: str, option: str = "--topics") -> list[int]:
    """``"4:16:2"`` → ``[4, 6, ..., 16]`` (the end included); ``"4,6,9"`` and ``"8"`` too."""
    text = str(value).strip()
    example = f"(examples: {option} 4:16:2, {option} 4,6,8)"
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1 or stop < start:
                raise TopomicsInputError(
                    f"{option} {text}: needs START <= END and a STEP >= 1 {example}."
                )
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise TopomicsInputError(
            f"{option} expects START:END[:STEP] or a comma-separated list of numbers of "
            f"topics, got '{text}' {example}."
        ) from None
    if not values:
        raise TopomicsInputError(f"{option} '{text}' names no number of topics {example}.")
    low = min(values)
    if low < 2:
        raise TopomicsInputError(
            f"{option} {text}: every number of topics must be >= 2, got {low}."
        )
    return sorted(set(values))


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
