"""Small digit classifiers trained on the offline data sets (workloads.training.datasets).

`lenet5`: LeNet-5's structure (two 5x5 conv + 2x2 max-pool stages, three fully connected layers) for
28x28 MNIST, widened to 16/32 channels so binary layers keep enough feature maps, with BatchNorm after
every conv / hidden linear layer (folded into the requantization). `digits_cnn`: a two-conv net for
scikit-learn's 8x8 digits. Only ops the compiler lowers; logits come out as int32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LeNet5(nn.Module):
    """conv5x5(16)-pool-conv5x5(32)-pool-fc(120)-fc(84)-fc(10) on 1x28x28; layer names as in the paper."""

    input_shape = (1, 28, 28)

    def __init__(self, num_classes: int = 10, width: tuple[int, int] = (16, 32)) -> None:
        super().__init__()
        c1, c2 = width
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 5, padding=2, bias=False), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 5, bias=False), nn.BatchNorm2d(c2)
        self.fc1, self.bn3 = nn.Linear(c2 * 5 * 5, 120, bias=False), nn.BatchNorm1d(120)
        self.fc2, self.bn4 = nn.Linear(120, 84, bias=False), nn.BatchNorm1d(84)
        self.fc3 = nn.Linear(84, num_classes)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = self.relu(self.bn3(self.fc1(torch.flatten(x, 1))))
        return self.fc3(self.relu(self.bn4(self.fc2(x))))


class DigitsCNN(nn.Module):
    """conv3x3(16)-conv3x3(32)-pool-fc(64)-fc(10) on 1x8x8."""

    input_shape = (1, 8, 8)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.fc1, self.bn3 = nn.Linear(32 * 4 * 4, 64, bias=False), nn.BatchNorm1d(64)
        self.fc2 = nn.Linear(64, num_classes)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        return self.fc2(self.relu(self.bn3(self.fc1(torch.flatten(x, 1)))))


def lenet5() -> LeNet5:
    return LeNet5()


def digits_cnn() -> DigitsCNN:
    return DigitsCNN()


MODELS = {"mnist": lenet5, "digits": digits_cnn}  # the network trained for each data set
