"""The supernet: one set of weights holding every point of a search space, and the subnet extraction.

Each block stores its largest choices once: the expansion conv at the widest expansion and widest
input, the depthwise conv at the widest expansion and largest kernel, an SE module for the widest
expansion, the projection at the widest output. A point of the space uses slices of them:

* kernel ``k``: the centre ``k x k`` of the largest kernel (Once-for-All's elastic kernel). With
  ``kernel_transform`` (Once-for-All's learned kernel transform), each smaller kernel is the centre of
  the next larger one mapped by a learned ``k^2 x k^2`` matrix per block and kernel size, shared by all
  channels and started at the identity: a small kernel need not be exactly the centre of the large one;
* expansion ``e``: the first ``e`` channels of the expansion, depthwise, SE and projection-input weights
  (``sort_channels`` moves the most important channels first, by the L1 norm of the projection
  weights that read them, as Once-for-All's ``re_organize_middle_weights``); a block whose expansion
  equals its input has no expansion conv, as in ``space.build_model``, and its depthwise conv reads
  the input directly;
* SE on or off, ReLU or hard-swish, stride 1 or 2: parameter-free choices, so shared by all points;
* output ``c`` (when a space varies it): the first ``c`` projection channels, and the first ``c``
  input channels of whatever reads them.

``extract(arch)`` copies those slices into a plain ``space.build_model(arch)`` network (torchvision's
module names, ``space.skeleton.module_paths``), so a scored subnet is the network a user deploys.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from space import ArchSpec, BlockSpec, SearchSpace, build_model, se_width
from space.model import _init_weights
from space.skeleton import STEM_KERNEL, STEM_STRIDE, last_conv_width, module_paths

EPS, MOMENTUM = 0.001, 0.01  # torchvision's MobileNetV3 batch norm (space.model.BatchNorm)
_ACT = {"RE": F.relu, "HS": F.hardswish}


class SlicedBN(nn.BatchNorm2d):
    """A batch norm whose first ``c`` channels serve a ``c``-channel input (shared statistics and affine)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=EPS, momentum=MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, self.momentum, self.eps)


