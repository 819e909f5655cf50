import numpy as np
import pytest
import torch

from tinyvid.cli import main
from tinyvid.course import config, pick_precision
from tinyvid.course.device import autocast_dtype
from tinyvid.models import UNet, UNetConfig, save_model


@pytest.fixture
def tiny_checkpoint(tmp_path):
    model = UNet(UNetConfig(patch=2, channels=(16, 32), attention_levels=(1,)))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return save_model(model, tmp_path / "tiny.safetensors", schedule="linear")


def test_sample_ddpm_writes_the_contract(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main(["sample", "ddpm", "--checkpoint", str(tiny_checkpoint), "--n", "6", "--steps", "3",
                 "--batch-size", "4", "--out", str(out)]) == 0
    z = np.load(out)
    assert z.files == ["x"] and z["x"].dtype == np.uint8 and z["x"].shape == (6, 28, 28)
    again = tmp_path / "again.npz"
    main(["sample", "ddpm", "--checkpoint", str(tiny_checkpoint), "--n", "6", "--steps", "3",
          "--batch-size", "4", "--out", str(again)])
    assert np.array_equal(np.load(again)["x"], z["x"])  # deterministic under the default seed
    assert "x uint8 (6, 28, 28)" in capsys.readouterr().out


def test_sample_ddpm_bad_input(tiny_checkpoint, tmp_path):
    with pytest.raises(SystemExit, match="needs a class-conditional checkpoint"):
        main(["sample", "ddpm", "--checkpoint", str(tiny_checkpoint), "--n", "2", "--labels", "--out", str(tmp_path / "a.npz")])
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["sample", "ddpm", "--checkpoint", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "a.npz")])


def test_precision_choice():
    assert pick_precision("cpu", "fp32") == "fp32"
    assert pick_precision("cpu") in ("fp32", "bf16")
    assert autocast_dtype("bf16") == torch.bfloat16 and autocast_dtype("fp32") is None
    with pytest.raises(ValueError, match="unknown precision"):
        pick_precision("cpu", "fp8")


def test_configs_override_and_reject_unknown_settings():
    c = config("01_ddpm_mnist", "cpu", steps=5, lr=None)
    assert c.profile == "cpu" and c.steps == 5 and c.lr == config("01_ddpm_mnist", "cpu").lr
    with pytest.raises(TypeError, match="no setting"):
        config("01_ddpm_mnist", "cpu", width=3)
    with pytest.raises(KeyError, match="no configs"):
        config("99_nothing", "cpu")
    with pytest.raises(ValueError, match="unknown profile"):
        config("01_ddpm_mnist", "laptop")


def test_every_profile_shares_the_same_settings():
    from tinyvid.course.configs import CONFIGS

    for name, profiles in CONFIGS.items():
        keys = {p: set(s) for p, s in profiles.items()}
        assert set(profiles) == {"smoke", "cpu", "gpu", "full"}, name
        assert all(k == keys["cpu"] for k in keys.values()), name


def test_sample_ddpm_labels_writes_balanced_y_and_accepts_a_diffusers_solver(tmp_path):
    model = UNet(UNetConfig(patch=2, channels=(16, 32), attention_levels=(1,), num_classes=10))
    ckpt = save_model(model, tmp_path / "cond.safetensors", schedule="linear", prediction_type="v_prediction")
    out = tmp_path / "c.npz"
    assert main(["sample", "ddpm", "--checkpoint", str(ckpt), "--n", "20", "--steps", "4", "--labels",
                 "--guidance", "3", "--method", "diffusers:dpmsolver++", "--out", str(out)]) == 0
    z = np.load(out)
    assert sorted(z.files) == ["x", "y"] and z["x"].shape == (20, 28, 28) and z["y"].dtype == np.uint8
    assert np.bincount(z["y"], minlength=10).tolist() == [2] * 10
