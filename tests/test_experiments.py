"""End-to-end tests of the LaGO pipeline (collect -> distill -> train -> evaluate -> report).

The default test runs the whole pipeline on the point-mass env with a tiny random LLM, so it
finishes in about a minute; the slow tests run the real entry points (CLEVR-Robot, Meta-World)
at a tiny budget, the CLEVR one with SmolLM2-135M.
"""

import dataclasses
import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from envs.point_mass import PointMass
from lago_jax.experiments import cli, pipeline
from lago_jax.experiments.pipeline import ExperimentConfig, Suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _expert(obs, key):
    """Point-mass expert: the move that most reduces the distance to the goal."""
    moves = jnp.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], jnp.float32)
    delta = obs[4:6]
    return jnp.argmax(moves @ delta).astype(jnp.int32)


def point_mass_suite() -> Suite:
    return Suite(name="point_mass", task_names=("reach",), make_env=lambda task: PointMass(discrete=True),
                 expert=lambda task: _expert)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pipeline"))
    cfg = ExperimentConfig(
        tasks=("reach",), out_dir=out, seeds=(0, 1), variants=pipeline.VARIANTS, num_envs=8, num_steps=16,
        num_updates=3, checkpoint_every=2, demo_episodes=16, demo_batch=16, distill_steps=30, distill_batch=32,
        distill_eval_every=10, llm="random:test-tiny", eval_episodes=8, progress=False,
    )
    result = pipeline.run_pipeline(cfg, point_mass_suite())
    return cfg, result


def test_pipeline_writes_table_plot_and_checkpoints(pipeline_run):
    cfg, result = pipeline_run
    assert os.path.exists(result["table"]) and os.path.exists(result["plot"]) and os.path.exists(result["distillation"])
    with open(result["json"]) as f:
        data = json.load(f)
    methods = {r["method"] for r in data["rows"]}
    assert {"ppo", "lago", "prior_llm", "prior_mlp"} <= methods
    for row in data["rows"]:
        assert 0.0 <= row["success_mean"] <= 1.0 and np.isfinite(row["return_mean"])
    lago = next(r for r in data["rows"] if r["method"] == "lago")
    assert lago["backbone"] == "random:test-tiny" and lago["seeds"] == 2
    with open(result["table"]) as f:
        table = f.read()
    assert "| reach | LaGO | random:test-tiny | 2 |" in table
    # The expert demonstrations are good and the distilled priors beat the uniform baseline.
    assert data["demos"]["reach"]["success_rate"] > 0.9
    for kind in ("mlp", "llm"):
        info = data["priors"][f"reach/{kind}"]
        assert info["best_val_nll"] < info["baseline_nll"], (kind, info)
        # the whole distillation record: steps run, why it stopped, the curves, the backbone
        assert info["final_step"] == cfg.distill_steps and info["stop_reason"] in ("max_steps", "early_stopping")
        assert info["best_step"] <= info["final_step"] and len(info["val_nll"]) >= 1 and info["backbone"]


def test_eval_reproduces_recorded_evaluation(pipeline_run):
    cfg, _ = pipeline_run
    with open(os.path.join(cfg.out_dir, "eval", "reach.json")) as f:
        recorded = json.load(f)["lago/seed1"]
    again = cli.eval_only(recorded["checkpoint"], point_mass_suite(), "reach", cfg.eval_episodes, cfg.eval_seed + 1)
    for k in ("return_mean", "success_rate", "step"):
        assert again[k] == recorded[k], k


def test_rerun_resumes_without_retraining(pipeline_run):
    cfg, result = pipeline_run
    mtimes = {p: os.path.getmtime(os.path.join(cfg.out_dir, "runs", "reach", v, "seed0", "done.json"))
              for p, v in (("a", "ppo"), ("b", "lago"))}
    again = pipeline.run_pipeline(cfg, point_mass_suite())
    assert again["rows"] == result["rows"]
    for p, v in (("a", "ppo"), ("b", "lago")):
        assert os.path.getmtime(os.path.join(cfg.out_dir, "runs", "reach", v, "seed0", "done.json")) == mtimes[p]