class SuperBlock(nn.Module):
    """Every choice of one block of the space (see the module note)."""

    def __init__(self, max_in: int, max_mid: int, max_out: int, kernels: tuple[int, ...], any_se: bool,
                 kernel_transform: bool = False):
        super().__init__()
        self.kernels = tuple(sorted(set(kernels), reverse=True))
        self.max_kernel = self.kernels[0]
        # Parameters only when asked for: a supernet without them keeps its state-dict keys.
        self.kernel_maps = nn.ParameterDict(
            {str(k): nn.Parameter(torch.eye(k * k)) for k in self.kernels[1:]}) if kernel_transform else None
        self.expand = nn.Conv2d(max_in, max_mid, 1, bias=False)
        self.expand_bn = SlicedBN(max_mid)
        self.depthwise = nn.Conv2d(max_mid, max_mid, self.max_kernel, groups=max_mid, bias=False)
        self.depthwise_bn = SlicedBN(max_mid)
        self.se = None
        if any_se:
            sq = se_width(max_mid)
            self.se = nn.ModuleDict({"fc1": nn.Conv2d(max_mid, sq, 1), "fc2": nn.Conv2d(sq, max_mid, 1)})
        self.project = nn.Conv2d(max_mid, max_out, 1, bias=False)
        self.project_bn = SlicedBN(max_out)

    # -- the slices of one choice --------------------------------------------------------------------
    def depthwise_weight(self, e: int, k: int) -> torch.Tensor:
        w = self.depthwise.weight[:e]
        if self.kernel_maps is None:
            lo = (self.max_kernel - k) // 2
            return w[:, :, lo:lo + k, lo:lo + k]
        for size in self.kernels[1:]:  # largest to smallest: each the mapped centre of the one before
            if size < k:
                break
            lo = (w.shape[-1] - size) // 2
            centre = w[:, :, lo:lo + size, lo:lo + size].reshape(-1, size * size)
            w = F.linear(centre, self.kernel_maps[str(size)]).reshape(e, 1, size, size)
        return w

    def slices(self, cin: int, b: BlockSpec) -> dict[str, torch.Tensor | None]:
        """The weights ``space.model.InvertedResidual(cin, b)`` gets, by role."""
        e, sq = b.expand, se_width(b.expand)
        return {
            "expand": self.expand.weight[:e, :cin] if b.has_expand(cin) else None,
            "depthwise": self.depthwise_weight(e, b.kernel),
            "fc1.weight": self.se["fc1"].weight[:sq, :e] if b.se else None,
            "fc1.bias": self.se["fc1"].bias[:sq] if b.se else None,
            "fc2.weight": self.se["fc2"].weight[:e, :sq] if b.se else None,
            "fc2.bias": self.se["fc2"].bias[:e] if b.se else None,
            "project": self.project.weight[:b.out, :e],
        }

    def forward(self, x: torch.Tensor, b: BlockSpec) -> torch.Tensor:
        cin, act = x.shape[1], _ACT[b.act]
        w = self.slices(cin, b)
        y = x
        if w["expand"] is not None:
            y = act(self.expand_bn(F.conv2d(y, w["expand"])))
        y = act(self.depthwise_bn(F.conv2d(y, w["depthwise"], None, b.stride, b.kernel // 2, 1, b.expand)))
        if b.se:
            s = F.adaptive_avg_pool2d(y, 1)
            s = F.hardsigmoid(F.conv2d(F.relu(F.conv2d(s, w["fc1.weight"], w["fc1.bias"])), w["fc2.weight"],
                                       w["fc2.bias"]))
            y = s * y
        y = self.project_bn(F.conv2d(y, w["project"]))
        return y + x if b.has_residual(cin) else y


def _input_widths(space: SearchSpace) -> list[set[int]]:
    """The input widths each block of ``space`` can see."""
    out, ins = [], {space.stem}
    for bc in space.blocks:
        out.append(ins)
        ins = set(bc.out)
    return out


class Supernet(nn.Module):
    """Weights for every point of ``space``; ``forward(x, arch)`` runs the point ``arch``."""

    def __init__(self, space: SearchSpace, num_classes: int, kernel_transform: bool = False):
        super().__init__()
        self.space, self.num_classes = space, num_classes
        self.in_widths = _input_widths(space)
        self.stem = nn.Conv2d(3, space.stem, STEM_KERNEL, STEM_STRIDE, STEM_KERNEL // 2, bias=False)
        self.stem_bn = SlicedBN(space.stem)
        self.blocks = nn.ModuleList(
            SuperBlock(max(ins), max(bc.expand), max(bc.out), bc.kernel, True in bc.se, kernel_transform)
            for ins, bc in zip(self.in_widths, space.blocks))
        last_in = max(space.blocks[-1].out)
        self.max_last = max(last_conv_width(space.last_conv, c) for c in space.blocks[-1].out)
        self.last_conv = nn.Conv2d(last_in, self.max_last, 1, bias=False)
        self.last_bn = SlicedBN(self.max_last)
        self.hidden = nn.Linear(self.max_last, space.head)
        self.logits = nn.Linear(space.head, num_classes)
        self.dropout = space.dropout
        # Same initialisation as space.model (torchvision's): a supernet step starts where a trial does.
        _init_weights(self)

    def forward(self, x: torch.Tensor, arch: ArchSpec) -> torch.Tensor:
        x = F.hardswish(self.stem_bn(self.stem(x)))
        for block, b in zip(self.blocks, arch.blocks):
            x = block(x, b)
        x = F.hardswish(self.last_bn(F.conv2d(x, self.last_conv.weight[:arch.last_conv, :x.shape[1]])))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        x = F.hardswish(F.linear(x, self.hidden.weight[:, :arch.last_conv], self.hidden.bias))
        x = F.dropout(x, self.dropout, self.training)
        return self.logits(x)

    # -- points of the space -------------------------------------------------------------------------
    def largest(self) -> ArchSpec:
        """Widest, largest-kernel point with SE where allowed, hard-swish where allowed, stride 1 where allowed."""
        return self._extreme(max, True, "HS", min)

    def smallest(self) -> ArchSpec:
        """Narrowest, smallest-kernel point without SE where allowed, ReLU where allowed, stride 2 where allowed."""
        return self._extreme(min, False, "RE", max)

    def _extreme(self, pick, se: bool, act: str, stride) -> ArchSpec:
        blocks = [BlockSpec(kernel=pick(bc.kernel), expand=pick(bc.expand), out=pick(bc.out),
                            se=se if se in bc.se else bc.se[0], act=act if act in bc.act else bc.act[0],
                            stride=stride(bc.stride)) for bc in self.space.blocks]
        return self.space._arch(blocks)

    # -- channel order -------------------------------------------------------------------------------
    def sortable(self, i: int) -> bool:
        """Block ``i``'s expansion channels can be reordered: no point skips its expansion conv (there
        the depthwise channels are the input's own)."""
        return not set(self.space.blocks[i].expand) & self.in_widths[i]

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Reorder each block's expansion channels by importance (L1 norm of the projection weights
        reading them), largest first, so a narrow point keeps the most important ones. The widest
        points compute exactly what they did; ``optimizer``'s per-parameter state is reordered too."""
        for i, blk in enumerate(self.blocks):
            if not self.sortable(i):
                continue
            perm = torch.argsort(blk.project.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
            moves = [(blk.expand.weight, 0), (blk.depthwise.weight, 0), (blk.project.weight, 1)]
            moves += [(t, 0) for bn in (blk.expand_bn, blk.depthwise_bn)
                      for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
            if blk.se is not None:
                moves += [(blk.se["fc1"].weight, 1), (blk.se["fc2"].weight, 0), (blk.se["fc2"].bias, 0)]
            for t, dim in moves:
                t.copy_(t.index_select(dim, perm))
                state = optimizer.state.get(t) if optimizer is not None else None
                for v in (state or {}).values():
                    if isinstance(v, torch.Tensor) and v.shape == t.shape:
                        v.copy_(v.index_select(dim, perm))

    # -- extraction ----------------------------------------------------------------------------------
    @torch.no_grad()
    def state_dict_of(self, arch: ArchSpec) -> dict[str, torch.Tensor]:
        """The state dict of ``space.build_model(arch, num_classes)`` holding the inherited weights."""
        paths = module_paths(arch)
        out: dict[str, torch.Tensor] = {}

        def conv_bn(at: tuple[str, str], weight: torch.Tensor, bn: SlicedBN) -> None:
            c = weight.shape[0]
            out[f"{at[0]}.weight"] = weight
            out[f"{at[1]}.weight"], out[f"{at[1]}.bias"] = bn.weight[:c], bn.bias[:c]
            out[f"{at[1]}.running_mean"], out[f"{at[1]}.running_var"] = bn.running_mean[:c], bn.running_var[:c]
            out[f"{at[1]}.num_batches_tracked"] = bn.num_batches_tracked

        conv_bn(paths.stem, self.stem.weight, self.stem_bn)
        for cin, b, blk, at in zip(arch.in_channels(), arch.blocks, self.blocks, paths.blocks):
            w = blk.slices(cin, b)
            if at.expand is not None:
                conv_bn(at.expand, w["expand"], blk.expand_bn)
            conv_bn(at.depthwise, w["depthwise"], blk.depthwise_bn)
            if at.se is not None:
                for fc, path in zip(("fc1", "fc2"), at.se):
                    out[f"{path}.weight"], out[f"{path}.bias"] = w[f"{fc}.weight"], w[f"{fc}.bias"]
            conv_bn(at.project, w["project"], blk.project_bn)
        conv_bn(paths.last_conv, self.last_conv.weight[:arch.last_conv, :arch.blocks[-1].out], self.last_bn)
        out[f"{paths.hidden}.weight"] = self.hidden.weight[:, :arch.last_conv]
        out[f"{paths.hidden}.bias"] = self.hidden.bias
        out[f"{paths.logits}.weight"], out[f"{paths.logits}.bias"] = self.logits.weight, self.logits.bias
        return {k: v.detach().clone().contiguous() for k, v in out.items()}

    def extract(self, arch: ArchSpec) -> nn.Module:
        """A plain ``space.build_model(arch)`` network with the inherited weights, on the supernet's device."""
        if not self.space.contains(arch):
            from .errors import SupernetError

            raise SupernetError(f"architecture is not a point of space {self.space.name}: the supernet "
                                f"covers that space only")
        model = build_model(arch, num_classes=self.num_classes)
        state = self.state_dict_of(arch)
        model.to(next(iter(state.values())).device).load_state_dict(state)
        return model


def every_choice(space: SearchSpace) -> list[tuple[int, str, object]]:
    """(block, field, value) for every choice of every block: what a test must see reached."""
    from space.searchspace import FIELDS

    return [(i, f, v) for i, bc in enumerate(space.blocks) for f in FIELDS for v in getattr(bc, f)]


