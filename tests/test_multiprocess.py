"""Multi-process data parallelism on JAX's distributed runtime (CPU collectives through gloo):
two processes with one CPU device each train PPO and distil a prior like one process with two
devices, and a two-process PPO run stopped midway resumes, in a fresh pair of processes, to the
uninterrupted result. The experiment pipeline, started through its command line on two processes,
gives the results of one process with two devices, with one copy of every file.

Each run is a pair of subprocesses on localhost (``lago_jax.parallel.initialize``); the
reference is one subprocess with two forced host devices. Point-mass env, a few updates.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPDATES = 4


def _config():
    from lago_jax.ppo import PPOConfig

    return PPOConfig(num_envs=8, num_steps=8, num_updates=UPDATES, num_minibatches=2, update_epochs=2,
                     hidden_sizes=(16, 16), episode_length=10, checkpoint_every=2, kl_coef=0.1)


def child(mode: str, out: str, process_id: int, num_processes: int, port: int) -> None:
    sys.path.insert(0, ROOT)
    from lago_jax import parallel, runtime

    if num_processes > 1:
        assert parallel.initialize(f"localhost:{port}", num_processes, process_id)
    else:
        runtime.set_xla_flags(("--xla_force_host_platform_device_count=2",))
    runtime.enable_compilation_cache(os.environ.get("LAGO_JAX_CACHE_DIR"))
    import jax
    import jax.numpy as jnp

    from envs.point_mass import PointMass
    from lago_jax.distributions import DiagGaussian
    from lago_jax.ppo import make_train, run

    class Prior:
        def apply(self, prior_params, obs, instruction_id):
            mean = obs[:, :2] @ prior_params["w"]
            return DiagGaussian(mean, jnp.broadcast_to(prior_params["log_std"], mean.shape))

    assert jax.device_count() == 2 and jax.process_count() == num_processes
    env, cfg, mesh = PointMass(discrete=False), _config(), parallel.make_mesh()
    prior_params = {"w": jnp.eye(2) * 0.5, "log_std": jnp.full((2,), -0.5)}
    result = {}
    if mode == "train":
        out_train = make_train(cfg, env, Prior(), mesh=mesh)(jax.random.PRNGKey(cfg.seed), prior_params)  # run() seeds so
        result["train"] = [np.asarray(x).tolist() for x in jax.tree.leaves(out_train.state.params)]
        result["kl"] = np.asarray(out_train.metrics["kl_prior"]).tolist()
        full = run(cfg, env, os.path.join(out, "full"), Prior(), prior_params, mesh=mesh, progress=False)
        result["full"] = [np.asarray(x).tolist() for x in jax.tree.leaves(full.state.params)]
        run(cfg, env, os.path.join(out, "stopped"), Prior(), prior_params, mesh=mesh, progress=False,
            stop_after=UPDATES // 2)
        # distillation of a prior, data-parallel over the same devices, with its checkpoints
        from lago_jax.prior import DistillConfig, distill
        from tests.prior_testing import mlp_prior, synthetic_demos

        prior = mlp_prior("categorical")
        dcfg = DistillConfig(lr=3e-3, batch_size=64, max_steps=10, eval_every=5, patience=0, val_fraction=0.15,
                             progress=False)
        dparams, dres = distill(prior, prior.init(jax.random.key(0)), synthetic_demos("categorical"), dcfg,
                                os.path.join(out, "prior"))
        result["distill"] = [np.asarray(x).tolist() for x in jax.tree.leaves(dparams.trainable)]
        result["val_nll"] = [v for _, v in dres.val_nll]
    else:  # a fresh set of processes resumes the stopped run
        resumed = run(cfg, env, os.path.join(out, "stopped"), Prior(), prior_params, mesh=mesh, progress=False)
        result["resumed"] = [np.asarray(x).tolist() for x in jax.tree.leaves(resumed.state.params)]
    if parallel.is_main_process():
        with open(os.path.join(out, f"{mode}-{num_processes}.json"), "w") as f:
            json.dump(result, f)


PIPELINE_ARGV = ("--seeds", "0", "--variants", "ppo", "ppo_mlp_prior", "--envs", "8", "--rollout", "16",
                 "--updates", "2", "--epochs", "2", "--minibatches", "2", "--hidden", "16", "16",
                 "--demo-episodes", "16", "--distill-steps", "6", "--distill-batch", "32", "--llm",
                 "random:test-tiny", "--eval-episodes", "8", "--no-progress")
"""The pipeline at a tiny budget: one task, one seed, PPO and PPO + MLP prior (the MLP and LLM priors
are distilled, the LLM a tiny random one)."""
PIPELINE_DEFAULTS = dict(checkpoint_every=2, demo_batch=16, distill_eval_every=3)


def pipeline_child(out: str, process_id: int, num_processes: int, port: int) -> None:
    """The point-mass pipeline through ``main``: with the three multi-process flags, or on one
    process with two forced CPU devices."""
    sys.path.insert(0, ROOT)
    from lago_jax import runtime

    argv = ["--out", out, *PIPELINE_ARGV]
    if num_processes > 1:
        argv += ["--coordinator", f"localhost:{port}", "--num-processes", str(num_processes),
                 "--process-id", str(process_id)]
    else:
        runtime.set_xla_flags(("--xla_force_host_platform_device_count=2",))
    from lago_jax.experiments import cli
    from tests.test_experiments import point_mass_suite

    code = cli.main(point_mass_suite, ("reach",), PIPELINE_DEFAULTS, argv)
    import jax

    assert jax.device_count() == 2 and jax.process_count() == num_processes
    sys.exit(code)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _spawn(mode: str, out: str, num_processes: int) -> list[subprocess.Popen]:
    """Start ``child`` (or ``pipeline_child``) as ``num_processes`` processes on a free port."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process unless the child forces two
    port = _free_port()
    return [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", mode, out, str(i),
                              str(num_processes), str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(num_processes)]


