"""The language protocol: goals that reach the prior through language alone, KALM-style splits, the
text MLP prior, demonstrations from the train split, and your own instructions end to end.

One tiny CLEVR-Robot pipeline run (random tiny backbone, a few steps of everything) is shared by the
tests that read its outputs.
"""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.clevr_robot import ClevrRobot
from envs.clevr_robot import instructions as lang
from envs.clevr_robot import splits as clevr_splits
from envs.clevr_robot.env import GOAL_FEATURES
from lago_jax.experiments import cli, pipeline
from lago_jax.experiments.clevr_robot import make_clevr_robot_suite
from lago_jax.experiments.pipeline import ExperimentConfig
from lago_jax.prior import LLMPrior, MLPPrior, with_instructions
from prior_testing import tiny_llm

KEEP = tuple(i for i in range(24) if i not in GOAL_FEATURES)


def _words(texts):
    return {w for t in texts for w in re.findall(r"[a-z']+", t.lower())}


# ----------------------------------------------------------------------------- splits


def test_splits_are_disjoint_deterministic_and_cover_the_train_vocabulary():
    a, b, other = clevr_splits.make_split(0), clevr_splits.make_split(0), clevr_splits.make_split(1)
    assert a == b and a != other
    assert set(a.train_goals).isdisjoint(a.heldout_goals)
    assert sorted(a.train_goals + a.heldout_goals) == list(range(lang.NUM_GOALS))
    assert len(a.heldout_goals) == clevr_splits.DEFAULT_HELDOUT
    assert set(a.train_templates).isdisjoint(a.heldout_templates)
    texts = {s: set(a.instructions(s)) for s in clevr_splits.SPLITS}
    for s, t in ((x, y) for x in texts for y in texts if x < y):
        assert texts[s].isdisjoint(texts[t]), (s, t)
    # Every colour in both roles, every direction, every ordered pair stays in training.
    train = lang.GOALS[list(a.train_goals)]
    assert set(train[:, 0]) == set(train[:, 1]) == set(range(len(lang.COLORS)))
    assert set(train[:, 2]) == set(range(len(lang.DIRECTIONS)))
    assert len({(s, d) for s, d, _ in train}) == clevr_splits.NUM_PAIRS
    held = lang.GOALS[list(a.heldout_goals)]
    assert np.bincount(held[:, 2], minlength=4).tolist() == [4, 4, 4, 4]  # balanced directions
    # Unseen goals with train templates use only words the train split has.
    assert _words(texts["unseen"]) <= _words(texts["train"])
    assert not _words(texts["rephrase"]) <= _words(texts["train"])  # held-out phrasings bring new words
    assert clevr_splits.GoalSplit.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(ValueError, match="num_heldout"):
        clevr_splits.make_split(0, 21)
    with pytest.raises(ValueError, match="unknown split"):
        a.goals("test")


def test_split_env_banks_only_its_goals():
    split = clevr_splits.make_split(0)
    env = ClevrRobot(**split.env_kwargs("unseen"))
    assert env.instructions == split.instructions("unseen")
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 64))
    gids = np.asarray(states.info["goal_id"])
    assert set(gids) <= set(split.heldout_goals)
    for gid, iid in zip(gids, np.asarray(states.info["instruction_id"])):
        assert env.instructions[iid] in {lang.render(t, lang.GOALS[gid]) for t in split.train_templates}
    assert clevr_splits.parse_goal("red, blue ,LEFT") == lang.goal_id(0, 1, 1)
    for bad in ("red,red,left", "red,blue", "pink,blue,left"):
        with pytest.raises(ValueError, match="goal"):
            clevr_splits.parse_goal(bad)


# ----------------------------------------------------------------------------- priors


@pytest.fixture(scope="module")
def tiny():
    return tiny_llm()


