"""A bounded load test: N concurrent httpx clients against a loopback server, stopping by itself.

Each client submits `jobs_per_client` generation jobs one after another and long-polls each to
the end. The run reports throughput (finished jobs / wall time), p50/p95/p99 of the latency a
client sees (submit to finished), and the bookkeeping that proves nothing went missing: every
submitted id is unique (no duplicates), every job finished (none lost), none failed.
`compare_batching` runs it against the embedded service twice, unbatched (max_batch=1) and batched.

Only loopback addresses are accepted: a load test pointed at someone else's server is an attack.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

from tinyvid.serve.jobs import TERMINAL, percentiles


@dataclass
class LoadTestResult:
    clients: int
    submitted: int
    finished: int
    done: int
    refused: int
    failed: int
    lost: int  # submitted but not finished when the run's time ran out
    duplicated: int  # an id handed out twice
    errors: int  # HTTP errors and exceptions on the client side
    wall_s: float
    throughput: float  # finished jobs per second
    latency_s: dict = field(default_factory=dict)  # p50, p95, p99
    latencies: list = field(default_factory=list, repr=False)
    server_metrics: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return asdict(self)

    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.failed == 0 and self.errors == 0

    def summary(self) -> str:
        p = self.latency_s
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        return (f"{self.clients} clients: {self.finished}/{self.submitted} finished ({self.done} done, "
                f"{self.refused} refused, {self.failed} failed), lost {self.lost}, duplicated {self.duplicated}, "
                f"errors {self.errors}; {self.throughput:.2f} jobs/s over {self.wall_s:.1f} s; latency p50 "
                f"{fmt(p.get('p50'))} s, p95 {fmt(p.get('p95'))} s, p99 {fmt(p.get('p99'))} s")


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname
    if host is None:
        raise ValueError(f"no host in {url!r}")
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ValueError(f"the load test only runs against loopback addresses; {host} is {sorted(addresses)}")


async def _client(http, index: int, jobs: int, body: dict, deadline: float, record: dict) -> None:
    for n in range(jobs):
        if time.monotonic() >= deadline:
            return
        payload = dict(body, seed=index * jobs + n)
        t0 = time.monotonic()
        try:
            r = await http.post("/v1/videos", json=payload)
            if r.status_code != 202:
                record["errors"].append(f"submit {r.status_code}: {r.text[:200]}")
                continue
            job_id = r.json()["id"]
            record["ids"].append(job_id)
            while time.monotonic() < deadline:
                wait = max(0.0, min(5.0, deadline - time.monotonic()))
                r = await http.get(f"/v1/jobs/{job_id}", params={"wait": round(wait, 2)})
                if r.status_code != 200:
                    record["errors"].append(f"poll {r.status_code}: {r.text[:200]}")
                    break
                status = r.json()["status"]
                if status in TERMINAL:
                    record["status"][job_id] = status
                    record["latencies"].append(time.monotonic() - t0)
                    break
        except Exception as e:  # a client that breaks is counted, the run goes on
            record["errors"].append(f"{type(e).__name__}: {e}")


async def run_loadtest_async(base_url: str, clients: int = 32, jobs_per_client: int = 2, prompt: str =
                             "the digit 3 is moving left", steps: int = 4, frames: int = 8, guidance: float = 2.0,
                             time_limit_s: float = 120.0, transport=None) -> LoadTestResult:
    import httpx

    if transport is None:
        check_loopback(base_url)
    if clients < 1 or jobs_per_client < 1 or time_limit_s <= 0:
        raise ValueError("clients, jobs_per_client and time_limit_s must be positive")
    body = dict(prompt=prompt, steps=steps, frames=frames, guidance=guidance)
    record = {"ids": [], "status": {}, "latencies": [], "errors": []}
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30.0, limits=limits) as http:
        start = time.monotonic()
        deadline = start + time_limit_s
        await asyncio.gather(*(_client(http, i, jobs_per_client, body, deadline, record) for i in range(clients)))
        wall = time.monotonic() - start
        try:
            server = (await http.get("/metrics")).json()
        except Exception:
            server = {}
    ids, statuses = record["ids"], record["status"]
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in TERMINAL}
    finished = len(statuses)
    return LoadTestResult(
        clients=clients, submitted=len(ids), finished=finished, done=counts["done"], refused=counts["refused"],
        failed=counts["failed"], lost=len(set(ids)) - finished, duplicated=len(ids) - len(set(ids)),
        errors=len(record["errors"]), wall_s=wall, throughput=finished / wall if wall > 0 else 0.0,
        latency_s=percentiles(record["latencies"]), latencies=record["latencies"], server_metrics=server)


def run_loadtest(base_url: str, **kwargs) -> LoadTestResult:
    """Blocking wrapper; inside Jupyter (a loop already running) it runs on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_loadtest_async(base_url, **kwargs))
    box = {}
    thread = threading.Thread(target=lambda: box.update(r=asyncio.run(run_loadtest_async(base_url, **kwargs))))
    thread.start()
    thread.join()
    return box["r"]


class ServerThread:
    """uvicorn serving `app` on a free loopback port in a background thread (a context manager)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        check_loopback(f"http://{host}")
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="tinyvid-uvicorn", daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def compare_batching(clients: int = 32, jobs_per_client: int = 2, max_batch: int = 32, max_wait_s: float = 0.05,
                     steps: int = 4, frames: int = 8, time_limit_s: float = 60.0, generator=None,
                     output_checks=()) -> dict[str, LoadTestResult]:
    """The same load against an unbatched (max_batch=1) and a batched embedded service, each on
    its own uvicorn thread on loopback. Output checks are off by default: the untrained tiny
    generator's noise would be refused, and the load test measures the queue, not the model."""
    from tinyvid.serve.app import create_app
    from tinyvid.serve.engines import make_generator

    generator = generator or make_generator("tiny")
    generator.generate(["warm up"], steps, 2.0, [0], frames)  # first-call costs out of the measurement
    results = {}
    for name, batch in (("unbatched", 1), ("batched", max_batch)):
        app = create_app(generator=generator, output_checks=output_checks, max_batch=batch, max_wait_s=max_wait_s)
        with ServerThread(app) as server:
            results[name] = run_loadtest(server.url, clients=clients, jobs_per_client=jobs_per_client, steps=steps,
                                         frames=frames, time_limit_s=time_limit_s)
    return results
