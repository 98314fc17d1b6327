"""Workload models: build, trace with torch.fx, run at their real input sizes, registry and loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bitbranch import workloads
from bitbranch.workloads.registry import load_user_model

# (name, output shapes at the real input size)
EXPECTED = {
    "resnet18": [(1, 1000)],
    "resnet34": [(1, 1000)],
    "resnet50": [(1, 1000)],
    "vgg16": [(1, 1000)],
    "alexnet": [(1, 1000)],
    "ssd300_resnet18": [(1, 16, 38, 38), (1, 24, 19, 19), (1, 24, 10, 10), (1, 24, 5, 5), (1, 16, 3, 3),
                        (1, 16, 1, 1), (1, 84, 38, 38), (1, 126, 19, 19), (1, 126, 10, 10), (1, 126, 5, 5),
                        (1, 84, 3, 3), (1, 84, 1, 1)],
    "yolov3_tiny": [(1, 255, 13, 13), (1, 255, 26, 26)],
    "fcn_resnet18": [(1, 21, 224, 224)],
}
# torchvision's parameter counts (YOLOv3-tiny: darknet's 8.86 M; SSD/FCN: ours, pinned against drift)
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "vgg16": 138_357_544,
          "alexnet": 61_100_840, "yolov3_tiny": 8_852_366, "ssd300_resnet18": 8_779_822, "fcn_resnet18": 11_769_301}
SUPPORTED = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.MaxPool2d, nn.AvgPool2d,
             nn.AdaptiveAvgPool2d, nn.Linear, nn.Upsample, nn.Dropout, nn.Sequential, nn.ModuleList)


def outputs(y) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in (y if isinstance(y, tuple) else (y,))]


def test_registry_names_and_cli_list_agree():
    """The CLI's help (kept torch-free) lists the registered networks; this file checks each of them."""
    from bitbranch.workloads.cli import model_help

    assert list(workloads.names()) == list(EXPECTED)
    assert all(name in model_help() for name in EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_size_shapes_and_fx_trace(name):
    """Shapes at the real input size on the meta device (no memory, no compute), then an fx trace."""
    spec = workloads.get(name)
    with torch.device("meta"):
        model = spec.build()
        y = model(torch.empty(1, *spec.input_shape))
    assert outputs(y) == EXPECTED[name]
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    gm = torch.fx.symbolic_trace(model)
    calls = {n.op for n in gm.graph.nodes}
    assert "call_module" in calls and len(list(gm.graph.nodes)) > 10
    custom = [type(m).__name__ for m in model.modules()
              if not isinstance(m, SUPPORTED) and len(list(m.children())) == 0]
    assert custom == [], f"leaf modules the compiler does not lower: {custom}"
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.groups == 1
        if isinstance(m, nn.Upsample):
            assert m.mode == "nearest"


def test_precision_overrides_name_real_layers():
    from bitbranch.compiler.precision import PrecisionError

    for name in workloads.names():
        spec = workloads.get(name)
        with torch.device("meta"):
            paths = [p for p, m in spec.build().named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        spec.precision.check_paths(paths)  # raises on a typo
        assert spec.precision.weight_for(paths[0]).bits == 8, f"{name}: first layer {paths[0]} not 8-bit"
    with pytest.raises(PrecisionError, match="matches no layer"):
        workloads.get("resnet18").precision.check_paths(["layer1.0.conv1"])


def test_resnet18_float_forward_at_224():
    torch.manual_seed(0)
    model = workloads.get("resnet18").build()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 224, 224))
    assert y.shape == (1, 1000) and torch.isfinite(y).all() and y.std() > 0


@pytest.mark.parametrize("name,size", [("resnet34", 64), ("resnet50", 64), ("alexnet", 127), ("vgg16", 64),
                                       ("ssd300_resnet18", 300), ("yolov3_tiny", 128), ("fcn_resnet18", 64)])
def test_float_forward(name, size):
    """Real float forwards (reduced sizes except SSD, whose extra layers need 300x300); outputs vary with input."""
    torch.manual_seed(0)
    model = workloads.get(name).build()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        ys = model(x)
    ys = ys if isinstance(ys, tuple) else (ys,)
    for y in ys:
        assert y.shape[0] == 2 and torch.isfinite(y).all()
        assert not torch.allclose(y[0], y[1]), "output does not depend on the input"
    if name == "fcn_resnet18":
        assert ys[0].shape[2:] == (size, size)  # nearest x8 back to the input size


def test_resnet_structure_matches_torchvision_paths():
    model = workloads.get("resnet50").build()
    names = dict(model.named_modules())
    for path in ("conv1", "layer1.0.downsample.0", "layer4.2.conv3", "fc", "avgpool"):
        assert path in names
    assert isinstance(names["layer1.0"], nn.Module) and type(names["layer1.0"]).__name__ == "Bottleneck"
    assert names["layer2.0.conv2"].stride == (2, 2) and names["layer2.0.conv1"].stride == (1, 1)  # v1.5


def test_yolo_route_concat_is_word_aligned():
    model = workloads.get("yolov3_tiny").build()
    assert model.head26[0][0].in_channels == 384 and model.lateral[0].out_channels % 64 == 0
    pool = model.stage13[2]
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 1, 1)


def test_fcn_is_dilated_at_output_stride_8():
    model = workloads.get("fcn_resnet18").build()
    assert model.backbone.layer4[1].conv1.dilation == (4, 4) and model.backbone.layer3[0].conv1.stride == (1, 1)
    with torch.device("meta"):
        feats = workloads.get("fcn_resnet18").build().backbone.forward_features(torch.empty(1, 3, 224, 224))
    assert feats.shape == (1, 512, 28, 28)


def test_unknown_model_lists_registered_names():
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        workloads.get("resnet19")


USER_MODEL = '''
import torch
from torch import nn

INPUT_SHAPE = (3, 32, 48)

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

def not_a_model():
    return 42
'''


def test_user_model_from_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(USER_MODEL)
    spec = workloads.get(f"{path}:make")
    assert spec.input_shape == (3, 32, 48) and spec.task == "classify"
    assert spec.build()(torch.rand(1, 3, 32, 48)).shape == (1, 4)
    assert load_user_model(f"{path}:make", input_shape=(3, 8, 8)).input_shape == (3, 8, 8)
    with pytest.raises(ValueError, match="no callable 'missing'.*make"):
        workloads.get(f"{path}:missing")
    with pytest.raises(TypeError, match="returned int"):
        workloads.get(f"{path}:not_a_model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        workloads.get(f"{tmp_path / 'absent.py'}:make")
