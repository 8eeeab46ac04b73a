"""Whole-group statistics when one GRPO group is split across processes.

TRL calls every reward function on each process with that process's share of the generation batch;
with ``per_device_train_batch_size * steps_per_generation`` not a multiple of ``num_generations``
(or with several processes in general) one prompt's generations land on different ranks. A group
statistic (min, max, rank, z-score, the fewest tool calls among the correct rollouts) computed on the
local share alone would then differ from rank to rank. So group rewards gather the per-sample inputs
from every rank, compute on the whole batch, and keep their own slice:

    all = rank_0 samples ++ rank_1 samples ++ ...     (rank order: the order of TRL's own gather)
    local = all[offset : offset + len(local)]          offset = sum of the sizes of lower ranks

The gather is ``torch.distributed.all_gather_object`` when a process group is initialised with more
than one process, and a no-op otherwise. torch is not imported here: if nothing has imported
``torch.distributed``, no process group can exist and the single-process path is taken. Every rank must
call :func:`gather_samples` the same number of times in the same order; TRL guarantees that by running
the same reward functions on every rank.
"""

from __future__ import annotations

import sys
from typing import Any


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised default process group, else ``(0, 1)``."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def gather_samples(local: list[Any]) -> tuple[list[Any], int]:
    """All ranks' samples in rank order, and the offset of this rank's first sample in that list.

    Each element must be picklable (plain tuples of floats, strings, None). With one process this
    returns ``(local, 0)`` without copying.
    """
    rank, size = world()
    if size == 1:
        return local, 0
    import torch.distributed as dist

    parts: list[list[Any] | None] = [None] * size
    dist.all_gather_object(parts, list(local))
    offset = sum(len(part or []) for part in parts[:rank])
    merged = [item for part in parts for item in (part or [])]
    return merged, offset