def test_changed_flags_on_existing_output_are_refused(pipeline_run):
    cfg, _ = pipeline_run
    import dataclasses

    with pytest.raises(ValueError, match="different settings"):
        pipeline.run_pipeline(dataclasses.replace(cfg, beta=0.5), point_mass_suite())


def test_unknown_task_and_missing_llm_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown point_mass task"):
        pipeline.run_pipeline(ExperimentConfig(tasks=("nope",), out_dir=str(tmp_path)), point_mass_suite())
    with pytest.raises(FileNotFoundError, match="no/such/model.gguf"):
        pipeline.load_backbone("no/such/model.gguf")


def test_mean_ci95_uses_student_t_at_every_sample_size():
    from scipy import stats
    m, h = pipeline.mean_ci95([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and h == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-4)
    assert pipeline.mean_ci95([0.5]) == (0.5, 0.0)
    rng = np.random.default_rng(0)
    for n in (2, 5, 31, 32, 100):  # past 31 values the interval is still t, not 1.96
        x = rng.normal(size=n)
        m, h = pipeline.mean_ci95(x)
        want = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)
        assert m == pytest.approx(x.mean()) and h == pytest.approx(want, rel=1e-12), n
    assert stats.t.ppf(0.975, 31) == pytest.approx(2.040, abs=1e-3)


def _cli(module, out, *extra):
    cmd = [sys.executable, "-m", module, "--out", out, "--seeds", "0", "1", "--envs", "4", "--rollout", "8",
           "--updates", "1", "--demo-episodes", "4", "--distill-steps", "2", "--eval-episodes", "2", "--no-progress",
           *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3000)


