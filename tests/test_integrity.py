"""Integrity of what is read back: checkpoints and the converted-weights cache carry a SHA-256 of
their arrays, a damaged cache entry is converted again, concurrent conversions do not collide, a
model folder's FIFO is never opened, non-finite or missing weights are named before anything of
the config's size is allocated, and a resumed experiment notices a model replaced at its path."""

import json
import os
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lago_jax import llm
from lago_jax.checkpoint import Checkpointer
from lago_jax.errors import CheckpointError
from lago_jax.llm import checkpoint as llm_checkpoint

from llm_fixtures import MHA_TIED, make_hf_model, save_hf_model

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return save_hf_model(make_hf_model(MHA_TIED, seed=5), str(tmp_path_factory.mktemp("m") / "model"), MHA_TIED)


def _largest_file(directory):
    files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]
    return max(files, key=os.path.getsize)


def _flip(path, n=16):
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    for i in range(n):
        data[mid + i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_a_flipped_checkpoint_is_refused_naming_it(tmp_path):
    """Before the digest, 16 flipped bytes restored silently as other numbers."""
    ck = Checkpointer(str(tmp_path / "ck"))
    state = {"w": jnp.arange(4096, dtype=jnp.float32).reshape(64, 64), "b": jnp.ones(64)}
    ck.save(1, state, {"a": 1})
    abstract = jax.eval_shape(lambda: state)
    restored = ck.restore_state(1, abstract)
    np.testing.assert_array_equal(restored["w"], state["w"])
    _flip(_largest_file(os.path.join(ck.step_path(1), "state")))
    with pytest.raises(CheckpointError, match=f"{ck.step_path(1)}: its state does not match the SHA-256"):
        ck.restore_state(1, abstract)


def test_a_damaged_cache_entry_is_converted_again(hf_dir, tmp_path):
    cache = str(tmp_path / "cache")
    _, params, _ = llm.load_pretrained(hf_dir, cache_dir=cache)
    (entry,) = os.listdir(cache)
    entry = os.path.join(cache, entry)
    with open(os.path.join(entry, "config.json")) as f:
        assert len(json.load(f)["params_sha256"]) == 64
    # A flipped bit: detected by the digest, not served as other weights.
    _flip(_largest_file(os.path.join(entry, "params")))
    with pytest.warns(UserWarning, match="cannot be used .*converting again"):
        _, again, _ = llm.load_pretrained(hf_dir, cache_dir=cache)
    jax.tree.map(np.testing.assert_array_equal, again, params)
    # A missing part: the Orbax error becomes one warning, and the entry is rebuilt.
    import shutil
    shutil.rmtree(os.path.join(entry, "params"))
    with pytest.warns(UserWarning, match="cannot be used"):
        _, again, _ = llm.load_pretrained(hf_dir, cache_dir=cache)
    jax.tree.map(np.testing.assert_array_equal, again, params)
    assert os.listdir(cache) == [os.path.basename(entry)]  # nothing left beside it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm.load_pretrained(hf_dir, cache_dir=cache)  # healthy again: no warning


def test_two_conversions_at_once_share_one_entry(hf_dir, tmp_path):
    """Two first-time conversions of one model by two runs used to write into the same folder
    (Orbax NOT_FOUND on its temporary folder): now each writes its own and the first rename wins."""
    import subprocess
    import sys

    cache = str(tmp_path / "cache")
    code = ("import sys, numpy as np; from lago_jax import llm; "
            "_, p, _ = llm.load_pretrained(sys.argv[1], cache_dir=sys.argv[2]); "
            "print(float(np.asarray(p['embed']).sum()))")
    procs = [subprocess.Popen([sys.executable, "-c", code, hf_dir, cache], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert outs[0][0] == outs[1][0]
    assert len(os.listdir(cache)) == 1
    # A finished entry is kept when another writer arrives late.
    config, params, tok = llm.load_pretrained(hf_dir)
    (entry,) = os.listdir(cache)
    llm.save_converted(os.path.join(cache, entry), config, params, tok)
    assert os.listdir(cache) == [entry]


def test_a_fifo_in_the_model_folder_is_never_opened(hf_dir, tmp_path):
    import shutil
    model = str(tmp_path / "model")
    shutil.copytree(hf_dir, model)
    os.mkfifo(os.path.join(model, "notes.json"))
    done = []
    t = threading.Thread(target=lambda: done.append(llm_checkpoint.source_fingerprint(model)), daemon=True)
    t.start()
    t.join(timeout=30)
    assert done, "source_fingerprint blocked on a FIFO"
    os.unlink(os.path.join(model, "notes.json"))
    assert llm_checkpoint.source_fingerprint(model) == done[0]  # the FIFO was not part of it


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    model = make_hf_model(MHA_TIED, seed=6)
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3, 4] = float("nan")
    path = save_hf_model(model, str(tmp_path / "nan"), MHA_TIED)
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.up_proj\.weight' holds 1 non-finite"):
        llm.load_pretrained(path)


def test_a_config_with_more_layers_than_the_file_is_refused_before_allocating(hf_dir, tmp_path):
    """num_hidden_layers = 10**9 used to allocate the stacked layers first (168 GiB)."""
    import shutil
    model = str(tmp_path / "huge")
    shutil.copytree(hf_dir, model)
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    cfg["num_hidden_layers"] = 10**9
    with open(os.path.join(model, "config.json"), "w") as f:
        json.dump(cfg, f)
    with pytest.raises(ValueError, match=r"missing tensors for .*layers \[2, 3, 4, 5, 6, 7, 8, 9\] and 999999990 more"):
        llm.load_pretrained(model)


def test_random_backbone_seeds_outside_32_bits_are_refused():
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\), got 4294967296"):
        llm.load_pretrained("random:test-tiny:4294967296")
    with pytest.raises(ValueError, match="got -1"):
        llm.load_pretrained("random:test-tiny:-1")


def test_a_resumed_experiment_notices_a_model_replaced_at_its_path(hf_dir, tmp_path, stop_after_settings):
    import shutil

    from lago_jax.experiments import pipeline
    from lago_jax.experiments.config import ExperimentConfig
    from tests.test_experiments import point_mass_suite

    model = str(tmp_path / "model")
    shutil.copytree(hf_dir, model)

    Stop = stop_after_settings
    cfg = ExperimentConfig(tasks=("reach",), out_dir=str(tmp_path / "out"), llm=model, progress=False)
    with pytest.raises(Stop):
        pipeline.run_pipeline(cfg, point_mass_suite())
    with open(os.path.join(cfg.out_dir, "experiment.json")) as f:
        assert set(json.load(f)["weights_fingerprint"]) == {"llm"}
    with pytest.raises(Stop):  # the same files: resumes
        pipeline.run_pipeline(cfg, point_mass_suite())
    other = make_hf_model(MHA_TIED, seed=7)
    shutil.rmtree(model)
    save_hf_model(other, model, MHA_TIED)
    with pytest.raises(ValueError, match=f"the model behind --llm '{model}' changed since this experiment started"):
        pipeline.run_pipeline(cfg, point_mass_suite())


def test_a_process_without_its_coordinator_fails_in_one_line_after_the_timeout(tmp_path):
    """--process-id 1 with no process 0 used to wait silently, then the runtime aborted the
    process with a C++ stack trace."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lago_jax.experiments.clevr_robot", "--out", str(tmp_path / "x"),
         "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1",
         "--coordinator-timeout", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and time.monotonic() - t0 < 60
    assert f"error: RuntimeError: no coordinator answers at 127.0.0.1:{port} after 2 s" in proc.stderr
    assert "Traceback" not in proc.stderr and "Check failure" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_during_the_c_engine_stops_at_a_checkpoint_and_resumes(tmp_path):
    """SIGINT while CLEVR-Robot's C engine steps inside the compiled PPO update used to surface as
    an XLA runtime error with a traceback (once a segfault): it now stops after the next
    checkpoint and exits 130 (resuming from a checkpoint is held by tests/test_checkpoint.py)."""
    import signal
    import subprocess
    import sys
    import time

    out = str(tmp_path / "run")
    cmd = [sys.executable, "-u", "-m", "lago_jax.experiments.clevr_robot", "--out", out, "--seeds", "0",
           "--envs", "4", "--rollout", "8", "--updates", "400",
           "--episode-length", "20", "--demo-episodes", "2", "--distill-steps", "2", "--eval-episodes", "2",
           "--variants", "ppo", "--llm", "random:test-tiny", "--no-progress", "--no-tensorboard"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "goals/ppo/seed0: PPO" in line:
            break
    ckpts = os.path.join(out, "runs", "goals", "ppo", "seed0", "checkpoints")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts))):
        time.sleep(0.2)  # the update is compiled and running: the C engine steps inside it
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    text = "".join(lines) + rest
    assert proc.returncode == 130, text
    assert "interrupt: stopping after the current step's checkpoint" in text
    assert "interrupted: rerun the same command to resume" in text
    assert "Traceback" not in text and "Check failure" not in text and "XlaRuntimeError" not in text
    steps = sorted(int(n) for n in os.listdir(ckpts) if n.isdigit())
    assert steps and steps[-1] < 400


def test_checkpoint_writer_thread_tracebacks_are_not_printed(capsys):
    """A full disk during an Orbax save used to print each writer thread's traceback (240-390
    lines) before the one-line error; the entry points now drop those records (--debug keeps
    them). Other absl records still print."""
    import logging
    import sys

    from lago_jax.experiments import cli

    logger = logging.getLogger("absl")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        cli._quiet_checkpoint_threads()
        cli._quiet_checkpoint_threads()  # idempotent
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            logger.error("[process=0][thread=np_type_handler] _SignalingThread.run() raised an exception: "
                         "RESOURCE_EXHAUSTED", exc_info=True)
        logger.error("something else")
    finally:
        logger.removeHandler(handler)
        for f in [f for f in logger.filters if isinstance(f, cli._CheckpointThreadFilter)]:
            logger.removeFilter(f)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RESOURCE_EXHAUSTED" not in err and "something else" in err


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_resumes(tmp_path):
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        cmd = [sys.executable, "-m", "lago_jax.experiments.clevr_robot", "--out", str(disk / "run"), "--seeds", "0",
               "--envs", "4", "--rollout", "8", "--updates", "40", "--episode-length", "20", "--demo-episodes", "2",
               "--distill-steps", "2", "--eval-episodes", "2", "--variants", "ppo", "--llm", "random:test-tiny",
               "--no-progress", "--no-tensorboard"]
        full = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert full.returncode == 2 and ("No space left on device" in full.stderr or "RESOURCE_EXHAUSTED" in full.stderr)
        assert "Traceback" not in full.stderr and len(full.stderr.splitlines()) <= 4, full.stderr
        subprocess.run(["mount", "-o", "remount,size=64M", str(disk)], check=True)
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
