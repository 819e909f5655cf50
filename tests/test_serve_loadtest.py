"""The load test on a real uvicorn server on loopback (tiny), its bookkeeping, and its loopback guard."""

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'tinyvid[serve]'")

from tinyvid.cli import build_parser  # noqa: E402
from tinyvid.serve.app import create_app  # noqa: E402
from tinyvid.serve.loadtest import ServerThread, check_loopback, compare_batching, run_loadtest  # noqa: E402
from tinyvid.serve.engines import tiny_generator  # noqa: E402


def test_loadtest_counts_every_job_once():
    with ServerThread(create_app(tiny_generator(), output_checks=[], max_batch=8)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        r = run_loadtest(server.url, clients=6, jobs_per_client=2, steps=2, frames=4, time_limit_s=30)
    assert r.ok() and r.submitted == r.finished == r.done == 12 and r.lost == r.duplicated == 0
    assert r.latency_s["p50"] <= r.latency_s["p95"] <= r.latency_s["p99"] and r.throughput > 0
    assert r.server_metrics["jobs"]["done"] == 12
    assert "12/12 finished" in r.summary()


def test_loadtest_stops_by_itself_and_reports_lost_jobs():
    class Slow:
        def generate(self, prompts, steps, guidance, seeds, frames):
            import time

            import numpy as np

            time.sleep(3)
            return np.zeros((len(prompts), frames, 64, 64), np.uint8)

    with ServerThread(create_app(Slow(), output_checks=[], max_batch=1)) as server:
        r = run_loadtest(server.url, clients=2, jobs_per_client=3, steps=2, frames=2, time_limit_s=1.0)
    # had it waited, the 6 jobs would take 18 s; it stops at its 1 s limit and counts the 2 in flight as lost
    assert r.wall_s < 5 and r.lost == r.submitted == 2 and not r.ok()


def test_compare_batching_runs_both_workers():
    results = compare_batching(clients=4, jobs_per_client=1, max_batch=4, steps=1, frames=2, time_limit_s=30)
    assert set(results) == {"unbatched", "batched"} and all(r.ok() for r in results.values())
    assert results["unbatched"].server_metrics["mean_batch_size"] == 1.0


def test_only_loopback():
    check_loopback("http://127.0.0.1:8000")
    check_loopback("http://localhost:8000")
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("http://8.8.8.8")
    with pytest.raises(ValueError, match="loopback"):
        ServerThread(create_app(tiny_generator()), host="0.0.0.0")


def test_cli_parses_serve_commands():
    p = build_parser()
    assert p.parse_args(["serve", "--port", "9", "--api-key", "k:30:5"]).func.__name__ == "serve"
    args = p.parse_args(["serve", "loadtest", "--clients", "3"])
    assert args.func.__name__ == "loadtest" and args.clients == 3
    assert p.parse_args(["serve", "worker", "--visibility-timeout", "60"]).func.__name__ == "worker"