def _priors(tiny):
    config, llm_params, tok = tiny
    texts = ("Push the red ball to the left of the blue ball.", "Put the green ball behind the cyan ball.")
    space = ClevrRobot(templates=1).action_space
    llm = LLMPrior.from_instructions(config, tok, texts, 24, space, obs_keep=KEEP)
    mlp = MLPPrior.from_instructions(texts, 24, space, tokenizer=tok, obs_keep=KEEP)
    out = {"llm": (llm, llm.init(jax.random.key(1), llm_params)), "mlp": (mlp, mlp.init(jax.random.key(2)))}
    # Train-like weights: make the text MLP's token embeddings non-zero so that words matter.
    p = out["mlp"][1]
    emb = jax.random.normal(jax.random.key(3), p.trainable["text"]["token_embed"].shape)
    out["mlp"] = (mlp, p.with_trainable({**p.trainable, "text": {**p.trainable["text"], "token_embed": emb}}))
    return out, tok


@pytest.mark.parametrize("kind", ["llm", "mlp"])
def test_goal_features_do_not_reach_the_prior_but_the_instruction_does(tiny, kind):
    priors, _ = _priors(tiny)
    prior, params = priors[kind]
    obs = jax.random.normal(jax.random.key(0), (6, 24))
    other_goal = obs.at[:, 10:24].set(jax.random.uniform(jax.random.key(9), (6, 14)))
    iid = jnp.zeros(6, jnp.int32)
    base = prior.apply(params, obs, iid).logits
    np.testing.assert_array_equal(np.asarray(prior.apply(params, other_goal, iid).logits), np.asarray(base))
    changed = prior.apply(params, obs, jnp.ones(6, jnp.int32)).logits
    assert float(jnp.max(jnp.abs(changed - base))) > 1e-6
    moved = prior.apply(params, obs.at[:, 0].add(1.0), iid).logits  # ball positions still matter
    assert float(jnp.max(jnp.abs(moved - base))) > 1e-6


def test_text_mlp_takes_an_instruction_it_never_saw(tiny):
    priors, tok = _priors(tiny)
    prior, params = priors["mlp"]
    unseen = ["Shove the red ball so that it ends up left of the blue one, please."]
    p2, pp2 = with_instructions(prior, params, tok, unseen)
    assert p2.instructions == tuple(unseen) and p2.num_instructions == 1
    out = p2.apply(pp2, jnp.zeros((3, 24)), jnp.zeros(3, jnp.int32)).logits
    assert out.shape == (3, 40) and bool(jnp.all(jnp.isfinite(out)))
    # the same weights: on a bank holding an old instruction the output is unchanged
    p3, pp3 = with_instructions(prior, params, tok, [prior.instructions[1]])
    np.testing.assert_allclose(np.asarray(p3.apply(pp3, jnp.ones((2, 24)), jnp.zeros(2, jnp.int32)).logits),
                               np.asarray(prior.apply(params, jnp.ones((2, 24)), jnp.ones(2, jnp.int32)).logits),
                               rtol=1e-5, atol=1e-6)
    # an id-input MLP cannot, and says so
    id_mlp = MLPPrior.from_instructions(prior.instructions, 24, ClevrRobot(templates=1).action_space)
    with pytest.raises(ValueError, match="instruction ids"):
        with_instructions(id_mlp, id_mlp.init(jax.random.key(0)), tok, unseen)


