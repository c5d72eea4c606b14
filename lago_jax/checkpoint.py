"""Orbax checkpoints of PPO runs and prior distillation: atomic saves, validated restores, clear errors.

One :class:`Checkpointer` writes both. Layout: ``<directory>/<step>/<item>`` for each of its named
items, managed by ``orbax.checkpoint.CheckpointManager``; an item is a pytree of arrays or a JSON
record (:meth:`Checkpointer.save_items`, :meth:`Checkpointer.restore_trees`,
:meth:`Checkpointer.restore_json`).

PPO runs use the default items ``{state,config,meta}`` (``step`` = updates done): ``state`` holds
the leaves of the whole ``TrainState`` pytree, keyed by their flattening index (zero-size leaves,
such as an MJX model's empty actuator state, are not written: Orbax cannot store them; they are
rebuilt from the abstract state on restore), ``config`` the ``PPOConfig`` as JSON, ``meta`` a
small JSON record (step, format version, and on one process the SHA-256 of every array item,
checked on restore). Prior distillation (``lago_jax.prior.distill``) uses
``{train_state,best,meta}``.

Atomicity: Orbax writes a step into a temporary directory
``<step>.orbax-checkpoint-tmp-*`` and renames it to ``<step>`` only after every item is written
(the rename is the commit). Steps are listed from finalised directories only, so a save that
was interrupted is never picked up; ``latest_step`` here additionally requires the step
directory to hold Orbax's ``_CHECKPOINT_METADATA`` file and every item.

A missing or unreadable checkpoint raises :class:`CheckpointError` naming the path.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from lago_jax.digest import tree_digest
from lago_jax.errors import CheckpointError

ITEMS = ("state", "config", "meta")
FORMAT_VERSION = 2
_METADATA_FILE = "_CHECKPOINT_METADATA"




def _leaf_key(i: int) -> str:
    return f"leaf_{i:05d}"


def _leaf_dict(tree: Any) -> dict:
    """The non-empty leaves of ``tree`` keyed by flattening index (Orbax rejects zero-size arrays)."""
    return {_leaf_key(i): x for i, x in enumerate(jax.tree.leaves(tree)) if int(np.prod(np.shape(x))) > 0}


def _step_complete(path: str, items: tuple[str, ...] = ITEMS) -> bool:
    return os.path.isfile(os.path.join(path, _METADATA_FILE)) and all(
        os.path.isdir(os.path.join(path, item)) for item in items
    )


class Checkpointer:
    """Saves and restores numbered steps of named items under ``directory`` (created on first save).

    Args:
      items: the item names every step holds (default: a PPO run's ``state``, ``config``, ``meta``).
      max_to_keep: the newest steps kept (None: all).
      create: False refuses a directory that does not exist.
    """

    def __init__(self, directory: str, max_to_keep: int | None = 3, create: bool = True,
                 items: tuple[str, ...] = ITEMS):
        self.directory = os.path.abspath(directory)
        self.items = tuple(items)
        if not create and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint directory {self.directory} does not exist")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=create, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=self.items)

    def all_steps(self) -> list[int]:
        """Finalised, complete steps, ascending."""
        self._manager.reload()
        return sorted(s for s in self._manager.all_steps() if _step_complete(self.step_path(s), self.items))

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def step_path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def set_aside(self, step: int, why: str) -> str:
        """Rename step ``step``'s folder to ``<step>.<why>-<n>`` (kept for inspection, no longer a
        step); returns the new path."""
        src = self.step_path(step)
        n = 0
        while os.path.exists(f"{src}.{why}-{n}"):
            n += 1
        dst = f"{src}.{why}-{n}"
        os.replace(src, dst)
        self._manager.reload()
        return dst

    def set_aside_incomplete(self) -> list[str]:
        """Set aside numbered step folders that are not complete checkpoints (a copy or save cut
        short outside Orbax's own temporary folders): Orbax would refuse to save that step again.
        Returns the new paths."""
        if not os.path.isdir(self.directory):
            return []
        moved = []
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if name.isdigit() and os.path.isdir(path) and not _step_complete(path, self.items):
                moved.append(self.set_aside(int(name), "incomplete"))
        return moved

    def save_items(self, step: int, trees: dict[str, Any], records: dict[str, dict]) -> None:
        """Write step ``step``: each of ``trees`` (pytrees of arrays) and ``records`` (JSON-able
        dicts) as the item of that name, together naming every item of this checkpointer; blocks
        until written (an existing ``step`` is overwritten)."""
        names = sorted((*trees, *records))
        if names != sorted(self.items):
            raise ValueError(f"Checkpointer.save_items got items {names}; this checkpointer holds {sorted(self.items)}")
        if jax.process_count() == 1 and "meta" in records:  # several processes: shards, no digest
            records = dict(records, meta=dict(records["meta"], sha256={k: tree_digest(v) for k, v in trees.items()}))
        args = {k: ocp.args.StandardSave(v) for k, v in trees.items()}
        args.update({k: ocp.args.JsonSave(v) for k, v in records.items()})
        self._manager.save(int(step), args=ocp.args.Composite(**args), force=True)
        self._manager.wait_until_finished()

    def save(self, step: int, state: Any, config: dict, meta: dict | None = None) -> None:
        """Write a PPO ``state`` (a pytree of arrays) and ``config`` (a JSON-able dict) as ``step``; blocks."""
        meta = dict(meta or {}, step=int(step), format_version=FORMAT_VERSION)
        # One process: host copies. Several: the global arrays themselves, which every process
        # saves together (each writes its own shards; Orbax's primary process the metadata).
        state = _leaf_dict(jax.device_get(state) if jax.process_count() == 1 else state)
        self.save_items(step, {"state": state}, {"config": config, "meta": meta})

    def _require(self, step: int) -> str:
        path = self.step_path(step)
        if not os.path.isdir(path):
            raise CheckpointError(f"no checkpoint at {path} (complete steps in {self.directory}: {self.all_steps()})")
        if not _step_complete(path, self.items):
            raise CheckpointError(f"checkpoint {path} is incomplete: expected {_METADATA_FILE} and items {self.items}")
        return path

    def restore_json(self, step: int, item: str) -> dict:
        """The JSON record ``item`` of ``step``."""
        path = self._require(step)
        file = os.path.join(path, item, "metadata")
        try:
            out = self._manager.restore(int(step), args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
            return dict(out[item])
        except Exception as e:  # noqa: BLE001 - any failure to read is reported with the path
            raise CheckpointError(f"cannot read the {item} of checkpoint {path} ({file}): {type(e).__name__}: {e}") from e

    def restore_config(self, step: int) -> dict:
        return self.restore_json(step, "config")

    def restore_trees(self, step: int, templates: dict[str, Any]) -> dict[str, Any]:
        """The pytree items named in ``templates`` (each a pytree of arrays or ShapeDtypeStructs
        giving the structure, shapes and dtypes to restore into) of ``step``."""
        path = self._require(step)
        try:
            out = self._manager.restore(
                int(step), args=ocp.args.Composite(**{k: ocp.args.StandardRestore(v) for k, v in templates.items()}))
            restored = {k: out[k] for k in templates}
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(
                f"checkpoint {path} is corrupt or does not match this run's state: {type(e).__name__}: {e}"
            ) from e
        if "meta" in self.items and "meta" not in templates and jax.process_count() == 1:
            want = self.restore_json(step, "meta").get("sha256", {})
            for k, tree in restored.items():
                if k in want and tree_digest(tree) != want[k]:
                    raise CheckpointError(
                        f"checkpoint {path}: its {k} does not match the SHA-256 recorded when it was "
                        "saved (the files are damaged)")
        return restored

    def restore_state(self, step: int, abstract_state: Any) -> Any:
        """Restore ``step``'s state into the structure of ``abstract_state`` (arrays or ShapeDtypeStructs)."""
        path = self.step_path(step)  # restore_trees checks that it is there and complete
        device = jax.local_devices()[0]
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(device)),
            abstract_state,
        )
        flat_target, treedef = jax.tree.flatten(target)
        saved = self.restore_trees(step, {"state": _leaf_dict(target)})["state"]
        state = jax.tree.unflatten(
            treedef,
            [saved[_leaf_key(i)] if _leaf_key(i) in saved else np.zeros(t.shape, t.dtype) for i, t in enumerate(flat_target)],
        )
        leaves = jax.tree.leaves(state)
        if len(leaves) != len(jax.tree.leaves(target)):
            raise CheckpointError(f"checkpoint {path} holds a different state structure than this run")
        for got, want in zip(leaves, jax.tree.leaves(target)):
            if tuple(np.shape(got)) != tuple(want.shape):
                raise CheckpointError(f"checkpoint {path}: array shape {np.shape(got)} != expected {want.shape}")
        return state

    def close(self) -> None:
        self._manager.close()


def open_checkpoint(directory: str, step: int | None = None) -> tuple[Checkpointer, int]:
    """``(Checkpointer, step)`` of ``directory`` (a ``checkpoints`` folder, or a run's ``out_dir``
    holding one) at ``step`` (default: its latest). The caller closes the Checkpointer.

    Raises:
      CheckpointError: no such directory, or no complete checkpoint in it.
    """
    if os.path.isdir(os.path.join(directory, "checkpoints")):
        directory = os.path.join(directory, "checkpoints")
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint directory {os.path.abspath(directory)} does not exist")
    mgr = Checkpointer(directory, create=False)
    step = mgr.latest_step() if step is None else step
    if step is None:
        mgr.close()
        raise CheckpointError(f"no complete checkpoint in {mgr.directory}")
    return mgr, step
