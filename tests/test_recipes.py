"""Training recipes: the same settings as the notebooks, launchable as modules, the noise drawn with
the global batch, checkpoints that resume exactly, levers that change the speed and not the result."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tinyvid.diffusion import Schedule, diffusion_loss
from tinyvid.diffusion.flow import flow_matching_loss
from tinyvid.models import UNet, UNetConfig, VideoDiT, video_dit_config
from tinyvid.recipes import accelerate_config, common, ddpm_mnist, t2v_dit

ARGS = ["--profile", "smoke", "--precision", "fp32", "--no-progress"]


def run(module, *args, timeout=180):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([*module, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def final(folder, name="model"):
    return load_file(folder / "final" / f"{name}.safetensors")


def assert_same(a, b, atol=1e-5):
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


@pytest.mark.parametrize("recipe", ["t2v_dit", "ddpm_mnist"])
def test_python_m_help_lists_the_notebook_settings_and_levers(recipe):
    text = run([sys.executable, "-m", f"tinyvid.recipes.{recipe}"], "--help")
    for flag in ("--profile", "--out-dir", "--resume", "--steps", "--batch-size", "--lr", "--compile",
                 "--activation-checkpointing", "--fused-adamw", "--sdpa-backend", "--precision", "--grad-accum"):
        assert flag in text
    assert ("--dit" if recipe == "t2v_dit" else "--unet") in text


def test_presampled_flow_loss_is_flow_matching_loss():
    model = VideoDiT(video_dit_config("tiny", in_channels=4, context_dim=8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x0, ctx, mask = torch.randn(3, 4, 2, 4, 4), torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool)
    null = (torch.zeros(5, 8), torch.tensor([True, False, False, False, False]))
    g = torch.Generator().manual_seed(7)
    draws = t2v_dit.flow_draws(text_dropout=0.5)((x0, ctx, mask), g)
    ours = t2v_dit.presampled_flow_loss(*null)(model, (x0, ctx, mask, *draws))
    torch.manual_seed(7)  # the library loss draws t, noise and the dropout coin from the global generator, in that order
    ref = flow_matching_loss(text_dropout=0.5, null_cond=null)(model, (x0, ctx, mask))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_presampled_diffusion_loss_is_diffusion_loss():
    model = UNet(UNetConfig(patch=2, channels=(8, 16), attention_levels=(1,)))
    x0 = torch.randn(4, 1, 28, 28)
    schedule = Schedule("linear")
    draws = ddpm_mnist.ddpm_draws(schedule)((x0,), torch.Generator().manual_seed(3))
    ours = ddpm_mnist.presampled_diffusion_loss(schedule, 5.0)(model, (x0, *draws))
    torch.manual_seed(3)
    torch.testing.assert_close(ours, diffusion_loss(schedule, min_snr_gamma=5.0)(model, (x0,)), rtol=1e-6, atol=1e-6)


def test_global_batches_cut_the_same_rows_and_noise_for_any_process_count(monkeypatch):
    x = torch.arange(40.0).view(10, 4)
    draw = lambda rows, g: (torch.randn(len(rows[0]), generator=g),)  # noqa: E731
    data = common.GlobalBatches(x, batch_size=4, seed=1, draws=draw)
    whole = data.batch(3)
    parts = []
    for rank in range(2):
        monkeypatch.setattr(common, "rank_and_world", lambda rank=rank: (rank, 2))
        parts.append(data.batch(3))
    for i in range(2):
        torch.testing.assert_close(torch.cat([p[i] for p in parts]), whole[i], rtol=0, atol=0)
    monkeypatch.setattr(common, "rank_and_world", lambda: (0, 3))
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        data.batch(0)


def test_t2v_recipe_trains_and_writes_checkpoints_and_a_metrics_log(tmp_path):
    summary = t2v_dit.main([*ARGS, "--steps", "30", "--lr", "3e-3", "--warmup", "1", "--log-every", "1",
                            "--checkpoint-every", "15", "--out-dir", str(tmp_path)])
    assert summary["world_size"] == 1 and summary["steps"] == 30 and summary["launcher"].startswith("python")
    logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in logged] == list(range(1, 31))
    loss = [r["loss"] for r in logged]
    assert sum(loss[-10:]) / 10 < 0.8 * sum(loss[:3]) / 3
    for folder in ("checkpoint-15", "checkpoint-30"):
        assert (tmp_path / folder / "sharded" / ".metadata").is_file() and (tmp_path / folder / "trainer_state.pt").is_file()
    assert json.loads((tmp_path / "run.json").read_text())["loss"] == loss[-1]
    assert set(final(tmp_path)) == set(VideoDiT(video_dit_config("tiny", in_channels=4, context_dim=16)).state_dict())


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(tmp_path):
    t2v_dit.main([*ARGS, "--steps", "4", "--out-dir", str(tmp_path / "full")])
    t2v_dit.main([*ARGS, "--steps", "4", "--checkpoint-every", "2", "--out-dir", str(tmp_path / "first")])
    t2v_dit.main([*ARGS, "--steps", "4", "--out-dir", str(tmp_path / "second"), "--resume", str(tmp_path / "first" / "checkpoint-2")])
    assert_same(final(tmp_path / "second"), final(tmp_path / "full"), atol=0)
    assert_same(final(tmp_path / "second", "ema"), final(tmp_path / "full", "ema"), atol=0)
    with pytest.raises(FileNotFoundError, match="no sharded checkpoint"):
        t2v_dit.main([*ARGS, "--steps", "4", "--out-dir", str(tmp_path / "x"), "--resume", str(tmp_path / "nope")])


@pytest.mark.parametrize("levers", [["--activation-checkpointing"], ["--fused-adamw"], ["--sdpa-backend", "math"],
                                    ["--compile", "eager"]])
def test_a_speed_lever_changes_the_speed_not_the_result(tmp_path, levers):
    base = t2v_dit.main([*ARGS, "--steps", "3", "--out-dir", str(tmp_path / "base")])
    lever = t2v_dit.main([*ARGS, "--steps", "3", "--out-dir", str(tmp_path / "lever"), *levers])
    assert lever["loss"] == pytest.approx(base["loss"], abs=1e-5)
    assert_same(final(tmp_path / "lever"), final(tmp_path / "base"), atol=1e-5)


def test_unknown_lever_values_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown sdpa_backend"):
        t2v_dit.main([*ARGS, "--steps", "1", "--out-dir", str(tmp_path), "--sdpa-backend", "fast"])
    with pytest.raises(KeyError, match="unknown VideoDiT size"):
        t2v_dit.main([*ARGS, "--steps", "1", "--out-dir", str(tmp_path), "--dit", "{'size': 'XXL'}"])


def test_settings_read_as_python_literals():
    assert common.literal("1e-3") == 1e-3 and common.literal("(16, 32)") == (16, 32)
    assert common.literal("{'size': 'S'}") == {"size": "S"} and common.literal("None") is None
    assert common.literal("runs/x.npz") == "runs/x.npz"


def test_ddpm_recipe_uses_notebook_01_settings_and_saves_a_loadable_model(tmp_path):
    from tinyvid.models.registry import load_model

    summary = ddpm_mnist.main([*ARGS, "--steps", "2", "--out-dir", str(tmp_path)])
    model, extra = load_model(tmp_path / "ddpm_mnist.safetensors")
    assert model.config.channels == (16, 32) and extra["schedule"] == "linear" and summary["steps"] == 2
    assert summary["global_batch"] == 32 and (tmp_path / "checkpoint-2" / "sharded" / ".metadata").is_file()


def test_accelerate_launch_runs_the_recipe_unchanged(tmp_path):
    run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu", "-m", "tinyvid.recipes.t2v_dit"],
        *ARGS, "--steps", "2", "--out-dir", str(tmp_path))
    assert json.loads((tmp_path / "run.json").read_text())["launcher"] == "accelerate launch"


def test_accelerate_configs_are_valid_and_name_real_block_classes():
    from accelerate.commands.config.config_args import ClusterConfig

    from tinyvid.models import dit

    ddp = ClusterConfig.from_yaml_file(accelerate_config("ddp"))
    fsdp = ClusterConfig.from_yaml_file(accelerate_config("fsdp"))
    assert ddp.distributed_type == "MULTI_GPU" and fsdp.distributed_type == "FSDP"
    assert fsdp.fsdp_config["fsdp_version"] == 2
    for name in fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","):
        assert isinstance(getattr(dit, name), type)
    with pytest.raises(FileNotFoundError, match="choose one of ddp, fsdp"):
        accelerate_config("zero3")
