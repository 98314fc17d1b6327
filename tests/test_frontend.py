"""torch.fx capture: classification, module paths, normalisation and clear errors (compiler.frontend)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from qat_models import BasicBlock, Bottleneck, MnistNet, ResNet, TinyYolo, VGGish, WithHostTail
from torch import nn

from bitbranch.compiler.frontend import FrontendError, capture
from bitbranch.compiler.liveness import is_degenerate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def kinds(cap) -> dict[str, str]:
    return {f.path: f.kind for f in cap.nodes}


def test_resnet_nested_sequentials_and_paths():
    model = ResNet(BasicBlock, [2, 1])
    cap = capture(model, (1, 3, 16, 16))
    k = kinds(cap)
    assert k["layer1.1.conv2"] == "conv" and k["layer1.1.bn2"] == "bn" and k["layer2.0.downsample.0"] == "conv"
    assert k["maxpool"] == "maxpool" and k["avgpool"] == "avgpool" and k["fc"] == "linear"
    adds = [f for f in cap.nodes if f.kind == "add"]
    assert len(adds) == 3 and {f.path.rsplit(".", 1)[0] for f in adds} == {"layer1.0", "layer1.1", "layer2.0"}
    relus = [f for f in cap.nodes if f.path == "layer1.0.relu"]
    assert len(relus) == 2 and all(f.kind == "act" and f.attrs == {"lo": 0.0, "hi": float("inf")} for f in relus)
    conv = next(f for f in cap.nodes if f.path == "layer2.0.conv1")
    assert conv.attrs == {"stride": 2, "pad": 1, "dil": 1, "groups": 1} and conv.shape == (1, 16, 4, 4)
    pool = next(f for f in cap.nodes if f.path == "avgpool")
    assert pool.attrs == {"kernel": 4, "stride": 4, "pad": 0}
    assert model.training  # capture restores the mode it found


def test_bottleneck_and_functional_ops():
    cap = capture(ResNet(Bottleneck, [1, 1], width=4), (1, 3, 16, 16))
    assert sum(f.kind == "conv" for f in cap.nodes) == 1 + 4 + 4
    yolo = capture(TinyYolo(), (1, 3, 16, 16))
    ups = [f for f in yolo.nodes if f.kind == "upsample"]
    assert [f.attrs["factor"] for f in ups] == [2, 1]  # nn.Upsample and F.interpolate
    cat = next(f for f in yolo.nodes if f.kind == "cat")
    assert [n.name for n in cat.inputs] == ["interpolate", "stem_2"]
    assert len(yolo.outputs) == 2


def test_view_flatten_and_dropout():
    cap = capture(VGGish(), (1, 3, 16, 16))
    k = [f.kind for f in cap.nodes]
    assert "flatten" in k and "meta" in k  # x.view(x.size(0), -1)
    assert kinds(cap)["classifier.2"] == "identity"  # Dropout


def test_identity_placeholders_are_removed_so_bn_and_act_fuse():
    """timm's blocks put nn.Identity (disabled drop-block / anti-aliasing) between BatchNorm and ReLU."""
    from bitbranch.compiler.compile import compile_model
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.simulator import run

    class TimmLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn, self.drop_block, self.act, self.aa = nn.BatchNorm2d(8), nn.Identity(), nn.ReLU(), nn.Identity()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.aa(self.act(self.drop_block(self.bn(self.conv(x)))))), 1))

    torch.manual_seed(0)
    model = TimmLike().eval()
    cap = capture(model, (1, 3, 8, 8))
    assert [f.kind for f in cap.nodes] == ["input", "conv", "bn", "act", "avgpool", "flatten", "linear", "output"]
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(cap.gm(x), model(x))
    image = (torch.rand(8, 8, 3) * 255).to(torch.uint8).numpy()
    art = compile_model(model, "W2A2", get_config("small"), image)  # was refused: act1 on a quantized tensor
    result = run(art)
    assert result.golden_ok
    assert not any(is_degenerate(result.outputs[o]) for o in art.outputs), "bit-exact but constant outputs"


def test_activation_after_pooling_is_hoisted():
    cap = capture(MnistNet(), (1, 1, 28, 28))
    order = [f.kind for f in cap.nodes]
    assert order[:5] == ["input", "conv", "act", "maxpool", "conv"]  # relu(max_pool2d(conv)) -> max_pool2d(relu(conv))
    x = torch.rand(1, 1, 28, 28)
    model = MnistNet()
    cap = capture(model, (1, 1, 28, 28))
    assert torch.equal(cap.gm(x), model(x))  # exact: relu and max commute


