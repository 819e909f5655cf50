"""Sample sets on disk, and the size of everything committed under book/results/."""

import numpy as np
import pytest

from tinyvid.data.sample_sets import save_sample_set, snap_black
from tinyvid.models.registry import RESULTS_DIR


def test_save_sample_set_snaps_only_the_near_black_background(tmp_path):
    videos = np.random.default_rng(0).integers(0, 256, size=(3, 4, 8, 8), dtype=np.uint8)
    videos[0, 0, 0, :6] = [0, 1, 2, 3, 4, 5]
    path = save_sample_set(tmp_path / "sets" / "s.npz", videos, ["a", "b", "c"])
    with np.load(path, allow_pickle=False) as z:
        written, captions = z["videos"], list(z["captions"])
    assert captions == ["a", "b", "c"] and written.dtype == np.uint8 and written.shape == videos.shape
    assert list(written[0, 0, 0, :6]) == [0, 0, 0, 0, 4, 5]
    keep = videos >= 4
    assert np.array_equal(written[keep], videos[keep]) and not written[~keep].any()
    assert np.array_equal(np.load(save_sample_set(tmp_path / "raw.npz", videos, "abc", black_level=0))["videos"], videos)


def test_save_sample_set_refuses_bad_input(tmp_path):
    good = np.zeros((2, 4, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        save_sample_set(tmp_path / "s.npz", good.astype(np.float32), ["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        save_sample_set(tmp_path / "s.npz", good[0], ["a", "b"])
    with pytest.raises(ValueError, match="2 videos but 1 captions"):
        save_sample_set(tmp_path / "s.npz", good, ["a"])
    with pytest.raises(ValueError, match="black_level"):
        snap_black(good, 256)


def test_every_committed_result_file_is_at_most_10_mb():
    """The design's limit for checkpoints, and issue 5's for sample sets (500 clips, compressed)."""
    files = sorted(p for p in RESULTS_DIR.iterdir() if p.is_file())
    assert any(p.name.endswith("_samples.npz") for p in files) and any(p.suffix == ".safetensors" for p in files)
    too_big = {p.name: round(p.stat().st_size / 1e6, 2) for p in files if p.stat().st_size > 10e6}
    assert not too_big, f"over 10 MB: {too_big}"
