"""Jobs: the request and job records, an in-memory store, dynamic batching, the embedded queue.

A job goes queued -> running -> done | refused | failed. The embedded queue (`InProcessQueue`) runs
in the API process with a worker thread, so a notebook or Colab needs no services; the Celery
queue (`tinyvid.serve.celery_app`) has the same interface with Redis behind it.

Dynamic batching: generation requests that arrive within `max_wait_s` of each other (up to
`max_batch`, and with the same steps, guidance and frames, which one generator call shares)
run as one batched call. On a CPU that amortises per-call overhead; on a GPU a single small
request leaves most of the device idle, so batching is where a video service's throughput comes from.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from tinyvid.serve.engines import VideoGenerator
from tinyvid.serve.safety import OutputCheck, first_refusal

TERMINAL = ("done", "refused", "failed")
STATUSES = ("queued", "running") + TERMINAL


@dataclass(frozen=True)
class VideoRequest:
    prompt: str
    steps: int = 20
    guidance: float = 2.0
    seed: int = 0
    frames: int = 16

    def batch_key(self) -> tuple:
        """Requests batch together only when one generator call can serve them all."""
        return (self.steps, float(self.guidance), self.frames)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Job:
    id: str
    request: VideoRequest
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    reason: str | None = None
    attempts: int = 0
    batch_size: int | None = None

    @property
    def latency(self) -> float | None:
        return None if self.finished is None else self.finished - self.created

    def to_dict(self) -> dict:
        d = asdict(self)
        d["request"] = self.request.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**{**d, "request": VideoRequest(**d["request"])})


@dataclass
class Outcome:
    status: str  # done, refused or failed
    video: np.ndarray | None = None
    reason: str | None = None
    batch_size: int | None = None  # how many jobs shared the generator call


def new_job_id() -> str:
    return uuid.uuid4().hex


def percentiles(values: Sequence[float], qs=(50, 95, 99)) -> dict[str, float | None]:
    if not len(values):
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(np.percentile(np.asarray(values, dtype=np.float64), q)) for q in qs}


def run_generation(generator: VideoGenerator, jobs: Sequence[Job], output_checks: Sequence[OutputCheck]) -> list[Outcome]:
    """One generator call for jobs of one batch key, then the output checks on each video."""
    keys = {j.request.batch_key() for j in jobs}
    if len(keys) != 1:
        raise ValueError(f"a batch must share steps, guidance and frames; got {sorted(keys)}")
    r = jobs[0].request
    videos = generator.generate([j.request.prompt for j in jobs], r.steps, r.guidance,
                                [j.request.seed for j in jobs], r.frames)
    expected = (len(jobs), r.frames)
    if videos.shape[:2] != expected or videos.dtype != np.uint8:
        raise ValueError(f"generator returned {videos.dtype} {videos.shape}, expected uint8 {expected} + (H, W)")
    outcomes = []
    for job, video in zip(jobs, videos):
        reason = first_refusal(output_checks, video, job.request.prompt)
        outcomes.append(Outcome("refused", None, f"output refused: {reason}") if reason else Outcome("done", video))
    return outcomes


class DynamicBatcher:
    """One worker thread that turns concurrent `submit(job)` calls into batched `run_batch(jobs)` calls.

    It blocks for a first job, then keeps collecting for up to `max_wait_s` or until `max_batch`
    jobs; jobs with another batch key wait for the next round (first come, first served).
    `max_batch=1` is the unbatched worker the load test compares against.
    """

    def __init__(self, run_batch: Callable[[list[Job]], list[Outcome]], max_batch: int = 16,
                 max_wait_s: float = 0.05, on_start: Callable[[list[Job]], None] | None = None):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self.run_batch, self.max_batch, self.max_wait_s, self.on_start = run_batch, max_batch, max_wait_s, on_start
        self._inbox: queue.Queue = queue.Queue()
        self._held: deque = deque()  # taken from the inbox but of another batch key
        self._closed = threading.Event()
        self.batch_sizes: deque = deque(maxlen=1000)
        self.busy = False
        self._thread = threading.Thread(target=self._loop, name="tinyvid-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        if self._closed.is_set():
            raise RuntimeError("the batcher is closed")
        future: Future = Future()
        self._inbox.put((job, future))
        return future

    def depth(self) -> int:
        return self._inbox.qsize() + len(self._held)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        self._closed.set()
        self._thread.join(timeout)

    def _take(self, timeout: float):
        if self._held:
            return self._held.popleft()
        return self._inbox.get(timeout=timeout)

    def _next_batch(self) -> list:
        first = self._take(timeout=0.1)
        batch, key = [first], first[0].request.batch_key()
        deadline = time.monotonic() + self.max_wait_s
        skipped = []
        while len(batch) < self.max_batch:
            # held items first: they arrived before anything still in the inbox
            if self._held:
                item = self._held.popleft()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._inbox.get(timeout=remaining)
                except queue.Empty:
                    break
            (batch if item[0].request.batch_key() == key else skipped).append(item)
        self._held.extendleft(reversed(skipped))
        return batch

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                batch = self._next_batch()
            except queue.Empty:
                continue
            jobs = [job for job, _ in batch]
            self.busy = True
            try:
                if self.on_start:
                    self.on_start(jobs)
                outcomes = self.run_batch(jobs)
            except Exception as e:  # a failing model fails its batch, never the worker
                outcomes = [Outcome("failed", None, f"{type(e).__name__}: {e}")] * len(jobs)
            finally:
                self.busy = False
            self.batch_sizes.append(len(jobs))
            for (_, future), outcome in zip(batch, outcomes):
                future.set_result(dataclasses.replace(outcome, batch_size=len(jobs)))


class JobStore:
    """Jobs and results in memory, keyed by job id; thread-safe; `finish` is idempotent (first wins)."""

    def __init__(self, max_results: int = 1000):
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._results: dict[str, np.ndarray] = {}
        self._order: deque = deque()  # finished job ids, oldest first, to bound memory
        self._by_key: dict[str, str] = {}
        self.max_results = max_results
        self.latencies: deque = deque(maxlen=1000)

    def create(self, request: VideoRequest, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """(job, created): a repeated idempotency key returns the first job instead of a new one."""
        with self._lock:
            if idempotency_key and idempotency_key in self._by_key:
                return dataclasses.replace(self._jobs[self._by_key[idempotency_key]]), False
            job = Job(new_job_id(), request)
            self._jobs[job.id] = job
            if idempotency_key:
                self._by_key[idempotency_key] = job.id
            return dataclasses.replace(job), True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dataclasses.replace(job) if job else None

    def mark_running(self, job_ids: Sequence[str], batch_size: int) -> None:
        with self._lock:
            for job_id in job_ids:
                job = self._jobs[job_id]
                if job.status not in TERMINAL:
                    job.status, job.started, job.batch_size = "running", time.time(), batch_size
                    job.attempts += 1

    def finish(self, job_id: str, outcome: Outcome) -> bool:
        """Store the outcome unless the job already has one; True when this call stored it."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status in TERMINAL:
                return False
            job.status, job.reason, job.finished = outcome.status, outcome.reason, time.time()
            if outcome.video is not None:
                self._results[job_id] = outcome.video
            self._order.append(job_id)
            while len(self._order) > self.max_results:
                self._results.pop(self._order.popleft(), None)
            self.latencies.append(job.latency)
            return True

    def result(self, job_id: str) -> np.ndarray | None:
        with self._lock:
            return self._results.get(job_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = dict.fromkeys(STATUSES, 0)
            for job in self._jobs.values():
                out[job.status] += 1
            return out


class JobQueue(Protocol):
    """What the API needs from a queue: the embedded one and the Celery one both provide it."""

    name: str

    def submit(self, request: VideoRequest, idempotency_key: str | None = None) -> tuple[Job, bool]: ...
    def get(self, job_id: str) -> Job | None: ...
    def result(self, job_id: str) -> np.ndarray | None: ...
    def metrics(self) -> dict: ...
    def health(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


class StoreBackedQueue:
    """What both queues share: jobs recorded in `self.store` (create with idempotency, get, result);
    a subclass says how a newly created job is dispatched to a worker."""

    store: JobStore  # or celery_app.RedisJobStore: create / get / result / finish alike

    def submit(self, request: VideoRequest, idempotency_key: str | None = None) -> tuple[Job, bool]:
        job, created = self.store.create(request, idempotency_key)
        if created:
            self._dispatch(job)
        return job, created

    def _dispatch(self, job: Job) -> None:
        raise NotImplementedError

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def result(self, job_id: str) -> np.ndarray | None:
        return self.store.result(job_id)


class InProcessQueue(StoreBackedQueue):
    """The embedded default: a JobStore and a DynamicBatcher in this process."""

    name = "embedded"

    def __init__(self, generator: VideoGenerator, output_checks: Sequence[OutputCheck] = (),
                 max_batch: int = 16, max_wait_s: float = 0.05):
        self.store = JobStore()
        self.generator, self.output_checks = generator, list(output_checks)
        self.batcher = DynamicBatcher(lambda jobs: run_generation(self.generator, jobs, self.output_checks),
                                      max_batch, max_wait_s,
                                      on_start=lambda jobs: self.store.mark_running([j.id for j in jobs], len(jobs)))

    def _dispatch(self, job: Job) -> None:
        self.batcher.submit(job).add_done_callback(lambda f, job_id=job.id: self.store.finish(job_id, f.result()))

    def metrics(self) -> dict:
        sizes = list(self.batcher.batch_sizes)
        return dict(queue=self.name, queue_depth=self.batcher.depth(), jobs=self.store.counts(),
                    latency_s=percentiles(list(self.store.latencies)),
                    # job-weighted: the size of the batch the average job ran in
                    batches=len(sizes), mean_batch_size=sum(s * s for s in sizes) / sum(sizes) if sizes else None,
                    max_batch=self.batcher.max_batch)

    def health(self) -> tuple[bool, str]:
        return (True, "worker thread alive") if self.batcher.alive() else (False, "the worker thread has stopped")

    def close(self) -> None:
        self.batcher.close()
