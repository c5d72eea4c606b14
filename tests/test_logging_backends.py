"""Logs people read: TensorBoard event files hold every metric of ``metrics.csv`` at the same
points (and a resumed run's, once); W&B offline writes a run; the progress bar reads before the
first finished episode; the report's curves keep their bands in range and state the budget."""

import csv
import json
import math
import os

import numpy as np
import pytest

from envs.point_mass import PointMass
from lago_jax import logging as log_lib
from lago_jax.ppo import PPOConfig, run

ENV = PointMass(discrete=True)
CFG = PPOConfig(num_envs=8, num_steps=8, num_updates=6, update_epochs=1, num_minibatches=2, checkpoint_every=2,
                hidden_sizes=(16,))
STEPS_PER_UPDATE = CFG.num_envs * CFG.num_steps


def _csv(out_dir):
    with open(os.path.join(out_dir, log_lib.CSV_NAME), newline="") as f:
        return list(csv.DictReader(f))


def _finite(v: str) -> bool:
    try:
        return math.isfinite(float(v))
    except ValueError:
        return False


def _assert_events_match_csv(out_dir):
    rows, scalars = _csv(out_dir), log_lib.read_scalars(out_dir)
    assert rows
    for key in rows[0]:
        want = [(int(r["update"]) * STEPS_PER_UPDATE, float(r[key])) for r in rows if _finite(r[key])]
        got = scalars.get(key, [])
        assert [s for s, _ in got] == [s for s, _ in want], key  # every point once, on the env-step axis
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6, atol=1e-7, err_msg=key)
    return rows, scalars


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tb") / "run")
    run(CFG, ENV, out, progress=False)
    return out


def test_event_files_hold_every_csv_metric(uninterrupted):
    rows, scalars = _assert_events_match_csv(uninterrupted)
    assert len(rows) == CFG.num_updates and {"episode_return", "success_rate", "total_loss", "kl_prior"} <= set(scalars)
    assert scalars["update"][-1] == (CFG.num_updates * STEPS_PER_UPDATE, float(CFG.num_updates))


def test_resumed_run_continues_the_step_axis_without_duplicates(uninterrupted, tmp_path):
    """A run stopped at update 4 whose process also logged updates 5 and 6 (after its last
    checkpoint) before dying: the resumed run's logs hold each update once, with its own values,
    equal to the uninterrupted run's."""
    out = str(tmp_path / "run")
    run(CFG, ENV, out, progress=False, stop_after=4)
    stale = [{"update": u, "episode_return": -123.0, "total_loss": -123.0} for u in (5, 6)]
    tb = log_lib.TensorBoardLogger(out, STEPS_PER_UPDATE, start=4)
    tb.log_rows(stale)
    tb.close()
    assert log_lib.read_scalars(out)["total_loss"][-1] == (6 * STEPS_PER_UPDATE, -123.0)
    run(CFG, ENV, out, progress=False)
    _, scalars = _assert_events_match_csv(out)
    assert len(log_lib.event_files(out)) == 3
    ref = log_lib.read_scalars(uninterrupted)
    for key in ("total_loss", "episode_return", "update"):
        assert [s for s, _ in scalars[key]] == [s for s, _ in ref[key]]
        np.testing.assert_allclose([v for _, v in scalars[key]], [v for _, v in ref[key]], rtol=1e-5, atol=1e-6)


def test_tensorboard_off_writes_no_event_files(tmp_path):
    loggers = log_lib.open_loggers(str(tmp_path), 0, STEPS_PER_UPDATE, log_lib.LogTargets(tensorboard=False))
    loggers.log_rows([{"update": 1, "x": 1.0}])
    loggers.close()
    assert log_lib.event_files(str(tmp_path)) == [] and os.path.exists(tmp_path / log_lib.CSV_NAME)


def test_reader_stops_at_a_record_cut_short(uninterrupted, tmp_path):
    path = log_lib.event_files(uninterrupted)[0]
    data = open(path, "rb").read()
    cut = tmp_path / os.path.basename(path)
    cut.write_bytes(data[:-7])
    got, full = log_lib.read_scalars(str(tmp_path)), log_lib.read_scalars(uninterrupted)
    assert sum(map(len, got.values())) == sum(map(len, full.values())) - 1


