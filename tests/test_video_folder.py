import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tinyvid.data.frame_sampling import sample_indices
from tinyvid.data.video_folder import VideoFolderDataset, resize_video
from tinyvid.data.video_io import read_video, write_video


def moving_square(t=12, h=32, w=32, step=(1, 2), offset=0):
    frames = np.zeros((t, h, w), np.uint8) + offset
    for i in range(t):
        y, x = 2 + step[0] * i, 3 + step[1] * i
        frames[i, y:y + 8, x:x + 8] = 200 + i
    return frames


@pytest.fixture
def ucf_root(tmp_path):
    """UCF-101 style: root/<class>/<videos>, mixed containers, plus things the dataset must skip."""
    root = tmp_path / "ucf"
    write_video(root / "Walking" / "v_Walking_g01_c01.mp4", moving_square(t=12, step=(0, 2)))
    write_video(root / "Walking" / "v_Walking_g02_c01.avi", moving_square(t=20, step=(0, 1)))
    write_video(root / "Archery" / "v_Archery_g01_c01.mkv", moving_square(t=10, step=(2, 0), offset=10))
    (root / "Archery" / "notes.txt").write_text("not a video")
    (root / ".ipynb_checkpoints").mkdir()
    return root


def test_classes_labels_and_items(ucf_root):
    ds = VideoFolderDataset(ucf_root, num_frames=4)
    assert ds.classes == ["Archery", "Walking"]
    assert ds.class_to_idx == {"Archery": 0, "Walking": 1}
    assert len(ds) == 3
    assert [label for _, label in ds.samples] == [0, 1, 1]
    for i, (path, label) in enumerate(ds.samples):
        video, got = ds[i]
        assert got == label
        assert video.shape == (3, 4, 32, 32) and video.dtype == torch.float32
        assert 0 <= video.min() and video.max() <= 1
        n = len(read_video(path, gray=True))
        expected = read_video(path, indices=sample_indices(n, 4), gray=True)  # uniform sampling
        torch.testing.assert_close(video[0], torch.from_numpy(expected).float() / 255)
        torch.testing.assert_close(video[1], video[2])  # gray clip: equal channels


def test_gray_resize_and_dataloader(ucf_root):
    ds = VideoFolderDataset(ucf_root, num_frames=6, mode="random_window", size=(16, 24), gray=True)
    video, _ = ds[1]
    assert video.shape == (1, 6, 16, 24)
    videos, labels = next(iter(DataLoader(ds, batch_size=3)))
    assert videos.shape == (3, 1, 6, 16, 24) and labels.tolist() == [0, 1, 1]


def test_resize_keeps_a_constant_clip_constant():
    video = torch.full((3, 2, 32, 32), 0.25)
    out = resize_video(video, 8)
    assert out.shape == (3, 2, 8, 8)
    torch.testing.assert_close(out, torch.full_like(out, 0.25))


def test_clear_errors(tmp_path, ucf_root):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoFolderDataset(tmp_path / "missing")
    flat = tmp_path / "flat"
    write_video(flat / "clip.mp4", moving_square(t=4))  # videos but no class folders
    with pytest.raises(FileNotFoundError, match="no class folders"):
        VideoFolderDataset(flat)
    (ucf_root / "Empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Empty"):
        VideoFolderDataset(ucf_root)
    with pytest.raises(ValueError, match="unknown mode"):
        VideoFolderDataset(ucf_root, mode="middle")


def test_never_imports_torchvision():
    # A fresh interpreter: another test file's imports cannot hide or cause it. The lazily imported
    # backends (av, webdataset) are imported too, since they load only when a function runs.
    code = ("import sys, av, webdataset, tinyvid.data.video_folder, tinyvid.data.video_io, tinyvid.data.shards, "
            "tinyvid.data.curation; assert 'torchvision' not in sys.modules, 'torchvision was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
