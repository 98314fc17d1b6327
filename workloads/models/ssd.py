"""SSD300 on a ResNet-18 backbone (the seed paper's detector), laid out like NVIDIA's SSD300-ResNet.

Backbone: ResNet-18 up to `layer3`, whose stride is set to 1 so that the first feature map is 38x38
(256 channels). Five extra blocks (1x1 reduce, 3x3 conv) give 19, 10, 5, 3 and 1; each of the six
maps gets a 3x3 `loc` head (4 offsets per default box) and a 3x3 `conf` head (one score per class per
default box), 8732 default boxes in all.

`forward` returns the 12 raw head maps — `loc.0 .. loc.5` then `conf.0 .. conf.5`, each (N, A*k, H, W)
with channel a*k + j for box a — because reshaping and concatenation of the 8732 boxes, softmax,
decoding and NMS are host work (`workloads.post.ssd`).
"""

from __future__ import annotations

from torch import Tensor, nn

from .resnet import init_weights, resnet18

FEATURE_CHANNELS = (256, 512, 512, 256, 256, 256)
EXTRA_MID_CHANNELS = (256, 256, 128, 128, 128)
BOXES_PER_LOCATION = (4, 6, 6, 6, 4, 4)


class ResNetTrunk(nn.Module):
    """ResNet-18 `conv1` .. `layer3` with `layer3` at stride 1 (38x38 at 300x300 input)."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet18()
        block = net.layer3[0]
        block.conv1.stride = (1, 1)
        block.downsample[0].stride = (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


def extra_block(cin: int, mid: int, cout: int, downsample: bool) -> nn.Sequential:
    """1x1 reduce + 3x3 conv; stride 2 / pad 1 halves the map, stride 1 / pad 0 takes 2 pixels off."""
    stride, pad = (2, 1) if downsample else (1, 0)
    return nn.Sequential(
        nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 3, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class SSD300(nn.Module):
    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ResNetTrunk()
        chans = FEATURE_CHANNELS
        self.extras = nn.ModuleList(
            extra_block(cin, mid, cout, downsample=k < 3)
            for k, (cin, mid, cout) in enumerate(zip(chans[:-1], EXTRA_MID_CHANNELS, chans[1:], strict=True))
        )
        per_map = list(zip(chans, BOXES_PER_LOCATION, strict=True))
        self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in per_map)
        self.conf = nn.ModuleList(nn.Conv2d(c, a * num_classes, 3, padding=1) for c, a in per_map)
        for module in (self.extras, self.loc, self.conf):
            init_weights(module)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        features = [self.backbone(x)]
        for block in self.extras:
            features.append(block(features[-1]))
        locs = [head(f) for head, f in zip(self.loc, features, strict=True)]
        confs = [head(f) for head, f in zip(self.conf, features, strict=True)]
        return (*locs, *confs)


def ssd300_resnet18(num_classes: int = 21) -> SSD300:
    """PASCAL VOC's 20 classes + background by default (the paper's VOC2007 evaluation)."""
    return SSD300(num_classes)
