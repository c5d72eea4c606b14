"""Training logs: a tqdm progress bar, per-update metrics as CSV and JSON lines, TensorBoard
event files, Weights & Biases, a learning curve.

``MetricsLogger(out_dir)`` appends one row per update to ``metrics.csv`` and ``metrics.jsonl``
(the CSV header is the first row's keys; later rows are written in that order).
``TensorBoardLogger`` writes the same rows as TensorBoard scalars (tensorboardX, no TensorFlow)
and ``WandbLogger`` to a W&B run (the optional ``wandb`` extra; ``WANDB_MODE=offline`` works);
both put every row at ``step = update x env steps per update``. :func:`open_loggers` opens what
a :class:`LogTargets` asks for. ``plot_learning_curve(out_dir)`` reads ``metrics.jsonl`` and writes
``learning_curve.png`` (matplotlib, Agg backend). :func:`metrics_to_rows` turns a PPO chunk's
stacked metrics into those rows. Logging happens on the host, between jitted chunks, and only on
process 0 (the others get a :class:`NullLogger`).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import json
import math
import os
import struct
from typing import Iterable, Sequence

import jax
import numpy as np
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


TASK_SUMS = ("task_episodes", "task_return_sum", "task_success_sum")


def metrics_to_rows(metrics: dict, first_update: int = 0,
                    task_names: Sequence[str] | None = None) -> list[dict[str, float]]:
    """Host-side reduction of stacked metrics (leaves ``[U, ...]``) to one dict per update.

    Loss metrics are averaged over epochs and minibatches; ``episode_return`` /
    ``episode_length`` / ``success_rate`` are means over the episodes that finished during the
    update (NaN when none did). A multi-task run adds ``episodes/<task>``,
    ``episode_return/<task>`` and ``success_rate/<task>`` (tasks named by ``task_names``, else
    by index).
    """
    m = jax.tree.map(np.asarray, jax.device_get(metrics))
    num = m["beta"].shape[0]
    rows = []
    for u in range(num):
        row = {"update": first_update + u + 1}
        for k, v in m.items():
            if k in ("episodes", "return_sum", "length_sum", "success_sum") or k in TASK_SUMS:
                continue
            row[k] = float(np.mean(v[u]))
        if "task_episodes" in m:
            eps_k = m["task_episodes"][u]
            names = list(task_names) if task_names is not None else [str(i) for i in range(len(eps_k))]
            for i, name in enumerate(names):
                row[f"episodes/{name}"] = float(eps_k[i])
                for out, key in (("episode_return", "task_return_sum"), ("success_rate", "task_success_sum")):
                    row[f"{out}/{name}"] = float(m[key][u][i]) / float(eps_k[i]) if eps_k[i] > 0 else math.nan
        eps = float(m["episodes"][u])
        row["episodes"] = eps
        for name, key in (("episode_return", "return_sum"), ("episode_length", "length_sum"), ("success_rate", "success_sum")):
            row[name] = float(m[key][u]) / eps if eps > 0 else math.nan
        rows.append(row)
    return rows


def progress_bar(total: int, initial: int = 0, enabled: bool = True, desc: str = ""):
    """A tqdm bar over updates (disabled when ``enabled`` is False)."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="upd")


def progress_postfix(row: dict) -> dict[str, str]:
    """The progress bar's fields for the last update's ``row``: episode return and success rate
    (``n/a`` until an episode has finished: a mean over no episodes is not a number) and the KL
    to the prior."""

    def fmt(key: str, spec: str) -> str:
        v = row.get(key)
        return "n/a" if v is None or not math.isfinite(float(v)) else format(float(v), spec)

    return {"ret": fmt("episode_return", ".3f"), "succ": fmt("success_rate", ".2f"), "kl": fmt("kl_prior", ".3g")}


# ----------------------------------------------------------------------------- TensorBoard, W&B


@dataclasses.dataclass(frozen=True)
class LogTargets:
    """Where a PPO run's metric rows go besides ``metrics.csv``/``metrics.jsonl``.

    Attributes:
      tensorboard: write TensorBoard event files into the run's directory
        (``tensorboard --logdir OUT/runs`` shows every run as ``task/variant/seed<k>``).
      wandb_project: a W&B project to log to (None: no W&B); needs ``pip install 'lago-jax[wandb]'``.
        ``WANDB_MODE=offline`` keeps the run in ``<run dir>/wandb`` for a later ``wandb sync``.
      name: the W&B run's name (default: the run directory's last three parts).
      group: the W&B group (e.g. task/variant, so seeds are shown together).
      config: settings recorded with the W&B run.
    """

    tensorboard: bool = True
    wandb_project: str | None = None
    name: str | None = None
    group: str | None = None
    config: dict | None = None


def _finite_scalars(row: dict) -> dict[str, float]:
    out = {}
    for k, v in row.items():
        if isinstance(v, (bool, int, float)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def event_files(log_dir: str) -> list[str]:
    """TensorBoard event files directly in ``log_dir``, oldest first (their names start with the
    creation time in seconds, zero-padded to the same width)."""
    return sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))


