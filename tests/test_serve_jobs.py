"""Jobs and dynamic batching without HTTP: grouping by batch key, max_batch, failures, the store."""

import threading
import time

import numpy as np
import pytest

from tinyvid.serve.jobs import (DynamicBatcher, InProcessQueue, Job, JobStore, Outcome, VideoRequest, percentiles,
                                run_generation)


class Recording:
    """A generator that records its batches and returns frames filled with each seed."""

    def __init__(self, delay: float = 0.0):
        self.calls, self.delay = [], delay

    def generate(self, prompts, steps, guidance, seeds, frames):
        self.calls.append((len(prompts), steps, guidance, frames))
        time.sleep(self.delay)
        return np.stack([np.full((frames, 64, 64), s % 256, np.uint8) for s in seeds])


def wait_all(queue, ids, timeout=10):
    deadline = time.monotonic() + timeout
    while any(queue.get(i).status not in ("done", "refused", "failed") for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return [queue.get(i) for i in ids]


def test_concurrent_requests_are_batched_by_key():
    gen = Recording(delay=0.05)
    q = InProcessQueue(gen, max_batch=4, max_wait_s=0.2)
    reqs = [VideoRequest("a", steps=2, frames=3, seed=i) for i in range(6)] + [VideoRequest("b", steps=5, frames=3, seed=9)]
    ids = [q.submit(r)[0].id for r in reqs]
    jobs = wait_all(q, ids)
    assert all(j.status == "done" and j.attempts == 1 for j in jobs)
    assert sorted(c[0] for c in gen.calls) == [1, 2, 4]  # 6 of one key in batches of <= 4, the other key alone
    assert all(len({c[1:] for c in gen.calls if c[1] == k}) == 1 for k in (2, 5))
    for job, r in zip(jobs, reqs):
        assert (q.result(job.id) == r.seed).all()  # every job got its own video back
    m = q.metrics()
    assert m["jobs"]["done"] == 7 and m["batches"] == 3 and m["queue_depth"] == 0
    q.close()


def test_unbatched_worker_runs_one_job_per_call():
    gen = Recording()
    q = InProcessQueue(gen, max_batch=1)
    wait_all(q, [q.submit(VideoRequest("a", seed=i))[0].id for i in range(5)])
    assert [c[0] for c in gen.calls] == [1] * 5
    q.close()


def test_a_failing_batch_fails_its_jobs_and_the_worker_goes_on():
    calls = []

    def run_batch(jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [Outcome("done", np.zeros((1, 64, 64), np.uint8)) for _ in jobs]

    batcher = DynamicBatcher(run_batch, max_batch=8, max_wait_s=0.0)
    first = batcher.submit(Job("1", VideoRequest("a"))).result(5)
    second = batcher.submit(Job("2", VideoRequest("a"))).result(5)
    assert first.status == "failed" and "RuntimeError: boom" in first.reason and first.batch_size == 1
    assert second.status == "done" and batcher.alive()
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(Job("3", VideoRequest("a")))


def test_run_generation_checks_shapes_and_keys():
    jobs = [Job("1", VideoRequest("a", steps=2)), Job("2", VideoRequest("a", steps=3))]
    with pytest.raises(ValueError, match="must share"):
        run_generation(Recording(), jobs, [])

    class Wrong:
        def generate(self, prompts, steps, guidance, seeds, frames):
            return np.zeros((len(prompts), frames + 1, 64, 64), np.uint8)

    with pytest.raises(ValueError, match="generator returned"):
        run_generation(Wrong(), jobs[:1], [])
    refuse = run_generation(Recording(), jobs[:1], [lambda video, prompt: "too dark"])
    assert refuse[0].status == "refused" and refuse[0].reason == "output refused: too dark"


def test_store_is_idempotent_and_thread_safe():
    store = JobStore(max_results=3)
    job, created = store.create(VideoRequest("a"), "key")
    assert created and store.create(VideoRequest("b"), "key") == (store.get(job.id), False)
    assert store.finish(job.id, Outcome("done", np.ones((1, 2, 2), np.uint8)))
    assert not store.finish(job.id, Outcome("failed", None, "late duplicate"))
    assert store.get(job.id).status == "done"
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(store.create(VideoRequest("c"))[0].id)) for _ in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(ids)) == 50
    for i in ids[:5]:
        store.finish(i, Outcome("done", np.zeros((1, 2, 2), np.uint8)))
    assert store.result(job.id) is None and store.result(ids[4]) is not None  # only the newest 3 results kept
    assert store.counts()["done"] == 6 and store.counts()["queued"] == 45


def test_percentiles():
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    p = percentiles(list(range(101)))
    assert p == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
