"""Weight transfer: a trained network cut down to a smaller spec of the same structure.

Which channels survive: the strongest by *importance*, summed over every layer that reads the
channel (its input columns in the next 1x1 convs / linears, the SE fc1 and fc2 included; a depthwise
conv is followed by BN, which cancels its per-channel scale, so it is not counted). A reader's share
is the size of what it reads times the L2 norm of its column, ``scale_c x ||W[:, c]||``, where the
size ``scale_c`` is, by ``importance``:

- ``bn_weight``: the RMS ``sqrt(gamma_c^2 + beta_c^2)`` of the BN output feeding the reader (the BN
  output has mean beta and sd gamma on the data its statistics came from); where no BN feeds it (SE
  squeeze, classifier hidden layer) the norm of the producer's row and bias;
- ``activation``: the mean |activation| of the channel at the reader's input, on a few training
  batches (eval mode);
- ``weight``: 1 (the reader's column norm alone).

Scaling a channel's BN (gamma, beta) by ``a > 0`` and its readers' columns by ``1/a`` leaves a network
with ReLU or linear in between unchanged; ``bn_weight`` and ``activation`` leave its score unchanged
too, ``weight`` divides it by ``a``, so under ``weight`` such a rescaling flips which channel goes.
A residual group is ranked once, over the readers of all its members, and the same channels are
kept in every producer (stem or project conv + BN) and reader. A side effect the tests rely on: under
``weight`` and ``bn_weight``, zeroing the outgoing weights of the channels to be dropped only lowers
their own score, so the choice is stable and the transfer exact.

The choice is applied through one table of layers, each naming the channel node it reads and the
node it writes: expand conv + BN, depthwise conv + BN, SE fc1 (input columns) / fc2 (output rows),
project conv + BN, last conv, classifier.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from space import ArchSpec, build_model, se_width
from space.skeleton import module_paths

from .groups import group_index, same_structure
from .names import IMPORTANCE

Node = tuple  # ("g", group) | ("e", block) | ("s", block) | ("last",) | ("head",) | ("rgb",) | ("cls",)
RGB, CLASSES, LAST, HEAD = ("rgb",), ("cls",), ("last",), ("head",)


@dataclass(frozen=True)
class Layer:
    path: str  # module path in the MobileNetV3 tree
    kind: str  # "conv" (dense conv or linear) | "dw" (depthwise conv) | "bn"
    reads: Node
    writes: Node


def layer_table(arch: ArchSpec) -> list[Layer]:
    """Every weighted layer of ``build_model(arch)`` with the channel nodes it reads and writes."""
    g = group_index(arch)
    paths = module_paths(arch)
    stem = ("g", g[-1])
    table = _conv_bn(paths.stem, "conv", RGB, stem)
    for i, p in enumerate(paths.blocks):
        src, out = ("g", g[i - 1]), ("g", g[i])
        exp = src
        if p.expand:
            exp = ("e", i)
            table += _conv_bn(p.expand, "conv", src, exp)
        table += _conv_bn(p.depthwise, "dw", exp, exp)
        if p.se:
            fc1, fc2 = p.se
            table += [Layer(fc1, "conv", exp, ("s", i)), Layer(fc2, "conv", ("s", i), exp)]
        table += _conv_bn(p.project, "conv", exp, out)
    last_in = ("g", g[len(arch.blocks) - 1])
    return table + _conv_bn(paths.last_conv, "conv", last_in, LAST) + [
        Layer(paths.hidden, "conv", LAST, HEAD), Layer(paths.logits, "conv", HEAD, CLASSES)]


def _conv_bn(conv_bn: tuple[str, str], kind: str, reads: Node, writes: Node) -> list[Layer]:
    conv, bn = conv_bn
    return [Layer(conv, kind, reads, writes), Layer(bn, "bn", writes, writes)]


def node_sizes(arch: ArchSpec) -> dict[Node, int]:
    sizes: dict[Node, int] = {LAST: arch.last_conv, HEAD: arch.head}
    g = group_index(arch)
    sizes[("g", g[-1])] = arch.stem
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        sizes[("g", g[i])] = b.out
        if b.has_expand(cin):
            sizes[("e", i)] = b.expand
        if b.se:
            sizes[("s", i)] = se_width(b.expand)
    return sizes


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


def _column_norms(w: torch.Tensor) -> torch.Tensor:
    return w.transpose(0, 1).reshape(w.shape[1], -1).norm(dim=1)


def _bn_scales(model: nn.Module) -> dict[str, torch.Tensor]:
    """Per reader path, the RMS of each input channel as its BN leaves it (see module doc)."""
    mods = _modules(model)
    current: dict[Node, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for layer in layer_table(model.arch):
        m = mods[layer.path]
        if layer.kind == "conv" and layer.reads != RGB:
            out[layer.path] = current[layer.reads]
        if layer.kind == "bn":
            current[layer.writes] = torch.hypot(m.weight.detach(), m.bias.detach()).abs()
        elif layer.kind == "conv" and layer.writes not in current:  # SE squeeze, hidden layer: no BN after
            w = m.weight.detach().reshape(m.weight.shape[0], -1)
            if m.bias is not None:
                w = torch.cat([w, m.bias.detach()[:, None]], dim=1)
            current[layer.writes] = w.norm(dim=1)
    return out


@torch.no_grad()
def _activation_scales(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Per reader path, the mean |input| of each channel on ``inputs`` (eval mode; the mode is restored)."""
    mods = _modules(model)
    readers = [ly.path for ly in layer_table(model.arch) if ly.kind == "conv" and ly.reads != RGB]
    sums: dict[str, torch.Tensor] = {}

    def hook(path):
        def record(_module, args):
            x = args[0].detach().abs().double()
            x = x.transpose(0, 1).reshape(x.shape[1], -1)
            sums[path] = sums.get(path, 0) + x.mean(dim=1) * len(args[0])
        return record

    handles = [mods[p].register_forward_pre_hook(hook(p)) for p in readers]
    was_training = model.training
    dtype = next(model.parameters()).dtype
    try:
        model.eval()
        for batch in inputs.split(batch_size):
            model(batch.to(dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {p: (v / len(inputs)).to(dtype) for p, v in sums.items()}


def channel_scores(model: nn.Module, importance: str = "bn_weight",
                   inputs: torch.Tensor | None = None) -> dict[Node, torch.Tensor]:
    """Per node, each channel's importance summed over every layer reading it (see module doc).

    ``inputs`` (a few normalised training images, N x 3 x H x W) are needed by ``activation`` only.
    """
    if importance not in IMPORTANCE:
        raise ValueError(f"importance={importance!r} is unknown: use one of {', '.join(IMPORTANCE)}")
    if importance == "activation":
        if inputs is None or len(inputs) == 0:
            raise ValueError("importance=activation needs a few training images (inputs=)")
        scales = _activation_scales(model, inputs)
    elif importance == "bn_weight":
        scales = _bn_scales(model)
    else:
        scales = None
    mods = _modules(model)
    scores: dict[Node, torch.Tensor] = {}
    for layer in layer_table(model.arch):
        if layer.kind != "conv" or layer.reads == RGB:
            continue
        col = _column_norms(mods[layer.path].weight.detach())
        if scales is not None:
            col = col * scales[layer.path]
        scores[layer.reads] = scores.get(layer.reads, 0) + col
    return scores


def choose_channels(model: nn.Module, new_arch: ArchSpec, scores: dict[Node, torch.Tensor] | None = None,
                    *, importance: str = "bn_weight") -> dict[Node, torch.Tensor]:
    """Per node, the sorted indices of the channels ``shrink`` keeps (all of them if it keeps its size).

    ``scores`` are ``channel_scores(model, ...)`` when already computed (one set serves every proposal
    of an iteration); else they are computed with ``importance`` (which must not need inputs).
    """
    old_arch: ArchSpec = model.arch
    if not same_structure(old_arch, new_arch):
        raise ValueError("shrink needs the same structure (expand convs, residual adds, SE, strides); "
                         f"got {len(old_arch.blocks)} vs {len(new_arch.blocks)} blocks or a changed layer")
    old, new = node_sizes(old_arch), node_sizes(new_arch)
    for node, n_old in old.items():
        if new[node] > n_old:
            raise ValueError(f"shrink cannot grow channels: {node} {n_old} -> {new[node]}")
    if scores is None:
        scores = channel_scores(model, importance)
    keep: dict[Node, torch.Tensor] = {}
    for node, n_old in old.items():
        n_new = new[node]
        if n_new == n_old:
            keep[node] = torch.arange(n_old)
        else:
            order = torch.argsort(scores[node], descending=True, stable=True)
            keep[node] = order[:n_new].sort().values
    return keep


def _slice(t: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    if rows is not None:
        t = t.index_select(0, rows)
    if cols is not None and t.dim() > 1:
        t = t.index_select(1, cols)
    return t.clone()


def shrink(model: nn.Module, new_arch: ArchSpec, keep: dict[Node, torch.Tensor] | None = None, *,
           scores: dict[Node, torch.Tensor] | None = None, importance: str = "bn_weight") -> nn.Module:
    """A new network for ``new_arch`` holding ``model``'s strongest channels (see module doc).

    ``model`` is a ``space.build_model`` network; it is not modified. The result has the same
    number of classes and the same train/eval mode. ``keep`` (else ``scores``, else ``importance``)
    says which channels: see ``choose_channels``.
    """
    keep = choose_channels(model, new_arch, scores, importance=importance) if keep is None else keep
    fixed = lambda node: None if node in (RGB, CLASSES) else keep[node]  # noqa: E731
    num_classes = model.classifier[-1].out_features
    new_model = build_model(new_arch, num_classes).to(next(model.parameters()).dtype)
    mods = _modules(model)
    state = {}
    for layer in layer_table(model.arch):
        m = mods[layer.path]
        rows, cols = fixed(layer.writes), fixed(layer.reads)
        if layer.kind == "conv":
            state[f"{layer.path}.weight"] = _slice(m.weight.detach(), rows, cols)
            if m.bias is not None:
                state[f"{layer.path}.bias"] = _slice(m.bias.detach(), rows, None)
        elif layer.kind == "dw":
            state[f"{layer.path}.weight"] = _slice(m.weight.detach(), rows, None)
        else:  # bn
            for name in ("weight", "bias", "running_mean", "running_var"):
                state[f"{layer.path}.{name}"] = _slice(getattr(m, name).detach(), rows, None)
            state[f"{layer.path}.num_batches_tracked"] = m.num_batches_tracked.detach().clone()
    new_model.load_state_dict(state, strict=True)
    return new_model.train(model.training)