def _finish(procs: list[subprocess.Popen]) -> list[tuple[str, str]]:
    """Wait for the processes; their (stdout, stderr), each having exited with 0."""
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def _launch(mode: str, out: str, num_processes: int) -> dict:
    _finish(_spawn(mode, out, num_processes))
    with open(os.path.join(out, f"{mode}-{num_processes}.json")) as f:
        return json.load(f)


def _max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def test_two_processes_equal_one_process_with_two_devices_and_resume(tmp_path):
    one = _launch("train", str(tmp_path / "one"), 1)
    two = _launch("train", str(tmp_path / "two"), 2)
    resumed = _launch("resume", str(tmp_path / "two"), 2)
    diffs = dict(train=_max_diff(one["train"], two["train"]), kl=_max_diff([one["kl"]], [two["kl"]]),
                 run=_max_diff(two["full"], two["train"]), resumed=_max_diff(resumed["resumed"], two["full"]),
                 distill=_max_diff(one["distill"], two["distill"]), val_nll=_max_diff([one["val_nll"]], [two["val_nll"]]))
    print(diffs)
    assert diffs["train"] < 1e-6 and diffs["kl"] < 1e-6  # float summation order only
    assert diffs["run"] < 1e-6  # the checkpointed host loop equals the one-program run
    assert diffs["resumed"] == 0.0  # stopped at update 2 in one pair of processes, resumed in another
    assert diffs["distill"] < 1e-5 and diffs["val_nll"] < 1e-5  # distillation: the same steps
    # only process 0 wrote the logs; the checkpoints hold every step of both runs
    assert os.path.exists(tmp_path / "two" / "full" / "metrics.csv")
    assert sorted(os.listdir(tmp_path / "two" / "stopped" / "checkpoints"))[-1] == str(UPDATES)


def _numbers_apart(a, b, where: str = "") -> list[str]:
    """Where two JSON trees differ: structure, strings, or numbers more than 1e-5 apart. Timings
    (``seconds``, ``seconds_per_step``, ``timings``) and the output directory are not compared."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        skip = ("seconds", "seconds_per_step", "timings", "out_dir")
        return [d for k in a if k not in skip for d in _numbers_apart(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _numbers_apart(x, y, f"{where}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if np.isnan(a) and np.isnan(b) or abs(a - b) <= 1e-5:
            return []
        return [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _files(out: str) -> set[str]:
    """Every file under ``out`` except inside Orbax checkpoints (whose layout has per-process parts).

    TensorBoard names its event files after the wall-clock second and host, so those names are
    reduced to their stem: one event file per run is what must match."""
    found = set()
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if d != "checkpoints"]
        for f in files:
            name = "events.out.tfevents" if f.startswith("events.out.tfevents.") else f
            found.add(os.path.relpath(os.path.join(root, name), out))
    return found


def test_pipeline_on_two_processes_equals_one_process_with_two_devices(tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    reference, pair = _spawn("pipeline", one, 1), _spawn("pipeline", two, 2)  # all three at once
    _finish(reference)
    (out0, _), (out1, _) = _finish(pair)
    with open(os.path.join(one, "results.json")) as f:
        want = json.load(f)
    with open(os.path.join(two, "results.json")) as f:
        got = json.load(f)
    assert {r["method"] for r in got["rows"]} == {"ppo", "ppo_mlp_prior", "random", "prior_mlp", "prior_llm"}
    assert _numbers_apart(want, got) == []
    # one copy of every file, written by process 0 (no half-written leftovers), and its logs only
    assert _files(two) == _files(one) and not any(f.endswith(".tmp") for f in _files(two))
    assert "[lago" in out0 and out0.count("# point_mass: results") == 1
    assert "[lago" not in out1 and "results" not in out1


def test_cli_multiprocess_flags_go_together(tmp_path, capsys):
    from tests.test_experiments import point_mass_suite
    from lago_jax.experiments import cli

    code = cli.main(point_mass_suite, ("reach",), {}, ["--out", str(tmp_path / "x"), "--coordinator", "h:1"])
    err = capsys.readouterr().err
    assert code == 2 and "missing --num-processes and --process-id" in err and len(err.splitlines()) == 2
    assert not os.path.exists(tmp_path / "x")


if __name__ == "__main__" and "--child" in sys.argv:
    i = sys.argv.index("--child")
    mode, out, pid, n, port = sys.argv[i + 1:i + 6]
    if mode == "pipeline":
        pipeline_child(out, int(pid), int(n), int(port))
    else:
        child(mode, out, int(pid), int(n), int(port))
