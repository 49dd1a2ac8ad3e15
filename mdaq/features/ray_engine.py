"""The Ray Data engine of :func:`mdaq.features.engine.compute_feature_shards`: pool shards flow through
``Dataset.map_batches`` to a fixed-size pool of actors, each of which loads the QSM and the encoder once and writes
whole feature shards (a shard per call), so Ray moves only small task descriptions and manifest entries.

Ray starts inside this process by default (``ray.init(num_cpus=...)``, no dashboard) and stops when the run ends;
``address`` joins a running cluster instead, whose nodes must have mdaq's environment and see ``pool`` and ``out``
at the same paths (a shared filesystem). A Ray session that is already running (a test module's, a notebook's) is
used as it is and left running.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from mdaq.errors import DataError, MissingAssetError
from mdaq.features.engine import FeatureSpec, ShardFeaturizer, ShardTask

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")  # torch, MKL, the Rust tokenizers


class ShardWorker:
    """The actor-side callable of ``map_batches``: models loaded once in ``__init__``, one pool shard per row.

    Parameters
    ----------
    spec : dict
        A :class:`~mdaq.features.engine.FeatureSpec` as a dict; ``threads`` is this actor's CPU share.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        threads = str(max(1, int(spec["threads"])))
        for name in THREAD_ENV:  # before torch and the tokenizers start their thread pools in this worker
            os.environ.setdefault(name, threads)
        self.featurizer = ShardFeaturizer(FeatureSpec(**spec))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Featurize each pool shard named in ``batch["task"]`` (JSON :class:`ShardTask`); return manifest entries."""
        entries = [self.featurizer.featurize(ShardTask(**json.loads(t))) for t in batch["task"]]
        return {"entry": np.array([json.dumps(e) for e in entries], dtype=object)}


@contextmanager
def ray_session(address: str | None, num_cpus: int, num_gpus: int | None = None) -> Iterator[None]:
    """Use the running Ray session, join the cluster at ``address``, or start Ray here with ``num_cpus`` CPUs (and
    stop it afterwards)."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def _user_error(error: BaseException) -> BaseException | None:
    """The mdaq error a worker raised, found through Ray's wrappers (``RayTaskError``, ``UserCodeException``)."""
    seen = set()
    todo = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DataError | MissingAssetError | ValueError) and type(e).__module__.startswith("mdaq"):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def run_on_ray(
    tasks: list[ShardTask],
    spec: FeatureSpec,
    *,
    workers: int,
    address: str | None = None,
    gpus_per_worker: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Featurize ``tasks`` on a Ray Data actor pool of ``workers`` actors; yield each manifest entry as it is done.

    Each actor reserves ``max(1, spec.threads)`` CPUs and runs that many torch threads (``spec.threads`` 0 means 1:
    on a CPU machine, one single-threaded actor per core is the layout that scales), plus ``gpus_per_worker`` GPUs.

    Raises
    ------
    DataError
        The first bad pool row a worker found (unwrapped from Ray's exception, naming the shard, row and field).
    """
    if not tasks:
        return
    import ray
    import ray.data

    cpus = max(1, spec.threads)
    actor_spec = replace(spec, threads=cpus)
    gpus = int(np.ceil(gpus_per_worker * workers)) if gpus_per_worker else None
    with ray_session(address, num_cpus=cpus * workers, num_gpus=gpus):
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        items = [{"task": json.dumps(asdict(t))} for t in tasks]
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardWorker,
            batch_size=1,
            # one shard in flight per actor: shards are long, so a queue behind a busy actor would idle another
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs={"spec": asdict(actor_spec)},
            num_cpus=cpus,
            num_gpus=gpus_per_worker or None,
            udf_modifying_row_count=False,
        )
        try:
            for row in ds.iter_rows():
                yield json.loads(row["entry"])
        except Exception as e:  # noqa: BLE001 - re-raised: mdaq's own error when a worker raised one
            user = _user_error(e)
            if user is not None:
                raise user from None
            raise
