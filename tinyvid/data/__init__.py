"""Data: MNIST, captioned Moving MNIST, video I/O, frame sampling, shards, curation.

Sub-modules are imported lazily where they need optional packages (PyAV, webdataset):
`from tinyvid.data import video_io, shards` works once the `video`/`data` extras are installed.
"""

from tinyvid.data.mnist import load_mnist, mnist_tensors
from tinyvid.data.moving_mnist import Clips, MovingMNIST, WordTokenizer, generate, parse_caption

__all__ = ["load_mnist", "mnist_tensors", "Clips", "MovingMNIST", "WordTokenizer", "generate", "parse_caption"]
