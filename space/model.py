"""Build a ``torch.nn.Module`` from an ``ArchSpec``.

The module tree mirrors torchvision's ``MobileNetV3`` key for key, in the layout ``space.skeleton``
describes (layer order, module paths), so torchvision's ImageNet weights load into the references
and channel-slicing code (NetAdapt) finds layers with ``skeleton.module_paths``. The stem, block and
head builders here are the only ones: the latency table times its entries with them.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .skeleton import STEM_KERNEL, STEM_STRIDE, block_roles
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
        act, e = _ACT[spec.act], spec.expand
        make = {
            "expand": lambda: ConvBNAct(in_channels, e, 1, act=act),
            "depthwise": lambda: ConvBNAct(e, e, spec.kernel, spec.stride, groups=e, act=act),
            "se": lambda: SqueezeExcitation(e, se_width(e)),
            "project": lambda: ConvBNAct(e, spec.out, 1, act=None),
        }
        self.block = nn.Sequential(*(make[role]() for role in block_roles(in_channels, spec)))
        self.use_res_connect = spec.has_residual(in_channels)
        self.out_channels = spec.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res_connect else y


def stem_layer(stem: int) -> ConvBNAct:
    return ConvBNAct(3, stem, STEM_KERNEL, stride=STEM_STRIDE, act=nn.Hardswish)


def last_conv_layer(in_channels: int, last_conv: int) -> ConvBNAct:
    return ConvBNAct(in_channels, last_conv, 1, act=nn.Hardswish)


def classifier(last_conv: int, head: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Linear -> hard-swish -> dropout -> Linear: ``skeleton.HIDDEN`` and ``skeleton.LOGITS`` are 0 and 3."""
    return nn.Sequential(
        nn.Linear(last_conv, head),
        nn.Hardswish(inplace=True),
        nn.Dropout(p=dropout, inplace=True),
        nn.Linear(head, num_classes),
    )


class Head(nn.Module):
    """Last conv -> pool -> classifier: the tail of ``MobileNetV3``, alone (a latency-table entry)."""

    def __init__(self, in_channels: int, last_conv: int, head: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.conv = last_conv_layer(in_channels, last_conv)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier(last_conv, head, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.conv(x)), 1))


class MobileNetV3(nn.Module):
    def __init__(self, arch: ArchSpec, num_classes: int = 1000):
        super().__init__()
        self.arch = arch
        # features.0 the stem, features.{i+1} block i, features.{n+1} the last conv (skeleton.module_paths)
        layers: list[nn.Module] = [stem_layer(arch.stem)]
        layers += [InvertedResidual(cin, spec) for cin, spec in zip(arch.in_channels(), arch.blocks)]
        layers.append(last_conv_layer(arch.blocks[-1].out, arch.last_conv))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier(arch.last_conv, arch.head, num_classes, arch.dropout)
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
