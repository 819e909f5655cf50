import gzip

import numpy as np
import pytest

from tinyvid.data import mnist


def test_loads_the_shared_copy_with_verified_checksums():
    x, y = mnist.load_mnist("test")
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10_000,) and set(np.unique(y)) == set(range(10))
    xt, yt = mnist.mnist_tensors("test")
    assert xt.shape == (10_000, 1, 28, 28) and float(xt.min()) == -1.0 and float(xt.max()) == 1.0


def test_missing_files_name_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "candidate_dirs", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(mnist.MNISTNotFoundError) as err:
        mnist.find_mnist_dir(download=False)
    message = str(err.value)
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "train-images-idx3-ubyte.gz" in message and "TINYVID_DATA" in message


def test_corrupt_file_is_reported_with_its_path(tmp_path, monkeypatch):
    for name in mnist.FILES:
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"not mnist")
    monkeypatch.setattr(mnist, "candidate_dirs", lambda: [tmp_path])
    with pytest.raises(ValueError, match="is corrupt: md5"):
        mnist.find_mnist_dir(download=False)


def test_env_var_is_looked_at_first(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVID_DATA", str(tmp_path))
    dirs = mnist.candidate_dirs()
    assert dirs[0] == (tmp_path / "mnist").resolve() and dirs[1] == tmp_path.resolve()


def test_idx_parser_rejects_other_formats(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x01" + (4).to_bytes(4, "big") + b"\x00" * 16)
    with pytest.raises(ValueError, match="unsigned-byte IDX"):
        mnist.read_idx(path)


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown MNIST split"):
        mnist.load_mnist("validation")
