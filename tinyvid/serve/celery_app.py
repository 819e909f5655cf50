"""Production mode: Celery workers with Redis as broker, result backend and job store.

    tinyvid serve worker --redis-url redis://127.0.0.1:6379/0     # one or more workers
    tinyvid serve --queue celery --redis-url redis://127.0.0.1:6379/0

Surviving a worker crash takes three settings and one habit:
  - `task_acks_late`: a message is acknowledged after its task finishes, not when it is taken,
    so a worker killed mid-job leaves it unacknowledged in Redis;
  - `visibility_timeout`: Redis hands an unacknowledged message to another worker after this many
    seconds (set it above the longest job, or a slow job runs twice);
  - `task_reject_on_worker_lost`: a pool child that dies requeues its message at once;
  - idempotent results keyed by job id: a job that already has an outcome is not run again, and
    the first outcome stored wins (`SET NX`), so a redelivered message never duplicates a result.
Dynamic batching happens inside each worker: tasks run on a thread pool, and each thread hands its
job to the worker's one `DynamicBatcher`, which runs concurrent jobs as one generator call.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time

import numpy as np

from tinyvid.serve.jobs import (TERMINAL, DynamicBatcher, Job, Outcome, StoreBackedQueue, VideoRequest, new_job_id,
                                percentiles, run_generation)

REDIS_ENV = "TINYVID_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TASK = "tinyvid.serve.generate"
PREFIX = "tinyvid:serve:"


def redis_url(url: str | None = None) -> str:
    return url or os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)


def make_celery(url: str | None = None, visibility_timeout: float | None = None, queue: str | None = None):
    """The Celery app; settings also come from the environment so a worker started by the
    `celery` command or `tinyvid serve worker` builds the same app (see `worker_settings`)."""
    from celery import Celery

    url = redis_url(url)
    app = Celery("tinyvid.serve", broker=url, backend=url)
    vt = float(visibility_timeout or os.environ.get("TINYVID_VISIBILITY_TIMEOUT", 3600))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker reserves only what its threads run: the rest stays for others
        task_default_queue=queue or os.environ.get("TINYVID_SERVE_QUEUE", "tinyvid"),
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_expires=24 * 3600,
        # sweep for abandoned messages every second instead of every 100 s (interval x throttle); a
        # worker killed during a sweep leaves its lock behind, so let the lock expire in 10 s, not 300
        broker_transport_options={"visibility_timeout": vt, "unacked_restore_interval": 1,
                                  "unacked_restore_throttle": 1, "unacked_mutex_expire": 10},
        result_backend_transport_options={"visibility_timeout": vt},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(_generate_task)
    return app


class RedisJobStore:
    """JobStore's interface on Redis: job records as JSON, results as .npy bytes, all keyed by job id."""

    def __init__(self, url: str | None = None, client=None, prefix: str | None = None, ttl_s: int = 24 * 3600):
        import redis

        self.redis = client or redis.Redis.from_url(redis_url(url))
        # one Redis can hold several services (or test runs) apart by prefix
        self.prefix, self.ttl_s = prefix or os.environ.get("TINYVID_SERVE_PREFIX", PREFIX), ttl_s

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def create(self, request: VideoRequest, idempotency_key: str | None = None) -> tuple[Job, bool]:
        job = Job(new_job_id(), request)
        if idempotency_key:
            key = self._key("idempotency", idempotency_key)
            if not self.redis.set(key, job.id, nx=True, ex=self.ttl_s):
                first = self.get(self.redis.get(key).decode())
                if first is not None:
                    return first, False
        self._put(job)
        self.redis.hincrby(self._key("counts"), "submitted", 1)
        return job, True

    def _put(self, job: Job) -> None:
        self.redis.set(self._key("job", job.id), json.dumps(job.to_dict()), ex=self.ttl_s)

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.get(self._key("job", job_id))
        return Job.from_dict(json.loads(raw)) if raw else None

    def _update(self, job_id: str, change, also=None) -> Job | None:
        """Apply change(job) -> bool (False: leave it) atomically: WATCH the record, retry if it moved.
        also(pipe, job) queues further commands in the same MULTI, so they become visible together."""
        import redis

        key = self._key("job", job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    job = Job.from_dict(json.loads(raw))
                    if not change(job):
                        return job
                    pipe.multi()
                    pipe.set(key, json.dumps(job.to_dict()), ex=self.ttl_s)
                    if also is not None:
                        also(pipe, job)
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue

    def mark_running(self, job_id: str, batch_size: int | None = None) -> Job | None:
        def change(job: Job) -> bool:
            if job.status in TERMINAL:  # a duplicate delivery must not turn a finished job back
                return False
            job.status, job.started, job.attempts, job.batch_size = "running", time.time(), job.attempts + 1, batch_size
            return True

        return self._update(job_id, change)

    def finish(self, job_id: str, outcome: Outcome) -> bool:
        """Store the outcome unless one is stored already (SET NX on the job's outcome key)."""
        if not self.redis.set(self._key("outcome", job_id), outcome.status, nx=True, ex=self.ttl_s):
            return False
        if outcome.video is not None:
            buffer = io.BytesIO()
            np.save(buffer, outcome.video, allow_pickle=False)
            self.redis.set(self._key("result", job_id), buffer.getvalue(), ex=self.ttl_s)

        def change(job: Job) -> bool:
            job.status, job.reason, job.finished = outcome.status, outcome.reason, time.time()
            job.batch_size = outcome.batch_size or job.batch_size
            return True

        def record(pipe, job: Job) -> None:
            # in the same transaction as the status: whoever sees "done" also sees it counted
            pipe.hincrby(self._key("counts"), outcome.status, 1)
            pipe.rpush(self._key("latencies"), job.latency)
            pipe.ltrim(self._key("latencies"), -1000, -1)
            if job.batch_size:
                pipe.rpush(self._key("batch_sizes"), job.batch_size)
                pipe.ltrim(self._key("batch_sizes"), -1000, -1)

        self._update(job_id, change, also=record)
        return True

    def result(self, job_id: str) -> np.ndarray | None:
        raw = self.redis.get(self._key("result", job_id))
        return None if raw is None else np.load(io.BytesIO(raw), allow_pickle=False)

    def counts(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self._key("counts")).items()}

    def latencies(self) -> list[float]:
        return [float(x) for x in self.redis.lrange(self._key("latencies"), 0, -1)]

    def batch_sizes(self) -> list[int]:
        return [int(x) for x in self.redis.lrange(self._key("batch_sizes"), 0, -1)]