def test_llm_prior_over_a_new_bank_equals_the_uncached_forward(tiny):
    priors, tok = _priors(tiny)
    prior, params = priors["llm"]
    p2, pp2 = with_instructions(prior, params, tok, ["Roll the purple ball in front of the red ball.",
                                                     prior.instructions[0]])
    obs = jax.random.normal(jax.random.key(4), (2, 24))
    iid = jnp.array([0, 1], jnp.int32)
    np.testing.assert_allclose(np.asarray(p2.apply(pp2, obs, iid).logits),
                               np.asarray(p2.apply_uncached(pp2, obs, iid).logits), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(p2.apply(pp2, obs, iid).logits[1]),
                               np.asarray(prior.apply(params, obs[1:], iid[:1]).logits[0]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="obs_keep"):
        LLMPrior.from_instructions(tiny[0], tok, ["a"], 24, ClevrRobot(templates=1).action_space, obs_keep=(0, 24))


# ----------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def language_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("language"))
    cfg = ExperimentConfig(
        tasks=("goals",), out_dir=out, seeds=(0, 1), num_envs=8, num_steps=8, num_updates=2, checkpoint_every=2,
        episode_length=10, demo_episodes=64, demo_batch=64, demo_episode_length=16, distill_steps=20,
        distill_batch=32, distill_eval_every=10, llm="random:test-tiny", eval_episodes=8, progress=False,
        protocol="language", split_demo_episodes=16, prior_eval_episodes=16, cached_reset=True,
    )
    result = pipeline.run_pipeline(cfg, make_clevr_robot_suite())
    return cfg, result


def test_language_pipeline_reports_every_split(language_run):
    cfg, result = language_run
    with open(result["json"]) as f:
        data = json.load(f)
    lang_out = data["language"]["goals"]
    saved = json.load(open(os.path.join(cfg.out_dir, "splits", "goals.json")))
    assert lang_out["split"] == saved and saved["ppo_split"] == "unseen"
    for split in clevr_splits.SPLITS:
        for kind in ("mlp", "llm_random", "llm"):
            r = lang_out["splits"][f"{split}/{kind}"]
            assert np.isfinite(r["nll"]) and 0 <= r["greedy_success"] <= 1 and len(r["greedy"]) == 16
    with open(result["table"]) as f:
        table = f.read()
    assert "## goals: language protocol" in table and "| unseen_rephrase | 96 |" in table
    assert str(saved["record"]["heldout_goals"]) in table.replace(" ", "").replace(",", ", ")
    # The PPO arms trained on the unseen goals' env: their priors' banks are that split's.
    assert {r["method"] for r in data["rows"]} >= {"ppo", "lago", "prior_llm"}


def test_demonstrations_come_from_the_train_split_only(language_run):
    from envs.demos import load_demonstrations

    cfg, _ = language_run
    split = clevr_splits.GoalSplit.from_dict(json.load(open(os.path.join(cfg.out_dir, "splits", "goals.json")))["record"])
    demos = load_demonstrations(os.path.join(cfg.out_dir, "demos", "goals.npz"))
    assert tuple(demos.instructions) == split.instructions("train")
    used = {demos.instructions[i] for i in np.unique(demos.instruction_id)}
    assert used <= set(split.instructions("train"))
    goals = {tuple(g) for g in np.asarray(demos.obs)[:, 10:24].reshape(-1, 14).round().astype(int).tolist()}
    train_codes = {tuple(np.concatenate([np.eye(5)[s], np.eye(5)[d], np.eye(4)[r]]).astype(int).tolist())
                   for s, d, r in lang.GOALS[list(split.train_goals)]}
    assert goals <= train_codes


def test_a_rerun_with_another_split_is_refused(language_run):
    import dataclasses

    cfg, _ = language_run
    with pytest.raises(ValueError, match="split_seed|another split|different settings"):
        pipeline.run_pipeline(dataclasses.replace(cfg, split_seed=1), make_clevr_robot_suite())


def test_your_own_words_end_to_end(language_run, tmp_path, capsys):
    cfg, _ = language_run
    lines = tmp_path / "mine.tsv"
    lines.write_text("# goal<TAB>text\nblue,green,front\tThe green ball wants the blue ball in front of it.\n")
    rc = cli.main(make_clevr_robot_suite, ("goals",), {}, [
        "--eval-prior", os.path.join(cfg.out_dir, "priors", "goals", "llm"),
        "--instruction", "Shove the red ball left of the blue one.", "--goal", "red,blue,left",
        "--instructions-file", str(lines), "--eval-episodes", "4"])
    assert rc == 0
    out = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines() if x.startswith("{")]
    assert [r["goal"] for r in out] == ["red,blue,left", "blue,green,front"]
    for r in out:
        assert r["seen_in_training"] is False and 0 <= r["greedy_success"] <= 1 and r["episodes"] == 4
    assert cli.main(make_clevr_robot_suite, ("goals",), {}, [
        "--eval-prior", os.path.join(cfg.out_dir, "priors", "goals", "llm"),
        "--instruction", "x", "--goal", "red,red,left"]) == 2


