"""Bad input and interrupted writes at the pipeline's edges: each case fails before its fix.

Demonstrations are written atomically and a damaged file is set aside and collected again;
seeds that would wrap, non-finite settings, repeated tasks, unbounded episode limits, zero envs
and budgets below one update are refused by name; demonstrations with impossible values are
refused.
"""

import dataclasses
import os
import warnings

import jax
import numpy as np
import pytest

from envs import demos as demos_lib
from envs.point_mass import PointMass
from lago_jax.experiments import cli, pipeline
from lago_jax.experiments.pipeline import ExperimentConfig
from test_demos import greedy_policy
from test_experiments import point_mass_suite


@pytest.fixture(scope="module")
def small_demos():
    return demos_lib.collect_demonstrations(PointMass(discrete=True, episode_length=20), greedy_policy, 4,
                                            jax.random.key(0), batch_size=4)


def test_an_interrupted_demonstrations_write_leaves_no_broken_file(small_demos, tmp_path, monkeypatch):
    path = str(tmp_path / "d.npz")
    demos_lib.save_demonstrations(path, small_demos)
    before = open(path, "rb").read()

    def dies_midway(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demos_lib.np, "savez", dies_midway)
    with pytest.raises(OSError, match="No space"):
        demos_lib.save_demonstrations(path, small_demos)
    assert open(path, "rb").read() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["d.npz"]  # and nothing half-written is left beside it


def test_a_broken_demonstrations_file_is_set_aside_and_collected_again(tmp_path):
    cfg = ExperimentConfig(tasks=("reach",), out_dir=str(tmp_path), demo_episodes=4, demo_batch=4, progress=False)
    suite = point_mass_suite()
    path = tmp_path / "demos" / "reach.npz"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demos = pipeline.demos_stage(cfg, suite, "reach", suite.make_env("reach"))
    assert demos.num_episodes == 4 and demos_lib.load_demonstrations(str(path)).num_episodes == 4
    assert any("set aside" in str(w.message) for w in caught)
    assert [n for n in os.listdir(path.parent) if n.startswith("reach.npz.broken-")]


@pytest.mark.parametrize("field,value", [("reward", np.nan), ("success", 2.0), ("episode_success", 2.0),
                                         ("episode_return", np.inf)])
def test_demonstrations_with_impossible_values_are_refused(small_demos, field, value):
    arr = getattr(small_demos, field).copy()
    arr[0] = value
    with pytest.raises(ValueError, match=field):
        demos_lib.validate_demos(dataclasses.replace(small_demos, **{field: arr}))


@pytest.mark.parametrize("changes,match", [
    (dict(seeds=(0, 2**32)), "outside \\[0, 2\\*\\*32\\)"),
    (dict(seeds=(-1,)), "outside"),
    (dict(beta=float("nan")), "beta must be a finite"),
    (dict(lr=float("inf")), "lr must be a finite"),
    (dict(tasks=("reach", "reach")), "repeat"),
    (dict(episode_length=10**9), "episode_length must be in"),
    (dict(protocol="words"), "protocol must be one of"),
])
def test_bad_settings_are_refused_by_name(changes, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**{**dict(tasks=("reach",), out_dir="x"), **changes})


@pytest.mark.parametrize("argv,match", [
    (["--steps", "100", "--envs", "0"], "--envs must be >= 1"),
    (["--steps", "10", "--envs", "4", "--rollout", "8"], "less than one update"),
    (["--seeds", "0", "4294967296"], "outside"),
    (["--beta", "nan"], "beta must be a finite"),
    (["--instruction", "hi"], "go with --eval-prior"),
])
def test_cli_refuses_in_one_line(argv, match, capsys, tmp_path):
    rc = cli.main(point_mass_suite, ("reach",), {}, ["--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and match.replace("\\", "") in err, err
    assert "Traceback" not in err


def test_a_second_run_on_the_same_out_is_refused_naming_the_holder(tmp_path):
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"f = open({str(tmp_path / '.lock')!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.write(f'process {os.getpid()} on testhost'); f.flush(); print('held', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = ExperimentConfig(tasks=("reach",), out_dir=str(tmp_path), progress=False)
        with pytest.raises(ValueError, match=f"in use by process {holder.pid} on testhost"):
            pipeline.run_pipeline(cfg, point_mass_suite())
    finally:
        holder.kill()
        holder.wait()


def test_out_dir_that_is_not_utf8_is_refused():
    with pytest.raises(ValueError, match="not valid UTF-8"):
        ExperimentConfig(tasks=("reach",), out_dir="runs/\udcff")


def test_an_unwritable_compilation_cache_warns_instead_of_failing(tmp_path):
    from lago_jax import runtime

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="compilation cache is off"):
        assert runtime.enable_compilation_cache(str(blocker / "cache")) is None


def test_help_lists_every_task_and_group(capsys):
    from lago_jax.experiments.metaworld import make_metaworld_suite

    parser = cli.build_parser("metaworld", ("reach-v3",), {}, task_names=lambda: make_metaworld_suite().all_task_names)
    text = parser.format_help()
    assert "tasks and groups (--task):" in text and " mt10" in text and "peg-insert-side-v3" in text


def test_backend_is_checked_and_reaches_only_suites_that_take_it():
    from lago_jax.experiments.stages import make_task_env

    with pytest.raises(ValueError, match="backend must be one of"):
        ExperimentConfig(tasks=("reach",), out_dir="x", backend="warp")
    cfg = ExperimentConfig(tasks=("reach",), out_dir="x", backend="mjx")
    with pytest.raises(ValueError, match="--backend mjx does not apply"):
        make_task_env(cfg, point_mass_suite(), "reach")
    assert make_task_env(ExperimentConfig(tasks=("reach",), out_dir="x"), point_mass_suite(), "reach") is not None


def test_experiments_recorded_before_the_backend_option_resume_on_their_engine(tmp_path, stop_after_settings):
    """A Meta-World experiment.json without "backend" ran on MJX: the default ("auto", the C engine
    on a CPU) is refused naming the engine it ran with, and --backend mjx resumes it."""
    import dataclasses
    import json

    Stop = stop_after_settings
    suite = dataclasses.replace(point_mass_suite(), name="metaworld")
    out = str(tmp_path / "old")
    cfg = ExperimentConfig(tasks=("reach",), out_dir=out, llm="random:test-tiny", progress=False)
    with pytest.raises(Stop):
        pipeline.run_pipeline(cfg, suite)
    path = tmp_path / "old" / "experiment.json"
    saved = json.loads(path.read_text())
    del saved["backend"]
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"different settings \(\['backend'\]\) \(it ran with --backend mjx\)"):
        pipeline.run_pipeline(cfg, suite)
    with pytest.raises(Stop):
        pipeline.run_pipeline(dataclasses.replace(cfg, backend="mjx"), suite)
