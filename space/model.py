"""Build a ``torch.nn.Module`` from an ``ArchSpec``.

The module tree mirrors torchvision's ``MobileNetV3`` key for key (``features.N.block.M...``,
``classifier.K``), so torchvision's ImageNet weights load into the references and channel-slicing
code (NetAdapt) can find layers by role: in every ``InvertedResidual.block`` the order is
[expand] -> depthwise -> [se] -> project.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .spec import ArchSpec, BlockSpec, se_width

# torchvision's MobileNetV3 batch-norm settings (TF-ported hyper-parameters).
BatchNorm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
_ACT = {"RE": nn.ReLU, "HS": nn.Hardswish}


class ConvBNAct(nn.Sequential):
    """conv -> BN -> optional activation, children named 0/1/2 as torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act=None):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            BatchNorm(cout),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)
        self.out_channels = cout


class SqueezeExcitation(nn.Module):
    """SE with a hard-sigmoid gate; attribute names as torchvision's ``SqueezeExcitation``."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, spec: BlockSpec):
        super().__init__()
        act = _ACT[spec.act]
        layers: list[nn.Module] = []
        if spec.has_expand(in_channels):
            layers.append(ConvBNAct(in_channels, spec.expand, 1, act=act))
        layers.append(
            ConvBNAct(spec.expand, spec.expand, spec.kernel, spec.stride, groups=spec.expand, act=act)
        )
        if spec.se:
            layers.append(SqueezeExcitation(spec.expand, se_width(spec.expand)))
        layers.append(ConvBNAct(spec.expand, spec.out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = spec.has_residual(in_channels)
        self.out_channels = spec.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res_connect else y


class MobileNetV3(nn.Module):
    def __init__(self, arch: ArchSpec, num_classes: int = 1000):
        super().__init__()
        self.arch = arch
        layers: list[nn.Module] = [ConvBNAct(3, arch.stem, 3, stride=2, act=nn.Hardswish)]
        for cin, spec in zip(arch.in_channels(), arch.blocks):
            layers.append(InvertedResidual(cin, spec))
        layers.append(ConvBNAct(arch.blocks[-1].out, arch.last_conv, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(arch.last_conv, arch.head),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=arch.dropout, inplace=True),
            nn.Linear(arch.head, num_classes),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _init_weights(model: nn.Module) -> None:
    # torchvision's MobileNetV3 initialisation, so training from scratch behaves the same.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build_model(arch: ArchSpec, num_classes: int = 1000) -> MobileNetV3:
    """A freshly initialised network for ``arch`` (validated when the spec was made)."""
    if not isinstance(arch, ArchSpec):
        raise TypeError(f"build_model needs an ArchSpec, got {type(arch).__name__}; use space.parse_arch")
    if num_classes <= 0:
        raise ValueError(f"num_classes must be > 0, got {num_classes}")
    return MobileNetV3(arch, num_classes)
