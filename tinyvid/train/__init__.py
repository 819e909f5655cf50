"""Training: one Trainer on accelerate, EMA, deterministic in-memory batches."""

from tinyvid.train.batches import TensorBatches
from tinyvid.train.ema import EMA
from tinyvid.train.throughput import training_throughput
from tinyvid.train.trainer import TrainConfig, Trainer, lr_lambda

__all__ = ["TensorBatches", "EMA", "TrainConfig", "Trainer", "lr_lambda", "training_throughput"]
