"""The course's job service for text-to-video and video-to-text (notebook 10).

    app.py         create_app(...): the FastAPI app (versioned /v1 endpoints, /health, /metrics)
    jobs.py        job records, the in-memory store, dynamic batching, the embedded queue
    celery_app.py  production mode: Celery workers with Redis as broker, result backend and store
    engines.py     the VideoGenerator / VideoCaptioner interfaces, tiny engines, a registry by name
    safety.py      prompt checks and output checks (statistics by default, the video judge opt-in)
    auth.py        API keys with per-key rate limits (off when no keys are configured)
    media.py       MP4 and GIF out, uploaded videos in
    loadtest.py    a bounded loopback load test with httpx; batched vs unbatched
    cli.py         `tinyvid serve`, `tinyvid serve worker`, `tinyvid serve loadtest`

Nothing here is imported with the package, so `import tinyvid` never needs the serve extra.
"""
