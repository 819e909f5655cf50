"""The HTTP API on the embedded queue: the happy path, every bad input answered 4xx, auth and rate limits."""

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'tinyvid[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from tinyvid.data.video_io import encode_mp4_bytes  # noqa: E402
from tinyvid.serve.app import Limits, create_app  # noqa: E402
from tinyvid.serve.auth import ApiKeys, RateLimit  # noqa: E402
from tinyvid.serve.engines import tiny_captioner, tiny_generator  # noqa: E402

FAST = dict(steps=2, frames=4)


@pytest.fixture(scope="module")
def engines():
    return tiny_generator(), tiny_captioner()


@pytest.fixture
def client(engines):
    app = create_app(*engines, output_checks=[], limits=Limits(max_upload_bytes=200_000, max_upload_frames=64))
    with TestClient(app) as c:
        yield c


def clip(frames=8, size=64, seed=0):
    rng = np.random.default_rng(seed)
    video = np.zeros((frames, size, size), np.uint8)
    for t in range(frames):  # a bright square moving right: a small real video
        video[t, 20:36, 4 + 3 * t: 20 + 3 * t] = 200 + rng.integers(0, 50)
    return video


def submit(client, **body):
    r = client.post("/v1/videos", json={"prompt": "the digit 3 is moving left", **FAST, **body})
    assert r.status_code == 202, r.text
    return r.json()


def finished(client, job_id):
    job = client.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
    assert job["status"] in ("done", "refused", "failed"), job
    return job


def assert_healthy(client):
    assert client.get("/health").json()["status"] == "ok"
    job = finished(client, submit(client, seed=99)["id"])
    assert job["status"] == "done"


