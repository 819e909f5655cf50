"""Data: MNIST, captioned Moving MNIST, video I/O, shards, curation."""

from tinyvid.data.mnist import load_mnist, mnist_tensors

__all__ = ["load_mnist", "mnist_tensors"]