# ----------------------------------------------------------------------------- Meta-World


def test_metaworld_paraphrase_splits_and_task_one_hot_left_out():
    from envs.metaworld import MetaWorldEnv
    from envs.metaworld.instructions import INSTRUCTIONS, paraphrase_split
    from envs.multitask import MultiTaskEnv
    from lago_jax.experiments.metaworld import make_metaworld_suite
    from lago_jax.experiments.stages import prior_obs_keep

    split = paraphrase_split(0)
    assert split == paraphrase_split(0) and split != paraphrase_split(1)
    assert set(split["train"]).isdisjoint(split["rephrase"]) and 0 in split["train"]
    assert sorted(split["train"] + split["rephrase"]) == list(range(12)) and len(split["rephrase"]) == 4
    suite = make_metaworld_suite()
    rec = suite.language_splits("mt10", 0, None)
    assert rec["ppo_split"] == "rephrase" and list(rec["splits"]) == ["train", "rephrase"]
    envs = {t: MetaWorldEnv(t, paraphrases=split["rephrase"]) for t in ("reach-v3", "push-v3")}
    assert envs["reach-v3"].instructions == tuple(INSTRUCTIONS["reach-v3"][i] for i in split["rephrase"])
    multi = MultiTaskEnv(envs, envs_per_task=1, episode_length=20)
    assert multi.goal_features == (39, 40) and multi.task_env("push-v3").goal_features == (39, 40)
    assert prior_obs_keep(multi) == tuple(range(39))  # the prior knows the task from the instruction only
    assert prior_obs_keep(envs["reach-v3"]) is None  # one task: nothing to hide
    assert suite.parse_goal("push-v3") == ("push-v3", {"paraphrases": [0]})
    with pytest.raises(ValueError, match="not a Meta-World task"):
        suite.parse_goal("push")
    with pytest.raises(ValueError, match="paraphrases"):
        MetaWorldEnv("reach-v3", paraphrases=[12])


def test_language_protocol_on_a_group_evaluates_each_member(tmp_path):
    """A multi-task group (two Meta-World tasks on the C engine) under the language protocol with no
    PPO arm: every prior alone runs each member's episodes, the per-episode lists hold both
    members' episodes, and the report has the per-task table and no PPO table."""
    pytest.importorskip("metaworld")
    from lago_jax.experiments.metaworld import make_metaworld_suite

    suite = make_metaworld_suite()
    suite.groups["pair"] = ("reach-v3", "reach-wall-v3")
    cfg = ExperimentConfig(
        tasks=("pair",), out_dir=str(tmp_path), seeds=(0,), variants=(), num_envs=2, episode_length=20,
        demo_episodes=2, demo_batch=4, distill_steps=4, distill_batch=16, distill_eval_every=2,
        llm="random:test-tiny", progress=False, protocol="language", split_demo_episodes=1,
        prior_eval_episodes=3, backend="mujoco",
    )
    result = pipeline.run_pipeline(cfg, suite)
    data = json.load(open(result["json"]))["language"]["pair"]
    for split in ("train", "rephrase"):
        rnd = data["splits"][f"{split}/random"]
        assert set(rnd["tasks"]) == {"reach-v3", "reach-wall-v3"} and rnd["episodes"] == 6
        for kind in ("mlp", "llm_random", "llm"):
            r = data["splits"][f"{split}/{kind}"]
            assert len(r["greedy"]) == len(r["sampled"]) == 6
            per_task = r["tasks"]["greedy"]
            assert np.isclose(np.mean(list(per_task.values())), r["greedy_success"])
    table = open(result["table"]).read()
    assert "No PPO arm" in table and "| task | method | backbone | seeds |" not in table
    assert "| split | prior | reach-v3 | reach-wall-v3 |" in table
    assert result["plot"] is None