def test_generate_and_fetch_mp4_and_gif(client):
    job = submit(client, seed=5)
    assert job["status"] in ("queued", "running") and job["links"]["self"] == f"/v1/jobs/{job['id']}"
    done = finished(client, job["id"])
    assert done["status"] == "done" and done["attempts"] == 1 and done["latency_s"] > 0
    mp4 = client.get(done["links"]["mp4"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    from tinyvid.data.video_io import decode_mp4_bytes

    assert decode_mp4_bytes(mp4.content, gray=True).shape == (FAST["frames"], 64, 64)
    g = client.get(done["links"]["gif"])
    assert g.status_code == 200 and g.content[:6] == b"GIF89a"


def test_same_seed_same_video_and_idempotency_key(client):
    a = finished(client, submit(client, seed=1)["id"])
    b = finished(client, submit(client, seed=1)["id"])
    assert a["id"] != b["id"]
    assert client.get(a["links"]["mp4"]).content == client.get(b["links"]["mp4"]).content
    body = {"prompt": "the digit 1 is moving up", **FAST}
    first = client.post("/v1/videos", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/v1/videos", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202 and again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_caption_and_answer_an_upload(client):
    mp4 = encode_mp4_bytes(clip())
    r = client.post("/v1/captions", files={"file": ("clip.mp4", mp4, "video/mp4")})
    assert r.status_code == 200 and r.json()["caption"].startswith("the digit ") and r.json()["frames"] == 8
    r = client.post("/v1/answers", files={"file": ("clip.mp4", mp4, "video/mp4")}, data={"question": "which digit?"})
    assert r.status_code == 200 and r.json()["answer"] in [str(d) for d in range(10)]
    big = encode_mp4_bytes(clip(size=96))  # other sizes are resized to the contract's 64x64
    assert client.post("/v1/captions", files={"file": ("big.mp4", big, "video/mp4")}).status_code == 200


@pytest.mark.parametrize("name, request_kwargs, status, words", [
    ("malformed JSON", dict(content=b'{"prompt": ', headers={"content-type": "application/json"}), 400, "malformed JSON"),
    ("missing prompt", dict(json={"steps": 2}), 422, "prompt"),
    ("steps too high", dict(json={"prompt": "a", "steps": 10_000}), 422, "steps"),
    ("steps zero", dict(json={"prompt": "a", "steps": 0}), 422, "steps"),
    ("negative guidance", dict(json={"prompt": "a", "guidance": -1}), 422, "guidance"),
    ("too many frames", dict(json={"prompt": "a", "frames": 999}), 422, "frames"),
    ("seed not an int", dict(json={"prompt": "a", "seed": "abc"}), 422, "seed"),
    ("unknown field", dict(json={"prompt": "a", "stepz": 3}), 422, "stepz"),
    ("oversize prompt", dict(json={"prompt": "a" * 201}), 422, "limit is 200"),
    ("empty prompt", dict(json={"prompt": "   "}), 422, "empty"),
    ("control characters", dict(json={"prompt": "the digit\x00 3"}), 422, "not allowed"),
    ("blocked word", dict(json={"prompt": "a bomb is moving up"}), 422, "blocked word"),
    ("huge body", dict(content=b"x" * 70_000, headers={"content-type": "application/json"}), 413, "limit"),
])
def test_bad_generation_requests_get_a_clear_4xx(client, name, request_kwargs, status, words):
    r = client.post("/v1/videos", **request_kwargs)
    assert r.status_code == status, (name, r.text)
    assert words in r.json()["error"], (name, r.json())
    assert_healthy(client)


def test_prompt_refusal_says_why(client):
    r = client.post("/v1/videos", json={"prompt": "kill the digit"})
    assert r.json()["refused"] is True and "kill" in r.json()["reason"]


@pytest.mark.parametrize("name, files, status, words", [
    ("not a video", {"file": ("notes.mp4", b"just some text, not a video" * 10, "video/mp4")}, 422, "not a readable video"),
    ("corrupt mp4", "corrupt", 422, "upload"),
    ("wrong type", {"file": ("a.png", b"\x89PNG....", "image/png")}, 415, "expected a video"),
    ("empty file", {"file": ("a.mp4", b"", "video/mp4")}, 422, "empty"),
    ("oversize upload", {"file": ("a.mp4", b"\0" * 250_000, "video/mp4")}, 413, "limit"),
    ("too many frames", "long", 413, "frames"),
    ("no file", None, 422, "file"),
])
def test_bad_uploads_get_a_clear_4xx(client, name, files, status, words):
    if files == "corrupt":  # a real mp4 cut in half: the container opens, the frames do not decode
        data = encode_mp4_bytes(clip(16))
        data = data[: len(data) // 2]
        files = {"file": ("cut.mp4", data, "video/mp4")}
    elif files == "long":
        files = {"file": ("long.mp4", encode_mp4_bytes(np.zeros((80, 16, 16), np.uint8)), "video/mp4")}
    r = client.post("/v1/captions", files=files) if files else client.post("/v1/captions")
    assert r.status_code == status, (name, r.text)
    assert words in r.json()["error"], (name, r.json())
    assert_healthy(client)


def test_bad_question_and_unknown_jobs(client):
    mp4 = encode_mp4_bytes(clip())
    r = client.post("/v1/answers", files={"file": ("c.mp4", mp4, "video/mp4")}, data={"question": "q" * 500})
    assert r.status_code == 422 and "question refused" in r.json()["error"]
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/video.mp4", "/v1/jobs/nope/video.gif"):
        r = client.get(path)
        assert r.status_code == 404 and "no job with id 'nope'" in r.json()["error"]
    assert client.get("/v1/jobs/x", params={"wait": 999}).status_code == 422
    assert client.get("/v2/videos").status_code == 404
    assert_healthy(client)


def test_refused_output_has_no_video(engines):
    app = create_app(*engines)  # default output checks: the untrained generator's frames do not cohere
    with TestClient(app) as c:
        job = finished(c, submit(c)["id"])
        assert job["status"] == "refused" and job["reason"].startswith("output refused: ")
        r = c.get(f"/v1/jobs/{job['id']}/video.mp4")
        assert r.status_code == 409 and "refused" in r.json()["error"]


def test_failing_generator_fails_the_job_not_the_service(engines):
    class Broken:
        def generate(self, prompts, steps, guidance, seeds, frames):
            raise RuntimeError("out of memory")

    with TestClient(create_app(Broken(), engines[1], output_checks=[])) as c:
        job = finished(c, submit(c)["id"])
        assert job["status"] == "failed" and "out of memory" in job["reason"]
        assert c.get("/health").status_code == 200


def test_metrics_report_depth_and_latency_percentiles(client):
    ids = [submit(client, seed=s)["id"] for s in range(4)]
    for i in ids:
        finished(client, i)
    m = client.get("/metrics").json()
    assert m["queue"] == "embedded" and m["queue_depth"] == 0 and m["jobs"]["done"] >= 4
    assert 0 < m["latency_s"]["p50"] <= m["latency_s"]["p95"] <= m["latency_s"]["p99"]
    assert m["batches"] >= 1 and m["mean_batch_size"] >= 1


def test_api_keys_and_rate_limits(engines):
    now = [0.0]
    keys = ApiKeys({"alpha": RateLimit(per_minute=60, burst=2), "beta": None}, clock=lambda: now[0])
    with TestClient(create_app(*engines, api_keys=keys, output_checks=[])) as c:
        body = {"prompt": "the digit 3 is moving left", **FAST}
        assert c.post("/v1/videos", json=body).status_code == 401
        assert c.post("/v1/videos", json=body, headers={"X-API-Key": "wrong"}).json()["error"] == "unknown API key"
        ok = [c.post("/v1/videos", json=body, headers={"Authorization": "Bearer alpha"}) for _ in range(2)]
        assert [r.status_code for r in ok] == [202, 202]
        limited = c.post("/v1/videos", json=body, headers={"X-API-Key": "alpha"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "rate limit" in limited.json()["error"]
        assert c.post("/v1/videos", json=body, headers={"X-API-Key": "beta"}).status_code == 202  # its own bucket
        now[0] += 1.0  # one token back at 60/minute
        assert c.post("/v1/videos", json=body, headers={"X-API-Key": "alpha"}).status_code == 202
        job_id = ok[0].json()["id"]
        assert c.get(f"/v1/jobs/{job_id}").status_code == 401
        assert c.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": "alpha"}).status_code == 200  # reads are not charged
        assert c.get("/health").json()["auth"] is True
