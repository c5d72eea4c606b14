"""Demonstrations: collect them from any env with a pure policy, save them, load them back.

:func:`collect_demonstrations` runs a policy ``(obs or State, key) -> action`` over a batch of
independent episodes with :func:`envs.episodes.run_episodes` (the env is wrapped in
``EpisodeWrapper`` so each episode is cut at the env's ``max_episode_steps``), then flattens the
valid steps of every episode, episode by episode, into a :class:`Demos` record on the host.

Step ``i`` of a :class:`Demos` holds the observation the policy acted on (``obs[i]``), the
action it took, and what the env reported for that transition (``reward``, ``done``,
``terminated``, ``success``). ``episode_id[i]`` numbers episodes ``0..E-1`` in order; the
per-episode arrays (``episode_success``, ``episode_return``, ``episode_length``) are indexed by
it. Success of an episode is the env's success predicate at any of its steps.

File format (:func:`save_demonstrations`): one ``.npz`` holding the arrays above plus
``meta_json``, a 0-d unicode array with the JSON of ``instructions``, ``env_name``,
``action_space`` and ``metadata`` (so the file loads with ``allow_pickle=False``).
:func:`load_demonstrations` checks keys, dtypes, shapes and lengths and names the path in
every error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from typing import Any, Callable, Sequence

import jax
import numpy as np

from envs.core import Box, Discrete, Env
from envs.episodes import episode_limit, run_episodes

FORMAT_VERSION = 1

# name -> (dtype kind check, ndim) for the per-step arrays; ``action`` is checked separately.
_STEP_ARRAYS = {
    "obs": (np.float32, 2),
    "instruction_id": (np.int32, 1),
    "reward": (np.float32, 1),
    "done": (np.float32, 1),
    "terminated": (np.float32, 1),
    "success": (np.float32, 1),
    "episode_id": (np.int32, 1),
}
_EPISODE_ARRAYS = {
    "episode_success": (np.float32, 1),
    "episode_return": (np.float32, 1),
    "episode_length": (np.int32, 1),
}


@dataclasses.dataclass(frozen=True)
class Demos:
    """A flat record of demonstration steps, grouped by episode (``N`` steps, ``E`` episodes).

    Attributes:
      obs: ``[N, obs_dim]`` float32, the observation each action was taken in.
      action: ``[N]`` int32 (discrete) or ``[N, A]`` float32 (continuous).
      instruction_id: ``[N]`` int32 index into ``instructions``.
      reward: ``[N]`` float32 reward of the transition.
      done: ``[N]`` float32, 1 on the last step of an episode (terminated or truncated).
      terminated: ``[N]`` float32, 1 where the episode ended in a terminal state.
      success: ``[N]`` float32, the env's success predicate after the transition.
      episode_id: ``[N]`` int32 in ``0..E-1``, non-decreasing.
      episode_success: ``[E]`` float32, 1 when success held at any step of the episode.
      episode_return: ``[E]`` float32, sum of the episode's rewards.
      episode_length: ``[E]`` int32, number of steps of the episode.
      instructions: instruction texts indexed by ``instruction_id``.
      env_name: a name for the env the demos come from.
      action_space: ``{"type": "discrete", "n": n}`` or ``{"type": "box", "low": [...], "high": [...]}``.
      metadata: any JSON-serialisable extras (policy name, seed, ...).
    """

    obs: np.ndarray
    action: np.ndarray
    instruction_id: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    terminated: np.ndarray
    success: np.ndarray
    episode_id: np.ndarray
    episode_success: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    instructions: tuple[str, ...]
    env_name: str
    action_space: dict
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(self.obs.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_success.shape[0])

    @property
    def success_rate(self) -> float:
        return float(self.episode_success.mean()) if self.num_episodes else 0.0

    def summary(self) -> dict:
        """Host-side statistics: episodes, steps, success rate, mean return and length."""
        return dict(
            env_name=self.env_name,
            episodes=self.num_episodes,
            steps=self.num_steps,
            success_rate=self.success_rate,
            mean_return=float(self.episode_return.mean()) if self.num_episodes else 0.0,
            mean_length=float(self.episode_length.mean()) if self.num_episodes else 0.0,
        )


def action_space_to_dict(space: Discrete | Box) -> dict:
    """JSON-friendly description of an action space."""
    if isinstance(space, Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if isinstance(space, Box):
        return {"type": "box", "low": [float(x) for x in space.low], "high": [float(x) for x in space.high]}
    raise TypeError(f"unsupported action space {space!r}; expected Discrete or Box")


def collect_demonstrations(
    env: Env,
    policy: Callable[[Any, jax.Array], jax.Array],
    n_episodes: int,
    key: jax.Array,
    *,
    batch_size: int | None = None,
    episode_length: int | None = None,
    env_name: str | None = None,
    metadata: dict | None = None,
) -> Demos:
    """Run ``policy`` for ``n_episodes`` episodes of ``env`` and return them as :class:`Demos`.

    Args:
      env: a bare (unbatched) env; it is wrapped in ``EpisodeWrapper`` here.
      policy: pure ``(obs [obs_dim], key) -> action``, vmapped over the batch and jitted; the env's batched step is
        the program :func:`envs.episodes.run_episodes` shares with evaluation.
      n_episodes: episodes to run (``>= 1``).
      key: PRNG key.
      batch_size: episodes run in parallel per jitted call (default ``min(n_episodes, 64)``);
        rounds of ``batch_size`` run until ``n_episodes`` are done (the last round's surplus
        is dropped), all with the same compiled programs.
      episode_length: step limit (default ``env.max_episode_steps``).
      env_name: recorded in the result (default the env's class name).
      metadata: extra JSON-serialisable information to keep with the demos.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    length = episode_limit(env, episode_length)
    batch = int(batch_size) if batch_size is not None else min(int(n_episodes), 64)
    if batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def act(params, state, step_key):
        return jax.vmap(policy)(state.obs, jax.random.split(step_key, batch))

    rounds = math.ceil(n_episodes / batch)
    columns = []  # per round: dict of [B, T] host arrays, T = length (steps after the end padded)
    for round_key in jax.random.split(key, rounds):
        traj = run_episodes(env, act, None, batch, round_key, length, record=("obs", "instruction_id", "action"))
        pad = length - traj["valid"].shape[0]
        columns.append({
            k: np.swapaxes(np.pad(v, [(0, pad)] + [(0, 0)] * (v.ndim - 1)), 0, 1) for k, v in traj.items()
        })
    cols = {k: np.concatenate([c[k] for c in columns], axis=0)[:n_episodes] for k in columns[0]}

    valid = cols["valid"] > 0  # [E, T]
    n_eps = len(valid)
    ep_length = valid.sum(axis=1).astype(np.int32)
    ep_return = (cols["reward"] * valid).sum(axis=1).astype(np.float32)
    ep_success = (cols["success"] * valid).max(axis=1).astype(np.float32)
    episode_id = np.broadcast_to(np.arange(n_eps, dtype=np.int32)[:, None], valid.shape)

    def flat(name, dtype):
        return np.ascontiguousarray(cols[name][valid].astype(dtype))

    space = env.action_space
    if isinstance(space, Discrete):
        action = flat("action", np.int32)
    else:
        action = np.ascontiguousarray(cols["action"][valid].astype(np.float32))
    obs = cols["obs"][valid].astype(np.float32)
    demos = Demos(
        obs=np.ascontiguousarray(obs.reshape(len(obs), -1)),
        action=action,
        instruction_id=flat("instruction_id", np.int32),
        reward=flat("reward", np.float32),
        done=flat("done", np.float32),
        terminated=flat("terminated", np.float32),
        success=flat("success", np.float32),
        episode_id=np.ascontiguousarray(episode_id[valid]),
        episode_success=ep_success,
        episode_return=ep_return,
        episode_length=ep_length,
        instructions=tuple(str(s) for s in env.instructions),
        env_name=env_name or type(env.unwrapped).__name__,
        action_space=action_space_to_dict(space),
        metadata=dict(metadata or {}, episodes_run=int(n_episodes), episode_length_limit=length),
    )
    validate_demos(demos)
    return demos


def validate_demos(demos: Demos, where: str = "demos") -> None:
    """Check dtypes, shapes and lengths; raise ``ValueError`` naming ``where`` on any mismatch."""
    arrays = {f.name: getattr(demos, f.name) for f in dataclasses.fields(demos)}
    for name, (dtype, ndim) in {**_STEP_ARRAYS, **_EPISODE_ARRAYS}.items():
        _check_array(where, name, arrays[name], dtype, ndim)
    n = demos.obs.shape[0]
    for name in _STEP_ARRAYS:
        if arrays[name].shape[0] != n:
            raise ValueError(f"{where}: '{name}' has {arrays[name].shape[0]} rows but 'obs' has {n}")
    space = demos.action_space
    if not isinstance(space, dict) or space.get("type") not in ("discrete", "box"):
        raise ValueError(f"{where}: action_space must be a dict with type 'discrete' or 'box', got {space!r}")
    if space["type"] == "discrete":
        _check_array(where, "action", demos.action, np.int32, 1)
        if demos.action.size and (demos.action.min() < 0 or demos.action.max() >= int(space["n"])):
            raise ValueError(f"{where}: 'action' holds values in [{demos.action.min()}, {demos.action.max()}], "
                             f"outside the action space [0, {int(space['n'])})")
    else:
        _check_array(where, "action", demos.action, np.float32, 2)
        if demos.action.shape[1] != len(space["low"]):
            raise ValueError(f"{where}: 'action' has width {demos.action.shape[1]}, action space has {len(space['low'])}")
        # Experts may act outside the box (Meta-World's scripted policies are unclipped, with gains
        # up to 50; the env clips), so only values a thousand times past the bounds are refused.
        bound = 1000.0 * max(1.0, float(np.max(np.abs(space["low"]))), float(np.max(np.abs(space["high"]))))
        if not np.isfinite(demos.action).all():
            raise ValueError(f"{where}: 'action' holds non-finite values")
        if demos.action.size and np.abs(demos.action).max() > bound:
            raise ValueError(f"{where}: 'action' holds values in [{demos.action.min():g}, {demos.action.max():g}], far "
                             f"outside the action space's bounds {space['low']} .. {space['high']}")
    if not np.isfinite(demos.obs).all():
        raise ValueError(f"{where}: 'obs' holds non-finite values")
    if demos.obs.size and np.abs(demos.obs).max() >= 1e18:
        raise ValueError(f"{where}: 'obs' holds a value of magnitude {np.abs(demos.obs).max():g}; squares of "
                         "values this large overflow the float32 statistics the priors normalise with")
    if demos.action.shape[0] != n:
        raise ValueError(f"{where}: 'action' has {demos.action.shape[0]} rows but 'obs' has {n}")
    e = demos.episode_success.shape[0]
    for name in _EPISODE_ARRAYS:
        if arrays[name].shape[0] != e:
            raise ValueError(f"{where}: '{name}' has {arrays[name].shape[0]} episodes, 'episode_success' has {e}")
    if n and (demos.episode_id.min() < 0 or demos.episode_id.max() >= e or np.any(np.diff(demos.episode_id) < 0)):
        raise ValueError(f"{where}: 'episode_id' must be non-decreasing in [0, {e}), got range "
                         f"[{demos.episode_id.min()}, {demos.episode_id.max()}]")
    if int(demos.episode_length.sum()) != n:
        raise ValueError(f"{where}: episode lengths sum to {int(demos.episode_length.sum())}, but there are {n} steps")
    if n and (demos.instruction_id.min() < 0 or demos.instruction_id.max() >= len(demos.instructions)):
        raise ValueError(f"{where}: 'instruction_id' out of range [0, {len(demos.instructions)})")
    for name in ("reward", "episode_return"):
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{where}: '{name}' holds non-finite values")
    for name in ("success", "episode_success", "done", "terminated"):
        bad = arrays[name][(arrays[name] != 0) & (arrays[name] != 1)]
        if bad.size:
            raise ValueError(f"{where}: '{name}' must hold 0 or 1, found {bad[0]!r}")


def _check_array(where, name, arr, dtype, ndim):
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{where}: '{name}' must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise ValueError(f"{where}: '{name}' has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if arr.ndim != ndim:
        raise ValueError(f"{where}: '{name}' has shape {arr.shape}, expected {ndim} dimension(s)")


def concat_demonstrations(parts: Sequence[Demos], env_name: str, metadata: dict | None = None) -> Demos:
    """One :class:`Demos` holding every episode of ``parts`` in order (episode ids renumbered).

    The parts must share the instruction list and the action space (demonstrations of several
    tasks seen through one multi-task env: :meth:`envs.multitask.MultiTaskEnv.task_env`).
    """
    parts = list(parts)
    if not parts:
        raise ValueError("concat_demonstrations needs at least one part")
    first = parts[0]
    for i, p in enumerate(parts[1:], 1):
        if tuple(p.instructions) != tuple(first.instructions) or p.action_space != first.action_space:
            raise ValueError(f"part {i} ({p.env_name}) has other instructions or another action space than part 0 "
                             f"({first.env_name}); only demonstrations of one (multi-task) env can be joined")
    offsets = np.cumsum([0] + [p.num_episodes for p in parts[:-1]])
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=0)
    arrays = {name: cat(name) for name in (*_STEP_ARRAYS, *_EPISODE_ARRAYS, "action") if name != "episode_id"}
    arrays["episode_id"] = np.concatenate([p.episode_id + off for p, off in zip(parts, offsets)]).astype(np.int32)
    out = Demos(**arrays, instructions=tuple(first.instructions), env_name=env_name,
                action_space=first.action_space, metadata=dict(metadata or {}))
    validate_demos(out, "joined demonstrations")
    return out


def save_demonstrations(path: str | os.PathLike, demos: Demos) -> str:
    """Write ``demos`` to ``path`` (``.npz`` appended if missing). Returns the path written."""
    validate_demos(demos)
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    meta = dict(
        format_version=FORMAT_VERSION,
        instructions=list(demos.instructions),
        env_name=demos.env_name,
        action_space=demos.action_space,
        metadata=demos.metadata,
    )
    arrays = {name: getattr(demos, name) for name in (*_STEP_ARRAYS, *_EPISODE_ARRAYS, "action")}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Written beside the target and renamed: a full disk or a kill mid-write leaves the old file
    # (or none), never a broken one under the final name.
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta_json=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_demonstrations(path: str | os.PathLike) -> Demos:
    """Read a file written by :func:`save_demonstrations`; fail naming ``path`` if it is bad."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"demonstration file not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"demonstration file is empty: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            contents = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"demonstration file is not a readable .npz archive: {path} ({err})") from err
    needed = ("meta_json", "action", *_STEP_ARRAYS, *_EPISODE_ARRAYS)
    missing = [k for k in needed if k not in contents]
    if missing:
        raise ValueError(f"demonstration file {path} lacks key(s) {missing}; found {sorted(contents)}")
    try:
        meta = json.loads(str(contents["meta_json"][()]))
    except (json.JSONDecodeError, TypeError, IndexError) as err:
        raise ValueError(f"demonstration file {path}: 'meta_json' is not valid JSON ({err})") from err
    for k in ("format_version", "instructions", "env_name", "action_space", "metadata"):
        if k not in meta:
            raise ValueError(f"demonstration file {path}: metadata lacks '{k}'")
    if meta["format_version"] != FORMAT_VERSION:
        raise ValueError(f"demonstration file {path} has format_version {meta['format_version']}, "
                         f"this code reads {FORMAT_VERSION}")
    demos = Demos(
        **{k: contents[k] for k in ("action", *_STEP_ARRAYS, *_EPISODE_ARRAYS)},
        instructions=tuple(meta["instructions"]),
        env_name=meta["env_name"],
        action_space=meta["action_space"],
        metadata=meta["metadata"],
    )
    validate_demos(demos, where=f"demonstration file {path}")
    return demos
