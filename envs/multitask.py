"""Several tasks as one pre-batched training env: ``MultiTaskEnv``.

Tasks with different dynamics (different MuJoCo models, say) cannot share one ``vmap``; each task
keeps its own sub-batch of ``envs_per_task`` copies with its own training stack (episode limit,
episode statistics, auto-reset: :func:`envs.wrappers.training_env`), and every ``reset`` /
``step`` runs all sub-batches inside the same traced call. The env is *pre-batched*: its ``State``
has a leading axis ``N = num_tasks * envs_per_task`` (tasks in blocks of ``envs_per_task`` rows,
in the order of ``task_names``), ``reset(key)`` takes one key, and training code must not wrap or
vmap it again (:class:`envs.core.BatchedEnv`). ``lago_jax.ppo`` trains one policy on all
tasks from it and reports every task's training statistics (``task_rows``).

``info["task_id"]`` is the row's task; ``info["instruction_id"]`` indexes ``self.instructions``,
the concatenation of every task's instructions. ``task_env(name)`` is one task as a plain
(unbatched) env that sees exactly what the multi-task policy sees (the one-hot task id appended,
instruction ids offset), for per-task evaluation.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import BatchedEnv, Env, State
from envs.wrappers import Wrapper, training_env


def _goal_features(env: Env, one_hot: int) -> tuple[int, ...]:
    inner = tuple(getattr(env, "goal_features", ()))
    return inner + tuple(range(env.observation_size, env.observation_size + one_hot))


def _one_hot(obs: jax.Array, index: int, num_tasks: int) -> jax.Array:
    hot = jnp.zeros(obs.shape[:-1] + (num_tasks,), obs.dtype).at[..., index].set(1.0)
    return jnp.concatenate([obs, hot], axis=-1)


class TaskView(Wrapper):
    """Task ``index`` of a multi-task env as a plain env: observations with the one-hot task id
    appended (when the multi-task env appends it) and instruction ids offset into the shared
    instruction list."""

    def __init__(self, env: Env, index: int, num_tasks: int, instructions: Sequence[str], offset: int,
                 task_one_hot: bool):
        super().__init__(env)
        self.index, self.num_tasks, self.offset, self.task_one_hot = int(index), int(num_tasks), int(offset), task_one_hot
        self._instructions = tuple(instructions)

    # TaskView wraps the bare task env: the training stack (and its ``final_obs``) goes outside it.
    def _view(self, state: State) -> State:
        info = dict(state.info, instruction_id=state.info["instruction_id"] + self.offset)
        obs = _one_hot(state.obs, self.index, self.num_tasks) if self.task_one_hot else state.obs
        return state.replace(obs=obs, info=info)

    def _inner(self, state: State) -> State:
        info = dict(state.info, instruction_id=state.info["instruction_id"] - self.offset)
        obs = state.obs[..., : -self.num_tasks] if self.task_one_hot else state.obs
        return state.replace(obs=obs, info=info)

    def reset(self, key: jax.Array) -> State:
        return self._view(self.env.reset(key))

    def step(self, state: State, action: jax.Array) -> State:
        return self._view(self.env.step(self._inner(state), action))

    @property
    def observation_size(self) -> int:
        return self.env.observation_size + (self.num_tasks if self.task_one_hot else 0)

    @property
    def instructions(self) -> Sequence[str]:
        return self._instructions

    @property
    def goal_features(self) -> tuple[int, ...]:
        return _goal_features(self.env, self.num_tasks if self.task_one_hot else 0)


class MultiTaskEnv(BatchedEnv):
    """``envs_per_task`` copies of each of several tasks in one pre-batched env.

    Args:
      tasks: task name -> bare (unbatched) env. Every task needs the same observation size and
        action space.
      envs_per_task: sub-batch size per task (>= 1).
      task_one_hot: append a one-hot task id to the observation (a multi-task policy needs it
        unless the observation already tells the tasks apart).
      episode_length: episode limit of every task (None: each task's own).
    """

    def __init__(self, tasks: Mapping[str, Env], envs_per_task: int = 1, task_one_hot: bool = True,
                 episode_length: int | None = None):
        names = tuple(tasks)
        if not names:
            raise ValueError("MultiTaskEnv needs at least one task")
        if not isinstance(envs_per_task, (int, np.integer)) or envs_per_task < 1:
            raise ValueError(f"envs_per_task must be an integer >= 1, got {envs_per_task!r}")
        first = tasks[names[0]]
        for n in names[1:]:
            e = tasks[n]
            if e.observation_size != first.observation_size or e.action_space != first.action_space:
                raise ValueError(
                    f"task {n!r} has observation size {e.observation_size} and action space {e.action_space!r}; "
                    f"task {names[0]!r} has {first.observation_size} and {first.action_space!r}: one policy needs both equal"
                )
        lengths = {n: episode_length if episode_length is not None else tasks[n].max_episode_steps for n in names}
        if len(set(lengths.values())) != 1 or None in lengths.values():
            raise ValueError(f"the tasks' episode limits differ or are missing ({lengths}); pass episode_length")
        self.task_names = names
        self.envs_per_task = int(envs_per_task)
        self.task_one_hot = bool(task_one_hot)
        self._episode_length = int(next(iter(lengths.values())))
        self._bare = dict(tasks)
        self.envs = {n: training_env(tasks[n], self._episode_length) for n in names}
        self._instr_offset = {}
        instructions: list[str] = []
        for n in names:
            self._instr_offset[n] = len(instructions)
            instructions.extend(tasks[n].instructions)
        self._instructions = tuple(instructions)

    # -- envs.core.BatchedEnv
    @property
    def num_envs(self) -> int:
        return len(self.task_names) * self.envs_per_task

    @property
    def task_rows(self) -> tuple[int, ...]:
        """The task index of every row of the batch."""
        return tuple(int(i) for i in np.repeat(np.arange(len(self.task_names)), self.envs_per_task))

    # -- Env
    @property
    def observation_size(self) -> int:
        return self._bare[self.task_names[0]].observation_size + (len(self.task_names) if self.task_one_hot else 0)

    @property
    def action_space(self):
        return self._bare[self.task_names[0]].action_space

    @property
    def instructions(self) -> Sequence[str]:
        return self._instructions

    @property
    def max_episode_steps(self) -> int:
        return self._episode_length

    @property
    def goal_features(self) -> tuple[int, ...]:
        """Observation entries that tell the goal: each task's own and the appended one-hot task id."""
        return _goal_features(self._bare[self.task_names[0]], len(self.task_names) if self.task_one_hot else 0)

    def task_env(self, name: str) -> Env:
        """Task ``name`` alone, as the multi-task policy sees it (unbatched, no training stack)."""
        if name not in self.task_names:
            raise ValueError(f"unknown task {name!r}; this env holds {list(self.task_names)}")
        i = self.task_names.index(name)
        return TaskView(self._bare[name], i, len(self.task_names), self._instructions, self._instr_offset[name],
                        self.task_one_hot)

    def _with_task(self, obs, i):
        return _one_hot(obs, i, len(self.task_names)) if self.task_one_hot else obs

    def _combine(self, subs: dict) -> State:
        cat = lambda xs: jnp.concatenate(xs, axis=0)
        obs, final_obs, iids, tids = [], [], [], []
        for i, n in enumerate(self.task_names):
            s = subs[n]
            obs.append(self._with_task(s.obs, i))
            final_obs.append(self._with_task(s.info["final_obs"], i))
            iids.append(s.info["instruction_id"] + self._instr_offset[n])
            tids.append(jnp.full((self.envs_per_task,), i, jnp.int32))
        first = subs[self.task_names[0]]
        metric_keys = [k for k in first.metrics if all(k in subs[n].metrics for n in self.task_names)]
        metrics = {k: cat([subs[n].metrics[k] for n in self.task_names]) for k in metric_keys}
        fields = {
            f: cat([getattr(subs[n], f) for n in self.task_names])
            for f in ("reward", "done", "terminated", "truncated", "success")
        }
        info = dict(instruction_id=cat(iids), task_id=cat(tids), final_obs=cat(final_obs))
        return State(data=subs, obs=cat(obs), metrics=metrics, info=info, **fields)

    def reset(self, key: jax.Array) -> State:
        """All ``num_envs`` episodes from one key (like ``VmapWrapper.reset``)."""
        keys = jax.random.split(key, len(self.task_names))
        subs = {}
        for k, n in zip(keys, self.task_names):
            subs[n] = jax.vmap(self.envs[n].reset)(jax.random.split(k, self.envs_per_task))
        return self._combine(subs)

    def step(self, state: State, action: jax.Array) -> State:
        subs = {}
        for i, n in enumerate(self.task_names):
            a = action[i * self.envs_per_task : (i + 1) * self.envs_per_task]
            subs[n] = jax.vmap(self.envs[n].step)(state.data[n], a)
        return self._combine(subs)
