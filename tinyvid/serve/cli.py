"""`tinyvid serve` (the API on uvicorn), `tinyvid serve worker` (a Celery worker), `tinyvid serve loadtest`."""

from __future__ import annotations

import argparse
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the text-to-video / video-to-text job service (FastAPI on uvicorn)",
                       description="Without a sub-command: serve the API. The embedded queue needs no services; "
                                   "--queue celery sends jobs to Celery workers through Redis.")
    _serve_args(p)
    p.set_defaults(func=serve)
    kinds = p.add_subparsers(dest="serve_command", metavar="{worker,loadtest}")

    w = kinds.add_parser("worker", help="a Celery worker that generates videos (production mode)")
    w.add_argument("--redis-url", default=None, help="broker and store (default $TINYVID_REDIS_URL or local 6379)")
    w.add_argument("--generator", default="tiny", help="tiny, dit, animatediff (generators) or video_llava (captioner), or a .safetensors checkpoint")
    w.add_argument("--concurrency", type=int, default=16, help="task threads: the most jobs one batch can hold")
    w.add_argument("--max-batch", type=int, default=16)
    w.add_argument("--max-wait", type=float, default=0.05, help="seconds a batch waits for more jobs")
    w.add_argument("--visibility-timeout", type=float, default=3600,
                   help="seconds before an unacknowledged job goes to another worker (above the longest job)")
    w.add_argument("--no-output-check", action="store_true")
    w.set_defaults(func=worker)

    t = kinds.add_parser("loadtest", help="a bounded load test on loopback: batched vs unbatched, or one --url")
    t.add_argument("--url", default=None, help="a running service on loopback; default: start embedded ones")
    t.add_argument("--clients", type=int, default=32)
    t.add_argument("--jobs-per-client", type=int, default=2)
    t.add_argument("--steps", type=int, default=4)
    t.add_argument("--frames", type=int, default=8)
    t.add_argument("--max-batch", type=int, default=32, help="the batched service's max_batch")
    t.add_argument("--time-limit", type=float, default=60.0, help="seconds per run before it stops by itself")
    t.add_argument("--json", default=None, help="also write the results to this JSON file")
    t.set_defaults(func=loadtest)


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--queue", choices=("embedded", "celery"), default="embedded")
    p.add_argument("--redis-url", default=None, help="with --queue celery (default $TINYVID_REDIS_URL)")
    p.add_argument("--generator", default="tiny", help="tiny, dit, animatediff (generators) or video_llava (captioner), or a .safetensors checkpoint")
    p.add_argument("--captioner", default="tiny", help="tiny, dit, animatediff (generators) or video_llava (captioner), or a .safetensors checkpoint")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY[:PER_MINUTE[:BURST]]",
                   help="accept this key (repeat for several); no keys: auth is off")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait", type=float, default=0.05)
    p.add_argument("--no-output-check", action="store_true", help="serve what the generator makes, unchecked")


def serve(args) -> int:
    import uvicorn

    from tinyvid.serve.app import create_app
    from tinyvid.serve.auth import ApiKeys, parse_key_spec

    keys = ApiKeys(dict(parse_key_spec(s) for s in args.api_key))
    job_queue = None
    if args.queue == "celery":
        from tinyvid.serve.celery_app import CeleryQueue

        job_queue = CeleryQueue(args.redis_url)
    app = create_app(generator=args.generator, captioner=args.captioner, job_queue=job_queue, api_keys=keys,
                     output_checks=[] if args.no_output_check else None, max_batch=args.max_batch,
                     max_wait_s=args.max_wait)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def worker(args) -> int:
    os.environ.update(TINYVID_SERVE_GENERATOR=args.generator, TINYVID_SERVE_MAX_BATCH=str(args.max_batch),
                      TINYVID_SERVE_MAX_WAIT=str(args.max_wait), TINYVID_VISIBILITY_TIMEOUT=str(args.visibility_timeout),
                      TINYVID_SERVE_OUTPUT_CHECKS="none" if args.no_output_check else "statistics")
    if args.redis_url:
        os.environ["TINYVID_REDIS_URL"] = args.redis_url
    from tinyvid.serve.celery_app import make_celery

    app = make_celery()  # reads the settings just put in the environment
    app.worker_main(["worker", "--pool=threads", f"--concurrency={args.concurrency}", "--loglevel=info"])
    return 0


def loadtest(args) -> int:
    from tinyvid.serve.loadtest import compare_batching, run_loadtest

    if args.url:
        results = {"service": run_loadtest(args.url, clients=args.clients, jobs_per_client=args.jobs_per_client,
                                           steps=args.steps, frames=args.frames, time_limit_s=args.time_limit)}
    else:
        results = compare_batching(args.clients, args.jobs_per_client, args.max_batch, steps=args.steps,
                                   frames=args.frames, time_limit_s=args.time_limit)
    for name, r in results.items():
        print(f"{name:>9}: {r.summary()}")
    if "batched" in results:
        speedup = results["batched"].throughput / max(results["unbatched"].throughput, 1e-9)
        print(f"  speedup: batched / unbatched throughput = {speedup:.2f}x "
              f"(mean batch {results['batched'].server_metrics.get('mean_batch_size') or 0:.1f} jobs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {**v.to_dict(), "latencies": None} for k, v in results.items()}, f, indent=1)
    return 0 if all(r.ok() for r in results.values()) else 1

