"""A tiny classifier for the exploration tests: compiles through the real compiler in well under a second."""

from torch import nn

INPUT_SHAPE = (3, 16, 16)


class Tiny(nn.Module):
    def __init__(self, size: int = 16, width: int = 64) -> None:
        super().__init__()
        self.input_shape = (3, size, size)
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.pool2 = nn.MaxPool2d(size // 16) if size > 16 else nn.Identity()  # avgpool windows of at most 8x8
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu(self.bn2(self.conv2(x))))
        return self.fc(self.avgpool(x).flatten(1))


def tiny() -> nn.Module:
    return Tiny()


def medium() -> nn.Module:
    """Points take ~0.1 s: long enough to kill a worker in the middle of a run."""
    return Tiny(64, 128)
