"""Training logs: a tqdm progress bar, per-update metrics as CSV and JSON lines, a learning curve.

``MetricsLogger(out_dir)`` appends one row per update to ``metrics.csv`` and ``metrics.jsonl``
(the CSV header is the first row's keys; later rows are written in that order).
``plot_learning_curve(out_dir)`` reads ``metrics.jsonl`` and writes ``learning_curve.png``
(matplotlib, Agg backend). Logging happens on the host, between jitted chunks.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Iterable

from tqdm.auto import tqdm

CSV_NAME = "metrics.csv"
JSONL_NAME = "metrics.jsonl"
PNG_NAME = "learning_curve.png"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _truncate_to_update(csv_path: str, jsonl_path: str, last_update: int) -> None:
    """Drop rows with ``update > last_update`` from both logs (rows a killed run wrote after its
    last checkpoint), rewriting each file through a temporary file and an atomic rename."""
    if os.path.isfile(jsonl_path):
        with open(jsonl_path) as f:
            lines = [ln for ln in f if ln.strip()]
        keep = []
        for ln in lines:
            try:
                row = json.loads(ln)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if int(row.get("update", 0)) <= last_update:
                keep.append(json.dumps(row) + "\n")
        tmp = jsonl_path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, jsonl_path)
    if os.path.isfile(csv_path):
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            header, body = rows[0], rows[1:]
            col = header.index("update") if "update" in header else None
            good = [r for r in body if len(r) == len(header) and (col is None or int(float(r[col])) <= last_update)]
            tmp = csv_path + ".tmp"
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(good)
            os.replace(tmp, csv_path)


class MetricsLogger:
    """Appends metric rows (dicts of floats) to ``out_dir/metrics.{csv,jsonl}``.

    ``resume_from=U`` (with ``append=True``): rows of updates after ``U`` are dropped first, so
    after a resume from the checkpoint of update ``U`` the logs hold each update exactly once.
    """

    def __init__(self, out_dir: str, append: bool = False, resume_from: int | None = None):
        os.makedirs(out_dir, exist_ok=True)
        self.csv_path = os.path.join(out_dir, CSV_NAME)
        self.jsonl_path = os.path.join(out_dir, JSONL_NAME)
        if append and resume_from is not None:
            _truncate_to_update(self.csv_path, self.jsonl_path, int(resume_from))
        mode = "a" if append else "w"
        self._fields = None
        if append and os.path.isfile(self.csv_path):
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            self._fields = header
        self._csv = open(self.csv_path, mode, newline="")
        self._jsonl = open(self.jsonl_path, mode)
        self._writer = None
        if self._fields:
            self._writer = csv.DictWriter(self._csv, fieldnames=self._fields, extrasaction="ignore")

    def log_rows(self, rows: Iterable[dict]) -> None:
        for row in rows:
            if self._writer is None:
                self._fields = list(row)
                self._writer = csv.DictWriter(self._csv, fieldnames=self._fields, extrasaction="ignore")
                self._writer.writeheader()
            self._writer.writerow(row)
            self._jsonl.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        self._csv.flush()
        self._jsonl.flush()

    def close(self) -> None:
        self._csv.close()
        self._jsonl.close()


class NullLogger:
    """A ``MetricsLogger`` that writes nothing (the processes other than 0 of a multi-process run)."""

    def log_rows(self, rows: Iterable[dict]) -> None:
        pass

    def close(self) -> None:
        pass


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_learning_curve(out_dir: str, keys: tuple[str, ...] = ("episode_return", "success_rate", "kl_prior", "beta")) -> str | None:
    """Plot ``keys`` against update from ``out_dir/metrics.jsonl`` into ``learning_curve.png``."""
    path = os.path.join(out_dir, JSONL_NAME)
    if not os.path.isfile(path):
        return None
    rows = read_jsonl(path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(r.get(k) is not None for r in rows)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(6, 2.2 * len(keys)), sharex=True, squeeze=False)
    for ax, k in zip(axes[:, 0], keys):
        pts = [(r["update"], r[k]) for r in rows if r.get(k) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("update")
    fig.tight_layout()
    out = os.path.join(out_dir, PNG_NAME)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def progress_bar(total: int, initial: int = 0, enabled: bool = True, desc: str = ""):
    """A tqdm bar over updates (disabled when ``enabled`` is False)."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="upd")
