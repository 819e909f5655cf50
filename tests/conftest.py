import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests and CI use the shared MNIST copy, never a download.
shared = REPO.parent / "shared" / "data"
if "TINYVID_DATA" not in os.environ and (shared / "mnist").is_dir():
    os.environ["TINYVID_DATA"] = str(shared)
os.environ.setdefault("TINYVID_PROFILE", "smoke")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
