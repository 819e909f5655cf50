"""`tinyvid caption` end to end on a tiny checkpoint trained here; clear errors on bad input."""

import json

import numpy as np
import pytest
import torch

from tinyvid.cli import main
from tinyvid.data.instructions import build_tokenizer, encode_examples, instruction_examples
from tinyvid.data.moving_mnist import generate
from tinyvid.models.vlm import VideoLLaVA, VLMConfig, answer, load_captioner, save_captioner, vlm_loss
from tinyvid.train import TensorBatches, Trainer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tok = build_tokenizer()
    torch.manual_seed(0)
    model = VideoLLaVA(VLMConfig.for_tokenizer(
        tok, vision=dict(frames=2, patch=16, dim=16, depth=1, heads=2, aggregator="qformer", queries=4),
        lm=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)))
    clips = generate(32, "train", seed=0)
    enc = encode_examples(tok, instruction_examples(clips), model.num_visual_tokens)
    data = TensorBatches(enc["clip"], enc["input_ids"], enc["attention_mask"], enc["labels"], batch_size=16, seed=0)
    Trainer(model, vlm_loss(videos=torch.as_tensor(clips.videos)), data, steps=10, lr=3e-3, warmup=2,
            ema_decay=None, progress=False, device="cpu").fit()
    return save_captioner(model.eval(), tok, tmp_path_factory.mktemp("ckpt") / "captioner.safetensors")


@pytest.fixture(scope="module")
def clips_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clips.npz"
    np.savez_compressed(path, videos=generate(5, "test", seed=1).videos)
    return path


def run(*args):
    return main(["caption", *map(str, args)])


@pytest.mark.parametrize("extra", [[], ["--question", "how many digits are there?", "--batch-size", "2", "--beams", "2"]])
def test_writes_one_string_per_clip_in_input_order(checkpoint, clips_npz, tmp_path, extra):
    out = tmp_path / "captions.json"
    assert run("--checkpoint", checkpoint, "--videos", clips_npz, "--out", out, *extra) == 0
    texts = json.loads(out.read_text())
    assert isinstance(texts, list) and len(texts) == 5 and all(isinstance(t, str) for t in texts)
    # the same as asking the loaded model one clip at a time, in order
    model, tok, _ = load_captioner(checkpoint)
    videos = np.load(clips_npz)["videos"]
    question = extra[1] if extra else "describe the video."
    beams = int(extra[-1]) if extra else 1
    assert texts == [answer(model, tok, videos[i:i + 1], question, num_beams=beams)[0] for i in range(5)]


def test_clear_errors(checkpoint, clips_npz, tmp_path):
    out = tmp_path / "out.json"
    with pytest.raises(SystemExit, match="no file at"):
        run("--checkpoint", checkpoint, "--videos", tmp_path / "missing.npz", "--out", out)
    with pytest.raises(SystemExit, match="no checkpoint"):
        run("--checkpoint", tmp_path / "missing.safetensors", "--videos", clips_npz, "--out", out)
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 16, 64, 64), np.uint8))
    with pytest.raises(SystemExit, match=r"no 'videos' array \(it holds: x\)"):
        run("--checkpoint", checkpoint, "--videos", tmp_path / "x.npz", "--out", out)
    for bad in (np.zeros((2, 16, 32, 32), np.uint8), np.zeros((2, 16, 64, 64), np.float32), np.zeros((16, 64, 64), np.uint8)):
        np.savez(tmp_path / "bad.npz", videos=bad)
        with pytest.raises(SystemExit, match="videos must be uint8"):
            run("--checkpoint", checkpoint, "--videos", tmp_path / "bad.npz", "--out", out)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(SystemExit, match="not an .npz"):
        run("--checkpoint", checkpoint, "--videos", tmp_path / "text.npz", "--out", out)
    assert not out.exists()
