"""YOLOv3-tiny (darknet's yolov3-tiny.cfg) at 416x416, with two accelerator-friendly substitutions.

Layer for layer as darknet: 3x3 conv + BN blocks with 2x2/2 max pools down to 13x13, the 13x13 head,
the route from layer 13 through a 1x1 conv and a 2x nearest upsample, concatenated with the 26x26
backbone map (128 + 256 = 384 channels, whole 64-channel words), and the 26x26 head. Heads are 1x1
convs with bias and 3 x (5 + 80) = 255 outputs, channel a*85 + k for anchor a (darknet's order).

Substitutions, because the accelerator does not implement the original ops:
- **ReLU instead of LeakyReLU(0.1)**: the requantize unit clamps at level 0 (ReLU/HReLU/HTanh); a leaky
  slope is not supported. Pretrained darknet weights therefore do not transfer without fine-tuning.
- **MaxPool2d(3, stride=1, padding=1) instead of ZeroPad2d((0, 1, 0, 1)) + MaxPool2d(2, stride=1)**:
  the compiler's pooling pads symmetrically, and no symmetric padding keeps a 2x2/1 window at 13x13
  (pad 0 gives 12, pad 1 gives 14). The 3x3/1 window with pad 1 keeps 13x13 and covers darknet's
  2x2 window (a superset: the bottom-right 2x2 of each 3x3), so map sizes and routes are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .resnet import init_weights

ANCHORS = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))  # pixels at 416x416
MASKS = ((3, 4, 5), (0, 1, 2))  # anchors of the 13x13 head, then of the 26x26 head
STRIDES = (32, 16)


class ConvBNReLU(nn.Sequential):
    """darknet's [convolutional] with batch_normalize=1 (no conv bias), ReLU for leaky (see module doc)."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        super().__init__(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class YOLOv3Tiny(nn.Module):
    def __init__(self, num_classes: int = 80) -> None:
        super().__init__()
        self.num_classes = num_classes
        out = len(MASKS[0]) * (5 + num_classes)
        pool = nn.MaxPool2d
        self.backbone = nn.Sequential(  # darknet layers 0-8: 416 -> 26x26x256 (routed to the concat)
            ConvBNReLU(3, 16), pool(2, 2), ConvBNReLU(16, 32), pool(2, 2), ConvBNReLU(32, 64), pool(2, 2),
            ConvBNReLU(64, 128), pool(2, 2), ConvBNReLU(128, 256),
        )
        self.stage13 = nn.Sequential(  # layers 9-13: 13x13x256 (routed to both heads)
            pool(2, 2), ConvBNReLU(256, 512), pool(3, 1, padding=1), ConvBNReLU(512, 1024), ConvBNReLU(1024, 256, 1),
        )
        self.head13 = nn.Sequential(ConvBNReLU(256, 512), nn.Conv2d(512, out, 1))  # layers 14-15
        self.lateral = ConvBNReLU(256, 128, 1)  # layer 18
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")  # layer 19
        self.head26 = nn.Sequential(ConvBNReLU(384, 256), nn.Conv2d(256, out, 1))  # layers 21-22
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x26 = self.backbone(x)
        x13 = self.stage13(x26)
        up = self.upsample(self.lateral(x13))
        return self.head13(x13), self.head26(torch.cat([up, x26], 1))


def yolov3_tiny(num_classes: int = 80) -> YOLOv3Tiny:
    """COCO's 80 classes by default."""
    return YOLOv3Tiny(num_classes)