@pytest.mark.slow
def test_clevr_robot_entry_point_end_to_end(tmp_path):
    out = str(tmp_path / "clevr")
    proc = _cli("lago_jax.experiments.clevr_robot", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.exists(os.path.join(out, "results.md")) and os.path.exists(os.path.join(out, "learning_curves.png"))
    with open(os.path.join(out, "results.json")) as f:
        rows = json.load(f)["rows"]
    assert next(r for r in rows if r["method"] == "lago")["backbone"] == "smollm2-135m"
    with open(os.path.join(out, "eval", "goals.json")) as f:
        recorded = json.load(f)["ppo/seed0"]
    proc = subprocess.run([sys.executable, "-m", "lago_jax.experiments.clevr_robot", "--eval", recorded["checkpoint"],
                           "--eval-episodes", "2", "--eval-seed", "1000"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert again["return_mean"] == recorded["return_mean"] and again["success_rate"] == recorded["success_rate"]


@pytest.mark.slow
def test_metaworld_entry_point_end_to_end(tmp_path):
    out = str(tmp_path / "mw")
    proc = _cli("lago_jax.experiments.metaworld", out, "--llm", "random:test-tiny", "--episode-length", "60")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.exists(os.path.join(out, "results.md")) and os.path.exists(os.path.join(out, "learning_curves.png"))
    with open(os.path.join(out, "results.json")) as f:
        data = json.load(f)
    assert data["demos"]["reach-v3"]["success_rate"] > 0.5  # the scripted expert sees the goal


def test_cli_rejects_unknown_task(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lago_jax.experiments.clevr_robot", "--task", "bogus", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "unknown clevr_robot task(s) ['bogus']" in proc.stderr


def test_bad_ppo_settings_fail_before_any_stage(tmp_path):
    out = tmp_path / "never"
    cfg = ExperimentConfig(tasks=("reach",), out_dir=str(out), num_steps=50, num_minibatches=4)
    with pytest.raises(ValueError, match="num_minibatches=4 is invalid"):
        pipeline.run_pipeline(cfg, point_mass_suite())
    assert not out.exists()


def _main(argv, capsys):
    code = cli.main(point_mass_suite, ("reach",), {"num_updates": 3}, argv)
    return code, capsys.readouterr().err


def test_cli_refuses_repeated_seeds_and_steps_with_updates(tmp_path, capsys):
    code, err = _main(["--out", str(tmp_path / "a"), "--seeds", "0", "0"], capsys)
    assert code == 2 and "seeds [0, 0] repeat [0]" in err
    code, err = _main(["--out", str(tmp_path / "b"), "--steps", "4096", "--updates", "5"], capsys)
    assert code == 2 and "--steps 4096 and --updates 5" in err
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")


def test_cli_length_arithmetic_and_every_flag_is_a_setting(tmp_path):
    parser = cli.build_parser("point_mass", ("reach",), {"num_updates": 3})
    import dataclasses
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    # Every flag lands in ExperimentConfig except these, which the entry point handles itself (the
    # multi-process four start the processes of a run: the same experiment on any number; the
    # next four evaluate a distilled prior on your own instructions; the last three film --eval).
    assert set(vars(parser.parse_args([]))) - fields == {"out", "total_steps", "eval_dir", "debug", "coordinator",
                                                         "num_processes", "process_id", "coordinator_timeout", "eval_prior",
                                                         "instructions", "goals", "instructions_file",
                                                         "video", "video_episodes", "camera"}
    args = parser.parse_args(["--steps", "1000", "--envs", "4", "--rollout", "8"])
    assert args.total_steps // (args.num_envs * args.num_steps) == 31


def test_cli_eval_with_an_explicit_default_task_uses_it(tmp_path, capsys):
    code, err = _main(["--eval", str(tmp_path / "nothing" / "checkpoints"), "--task", "reach"], capsys)
    assert code == 2 and "pass --task" not in err and "nothing" in err


def test_same_output_dir_written_differently_is_the_same_experiment(pipeline_run, capsys):
    cfg, _ = pipeline_run
    import dataclasses
    same = dataclasses.replace(cfg, out_dir=os.path.join(cfg.out_dir, ".", ""))
    pipeline.run_pipeline(same, point_mass_suite())  # resumes: everything is done already


def test_bad_llm_is_refused_before_anything_is_written(tmp_path):
    """A wrong --llm used to surface after demonstrations and the MLP prior, with experiment.json
    already written, so the corrected command was refused as a changed setting."""
    for spec, match in (("no/such/model.gguf", "no/such/model.gguf"), ("random:no-such-preset", "no-such-preset"),
                        (str(tmp_path), "without config.json")):
        out = tmp_path / "out"
        with pytest.raises((FileNotFoundError, ValueError), match=match):
            pipeline.run_pipeline(ExperimentConfig(tasks=("reach",), out_dir=str(out), llm=spec), point_mass_suite())
        assert not out.exists()


def test_curves_come_from_update_numbers_and_skip_updates_without_episodes():
    rows = [{"update": 3, "success_rate": 0.5}, {"update": 1, "success_rate": None},
            {"update": 2, "success_rate": 0.25}, {"update": 4, "success_rate": float("nan")}]
    x, y = pipeline.seed_curve(rows, "success_rate", 100)
    np.testing.assert_array_equal(x, [200, 300])
    np.testing.assert_array_equal(y, [0.25, 0.5])


def test_mean_band_is_the_t_interval_of_the_per_seed_curves():
    from scipy import stats
    grid = np.array([100.0, 200.0, 300.0, 400.0])
    curves = [(np.array([100.0, 300.0]), np.array([0.0, 1.0])),   # interpolated at 200, held at 400
              (np.array([200.0, 400.0]), np.array([0.2, 0.6])),   # absent at 100
              (np.array([100.0, 200.0, 300.0, 400.0]), np.array([0.1, 0.3, 0.2, 0.4]))]
    mean, half, n = pipeline.mean_band(curves, grid)
    per_seed = np.array([[0.0, 0.5, 1.0, 1.0], [np.nan, 0.2, 0.4, 0.6], [0.1, 0.3, 0.2, 0.4]])
    np.testing.assert_array_equal(n, [2, 3, 3, 3])
    for g in range(4):
        col = per_seed[:, g][np.isfinite(per_seed[:, g])]
        assert mean[g] == pytest.approx(col.mean())
        assert half[g] == pytest.approx(stats.t.ppf(0.975, col.size - 1) * col.std(ddof=1) / np.sqrt(col.size))


def test_learning_curve_figure_draws_every_arm_and_the_floors(pipeline_run):
    import matplotlib.pyplot as plt
    cfg, result = pipeline_run
    fig = pipeline.curve_figure(cfg, result["rows"])
    try:
        for ax in fig.axes:
            labels = {ln.get_label(): ln for ln in ax.get_lines()}
            for variant in cfg.variants:
                label = f"{pipeline.VARIANT_LABEL[variant]} ({len(cfg.seeds)} seeds)"
                assert label in labels, (ax.get_title(), sorted(labels))
                xdata = np.asarray(labels[label].get_xdata(), float)
                assert len(xdata) >= 1 and np.all(np.diff(xdata) > 0) and xdata[-1] <= cfg.env_steps
            assert any("Random policy" in lb or "random" in lb.lower() for lb in labels)
            assert ax.get_xlabel() == "env steps"
    finally:
        plt.close(fig)


def test_variants_are_wired_as_named(pipeline_run):
    """Every prior-guided run trains with the configured beta and a positive KL to its own prior;
    vanilla PPO's beta is 0 (its KL is not even computed: no prior); the random-init backbone has
    exactly the pretrained backbone's shape."""
    from lago_jax.logging import read_jsonl
    cfg, result = pipeline_run
    for seed in cfg.seeds:
        for variant in pipeline.VARIANTS:
            rows = read_jsonl(os.path.join(cfg.out_dir, "runs", "reach", variant, f"seed{seed}", "metrics.jsonl"))
            assert [r["update"] for r in rows] == [1, 2, 3], variant
            if pipeline.VARIANT_PRIOR[variant] is None:
                assert all(r["beta"] == 0.0 and r["kl_prior"] == 0.0 for r in rows)
            else:
                assert all(r["beta"] == pytest.approx(cfg.beta) and r["kl_prior"] > 0 for r in rows), variant
    with open(result["json"]) as f:
        priors = json.load(f)["priors"]
    real, rand = priors["reach/llm"]["backbone"], priors["reach/llm_random"]["backbone"]
    assert real == cfg.llm and rand.startswith("random:") and rand != real
    shapes = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim")
    real_cfg, rand_cfg = pipeline.load_backbone(real)[0], pipeline.load_backbone(rand)[0]
    assert [getattr(real_cfg, k) for k in shapes] == [getattr(rand_cfg, k) for k in shapes]


def test_run_curve_summary_final_area_and_steps_to_level():
    from lago_jax.experiments import report
    rows = [{"update": u, "success_rate": v} for u, v in
            [(1, 0.0), (2, None), (3, 0.25), (4, 0.5), (5, 0.75), (6, 0.6), (7, 0.7), (8, 0.9), (9, 1.0), (10, 0.8)]]
    r = report.run_curve_summary(rows, steps_per_update=100, num_updates=10)
    assert r["final"] == pytest.approx(0.8)  # the last 10% of 10 updates: update 10
    assert r["area"] == pytest.approx(np.mean([0.0, 0.25, 0.5, 0.75, 0.6, 0.7, 0.9, 1.0, 0.8]))
    assert r["steps_to_level"] == 400.0  # update 4 first reaches 0.5
    assert report.run_curve_summary(rows, 100, 10, level=0.2)["steps_to_level"] == 300.0
    never = report.run_curve_summary([{"update": 1, "success_rate": 0.1}], 100, 1)
    assert never["steps_to_level"] is None and never["final"] == pytest.approx(0.1)
    assert report.run_curve_summary([{"update": 1, "success_rate": None}], 100, 1) is None
    assert "kl_start" not in r  # no prior: no KL term


def test_start_kl_is_the_first_updates_kl_and_its_share_of_the_loss():
    from lago_jax.experiments import report
    rows = [{"update": u, "success_rate": 0.0, "kl_prior": kl, "beta": 0.01, "total_loss": loss}
            for u, kl, loss in [(1, 20.0, 1.0), (2, 10.0, -2.0), (3, 30.0, 0.5), (4, 1e6, 1.0)]]
    r = report.start_kl(rows, updates=3)
    assert r["kl_start"] == pytest.approx(20.0)
    assert r["kl_share"] == pytest.approx(np.mean([0.2 / 1.0, 0.1 / 2.0, 0.3 / 0.5]))
    assert report.run_curve_summary(rows, 100, 4)["kl_start"] == pytest.approx(np.mean([20, 10, 30, 1e6]))
    assert report.start_kl([dict(row, beta=0.0) for row in rows]) == {}  # vanilla PPO logs beta 0


def test_results_table_carries_the_curve_summary(pipeline_run):
    cfg, result = pipeline_run
    from lago_jax.experiments import report
    curves = report.curve_summaries(cfg)
    assert {c["method"] for c in curves} <= set(cfg.variants)
    for c in curves:
        assert 0.0 <= c["final_mean"] <= 1.0 and 0.0 <= c["area_mean"] <= 1.0 and c["seeds"] <= len(cfg.seeds)


def test_sweep_table_over_run_directories(pipeline_run, tmp_path, capsys):
    from lago_jax.experiments import sweep

    cfg, _ = pipeline_run
    differ, rows = sweep.sweep_rows([cfg.out_dir])
    assert differ == [] and {r["method"] for r in rows} == set(cfg.variants)
    assert all(r["seeds"] == len(cfg.seeds) and 0.0 <= r["curve"]["area_mean"] <= 1.0 for r in rows)
    out = tmp_path / "sweep.md"
    assert sweep.main([cfg.out_dir, "--out", str(out)]) == 0
    text = out.read_text()
    assert "| LaGO |" in text and "area under success curve" in text and text == capsys.readouterr().out
    lago = next(r for r in rows if r["method"] == "lago")
    assert lago["curve"]["kl_start"] > 0.0 and f"{lago['curve']['kl_start']:.1f} (" in text
    assert sweep.main([str(tmp_path / "nothing")]) == 2
    assert "is not a finished pipeline run" in capsys.readouterr().err


def test_group_trains_one_multitask_policy_reported_per_task_and_averaged(tmp_path):
    """A suite group (``--task mt10`` on Meta-World) through the whole pipeline, on two point-mass
    tasks: one pre-batched multi-task env, demonstrations of both, per-task training metrics,
    evaluation per member task and the members' mean."""
    suite = Suite(name="point_mass", task_names=("left", "right"), make_env=lambda task: PointMass(discrete=True),
                  expert=lambda task: _expert, groups={"both": ("left", "right")})
    cfg = ExperimentConfig(tasks=("both",), out_dir=str(tmp_path / "out"), seeds=(0, 1),
                           variants=("ppo", "ppo_mlp_prior"), num_envs=8, num_steps=16, num_updates=2,
                           checkpoint_every=2, demo_episodes=4, demo_batch=4, distill_steps=4, distill_batch=16,
                           distill_eval_every=2, llm="random:test-tiny", eval_episodes=4, progress=False)
    pipeline.run_pipeline(cfg, suite)
    with open(os.path.join(cfg.out_dir, "results.json")) as f:
        data = json.load(f)
    assert data["demos"]["both"]["episodes"] == 8  # demo_episodes of each member task
    rows = {(r["task"], r["method"]): r for r in data["rows"]}
    for method in ("ppo", "ppo_mlp_prior", "random", "prior_mlp", "prior_llm"):
        assert {("both/left", method), ("both/right", method), ("both", method)} <= set(rows), method
    with open(os.path.join(cfg.out_dir, "eval", "both.json")) as f:
        recorded = json.load(f)
    evals = {m: {k: r["tasks"][m] for k, r in recorded.items()} for m in ("left", "right")}
    for variant in ("ppo", "ppo_mlp_prior"):
        per_seed = [np.mean([evals[m][f"{variant}/seed{s}"]["success_rate"] for m in evals]) for s in cfg.seeds]
        assert rows[("both", variant)]["success_mean"] == pytest.approx(np.mean(per_seed))
    assert rows[("both", "random")]["return_mean"] == pytest.approx(
        np.mean([evals[m]["random"]["return_mean"] for m in evals]))
    with open(os.path.join(cfg.out_dir, "runs", "both", "ppo", "seed0", "metrics.jsonl")) as f:
        last = json.loads(f.readlines()[-1])
    assert {"episodes/left", "episodes/right"} <= set(last)
    # The checkpoint reloads through --eval as the multi-task policy it is.
    ckpt = os.path.join(cfg.out_dir, "runs", "both", "ppo", "seed0")
    r = cli.eval_only(ckpt, suite, None, episodes=4, seed=1000)  # the pipeline evaluated seed 0 with 1000 + 0
    assert set(r["tasks"]) == {"left", "right"}
    assert r["tasks"]["left"]["return_mean"] == evals["left"]["ppo/seed0"]["return_mean"]
    with pytest.raises(ValueError, match="--envs 7 must be a multiple of the 2 tasks of 'both'"):
        pipeline.make_task_env(dataclasses.replace(cfg, num_envs=7), suite, "both")


def test_experiment_and_cli_defaults_are_the_library_defaults():
    """Every PPO setting an experiment shares with ``PPOConfig`` has ``PPOConfig``'s default unless
    ``PPO_DEFAULT_DIFFERS`` says why not; the command line (before a suite's own ``DEFAULTS``)
    defaults to ``ExperimentConfig``'s; the KL flags offer ``PPOConfig``'s choices."""
    from lago_jax.experiments.config import PPO_DEFAULT_DIFFERS, PPO_NAMES
    from lago_jax.ppo.config import KL_DIRECTIONS, KL_SCHEDULES, PPOConfig

    ppo = {f.name: f.default for f in dataclasses.fields(PPOConfig)}
    exp = {f.name: f.default for f in dataclasses.fields(ExperimentConfig) if f.default is not dataclasses.MISSING}
    shared = {name: PPO_NAMES.get(name, name) for name in exp if PPO_NAMES.get(name, name) in ppo}
    assert set(PPO_NAMES) <= set(shared) and len(shared) == 22
    assert {name for name, p in shared.items() if exp[name] != ppo[p]} == set(PPO_DEFAULT_DIFFERS)

    parser = cli.build_parser("point_mass", ("reach",), {})
    args = parser.parse_args([])
    flags = {name: getattr(args, name) for name in exp if hasattr(args, name) and name != "num_updates"}
    # checkpoint_every has no flag (ExperimentConfig's or the suite's); --updates is None until
    # main resolves it to ExperimentConfig's or the suite's
    assert set(shared) - set(flags) == {"num_updates", "checkpoint_every"} and args.num_updates is None
    for name, v in flags.items():
        assert (tuple(v) if isinstance(v, list) else v) == exp[name], name
    choices = {a.dest: a.choices for a in parser._actions}
    assert list(choices["schedule"]) == list(KL_SCHEDULES) and list(choices["kl_direction"]) == list(KL_DIRECTIONS)
    ppo_cfg = ExperimentConfig(tasks=("reach",), out_dir="x").ppo_config("ppo", 3)
    for name, p in shared.items():
        if name not in PPO_DEFAULT_DIFFERS and name not in ("beta", "beta_final"):  # unguided: KL weights 0
            assert getattr(ppo_cfg, p) == ppo[p], name
