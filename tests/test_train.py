import pytest
import torch
from torch import nn

from tinyvid.train import EMA, TensorBatches, TrainConfig, Trainer


def regression_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    return x, y


def mse(model, batch):
    x, y = batch
    return (model(x) - y).pow(2).mean()


def make_trainer(tmp_path=None, steps=40, log_every=5, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    x, y = regression_data()
    cfg = TrainConfig(steps=steps, lr=1e-2, warmup=5, progress=False, log_every=log_every,
                      out_dir=str(tmp_path) if tmp_path else None, **kw)
    return Trainer(model, mse, TensorBatches(x, y, batch_size=32, seed=1), cfg)


def test_training_lowers_the_loss():
    tr = make_trainer(steps=60)
    tr.fit()
    assert tr.history[-1]["loss_avg"] < 0.5 * tr.history[0]["loss"]


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    full = make_trainer(steps=40, grad_accum=2)
    full.fit()

    first = make_trainer(tmp_path, steps=40, grad_accum=2)
    first.fit(steps=17)
    first.save_checkpoint(tmp_path / "ckpt")
    del first
    resumed = make_trainer(tmp_path, steps=40, grad_accum=2).load_checkpoint(tmp_path / "ckpt")
    assert resumed.step == 17
    resumed.fit()
    for a, b in zip(full.unwrapped.parameters(), resumed.unwrapped.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(full.ema.model.parameters(), resumed.ema.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (tmp_path / "metrics.jsonl").is_file()


def test_ema_tracks_with_warmup():
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # decay is (1+1)/(10+1) at the first update, not 0.99
    moved = (ema.model.weight - (model.weight.detach() - 1.0)).abs().mean()
    assert 0.7 < float(moved) < 0.9


def test_learning_rate_warms_up_then_decays():
    tr = make_trainer(steps=40, log_every=1)
    tr.fit()
    lrs = [h["lr"] for h in tr.history]
    assert lrs[0] < 1e-2 and max(lrs) == pytest.approx(1e-2, rel=0.05) and lrs[-1] < 0.2 * max(lrs)


def test_batches_are_deterministic_and_cover_each_epoch():
    x = torch.arange(10)
    b = TensorBatches(x, batch_size=5, seed=3)
    epoch = torch.cat([b.batch(0)[0], b.batch(1)[0]])
    assert sorted(epoch.tolist()) == list(range(10))
    assert torch.equal(TensorBatches(x, batch_size=5, seed=3).batch(1)[0], b.batch(1)[0])
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(x, batch_size=11)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer().load_checkpoint(tmp_path / "nope")


def test_time_budget_stops_training_and_anneals_the_learning_rate():
    tr = make_trainer(steps=10_000, log_every=1, max_minutes=0.02)
    tr.fit()
    assert 0 < tr.step < 10_000 and tr.seconds >= 1.2
    assert tr.history[-1]["lr"] < 0.2 * 1e-2  # cosine ran on time, not on the 10,000 steps