class CeleryQueue(StoreBackedQueue):
    """The API side of production mode: records jobs in Redis and sends one Celery task per job,
    with the job id as the task id."""

    name = "celery"

    def __init__(self, url: str | None = None, celery=None, store: RedisJobStore | None = None):
        self.url = redis_url(url)
        self.celery = celery or make_celery(self.url)
        self.store = store or RedisJobStore(self.url)

    def _dispatch(self, job: Job) -> None:
        self.celery.send_task(TASK, args=[job.id], task_id=job.id)

    def metrics(self) -> dict:
        counts = self.store.counts()
        sizes = self.store.batch_sizes()
        finished = sum(counts.get(s, 0) for s in TERMINAL)
        depth = self.store.redis.llen(self.celery.conf.task_default_queue)
        return dict(queue=self.name, queue_depth=int(depth), jobs=dict(counts, in_flight=counts.get("submitted", 0) - finished),
                    latency_s=percentiles(self.store.latencies()),
                    mean_batch_size=float(np.mean(sizes)) if sizes else None)  # one entry per job: job-weighted

    def health(self) -> tuple[bool, str]:
        try:
            self.store.redis.ping()
        except Exception as e:
            return False, f"redis unreachable: {e}"
        replies = self.celery.control.ping(timeout=0.5)
        return (True, f"{len(replies)} worker(s)") if replies else (False, "redis is up but no worker answers")

    def close(self) -> None:
        self.store.redis.close()


# -- the worker side ------------------------------------------------------------------------------

_worker: dict = {}
_worker_lock = threading.Lock()


def worker_settings() -> dict:
    """What a worker runs, from the environment (set by `tinyvid serve worker`)."""
    return dict(generator=os.environ.get("TINYVID_SERVE_GENERATOR", "tiny"),
                output_checks=os.environ.get("TINYVID_SERVE_OUTPUT_CHECKS", "statistics"),
                max_batch=int(os.environ.get("TINYVID_SERVE_MAX_BATCH", 16)),
                max_wait_s=float(os.environ.get("TINYVID_SERVE_MAX_WAIT", 0.05)))


def worker_state() -> tuple[RedisJobStore, DynamicBatcher]:
    """The worker process's store and batcher, built on first use and shared by its task threads."""
    with _worker_lock:
        if not _worker:
            from tinyvid.serve.engines import make_generator
            from tinyvid.serve.safety import default_output_checks

            s = worker_settings()
            generator = make_generator(s["generator"])
            checks = default_output_checks() if s["output_checks"] == "statistics" else []
            store = RedisJobStore(redis_url())

            def on_start(jobs):
                for j in jobs:
                    store.mark_running(j.id, len(jobs))

            _worker["store"] = store
            _worker["batcher"] = DynamicBatcher(lambda jobs: run_generation(generator, jobs, checks),
                                                s["max_batch"], s["max_wait_s"], on_start=on_start)
        return _worker["store"], _worker["batcher"]


def _generate_task(task, job_id: str) -> str:
    store, batcher = worker_state()
    job = store.get(job_id)
    if job is None:
        return "unknown"
    if job.status in TERMINAL:  # a redelivered message of a finished job: nothing to do
        return job.status
    store.finish(job_id, batcher.submit(job).result())
    return store.get(job_id).status


app = make_celery()
