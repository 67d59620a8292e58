"""The collector runs less often while workers send, and as before once they stop."""

import gc
import threading

from tidings.dispatch.collector import THRESHOLD, fewer_collections


def test_thresholds_come_back_when_the_last_worker_ends() -> None:
    before = gc.get_threshold()
    inside: list[tuple[int, int, int]] = []
    started, release = threading.Barrier(2), threading.Event()

    def other_worker() -> None:
        with fewer_collections():
            started.wait()
            release.wait()

    thread = threading.Thread(target=other_worker)
    thread.start()
    with fewer_collections():
        started.wait()
        inside.append(gc.get_threshold())
    inside.append(gc.get_threshold())  # the other worker still runs
    release.set()
    thread.join()

    assert inside == [THRESHOLD, THRESHOLD]
    assert gc.get_threshold() == before
