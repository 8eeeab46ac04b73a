"""Whole-batch statistics when one GRPO group is split across processes: one gather per batch.

TRL calls every reward function on each process with that process's share of the generation batch;
with ``per_device_train_batch_size * steps_per_generation`` not a multiple of ``num_generations``
(or with several processes in general) one prompt's generations land on different ranks. A group
statistic (min, max, rank, z-score, the fewest tool calls among the correct rollouts) computed on the
local share alone would then differ from rank to rank. So the rewards gather the batch from every
rank, compute on the whole of it, and keep their own slice:

    merged = rank_0 items ++ rank_1 items ++ ...     (rank order: the order of TRL's own gather)
    local  = merged[offset : offset + len(local)]     offset = sum of the sizes of lower ranks

:func:`gather_batch` performs that gather at most once per batch: the result is memoised on the
identity of the local objects (the rollout's ``trajectory`` records, which TRL hands unchanged to every
reward function and which the metrics callback sees too), so every reward function and the metrics
callback of one batch share a single ``torch.distributed.all_gather_object``. The cache holds the
last :data:`CACHE_SIZE` batches and keeps their local objects alive, so an id cannot be reused while
its entry exists. Callers must not mutate what they get back (each gets its own list of shared items).

The gather is collective: every rank must make the same sequence of *gathering* calls. That holds when
every rank runs the same callers in the same order on its own share of the same batch (TRL runs the
same reward functions on every rank), since a batch is then new on every rank at its first call and
cached on every rank at the later ones. An empty local list is never cached (it has no identity).

torch is not imported here: if nothing has imported ``torch.distributed``, no process group can exist
and the single-process path (``(local, 0)``, no copy, nothing cached) is taken.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

CACHE_SIZE = 4
_cache: OrderedDict[tuple[int, ...], tuple[list[Any], list[Any], int]] = OrderedDict()


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised default process group, else ``(0, 1)``."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return int(dist.get_rank()), int(dist.get_world_size())


def gather_batch(local: list[Any]) -> tuple[list[Any], int]:
    """Every rank's items in rank order, and the offset of this rank's first item in that list.

    Items must be picklable. With one process this returns ``(local, 0)`` without copying. With
    several, the first call for a batch gathers and later calls with the same local objects (by
    identity, in the same order) get the cached result without communicating.
    """
    rank, size = world()
    if size == 1:
        return local, 0
    key = tuple(id(item) for item in local)
    hit = _cache.get(key) if local else None
    if hit is not None:
        _cache.move_to_end(key)
        _, merged, offset = hit
        return list(merged), offset
    merged, offset = _all_gather(list(local), rank, size)
    if local:
        _cache[key] = (list(local), merged, offset)  # the local objects stay alive: ids stay unique
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return list(merged), offset


def _all_gather(local: list[Any], rank: int, size: int) -> tuple[list[Any], int]:
    import torch.distributed as dist

    parts: list[list[Any] | None] = [None] * size
    dist.all_gather_object(parts, local)
    offset = sum(len(part or []) for part in parts[:rank])
    return [item for part in parts for item in (part or [])], offset


def clear_cache() -> None:
    """Forget every cached batch (tests; a trainer never needs it)."""
    _cache.clear()