def test_trailing_host_op_is_allowed_and_reported_as_host():
    cap = capture(WithHostTail(), (1, 3, 16, 16))
    host = cap.host_nodes
    assert [f.node.name for f in host] == ["sigmoid"]


class SigmoidInTheMiddle(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Conv2d(4, 4, 3))

    def forward(self, x):
        return self.block(x)


def test_unsupported_op_in_the_middle_names_node_and_module_path():
    with pytest.raises(FrontendError, match=r"'GELU'.*node 'block_1'.*module path 'block\.1'.*block\.2"):
        capture(SigmoidInTheMiddle(), (1, 3, 8, 8))


class FunctionalInTheMiddle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_unsupported_function_names_node():
    with pytest.raises(FrontendError, match=r"'tanh'.*node 'tanh'"):
        capture(FunctionalInTheMiddle(), (1, 3, 8, 8))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8))

    def forward(self, x):
        return self.dw(self.stem(x))


def test_depthwise_is_a_conv_with_groups():
    cap = capture(Depthwise(), (1, 3, 8, 8))
    convs = {f.path: f.attrs for f in cap.nodes if f.kind == "conv"}
    assert convs["stem"]["groups"] == 1 and convs["dw.0"]["groups"] == 8


@pytest.mark.parametrize(("forward", "needle"), [
    (lambda self, x: F.avg_pool2d(self.c(x), (2, 3)), "non-square"),
    (lambda self, x: torch.cat([self.c(x), self.c(x)], dim=2), "dim 2"),
    (lambda self, x: F.interpolate(self.c(x), scale_factor=2, mode="bilinear"), "bilinear"),
    (lambda self, x: F.adaptive_avg_pool2d(self.c(x), 3), "adaptive pooling"),
    (lambda self, x: torch.clamp(self.c(x), min=-1), "activation range"),
])
def test_unsupported_configurations_are_named(forward, needle):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

    M.forward = forward
    with pytest.raises(FrontendError, match=needle):
        capture(M(), (1, 3, 10, 10))


def test_ceil_mode_with_a_partial_window_records_its_extent():
    """8 -> 4 then 4 -> 2 (floor mode: 3, 1): each last window reaches one level-0 row / column past the map and
    holds 2 of its rows / columns (torch divides a partial average window by that count)."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return F.avg_pool2d(F.max_pool2d(self.c(x), 3, 2, ceil_mode=True), 3, 2, ceil_mode=True)

    cap = capture(M(), (1, 3, 10, 10))
    pools = [f for f in cap.nodes if f.kind in ("maxpool", "avgpool")]
    assert [(f.kind, f.attrs["extra"], f.attrs["last_count"]) for f in pools] == [("maxpool", (1, 1), (2, 2)),
                                                                                   ("avgpool", (1, 1), (2, 2))]


def test_ceil_mode_that_changes_nothing_is_an_ordinary_pool():
    """timm's avg_down (AvgPool2d(2, 2, ceil_mode=True)) on an even map: ceil and floor give the same size."""
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(2, 2, ceil_mode=True,
                                                                                      count_include_pad=False))
    cap = capture(m, (1, 3, 10, 10))
    pools = [f for f in cap.nodes if f.kind in ("maxpool", "avgpool")]
    assert [(f.kind, f.attrs["kernel"], f.attrs["stride"]) for f in pools] == [("maxpool", 2, 2), ("avgpool", 2, 2)]


class InplaceAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.c(x)
        y.add_(x)
        return self.c(y)


def test_unused_inplace_result_is_refused():
    with pytest.raises(FrontendError, match="in-place 'add_'"):
        capture(InplaceAdd(), (1, 3, 8, 8))


class DataDependent(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


def test_untraceable_model_and_bad_input_shape():
    with pytest.raises(FrontendError, match="could not trace DataDependent"):
        capture(DataDependent(), (1, 3, 8, 8))
    with pytest.raises(FrontendError, match="batch size 1"):
        capture(VGGish(), (2, 3, 16, 16))
    with pytest.raises(FrontendError, match="shape"):
        capture(VGGish(), (1, 3, 20, 20))  # the classifier expects 16x16 inputs


class LinearOn4D(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)


def test_linear_needs_a_flat_input():
    with pytest.raises(FrontendError, match="Linear on a 4-D tensor"):
        capture(LinearOn4D(), (1, 3, 8, 8))