def test_wandb_offline_writes_a_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the optional 'wandb' extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = str(tmp_path / "runs" / "reach" / "ppo" / "seed0")
    targets = log_lib.LogTargets(tensorboard=False, wandb_project="lago-test", group="reach/ppo",
                                 config={"lr": 3e-4})
    loggers = log_lib.open_loggers(out, 0, STEPS_PER_UPDATE, targets)
    loggers.log_rows([{"update": u, "episode_return": float(u), "success_rate": math.nan} for u in (1, 2, 3)])
    loggers.close()
    runs = [d for d in os.listdir(os.path.join(out, "wandb")) if d.startswith("offline-run-")]
    assert len(runs) == 1 and runs[0].endswith(log_lib.wandb_run_id(out))
    files = os.listdir(os.path.join(out, "wandb", runs[0]))
    record = [f for f in files if f.endswith(".wandb")]
    assert record and os.path.getsize(os.path.join(out, "wandb", runs[0], record[0])) > 0


def test_progress_bar_reads_before_the_first_finished_episode():
    assert log_lib.progress_postfix({"episode_return": math.nan, "success_rate": math.nan, "kl_prior": 0.0}) == {
        "ret": "n/a", "succ": "n/a", "kl": "0"}
    assert log_lib.progress_postfix({"episode_return": 1.23456, "success_rate": 0.5, "kl_prior": 0.01234}) == {
        "ret": "1.235", "succ": "0.50", "kl": "0.0123"}


# ----------------------------------------------------------------------------- report curves


def test_curve_bands_stay_in_range_and_the_title_states_the_budget(tmp_path):
    from matplotlib.collections import PolyCollection

    from lago_jax.experiments.config import ExperimentConfig
    from lago_jax.experiments.report import curve_figure

    cfg = ExperimentConfig(tasks=("reach",), out_dir=str(tmp_path), seeds=(0, 1, 2), variants=("ppo",),
                           num_envs=4, num_steps=8, num_updates=5)
    spu = cfg.num_envs * cfg.num_steps
    # Seeds far apart near 0 and 1: an unclipped 95% t-band (3 seeds) reaches far below 0 and above 1.
    success = {0: [0.0, 0.0, 1.0, 1.0, 1.0], 1: [0.0, 1.0, 1.0, 1.0, 1.0], 2: [0.0, 0.0, 0.0, 0.0, 1.0]}
    returns = {0: [-5.0, 0.0, 10.0, 10.0, 10.0], 1: [-5.0, 10.0, 10.0, 10.0, 10.0], 2: [-5.0, -5.0, -5.0, -5.0, 10.0]}
    for s in cfg.seeds:
        d = tmp_path / "runs" / "reach" / "ppo" / f"seed{s}"
        d.mkdir(parents=True)
        with open(d / log_lib.JSONL_NAME, "w") as f:
            for u in range(5):
                f.write(json.dumps({"update": u + 1, "success_rate": success[s][u], "episode_return": returns[s][u]}) + "\n")
    import matplotlib.pyplot as plt

    fig = curve_figure(cfg)
    try:
        ax_success, ax_return = fig.axes[:2]
        for ax, (lo, hi) in ((ax_success, (0.0, 1.0)), (ax_return, (-5.0, 10.0))):
            bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
            assert len(bands) == 1
            y = np.concatenate([p.vertices[:, 1] for p in bands[0].get_paths()])
            assert y.min() >= lo - 1e-9 and y.max() <= hi + 1e-9
            assert y.min() == pytest.approx(lo) and y.max() == pytest.approx(hi)  # clipping took effect
            assert ax.get_xlim() == (spu, cfg.num_updates * spu)
            line = ax.get_lines()[0]
            assert line.get_xdata()[0] == spu
        title = fig._suptitle.get_text()
        assert f"{cfg.env_steps:,} env steps per run" in title and "seeds [0, 1, 2]" in title
    finally:
        plt.close(fig)
