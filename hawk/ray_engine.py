"""engine=ray: the per-recording work of extract, embed and infer spread over a Ray cluster.

This module runs hawk's own per-recording functions (``hawk.extract.extract_in_memory``,
``hawk.infer.file_segments``, ...) on Ray; it is not a second implementation of any step. Ray Data
streams the inputs: CPU tasks read and decode recordings and make spectrograms, and an actor pool holds
the model (one load per actor, on a GPU when the cluster has one and ``gpus_per_actor`` allows) for
scoring or embedding. Results come back to the driver, the stage's own process, which alone writes
files and SQLite, so no file is written by two processes at once.

Faults: a worker that dies (``kill -9``, out of memory, a decoder crash) has its task retried, and a
dead actor is restarted and its call retried, ``max_retries`` times each (Ray Data's default is
forever, so one recording that always kills its worker would stall a run). A block whose retries are
spent is dropped and the job goes on; its recordings are tried again one per task, and one that fails
that way too is handed back as lost, with the reason, for the stage's skip report. The functions
themselves never raise for a bad recording, they return the reason.

What every node needs: the locked environment (``make install``) and the recordings, checkpoints and
project at the same paths (a shared file system). Files are the unit of work, except in infer, where a
recording longer than ``part_seconds`` is scored in parts by many workers and joined again, equal to
the local engine's result.
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hawk.errors import HawkError

log = logging.getLogger(__name__)
ITEMS_PER_BLOCK = 8  # recordings per Ray Data block: small enough to spread, large enough to be cheap


@dataclass
class RayEngine:
    """Where and how Ray runs the work (config group ``engine``, ``engine=ray``).

    ``address``: ``""`` starts a local cluster inside this process (``num_cpus`` CPUs, all when None);
    ``auto`` joins the cluster running on this machine (``ray start``); ``host:port`` joins that one.
    ``gpus_per_actor``: ``auto`` gives each model actor one GPU when the cluster has GPUs.
    ``concurrency``: model actors in a fixed pool (None: as many as the cluster's CPUs or GPUs hold at
    the start, and more as nodes join an autoscaling cluster).
    ``batch_size``: recordings per actor call.
    ``max_retries``: retries of a task, and restarts of an actor, after its worker died.
    ``part_seconds``: infer scores a longer recording in parts of about this length, on many workers.
    """

    address: str = ""
    num_cpus: int | None = None
    cpus_per_task: float = 1.0
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | str = "auto"
    concurrency: int | None = None
    batch_size: int = 1
    max_retries: int = 3
    part_seconds: float | None = 300.0
    _started: bool = False

    def __enter__(self) -> "RayEngine":
        if self.address:
            listening(self.address)  # a wrong address fails here, in seconds, even with nothing to do
        return self

    def _start(self) -> None:
        """Join or start the cluster on the first call that has work: a rerun with nothing left to do
        never pays Ray's start-up (about 20 s per job)."""
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if self.address:
                try:
                    ray.init(address=self.address, **kwargs)
                except (ConnectionError, RuntimeError, ValueError) as e:
                    raise HawkError(f"engine.address={self.address}: {connect_failure(e)}") from e
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, **kwargs)
            self._started = True
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the stage draws one bar over the whole job
        ctx.print_on_execution_start = False
        ctx.max_errored_blocks = -1  # a block whose retries are spent is dropped; _collect retries its items
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    @staticmethod
    def _cluster(resource: str) -> float:
        import ray

        return float(ray.cluster_resources().get(resource, 0))

    def _resources(self) -> tuple[float, int]:
        """GPUs per actor, and the actor count: ``concurrency``, else as many as the cluster's GPUs (or,
        without GPUs, its CPUs) hold."""
        gpus = self.gpus_per_actor
        if gpus == "auto":
            gpus = 1.0 if self._cluster("GPU") > 0 else 0.0
        gpus = float(gpus)
        fits = self._cluster("GPU") // gpus if gpus else self._cluster("CPU") // max(self.cpus_per_actor, 1e-9)
        return gpus, self.concurrency or max(1, int(fits))

    def _dataset(self, items: list[Any], per_block: int = ITEMS_PER_BLOCK):
        import ray

        rows = [{"i": i, "x": pickle.dumps(item)} for i, item in enumerate(items)]
        cpus = max(self._cluster("CPU"), 1)
        blocks = min(len(rows), max(math.ceil(len(rows) / per_block), int(4 * cpus)))
        return ray.data.from_items(rows, override_num_blocks=max(blocks, 1))

    def map(self, fn: Callable[..., Any], items: list[tuple], lost: Callable[[tuple, str], Any],
            per_block: int = ITEMS_PER_BLOCK) -> Iterator[tuple[tuple, Any]]:
        """``fn(*item)`` for every item, as CPU tasks of ``per_block`` items (more for quick work);
        yields (item, result) as results arrive, and (item, ``lost(item, reason)``) for an item whose
        workers died on every retry."""
        def job(todo: list[tuple], per_block: int):
            return self._dataset(todo, per_block).map(_Apply(fn), num_cpus=self.cpus_per_task,
                                                      max_retries=self.max_retries)
        return self._collect(job, items, lost, per_block)

    def map_with_model(self, items: list[tuple], load: Callable[[], Any], call: Callable[..., Any],
                       lost: Callable[[tuple, str], Any],
                       prepare: Callable[..., Any] | None = None) -> Iterator[tuple[tuple, Any]]:
        """``call(model, prepare(*item))`` for every item (``call(model, item)`` without ``prepare``),
        where ``model = load()`` once per actor; lost items as in :meth:`map`. With GPUs, ``prepare``
        runs as CPU tasks feeding GPU actors; on CPUs only, each actor runs both, so actors and tasks
        never wait on each other's CPUs."""
        from ray.data import ActorPoolStrategy

        def job(todo: list[tuple], per_block: int):
            gpus, actors = self._resources()
            ds, prep = self._dataset(todo, per_block), prepare
            if prep is not None and gpus > 0:
                ds, prep = ds.map(_Apply(prep), num_cpus=self.cpus_per_task, max_retries=self.max_retries), None
            # a fixed pool when asked; else as many as fit now, growing with an autoscaling cluster
            pool = ActorPoolStrategy(size=actors) if self.concurrency else \
                ActorPoolStrategy(min_size=1, max_size=None, initial_size=actors)
            return ds.map_batches(_ModelActor, fn_constructor_args=(load, call, prep), batch_size=self.batch_size,
                                  batch_format="numpy", compute=pool,
                                  num_cpus=self.cpus_per_actor, num_gpus=gpus, max_restarts=self.max_retries,
                                  max_task_retries=self.max_retries)
        return self._collect(job, items, lost)

    def _collect(self, job: Callable[[list[tuple], int], Any], items: list[tuple], lost: Callable[[tuple, str], Any],
                 per_block: int = ITEMS_PER_BLOCK) -> Iterator[tuple[tuple, Any]]:
        """Results of ``job(items, per_block)`` as they arrive; the items of dropped blocks run once
        more, one per block, so one crashing recording costs only itself."""
        todo = list(items)
        for final in (False, True):
            if not todo:
                return
            self._start()
            seen = set()
            with warnings.catch_warnings():  # retry limits exist only as ray_remote_args in Ray 2.60
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                ds = job(todo, per_block)
            for row in ds.iter_rows():
                seen.add(int(row["i"]))
                yield todo[int(row["i"])], pickle.loads(row["x"])
            todo, per_block = [it for i, it in enumerate(todo) if i not in seen], 1
            if todo:
                log.warning("%d items lost their workers %d times; %s", len(todo), self.max_retries + 1,
                            "reported as skipped" if final else "trying each alone")
        for item in todo:
            yield item, lost(item, f"its worker died {2 * (self.max_retries + 1)} times (out of memory, or a "
                                   "crash while decoding or scoring it)")


