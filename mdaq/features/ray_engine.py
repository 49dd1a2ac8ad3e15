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
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.errors import DataError
from mdaq.features.engine import ShardFeaturizer
from mdaq.features.spec import FeatureSpec, ShardTask

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
        for name in THREAD_ENV:  # this actor's CPU share, before torch and the tokenizers start their thread pools
            os.environ[name] = threads
        self.featurizer = ShardFeaturizer(FeatureSpec(**spec))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Featurize each pool shard named in ``batch["task"]`` (JSON :class:`ShardTask`); return manifest entries.

        A bad pool row comes back as an ``error`` entry rather than an exception: Ray wraps a worker's exception in
        its own and drops the original, and the other shards can still finish (the run then resumes from them).
        """
        entries = []
        for text in batch["task"]:
            task = ShardTask(**json.loads(text))
            try:
                entries.append(self.featurizer.featurize(task))
            except DataError as e:
                error = {"path": e.path, "message": e.message, "record": e.record, "field": e.field}
                entries.append({"name": Path(task.path).name, "error": error})
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
        For the first shard in pool order with a bad row (naming the shard, row and field), once every other shard
        is done, so that a rerun after the fix computes only the bad shards.
    """
    if not tasks:
        return
    import ray
    import ray.data

    workers = min(workers, len(tasks))  # an actor without a shard would only load the models
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
        errors = {}
        for row in ds.iter_rows():
            entry = json.loads(row["entry"])
            if "error" in entry:
                errors[entry["name"]] = entry["error"]
            else:
                yield entry
    for task in tasks:  # the first bad shard in pool order, after every other shard is done
        error = errors.get(Path(task.path).name)
        if error is not None:
            raise DataError(error["path"], error["message"], error["record"], error["field"])
