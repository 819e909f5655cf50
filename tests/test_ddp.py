"""Data parallelism on CPU: 2 processes (torchrun, gloo) train exactly what 1 process trains on the same
global batch, and sharded checkpoints move between process counts (DDP 2 -> 1, FSDP 2 shards -> 1)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from tinyvid.recipes import t2v_dit

ARGS = ["--profile", "smoke", "--precision", "fp32", "--no-progress", "--steps", "4"]


def torchrun(*args, cwd=None, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(folder):
    return [json.loads(line)["loss"] for line in open(folder / "metrics.jsonl")]


def weights(folder, name="model"):
    return load_file(folder / "final" / f"{name}.safetensors")


def assert_same_weights(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    t2v_dit.main([*ARGS, "--out-dir", str(root / "one")])
    torchrun("-m", "tinyvid.recipes.t2v_dit", *ARGS, "--out-dir", str(root / "two"), "--checkpoint-every", "2",
             "--expect-world-size", "2")
    t2v_dit.main([*ARGS, "--out-dir", str(root / "resumed"), "--resume", str(root / "two" / "checkpoint-2")])
    return root


def test_the_run_had_two_processes(runs):
    summary = json.loads((runs / "two" / "run.json").read_text())
    assert summary["world_size"] == 2 and summary["launcher"] == "torchrun"
    # each process wrote its part of the sharded checkpoint
    assert {p.name for p in (runs / "two" / "checkpoint-4" / "sharded").glob("*.distcp")} == {"__0_0.distcp", "__1_0.distcp"}


def test_two_processes_give_the_loss_and_weights_of_one(runs):
    assert json.loads((runs / "one" / "run.json").read_text())["world_size"] == 1
    assert losses(runs / "two") == pytest.approx(losses(runs / "one"), abs=1e-5)
    assert_same_weights(weights(runs / "two"), weights(runs / "one"))
    assert_same_weights(weights(runs / "two", "ema"), weights(runs / "one", "ema"))


def test_a_checkpoint_of_two_processes_resumes_on_one(runs):
    summary = json.loads((runs / "resumed" / "run.json").read_text())
    assert summary["world_size"] == 1 and summary["steps"] == 4
    assert losses(runs / "resumed") == pytest.approx(losses(runs / "one")[2:], abs=1e-5)
    assert_same_weights(weights(runs / "resumed"), weights(runs / "one"))
    assert_same_weights(weights(runs / "resumed", "ema"), weights(runs / "one", "ema"))


def test_a_wrong_process_count_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="expected 2 processes, this run has 1"):
        t2v_dit.main([*ARGS, "--steps", "1", "--out-dir", str(tmp_path), "--expect-world-size", "2"])


FSDP_SCRIPT = """
import sys, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
import torch.distributed.checkpoint as dcp
from tinyvid.models import VideoDiT, video_dit_config
from tinyvid.diffusion.flow import flow_matching_loss
from tinyvid.recipes.common import sharded_state

dist.init_process_group("gloo")
torch.manual_seed(0)
model = VideoDiT(video_dit_config("tiny", in_channels=4))
for block in model.blocks:
    fully_shard(block)
fully_shard(model)
assert dist.get_world_size() == 2 and model.blocks[0].mlp[0].weight.to_local().shape[0] == 64  # half of 128 rows
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
g = torch.Generator().manual_seed(dist.get_rank())
batch = (torch.randn(2, 4, 2, 8, 8, generator=g), torch.randn(2, 5, 16, generator=g), torch.ones(2, 5, dtype=torch.bool))
flow_matching_loss()(model, batch).backward()
opt.step()
dcp.save(sharded_state(model, opt), checkpoint_id=sys.argv[1] + "/sharded")
full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
if dist.get_rank() == 0:
    torch.save(full, sys.argv[1] + "/full.pt")
dist.destroy_process_group()
"""


def test_fsdp_shards_reload_into_one_unsharded_process(tmp_path):
    from tinyvid.models import VideoDiT, video_dit_config
    from tinyvid.recipes.common import load_sharded_state

    script = tmp_path / "fsdp_step.py"
    script.write_text(textwrap.dedent(FSDP_SCRIPT))
    torchrun(str(script), str(tmp_path))
    model = VideoDiT(video_dit_config("tiny", in_channels=4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    load_sharded_state(tmp_path / "sharded", model, opt)
    full = torch.load(tmp_path / "full.pt")
    assert_same_weights(model.state_dict(), full, atol=0)
    assert all(len(s) for s in opt.state_dict()["state"].values())  # the AdamW moments came back too
