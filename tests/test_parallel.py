"""camfix.parallel: the worker counts of the CRF's processes and the box metrics' threads."""

import os

import pytest

from camfix.parallel import usable_cpus, worker_count


def test_usable_cpus_is_the_affinity_mask() -> None:
    count = usable_cpus()
    assert isinstance(count, int) and 1 <= count <= (os.cpu_count() or count)
    if hasattr(os, "sched_getaffinity"):
        assert count == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("workers, tasks", [(1, 1), (1, 9), (4, 2), (3, 3), (16, 100)])
def test_worker_count_never_exceeds_the_tasks(workers: int, tasks: int) -> None:
    assert worker_count(workers, tasks) == min(workers, tasks)


def test_worker_count_defaults_to_the_usable_cpus() -> None:
    assert worker_count(None, 10_000) == usable_cpus()
    assert worker_count(None, 1) == 1
    assert worker_count(None, 0) == 1  # an empty batch still gets one worker, which has nothing to do


@pytest.mark.parametrize("workers, tasks, error", [(0, 5, ValueError), (-3, 5, ValueError), (2.5, 5, TypeError),
                                                   (True, 5, TypeError), (2, -1, ValueError), (None, 1.0, TypeError)])
def test_worker_count_names_bad_arguments(workers: object, tasks: object, error: type) -> None:
    with pytest.raises(error, match="workers|tasks"):
        worker_count(workers, tasks)  # type: ignore[arg-type]
