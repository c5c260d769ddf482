"""How many workers a batch is spread over: the CRF's processes and the box metrics' threads."""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["usable_cpus", "worker_count"]


def usable_cpus() -> int:
    """The number of CPUs this process may run on: the default worker count of camfix's batch functions.

    The size of the process's affinity mask (``os.sched_getaffinity``, Linux), which a container, ``taskset`` or
    a job scheduler may restrict below the machine's count; elsewhere ``os.cpu_count()``.

    Returns:
        An int ``>= 1``.
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(workers: Optional[int], tasks: int) -> int:
    """The workers to start for ``tasks`` independent tasks: ``workers`` (a checked int ``>= 1``), or
    :func:`usable_cpus` when ``None``; never more than ``tasks``, never fewer than 1."""
    return max(1, min(usable_cpus() if workers is None else workers, tasks))
