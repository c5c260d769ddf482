"""How many workers a batch is spread over: the CRF's processes and the box metrics' threads."""

from __future__ import annotations

import os
from typing import Optional

from ._validation import check_int

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
    """The workers to start for ``tasks`` independent tasks.

    Args:
        workers: an int ``>= 1``, or ``None`` for :func:`usable_cpus`.
        tasks: an int ``>= 0``, the number of independent tasks.

    Returns:
        ``min(workers, tasks)``, at least 1 (an empty batch still gets one worker, with nothing to do).
    """
    if workers is not None:
        check_int("workers", workers, 1)
    check_int("tasks", tasks, 0)
    return max(1, min(usable_cpus() if workers is None else workers, tasks))
