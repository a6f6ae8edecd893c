"""Scalar logs of a training run: a CSV file and TensorBoard event files side by side.

On resume from step ``s`` the CSV keeps only the rows up to ``s`` (rows written after the last
checkpoint are from the part of the run that is being redone), so the log of a resumed run reads
like the log of an uninterrupted one. Only the main process writes.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from vos.infra.errors import UserError
from vos.infra.fileio import atomic_write_text


class TrainingLog:
    def __init__(self, out_dir: str | Path, start_step: int = 0, enabled: bool = True,
                 csv_name: str = "log.csv"):
        self.enabled = enabled
        self.csv_path = Path(out_dir) / csv_name
        self.fields: list[str] | None = None
        self.writer = None
        if not enabled:
            return
        self._keep_rows_up_to(start_step)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"), purge_step=start_step + 1)

    def _keep_rows_up_to(self, step: int) -> None:
        if not self.csv_path.exists():
            return
        rows = self._read_rows()
        if not rows:
            return
        self.fields = list(rows[0].keys())
        kept = [r for r in rows if int(r["step"]) <= step]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields)
        w.writeheader()
        w.writerows(kept)
        atomic_write_text(self.csv_path, buf.getvalue())

    def _read_rows(self) -> list[dict]:
        """The rows of the CSV log, each with an integer step; a damaged log is refused (it is
        not needed to resume, so it may be moved away)."""
        advice = f"move {self.csv_path.name} away to resume with a new log"
        try:
            with self.csv_path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UserError(f"{self.csv_path}: damaged: not a CSV log ({exc}); {advice}") from None
        for line, row in enumerate(rows, start=2):
            step = row.get("step")
            if not (isinstance(step, str) and step.strip().lstrip("-").isdigit() and step.isascii()):
                raise UserError(f"{self.csv_path}: damaged: line {line} has the step {step!r}, expected an integer; "
                               f"{advice}")
        return rows

    def log(self, step: int, **scalars: float) -> None:
        """Append one row ``step, name=value, …`` to the CSV and each scalar to TensorBoard."""
        if not self.enabled:
            return
        row = {"step": step, **{k: float(v) for k, v in scalars.items()}}
        if self.fields is None:
            self.fields = list(row.keys())
        new_file = not self.csv_path.exists()
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new_file:
                w.writeheader()
            w.writerow(row)
        for name, value in scalars.items():
            if math.isfinite(float(value)):
                self.writer.add_scalar(name, float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
