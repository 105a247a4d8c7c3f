"""Workers that take turns over positions (each position once, results in order, progress that only
grows, errors raised), and the per-thread OpenMP limit."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from transfer_core import parallel
from transfer_core.parallel import openmp_threads, take_turns


@pytest.mark.parametrize("workers", [1, 3])
def test_every_position_is_worked_once_and_progress_ends_at_the_total(workers, monkeypatch):
    monkeypatch.setattr(parallel, "PROGRESS_EVERY_S", 0.01)
    seen, progress, lock = [], [], threading.Lock()

    def work(i: int) -> int:
        time.sleep(0.002)
        with lock:
            seen.append(i)
        return i * i

    with ThreadPoolExecutor(workers) as pool:
        results = take_turns(pool, workers, 40, work, on_progress=progress.append)
    assert sorted(seen) == list(range(40))
    assert results == [i * i for i in range(40)]  # in the positions' order, whichever worker took each
    assert progress[-1] == 40 and progress == sorted(progress)
    assert len(progress) > 1  # reported while working, not only at the end


def test_an_error_is_raised_in_the_caller_and_stops_the_other_workers():
    worked = []

    def work(i: int) -> None:
        if i == 3:
            raise ValueError("position 3 is bad")
        time.sleep(0.01)
        worked.append(i)

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="position 3 is bad"):
        take_turns(pool, 2, 200, work)
    assert len(worked) < 20  # the other worker stopped soon after, not at the end of the list


def test_without_a_pool_the_work_runs_in_order_in_this_thread():
    order = []
    take_turns(None, 4, 5, lambda i: order.append((i, threading.current_thread().name)))
    assert order == [(i, threading.current_thread().name) for i in range(5)]


def test_progress_that_raises_cancels_the_rest_of_the_work(monkeypatch):
    """A page's rerun (or Ctrl-C) raises from the progress callback: the workers must stop, not read on."""
    monkeypatch.setattr(parallel, "PROGRESS_EVERY_S", 0.01)
    worked = []

    def work(i: int) -> None:
        time.sleep(0.005)
        worked.append(i)

    def cancel(done: int) -> None:
        raise KeyboardInterrupt

    with ThreadPoolExecutor(2) as pool, pytest.raises(KeyboardInterrupt):
        take_turns(pool, 2, 400, work, on_progress=cancel)
    assert len(worked) < 50


def test_progress_comes_after_every_given_number_of_positions_as_they_are_done():
    """A pass timed batch by batch (the shoot-out's speed) needs each report when its batch is done."""
    progress = []
    with ThreadPoolExecutor(2) as pool:
        take_turns(pool, 2, 100, lambda i: time.sleep(0.001), on_progress=progress.append, every=10)
    assert progress[-1] == 100 and progress == sorted(progress)
    assert len(progress) >= 8  # about one report per ten positions, far more than one a quarter second


def test_without_progress_the_caller_still_returns_when_the_workers_stop():
    for _ in range(200):  # a lost wake-up would hang here
        with ThreadPoolExecutor(2) as pool:
            take_turns(pool, 2, 3, lambda i: None)


def test_openmp_threads_limits_the_calling_thread_until_the_with_ends():
    import torch

    if torch.get_num_threads() < 2:
        pytest.skip("needs a process with at least two PyTorch threads")
    before, seen = torch.get_num_threads(), {}

    def limited():
        with openmp_threads(1):
            seen["inside"] = torch.get_num_threads()
            other = threading.Thread(target=lambda: seen.setdefault("another thread", torch.get_num_threads()))
            other.start()
            other.join()
        seen["after"] = torch.get_num_threads()

    for _ in range(2):  # the second time from the libraries looked up the first time
        seen.clear()
        thread = threading.Thread(target=limited)
        thread.start()
        thread.join()
        assert seen == {"inside": 1, "another thread": before, "after": before}
    assert torch.get_num_threads() == before
    assert parallel._controller() is parallel._controller() and len(parallel._CONTROLLER) == 1  # looked up once


def test_openmp_threads_holds_in_a_new_thread_after_torch_set_num_threads():
    """PyTorch sets a new thread's count at its first call there, from torch.set_num_threads' value:
    a limit set before that call would be overwritten."""
    import torch

    before, seen = torch.get_num_threads(), []
    torch.set_num_threads(before)

    def limited():
        with openmp_threads(1):
            seen.append(torch.get_num_threads())

    thread = threading.Thread(target=limited)
    thread.start()
    thread.join()
    assert seen == [1]
