"""Production mode on a real Redis server and real Celery workers (subprocesses).

The fixture starts Debian's `redis-server` on a free loopback port; where the binary is missing
and TINYVID_REDIS_URL names no reachable server, the tests skip and say how to install it.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("celery", reason="the serve extra is not installed: pip install 'tinyvid[serve]'")
import redis  # noqa: E402

from tinyvid.serve.celery_app import CeleryQueue, RedisJobStore, make_celery  # noqa: E402
from tinyvid.serve.jobs import Outcome, VideoRequest  # noqa: E402

VISIBILITY_TIMEOUT = 4.0  # above the slow job's ~2.5 s, so only a lost worker's job is redelivered
SLOW = dict(steps=100, frames=16)
FAST = dict(steps=2, frames=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def redis_url():
    """CI's server (TINYVID_REDIS_URL, started by .ci/run), else a redis-server of our own on a free port."""
    url = os.environ.get("TINYVID_REDIS_URL")
    if url and _reachable(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install -y redis-server) and TINYVID_REDIS_URL is unset"
        print("SKIP:", reason)
        pytest.skip(reason)
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _reachable(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def namespace():
    """A queue name and key prefix of this test's own: tests never see each other's jobs."""
    return f"tinyvid-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api_queue(redis_url, namespace):
    celery = make_celery(redis_url, visibility_timeout=VISIBILITY_TIMEOUT, queue=namespace)
    q = CeleryQueue(redis_url, celery=celery, store=RedisJobStore(redis_url, prefix=namespace + ":"))
    yield q
    q.close()


class Workers:
    """Celery worker subprocesses, each in its own process group so a kill takes its threads along."""

    def __init__(self, redis_url: str, namespace: str):
        self.env = dict(os.environ, TINYVID_REDIS_URL=redis_url, TINYVID_SERVE_QUEUE=namespace,
                        TINYVID_SERVE_PREFIX=namespace + ":",
                        TINYVID_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), TINYVID_SERVE_OUTPUT_CHECKS="none",
                        TINYVID_SERVE_MAX_BATCH="8", TINYVID_SERVE_MAX_WAIT="0.2", OMP_NUM_THREADS="1")
        self.procs: list[subprocess.Popen] = []

    def start(self, queue: CeleryQueue, name: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", "tinyvid.serve.celery_app:app", "worker", "--pool=threads",
               "--concurrency=8", "--loglevel=warning", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"]
        proc = subprocess.Popen(cmd, env=self.env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while not queue.celery.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5):
            assert proc.poll() is None, f"celery worker {name} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"celery worker {name} did not come up in 60 s"
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def workers(redis_url, namespace):
    w = Workers(redis_url, namespace)
    yield w
    w.stop_all()


def wait_for(queue, job_id, statuses, timeout):
    deadline = time.monotonic() + timeout
    while (job := queue.get(job_id)).status not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} still {job.status} after {timeout} s"
        time.sleep(0.05)
    return job


def test_concurrent_jobs_run_as_one_batch_in_the_worker(api_queue, workers):
    workers.start(api_queue, "batch")
    jobs = [api_queue.submit(VideoRequest(f"the digit {i} is moving up", seed=i, **FAST))[0] for i in range(6)]
    done = [wait_for(api_queue, j.id, ("done",), 30) for j in jobs]
    assert max(j.batch_size for j in done) > 1, "concurrent jobs were never batched"
    assert all(j.attempts == 1 for j in done)
    video = api_queue.result(jobs[0].id)
    assert video.shape == (FAST["frames"], 64, 64) and video.dtype == np.uint8
    m = api_queue.metrics()
    assert m["jobs"]["done"] == 6 and m["jobs"]["in_flight"] == 0 and m["latency_s"]["p95"] is not None
    ok, detail = api_queue.health()
    assert ok and detail.endswith("worker(s)")


def test_job_survives_a_killed_worker(api_queue, workers):
    first = workers.start(api_queue, "doomed")
    job, _ = api_queue.submit(VideoRequest("the digit 7 is moving left", seed=3, **SLOW))
    wait_for(api_queue, job.id, ("running",), 30)
    workers.kill(first)  # SIGKILL mid-job: no chance to ack, requeue or clean up
    time.sleep(0.5)
    assert api_queue.get(job.id).status == "running"  # nobody finished it, nobody will until a worker is back
    assert not api_queue.celery.control.ping(destination=[f"doomed@{socket.gethostname()}"], timeout=0.5)
    workers.start(api_queue, "rescuer")
    done = wait_for(api_queue, job.id, ("done",), 60)
    assert done.attempts == 2, "the job should have run once on each worker"
    assert api_queue.store.counts().get("done") == 1, "the result must be stored exactly once"
    assert api_queue.result(job.id).shape == (SLOW["frames"], 64, 64)


def test_outcomes_are_idempotent_by_job_id(redis_url):
    store = RedisJobStore(redis_url, prefix=f"test:{uuid.uuid4().hex[:6]}:")
    job, created = store.create(VideoRequest("the digit 1 is moving up"), idempotency_key="abc")
    again, created_again = store.create(VideoRequest("the digit 1 is moving up"), idempotency_key="abc")
    assert created and not created_again and again.id == job.id
    video = np.full((2, 64, 64), 7, np.uint8)
    assert store.mark_running(job.id, 1).status == "running"
    assert store.finish(job.id, Outcome("done", video, batch_size=1))
    assert not store.finish(job.id, Outcome("failed", None, "a duplicate delivery"))
    assert store.mark_running(job.id, 1).status == "done"  # a late duplicate cannot reopen it
    final = store.get(job.id)
    assert final.status == "done" and final.reason is None and final.attempts == 1
    np.testing.assert_array_equal(store.result(job.id), video)
    assert store.counts() == {"submitted": 1, "done": 1}
