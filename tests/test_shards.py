import json
import tarfile

import numpy as np
import pytest
import torch

from tinyvid.data.shards import shard_dataset, shard_loader, write_shards


def clips(n, t=8, h=16, w=16):
    """n distinct clips: clip i has a square at a position set by i, moving right."""
    videos = np.zeros((n, t, h, w), np.uint8)
    for i in range(n):
        for f in range(t):
            y, x = i % (h - 4), f % (w - 4)
            videos[i, f, y:y + 4, x:x + 4] = 100 + 10 * (i % 15)
    return videos


@pytest.fixture
def shards(tmp_path):
    videos = clips(10)
    captions = [f"clip number {i}" for i in range(10)]
    paths = write_shards(videos, captions, tmp_path / "shards", shard_size=3, extra=[{"id": i} for i in range(10)])
    return videos, captions, paths


def test_write_names_and_contents(shards):
    videos, captions, paths = shards
    assert [p.name for p in paths] == [f"shard-{i:06d}.tar" for i in range(4)]
    with tarfile.open(paths[1]) as tar:
        names = sorted(tar.getnames())
        assert names == ["000000003.json", "000000003.mp4", "000000004.json", "000000004.mp4",
                         "000000005.json", "000000005.mp4"]
        meta = json.loads(tar.extractfile("000000004.json").read())
    assert meta == {"caption": "clip number 4", "shape": [8, 16, 16], "id": 4}


def test_stream_back_in_order_exactly(shards):
    videos, captions, paths = shards
    samples = list(shard_dataset(paths))
    assert [caption for _, caption in samples] == captions
    for (video, _), expected in zip(samples, videos):
        assert video.dtype == torch.uint8 and video.shape == (8, 16, 16)
        np.testing.assert_array_equal(video.numpy(), expected)


def test_loader_with_two_workers_sees_each_sample_once(shards):
    videos, captions, paths = shards
    loader = shard_loader(paths[0].parent, batch_size=2, num_workers=2)  # a folder works as the source
    assert loader.num_workers == 2
    for _ in range(2):  # two epochs: each sample once per epoch
        seen = []
        for batch_videos, batch_captions in loader:
            assert batch_videos.dtype == torch.uint8 and batch_videos.shape[1:] == (8, 16, 16)
            assert len(batch_captions) == len(batch_videos) <= 2
            for video, caption in zip(batch_videos, batch_captions):
                np.testing.assert_array_equal(video.numpy(), videos[int(caption.split()[-1])])
            seen += batch_captions
        assert sorted(seen) == sorted(captions)


def test_brace_pattern_and_shuffle(shards):
    _, captions, paths = shards
    pattern = str(paths[0].parent / "shard-{000000..000003}.tar")
    got = [c for _, c in shard_dataset(pattern, shuffle=4, seed=0)]
    assert sorted(got) == sorted(captions) and got != captions


def test_rgb_clip_round_trips(tmp_path):
    video = np.stack([clips(1)[0]] * 3, axis=-1)
    video[..., 1] //= 2
    (path,) = write_shards(torch.from_numpy(video)[None], ["a colourful square"], tmp_path)
    ((out, caption),) = list(shard_dataset([path]))
    assert caption == "a colourful square"
    np.testing.assert_array_equal(out.numpy(), video)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="captions"):
        write_shards(clips(3), ["only one"], tmp_path / "a")
    with pytest.raises(ValueError, match="captions"):
        write_shards(clips(1), ["one", "two"], tmp_path / "b")
    with pytest.raises(ValueError, match="shard_size"):
        write_shards(clips(1), ["one"], tmp_path / "c", shard_size=0)
    with pytest.raises(FileNotFoundError, match="shard-000009.tar"):
        shard_dataset([tmp_path / "shard-000009.tar"])
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="no shards"):
        shard_loader(tmp_path / "d")  # a folder without shards