class _Apply:
    """A Ray Data row function: unpickle the item, apply ``fn``, pickle the result (any Python value
    travels, whatever Arrow would make of it)."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"i": row["i"], "x": pickle.dumps(self.fn(*pickle.loads(row["x"])), protocol=5)}


class _ModelActor:
    """One model per actor process; each row of a batch is ``call(model, prepare(*item))``, or
    ``call(model, value)`` for a value a task prepared."""

    def __init__(self, load: Callable[[], Any], call: Callable[..., Any], prepare: Callable[..., Any] | None):
        self.model = load()
        self.call = call
        self.prepare = prepare

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for x in batch["x"]:
            value = pickle.loads(x)
            if self.prepare is not None:
                value = self.prepare(*value)
            out.append(pickle.dumps(self.call(self.model, value), protocol=5))
        return {"i": batch["i"], "x": np.array(out, dtype=object)}


def listening(address: str, timeout: float = 5.0) -> None:
    """For ``host:port``: fail in seconds, naming the cause, when nothing accepts connections there
    (ray.init itself retries for minutes, warning every ~40 s)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or address.startswith(("ray://", "auto")):
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise HawkError(f"engine.address={address}: nothing is listening there ({e.strerror or e}); start a "
                        "cluster with `ray start --head`, or set engine.address='' to start one in this process") from e


def connect_failure(e: BaseException) -> str:
    """Why joining a cluster failed, in words: authentication, versions, or no cluster."""
    text = " ".join(str(e).split())
    low = text.lower()
    if "auth" in low or "token" in low:
        return (f"the cluster rejected this process's authentication ({text}); set RAY_AUTH_MODE=token and "
                "RAY_AUTH_TOKEN to the head's token (~/.ray/auth_token on the head)")
    if "version" in low:
        return f"Ray or Python versions differ between this process and the cluster ({text}); install from uv.lock there"
    return (f"no Ray cluster answers there ({text}); start one with `ray start --head`, or set engine.address='' "
            "to start one in this process")


def engine_from_config(options: dict[str, Any]) -> RayEngine | None:
    """None for ``engine.name: local`` (today's code path), a :class:`RayEngine` for ``ray``."""
    opts = dict(options)
    name = opts.pop("name", "local")
    if name == "local":
        return None
    if name != "ray":
        raise HawkError(f"unknown engine {name!r}; choose local or ray")
    return RayEngine(**opts)