class TensorBoardLogger:
    """Every finite number of every row as a TensorBoard scalar (tag = the CSV column), at
    ``step = row["update"] * steps_per_update`` (env steps).

    A run resumed at update ``start`` writes a new event file whose ``purge_step`` is update
    ``start + 1``'s step: TensorBoard then hides what an earlier, killed process wrote for the
    updates after the checkpoint (as ``MetricsLogger`` drops those rows), and the resumed run's
    points take their place; :func:`read_scalars` reads event files the same way.
    """

    def __init__(self, log_dir: str, steps_per_update: int, start: int = 0):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:  # a core dependency: only a broken install lacks it
            raise ImportError(f"TensorBoard logging needs tensorboardX ({e}); pip install tensorboardX==2.6.5, "
                              "or turn it off (--no-tensorboard / LogTargets(tensorboard=False))") from e
        os.makedirs(log_dir, exist_ok=True)
        self.steps_per_update = int(steps_per_update)
        old = event_files(log_dir)
        purge = (int(start) + 1) * self.steps_per_update if old else None
        # Event file names hold the time in whole seconds and tensorboardX truncates an existing
        # file of the same name: a sequence number keeps a second file of the same second apart
        # (and after the first in name order, the order TensorBoard reads them in).
        self._writer = SummaryWriter(log_dir=log_dir, purge_step=purge, flush_secs=30,
                                     filename_suffix=f".{len(old):04d}")

    def log_rows(self, rows: Iterable[dict]) -> None:
        for row in rows:
            step = int(row["update"]) * self.steps_per_update
            for k, v in _finite_scalars(row).items():
                self._writer.add_scalar(k, v, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _records(path: str) -> Iterable[bytes]:
    """The payloads of a TFRecord file (length, its CRC, payload, its CRC); a record cut short by
    a kill ends the file."""
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if len(head) < 12:
                return
            (n,) = struct.unpack("<Q", head[:8])
            data = f.read(n)
            if len(data) < n or len(f.read(4)) < 4:
                return
            yield data


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from the event files in ``log_dir``, read as TensorBoard
    reads them: files oldest first, and a session start with a ``purge_step`` drops the points
    read so far at that step or later. Points are sorted by step."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in event_files(log_dir):
        for data in _records(path):
            ev = event_pb2.Event.FromString(data)
            if ev.HasField("session_log") and ev.session_log.status == ev.session_log.START:
                out = {k: [p for p in v if p[0] < ev.step] for k, v in out.items()}
            if ev.HasField("summary"):
                for val in ev.summary.value:
                    if val.HasField("simple_value"):
                        out.setdefault(val.tag, []).append((int(ev.step), float(val.simple_value)))
    return {k: sorted(v) for k, v in out.items()}


def wandb_run_id(out_dir: str) -> str:
    """A W&B run id fixed by the run's directory, so a resumed run continues the same W&B run."""
    return hashlib.sha1(os.path.abspath(out_dir).encode()).hexdigest()[:16]


class WandbLogger:
    """Rows to a W&B run (``wandb.init(resume="allow")`` with the id of :func:`wandb_run_id`;
    files in ``out_dir/wandb``), at ``step = update x steps_per_update``. W&B keeps a run's steps
    increasing: rows at or before the step the run already holds (a resumed online run) are not
    sent again."""

    def __init__(self, out_dir: str, steps_per_update: int, targets: LogTargets):
        try:
            import wandb
        except ImportError as e:
            raise ImportError(f"--wandb needs the wandb package ({e}): pip install 'lago-jax[wandb]'") from e
        self.steps_per_update = int(steps_per_update)
        parts = os.path.abspath(out_dir).rstrip(os.sep).split(os.sep)
        self._run = wandb.init(project=targets.wandb_project, dir=out_dir, id=wandb_run_id(out_dir),
                               name=targets.name or "/".join(parts[-3:]), group=targets.group,
                               config=targets.config, resume="allow", reinit="finish_previous")
        self._last = int(self._run.step or 0) - 1 if getattr(self._run, "resumed", False) else -1

    def log_rows(self, rows: Iterable[dict]) -> None:
        for row in rows:
            step = int(row["update"]) * self.steps_per_update
            if step <= self._last:
                continue
            self._run.log(_finite_scalars(row), step=step)
            self._last = step

    def close(self) -> None:
        self._run.finish()


class Loggers:
    """Several loggers as one: each row goes to all of them."""

    def __init__(self, loggers: Sequence):
        self.loggers = list(loggers)

    def log_rows(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        for lg in self.loggers:
            lg.log_rows(rows)

    def close(self) -> None:
        for lg in reversed(self.loggers):
            lg.close()


def open_loggers(out_dir: str, start: int, steps_per_update: int, targets: LogTargets | None = None) -> Loggers:
    """The CSV/JSONL logger (rows after update ``start`` dropped when resuming) and those
    ``targets`` asks for. Call on process 0 only."""
    targets = LogTargets() if targets is None else targets
    loggers = [MetricsLogger(out_dir, append=start > 0, resume_from=start)]
    try:
        if targets.tensorboard:
            loggers.append(TensorBoardLogger(out_dir, steps_per_update, start))
        if targets.wandb_project:
            loggers.append(WandbLogger(out_dir, steps_per_update, targets))
    except BaseException:
        Loggers(loggers).close()
        raise
    return Loggers(loggers)
