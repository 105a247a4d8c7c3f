"""How the engine spreads CPU work over threads.

:func:`take_turns`: work on every position of a list with a few threads that each take the next
position when they finish.
Handing a thread pool one task per image wakes the calling thread after every image to collect
its result, and with one busy worker per core that wake-up takes a core from a worker, which then
waits for it. Each worker taking the next position itself (an atomic counter) and the caller
waking a few times a second, for progress only, read flowers-mini's 210 photos into the image cache
inside a frozen run in 32 ms instead of 38, and ran ONNX Runtime over them 11-13 ms sooner (in
0.55 s), on two cores (medians of 16 alternating runs in one process).

:func:`openmp_threads`: PyTorch's OpenMP threads for the calling thread's work alone.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from typing import TypeVar

import torch
from threadpoolctl import ThreadpoolController

__all__ = ["openmp_threads", "take_turns"]

PROGRESS_EVERY_S = 0.25
T = TypeVar("T")


def take_turns(
    pool: Executor | None, workers: int, n: int, work: Callable[[int], T],
    on_progress: Callable[[int], None] | None = None, every: int | None = None,
) -> list[T]:
    """``[work(0), …, work(n - 1)]``, worked on ``workers`` threads of ``pool`` (in this thread without one).

    Args:
        pool: where the workers run; each runs one long task that takes positions until none are left.
        workers: how many such tasks to start.
        n: how many positions.
        work: what to do for one position.
        on_progress: called in this thread with the number of positions done: after every
            ``every`` of them if given, at least every quarter of a second, and once at the end.
        every: how many positions make a step worth reporting (a pass timed batch by batch needs
            each report when its batch is done, not a quarter of a second later).

    Returns:
        What ``work`` returned for each position, in the positions' order.

    Raises:
        An error ``work`` or ``on_progress`` raised (of ``work``'s, the one in the lowest-numbered
        worker); the workers stop at their next position.
    """
    results: list[T] = [None] * n  # type: ignore[list-item]
    if pool is None or workers <= 1 or n <= 1:
        for i in range(n):
            results[i] = work(i)
            if on_progress is not None and (every is None or (i + 1) % every == 0 or i + 1 == n):
                on_progress(i + 1)
        return results
    workers = min(workers, n)
    positions = itertools.count()  # next() on a count is atomic: no two workers take the same position
    finished = itertools.count(1)  # the same, for the positions done
    done = [0] * workers  # each worker counts its own, so the sum only ever grows
    stopped = itertools.count(1)  # workers that have stopped
    failed, all_stopped, progressed = threading.Event(), threading.Event(), threading.Event()

    def take(worker: int) -> None:
        try:
            while not failed.is_set() and (i := next(positions)) < n:
                results[i] = work(i)
                done[worker] += 1
                if every is not None and next(finished) % every == 0:
                    progressed.set()
        except BaseException:
            failed.set()
            raise
        finally:
            if next(stopped) == workers:
                all_stopped.set()
            progressed.set()  # set last: the caller it wakes sees the two above

    tasks = [pool.submit(take, k) for k in range(workers)]
    try:
        while True:
            progressed.wait(timeout=PROGRESS_EVERY_S if on_progress else None)
            progressed.clear()
            if failed.is_set() or all_stopped.is_set():
                break
            if on_progress is not None:
                on_progress(sum(done))  # may raise to cancel (a page's rerun, Ctrl-C)
    except BaseException:
        failed.set()  # the workers stop at their next position instead of working through the rest
        raise
    for task in tasks:
        task.result()  # waits for the others to stop, then raises the error that stopped them
    if on_progress is not None:
        on_progress(n)
    return results


def openmp_threads(n: int) -> AbstractContextManager:
    """Limit the calling thread's OpenMP threads (PyTorch's on a CPU) to ``n``.

    OpenMP's thread count is per thread, so the limit leaves other threads (the app's server) as they
    are, unlike ``torch.set_num_threads``, which also lowers the default of threads started later.
    The libraries are looked up once per process (threadpoolctl's ``threadpool_limits`` looks them up
    on every call, 1-4 ms each time, once per run), so an OpenMP library loaded after the first call
    is not limited; PyTorch's is loaded with it.

    Args:
        n: threads for this thread's OpenMP work.

    Returns:
        A context manager that puts the earlier count back when its ``with`` ends; called on its own,
        the limit stays for the rest of the thread's life.
    """
    torch.get_num_threads()  # PyTorch sets a thread's count at its first call there: make that happen before the limit
    return _controller().limit(limits=n, user_api="openmp")


_CONTROLLER: list[ThreadpoolController] = []  # the one per process, made at the first call
_CONTROLLER_LOCK = threading.Lock()


def _controller() -> ThreadpoolController:
    """The process's controller; the lock keeps threads starting at once from each looking the libraries up."""
    with _CONTROLLER_LOCK:
        if not _CONTROLLER:
            _CONTROLLER.append(ThreadpoolController())  # finds PyTorch's OpenMP runtime, loaded with torch above
        return _CONTROLLER[0]
