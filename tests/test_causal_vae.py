import numpy as np
import pytest
import torch

from tinyvid.data.latents import LatentSet, encode_clips
from tinyvid.data.moving_mnist import NO_DIGIT, Clips
from tinyvid.models import CausalVAE3D, CausalVAE3DConfig, decode_latents, encode_latents, video_vae_loss
from tinyvid.models.causal_vae import CausalConv3d, depth_to_space, random_crop, space_to_depth
from tinyvid.train import TensorBatches, Trainer

TINY = dict(patch=(2, 2), channels=(8, 16), latent_channels=4, size=32)


def clips(n=2, frames=16, size=32):
    return torch.rand(n, 1, frames, size, size) * 2 - 1


@pytest.mark.parametrize("kw, latent", [(TINY, (4, 5, 8, 8)), ({**TINY, "patch": (2, 4)}, (4, 5, 4, 4)),
                                        ({**TINY, "patch": (4, 2), "channels": (8,)}, (4, 5, 16, 16))])
def test_first_frame_alone_then_four_frames_per_latent_frame(kw, latent):
    vae = CausalVAE3D(CausalVAE3DConfig(**kw))
    x = clips()
    z = vae.encode(x).latent_dist.sample()
    assert z.shape == (2, *latent) == (2, *vae.latent_shape)  # 1 + T / compression latent frames
    assert vae.decode(z).sample.shape == x.shape  # the contract's frames come back, the copy of frame 0 dropped


def test_causal_conv_output_frame_n_sees_only_frames_up_to_n():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 9, 6, 6)
    later = x.clone()
    later[:, :, 5] += 1.0
    for conv, unchanged in [(CausalConv3d(3, 4, 3), 5), (CausalConv3d(3, 4, (3, 1, 1)), 5),
                            (CausalConv3d(3, 4, 3, stride=2), 3)]:  # stride 2: output n reads inputs <= 2n
        a, b = conv(x), conv(later)
        assert a.shape[2] == (9 if conv.stride[0] == 1 else 5)
        torch.testing.assert_close(a[:, :, :unchanged], b[:, :, :unchanged], rtol=0, atol=0)
        assert (a[:, :, unchanged] - b[:, :, unchanged]).abs().max() > 1e-3


@pytest.mark.parametrize("factorized", [False, True])
def test_encoder_and_decoder_are_causal(factorized):
    torch.manual_seed(0)
    vae = CausalVAE3D(CausalVAE3DConfig(**TINY, factorized=factorized)).eval()
    x = clips(1)
    later = x.clone()
    later[:, :, 8] = -x[:, :, 8]  # change frame 8 only
    with torch.no_grad():
        a, b = vae.encode(x).latent_dist.mean, vae.encode(later).latent_dist.mean
    # latent frame 0 is frame 0; latent frame k >= 1 covers frames 4k-4 .. 4k-1: frames 0-7 are latent frames 0-2
    torch.testing.assert_close(a[:, :, :3], b[:, :, :3], rtol=0, atol=0)
    assert (a[:, :, 3] - b[:, :, 3]).abs().max() > 1e-4

    z = torch.randn(1, *vae.latent_shape)
    z_later = z.clone()
    z_later[:, :, 3] += 1.0  # latent frame 3 decodes to frames 8-11
    with torch.no_grad():
        a, b = vae.decode(z).sample, vae.decode(z_later).sample
    torch.testing.assert_close(a[:, :, :8], b[:, :, :8], rtol=0, atol=0)
    assert (a[:, :, 8] - b[:, :, 8]).abs().max() > 1e-4


def test_space_to_depth_gives_frame_zero_its_own_group_and_inverts():
    x = torch.randn(2, 3, 1 + 2 * 4, 8, 8)
    packed = space_to_depth(x, 2, 4)
    assert packed.shape == (2, 3 * 2 * 16, 5, 2, 2)
    torch.testing.assert_close(depth_to_space(packed, 2, 4), x, rtol=0, atol=0)


def moving_squares(n, frames=8, size=16, side=6):
    """-1 background, a +1 square moving one pixel a frame to the right from a random start."""
    g = torch.Generator().manual_seed(0)
    x = -torch.ones(n, 1, frames, size, size)
    for i, (r, c) in enumerate(torch.randint(0, size - side - frames, (n, 2), generator=g).tolist()):
        for f in range(frames):
            x[i, 0, f, r : r + side, c + f : c + f + side] = 1.0
    return x


