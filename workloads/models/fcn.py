"""FCN on a ResNet-18 backbone: dilated trunk (output stride 8), FCN head, nearest upsample to the input.

As torchvision's fcn_resnet50, but on ResNet-18: `layer3` and `layer4` trade their stride for
dilation (2 and 4), the head is a 3x3 conv to 128 channels + BN + ReLU (+ Dropout, identity at
inference) and a 1x1 classifier, and the class map is brought back to the input size — with a nearest
`Upsample` (x8) rather than torchvision's bilinear interpolation, which the accelerator lacks. The
per-pixel argmax is host work (`workloads.post.segment`).
"""

from __future__ import annotations

from torch import Tensor, nn

from .resnet import BasicBlock, ResNet, init_weights

OUTPUT_STRIDE = 8


class FCN(nn.Module):
    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        self.backbone = ResNet(BasicBlock, (2, 2, 2, 2), replace_stride_with_dilation=(False, True, True))
        del self.backbone.avgpool, self.backbone.fc  # classification head unused (not part of the graph)
        self.classifier = nn.Sequential(
            nn.Conv2d(512, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Dropout(0.1), nn.Conv2d(128, num_classes, 1),
        )
        self.upsample = nn.Upsample(scale_factor=OUTPUT_STRIDE, mode="nearest")
        init_weights(self.classifier)

    def forward(self, x: Tensor) -> Tensor:
        return self.upsample(self.classifier(self.backbone.forward_features(x)))


def fcn_resnet18(num_classes: int = 21) -> FCN:
    """PASCAL VOC's 20 classes + background by default."""
    return FCN(num_classes)
