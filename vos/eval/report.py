"""Result writers: the official DAVIS CSVs, JSON summaries and printed tables (all files atomic)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from vos.eval.davis_eval import GLOBAL_KEYS, DavisResult
from vos.infra.fileio import atomic_write_text


def global_csv_name(subset: str) -> str:
    return f"global_results-{subset}.csv"


def per_sequence_csv_name(subset: str) -> str:
    return f"per-sequence_results-{subset}.csv"


def davis_global_csv(result: DavisResult) -> str:
    """The official ``global_results-<set>.csv`` text (pandas ``float_format="%.3f"`` layout)."""
    values = ",".join(f"{result.global_scores[key]:.3f}" for key in GLOBAL_KEYS)
    return ",".join(GLOBAL_KEYS) + "\n" + values + "\n"


def davis_per_sequence_csv(result: DavisResult) -> str:
    """The official ``per-sequence_results-<set>.csv`` text: one row per object ``<seq>_<k>``."""
    rows = [f"{s.name},{s.j_mean:.3f},{s.f_mean:.3f}" for s in result.per_object]
    return "Sequence,J-Mean,F-Mean\n" + "".join(row + "\n" for row in rows)


def write_davis_csvs(result: DavisResult, folder: str | os.PathLike) -> list[str]:
    """Write both CSVs into ``folder`` (atomically, always recomputed); returns notes on replaced files."""
    notes = []
    for name, text in ((global_csv_name(result.subset), davis_global_csv(result)),
                       (per_sequence_csv_name(result.subset), davis_per_sequence_csv(result))):
        path = Path(folder) / name
        if path.exists():
            notes.append(f"replaced existing {path} with the new results")
        atomic_write_text(path, text)
    return notes


def davis_table(result: DavisResult) -> str:
    """The printed global table (3 decimals, as the CSV)."""
    widths = [max(len(key), 8) for key in GLOBAL_KEYS]
    header = "  ".join(key.rjust(w) for key, w in zip(GLOBAL_KEYS, widths))
    values = "  ".join(f"{result.global_scores[key]:.3f}".rjust(w) for key, w in zip(GLOBAL_KEYS, widths))
    return f"Global results for {result.subset} ({result.protocol})\n{header}\n{values}"


def davis_json(result: DavisResult) -> dict:
    """JSON summary: the 7 global keys (0..1), ``per_object`` ``<seq>_<k>`` -> {J, F}, and the protocol."""
    summary = {key: result.global_scores[key] for key in GLOBAL_KEYS}
    summary["per_object"] = {s.name: {"J": s.j_mean, "F": s.f_mean} for s in result.per_object}
    summary["protocol"] = result.protocol
    return summary


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Atomic JSON file; NaN (undefined metric) becomes null so the file stays standard JSON."""
    atomic_write_text(path, json.dumps(_nan_to_none(data), indent=2) + "\n")


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value