def test_training_lowers_the_loss_and_logs_the_temporal_term():
    torch.manual_seed(0)
    x = moving_squares(16)
    vae = CausalVAE3D(CausalVAE3DConfig(**{**TINY, "frames": 8, "size": 16}))
    loss_fn = video_vae_loss(1e-3, temporal_weight=1.0)
    with torch.no_grad():
        _, logs = loss_fn(vae, (x,))
    assert set(logs) == {"mse", "kl_per_latent", "temporal_mse"}
    before = (decode_latents(vae, encode_latents(vae, x)) - x).pow(2).mean()
    Trainer(vae, loss_fn, TensorBatches(x, batch_size=8), steps=20, lr=3e-3, warmup=2, ema_decay=None,
            progress=False).fit()
    after = (decode_latents(vae, encode_latents(vae, x)) - x).pow(2).mean()
    assert after < 0.7 * before


def test_training_on_random_windows_of_the_clips():
    torch.manual_seed(0)
    x = clips(4, frames=16, size=32)
    window = random_crop(x, 8, 16)
    assert window.shape == (4, 1, 8, 16, 16)
    assert any(torch.equal(window, x[:, :, t : t + 8, h : h + 16, w : w + 16])
               for t in range(9) for h in range(17) for w in range(17))
    vae = CausalVAE3D(CausalVAE3DConfig(**TINY))
    loss, logs = video_vae_loss(1e-3, crop=(8, 16))(vae, (x,))
    loss.backward()
    assert loss.ndim == 0 and logs["mse"] > 0
    with pytest.raises(ValueError, match="larger than the clips"):
        random_crop(x, 20, 16)


def test_bad_input_and_configs_are_clear_errors():
    vae = CausalVAE3D(CausalVAE3DConfig(**TINY))
    with pytest.raises(ValueError, match="T divisible by 4"):
        vae.encode(clips(1, frames=15))
    with pytest.raises(ValueError, match="expected latents"):
        vae.decode(torch.randn(1, 3, 5, 8, 8))
    with pytest.raises(ValueError, match="must divide by"):
        CausalVAE3DConfig(patch=(2, 2), channels=(8, 16, 32), frames=12)
    with pytest.raises(ValueError, match="patch"):
        CausalVAE3DConfig(patch=(0, 2))


def fake_clips(n=6, frames=16, size=32):
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, (n, 2))
    digits[::2, 1] = NO_DIGIT
    directions = np.where(digits == NO_DIGIT, NO_DIGIT, rng.integers(0, 8, (n, 2)))
    videos = rng.integers(0, 256, (n, frames, size, size), dtype=np.uint8)
    return Clips(videos, digits, directions, [f"clip {i}" for i in range(n)])


def test_latent_pre_encoding_is_deterministic_and_round_trips(tmp_path):
    vae = CausalVAE3D(CausalVAE3DConfig(**TINY))
    data = fake_clips()
    a = encode_clips(vae, data, batch_size=4, progress=False)
    b = encode_clips(vae, data, batch_size=3, progress=False)
    torch.testing.assert_close(a.mean, b.mean)  # batching does not change a clip's latents
    assert a.mean.shape == (6, *vae.latent_shape) and (a.std > 0).all()
    torch.testing.assert_close(a.mean[:1], vae.encode(data.tensors()[:1]).latent_dist.mean.detach())
    assert a.meta["vae"]["channels"] == [8, 16]
    for loaded in (LatentSet.load(a.save(tmp_path / "latents.npz")),
                   LatentSet.read_shards(a.write_shards(tmp_path / "shards", shard_size=4))):
        torch.testing.assert_close(loaded.mean, a.mean, rtol=0, atol=0)
        torch.testing.assert_close(loaded.std, a.std, rtol=0, atol=0)
        assert loaded.captions == a.captions and loaded.meta == a.meta
        np.testing.assert_array_equal(loaded.digits, a.digits)
        np.testing.assert_array_equal(loaded.directions, a.directions)
    g = lambda: torch.Generator().manual_seed(1)
    torch.testing.assert_close(a.latents(sample=True, generator=g()), a.latents(sample=True, generator=g()))
    sub = a[a.digits[:, 1] == NO_DIGIT]
    assert len(sub) == 3 and sub.captions == ["clip 0", "clip 2", "clip 4"]
    with pytest.raises(ValueError, match="LatentSet"):
        LatentSet(a.mean, a.std[:2], a.captions, a.digits, a.directions)
    with pytest.raises(FileNotFoundError):
        LatentSet.load(tmp_path / "missing.npz")


def test_save_and_load_round_trip(tmp_path):
    from tinyvid.models import load_model, save_model

    vae = CausalVAE3D(CausalVAE3DConfig(**TINY, factorized=True))
    loaded, extra = load_model(save_model(vae, tmp_path / "vae.safetensors", scaling_factor=0.5), "cpu")
    assert loaded.config == vae.config and extra == {"scaling_factor": 0.5}
    x = clips(1)
    torch.testing.assert_close(loaded.encode(x).latent_dist.mean, vae.encode(x).latent_dist.mean)
