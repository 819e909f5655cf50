"""The HTTP API: `create_app(...)` builds a FastAPI app around a job queue and the two engines.

    POST /v1/videos               {"prompt", "steps", "guidance", "seed", "frames"} -> 202 {"id", ...}
    GET  /v1/jobs/{id}[?wait=s]   status (long-polls up to `wait` seconds for a finished job)
    GET  /v1/jobs/{id}/video.mp4  the result as MP4 (H.264, browser-playable)
    GET  /v1/jobs/{id}/video.gif  the result as an animated GIF
    POST /v1/captions             multipart `file` (a video) -> {"caption"}
    POST /v1/answers              multipart `file` + form `question` -> {"answer"}
    GET  /health                  200 when the queue's workers are up, else 503
    GET  /metrics                 queue depth, job counts, latency percentiles, batch sizes

Every error is JSON {"error": message} with a 4xx status that says what was wrong; refusals by the
safety checks carry the reason. With no API keys configured (the embedded default) auth is off.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime, and
# the request model is built inside create_app from the limits
import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Sequence

from tinyvid.serve.auth import ApiKeys, AuthError
from tinyvid.serve.engines import VideoCaptioner, VideoGenerator, make_captioner, make_generator
from tinyvid.serve.jobs import TERMINAL, InProcessQueue, Job, JobQueue, VideoRequest
from tinyvid.serve.media import UploadError, decode_upload, gif, mp4_bytes
from tinyvid.serve.safety import (OutputCheck, PromptCheck, default_output_checks, default_prompt_checks,
                                  first_refusal, length_check, charset_check)

API_VERSION = "v1"


@dataclass
class Limits:
    max_steps: int = 100
    max_frames: int = 32
    max_guidance: float = 20.0
    max_prompt_chars: int = 200
    max_question_chars: int = 200
    max_body_bytes: int = 64 * 1024  # JSON requests
    max_upload_bytes: int = 8 * 1024 * 1024
    max_upload_frames: int = 256
    max_wait_s: float = 30.0  # longest long-poll

    def to_dict(self) -> dict:
        return asdict(self)


def create_app(generator: VideoGenerator | str | None = None, captioner: VideoCaptioner | str | None = None,
               job_queue: JobQueue | None = None, api_keys: ApiKeys | None = None,
               prompt_checks: Sequence[PromptCheck] | None = None, output_checks: Sequence[OutputCheck] | None = None,
               limits: Limits | None = None, max_batch: int = 16, max_wait_s: float = 0.05):
    """The service. Defaults: the tiny engines, the embedded queue, no auth, the default safety checks.

    `generator`/`captioner` are engines or registry names/checkpoint paths (`tinyvid.serve.engines`).
    `job_queue` replaces the embedded queue (e.g. `tinyvid.serve.celery_app.CeleryQueue`); then
    `generator`, `output_checks`, `max_batch` and `max_wait_s` belong to the worker, not to this process.
    """
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, create_model
    from starlette.exceptions import HTTPException as StarletteHTTPException

    limits = limits or Limits()
    api_keys = api_keys or ApiKeys()
    prompt_checks = default_prompt_checks(limits.max_prompt_chars) if prompt_checks is None else list(prompt_checks)
    question_checks = [length_check(limits.max_question_chars), charset_check()]
    owns_queue = job_queue is None
    if owns_queue:
        generator = make_generator(generator or "tiny") if generator is None or isinstance(generator, str) else generator
        checks = default_output_checks() if output_checks is None else list(output_checks)
        job_queue = InProcessQueue(generator, checks, max_batch=max_batch, max_wait_s=max_wait_s)
    state = {"captioner": captioner}
    caption_lock = threading.Lock()  # one captioning at a time: CPU threads are the scarce resource
    media_cache: OrderedDict = OrderedDict()  # (job id, format) -> bytes: encode each result once
    started = time.time()

    class ApiError(Exception):
        def __init__(self, status: int, message: str, **extra):
            self.status, self.message, self.extra = status, message, extra

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    VideoIn = create_model(
        "VideoIn", __base__=Strict,
        prompt=(str, Field(description="what the video shows, e.g. 'the digit 3 is moving left'")),
        steps=(int, Field(20 if limits.max_steps >= 20 else limits.max_steps, ge=1, le=limits.max_steps)),
        guidance=(float, Field(2.0, ge=0.0, le=limits.max_guidance)),
        seed=(int, Field(0, ge=0, le=2**31 - 1)),
        frames=(int, Field(min(16, limits.max_frames), ge=1, le=limits.max_frames)),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if owns_queue:  # a queue handed in belongs to the caller
            job_queue.close()

    app = FastAPI(title="tinyvid", version=API_VERSION, lifespan=lifespan,
                  description="Text-to-video and video-to-text jobs on the course's tiny models.")
    app.state.queue, app.state.limits, app.state.api_keys = job_queue, limits, api_keys

    def error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, exc.message, **exc.extra)

    @app.exception_handler(AuthError)
    async def _auth_error(request, exc: AuthError):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return error(exc.status, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "malformed JSON body: " + "; ".join(p["msg"] for p in problems))
        parts = [f"{'.'.join(str(x) for x in p['loc'][1:]) or 'body'}: {p['msg']}" for p in problems]
        return error(422, "invalid request: " + "; ".join(parts),
                     detail=[{"loc": list(p["loc"]), "msg": p["msg"], "type": p["type"]} for p in problems])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        size = request.headers.get("content-length")
        limit = limits.max_upload_bytes if request.url.path in ("/v1/captions", "/v1/answers") else limits.max_body_bytes
        if size is not None and size.isdigit() and int(size) > limit:
            return error(413, f"the request body has {int(size)} bytes; the limit here is {limit}")
        return await call_next(request)

    def authorize(request: Request, charge: bool = False) -> None:
        presented = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not presented and auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
        key = api_keys.authenticate(presented)
        if charge:
            api_keys.charge(key)

    def job_view(job: Job) -> dict:
        view = dict(id=job.id, status=job.status, **job.request.to_dict(), created_at=job.created,
                    started_at=job.started, finished_at=job.finished, latency_s=job.latency, reason=job.reason,
                    attempts=job.attempts, batch_size=job.batch_size, links={"self": f"/{API_VERSION}/jobs/{job.id}"})
        if job.status == "done":
            view["links"].update(mp4=f"/{API_VERSION}/jobs/{job.id}/video.mp4",
                                 gif=f"/{API_VERSION}/jobs/{job.id}/video.gif")
        return view

    def find(job_id: str) -> Job:
        job = job_queue.get(job_id)
        if job is None:
            raise ApiError(404, f"no job with id {job_id!r}")
        return job

    @app.post(f"/{API_VERSION}/videos", status_code=202)
    async def submit_video(body: VideoIn, request: Request):
        authorize(request, charge=True)
        reason = first_refusal(prompt_checks, body.prompt)
        if reason:
            raise ApiError(422, f"prompt refused: {reason}", refused=True, reason=reason)
        key = request.headers.get("idempotency-key")
        job, created = await run_in_threadpool(job_queue.submit, VideoRequest(**body.model_dump()), key)
        return JSONResponse(job_view(job), status_code=202 if created else 200,
                            headers={"Location": f"/{API_VERSION}/jobs/{job.id}"})

    @app.get(f"/{API_VERSION}/jobs/{{job_id}}")
    async def get_job(job_id: str, request: Request,
                      wait: float = Query(0.0, ge=0.0, le=limits.max_wait_s,
                                          description="seconds to wait for the job to finish")):
        authorize(request)
        job = await run_in_threadpool(find, job_id)
        deadline = time.monotonic() + wait
        while job.status not in TERMINAL and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            job = await run_in_threadpool(find, job_id)
        return job_view(job)

    async def media(job_id: str, request: Request, fmt: str) -> Response:
        authorize(request)
        job = await run_in_threadpool(find, job_id)
        if job.status != "done":
            why = f": {job.reason}" if job.reason else ""
            raise ApiError(409, f"job {job_id} is {job.status}{why}; there is no video to serve", job_status=job.status)
        if (job_id, fmt) not in media_cache:
            video = await run_in_threadpool(job_queue.result, job_id)
            if video is None:
                raise ApiError(410, f"the result of job {job_id} has expired from the store")
            media_cache[(job_id, fmt)] = await run_in_threadpool(mp4_bytes if fmt == "mp4" else gif, video)
            while len(media_cache) > 256:
                media_cache.popitem(last=False)
        return Response(media_cache[(job_id, fmt)], media_type="video/mp4" if fmt == "mp4" else "image/gif")

    @app.get(f"/{API_VERSION}/jobs/{{job_id}}/video.mp4")
    async def get_mp4(job_id: str, request: Request):
        return await media(job_id, request, "mp4")

    @app.get(f"/{API_VERSION}/jobs/{{job_id}}/video.gif")
    async def get_gif(job_id: str, request: Request):
        return await media(job_id, request, "gif")

    async def read_upload(file: UploadFile):
        if file.content_type and not (file.content_type.startswith("video/")
                                      or file.content_type == "application/octet-stream"):
            raise ApiError(415, f"expected a video upload (video/mp4), got {file.content_type}")
        data = await file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise ApiError(413, f"the upload is over the limit of {limits.max_upload_bytes} bytes")
        try:
            return await run_in_threadpool(decode_upload, data, limits.max_upload_frames)
        except UploadError as e:
            raise ApiError(e.status, str(e)) from None

    def run_captioner(method: str, *args):
        with caption_lock:
            if state["captioner"] is None or isinstance(state["captioner"], str):
                state["captioner"] = make_captioner(state["captioner"] or "tiny")
            return getattr(state["captioner"], method)(*args)

    @app.post(f"/{API_VERSION}/captions")
    async def caption(request: Request, file: UploadFile = File(..., description="a video file (mp4)")):
        authorize(request, charge=True)
        frames = await read_upload(file)
        text = (await run_in_threadpool(run_captioner, "caption", frames[None]))[0]
        return {"caption": text, "frames": int(len(frames))}

    @app.post(f"/{API_VERSION}/answers")
    async def answer(request: Request, file: UploadFile = File(..., description="a video file (mp4)"),
                     question: str = Form(..., description="e.g. 'which digit is moving?'")):
        authorize(request, charge=True)
        reason = first_refusal(question_checks, question)
        if reason:
            raise ApiError(422, f"question refused: {reason.replace('prompt', 'question')}", refused=True)
        frames = await read_upload(file)
        text = (await run_in_threadpool(run_captioner, "answer", frames[None], [question]))[0]
        return {"question": question, "answer": text}

    @app.get("/health")
    async def health():
        ok, detail = await run_in_threadpool(job_queue.health)
        body = {"status": "ok" if ok else "unavailable", "queue": job_queue.name, "detail": detail,
                "uptime_s": round(time.time() - started, 1), "auth": api_keys.enabled}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics():
        return await run_in_threadpool(job_queue.metrics)

    return app
