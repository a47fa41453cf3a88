"""What a latency table is calibrated on, and how predictions are fitted to it.

**One fixed set.** Every table is calibrated on the same networks, whoever touches it first (a search
on either space, NetAdapt, ``measure.lut build``), so a prediction never depends on which command ran
first. The set spans from below the smallest reference to above the largest point of every built-in
space: MobileNetV3-Small at x0.35 and x0.5, both references, V3-Large at x0.5, x0.75 and x1.25, and per
space (``conf/space/*.yaml``) its thinnest and widest point and two seeded random ones. A table stores
the id of the set it was fitted on; adding a space changes the set, and the table is refitted (or,
when it may not measure, refused with the fix). ``BNECK_CALIBRATION_SET=quick`` swaps in two tiny
networks: for the test suite, whose many fresh tables would otherwise each spend a minute calibrating.

**The model (``MODEL`` 8; 7 was the same without the reload term, 6 without the boundary term too, 5 on entries
converted by the probe around them).** predicted = (sum of entries) - call_weight x calls - depthwise_ms x (blocks that
start with their depthwise conv) + cold_ms x (million weights read from memory) + feature_ms x (million feature-map
elements) - boundary_ms x (million elements crossing the entries' boundaries) + reload_ms x (million weights the entries
keep in a core's L2 alone). A block timed alone differs
from the same block inside a network in ways measured on this VM (issue 27: each part of a network timed in
context, as the difference of paired prefix timings, against its entry):

- it pays a runtime call the network does not: *calls* is an empty graph timed at each entry's input
  shape (``call_...``), summed, minus the one call the network pays at its own input;
- a block without an expand conv (its input goes straight to the depthwise conv, the first block of
  both references) cost 0.08-0.09 ms more alone than in context on onnxruntime, whatever the network: a
  fixed cost per such block;
- its weights stay in cache between calls; inside a network whose footprint (weights and feature maps,
  ``measure.macs.count_activations``, 4 bytes each) outgrows the last-level cache, they are read from
  memory on every pass: 0.16-0.29 ms per million weights in V3-Large's and the widest ``v3_small``'s
  late blocks and heads (the head of V3-Large: 0.30 ms alone, 0.73 ms in context), nothing in V3-Small
  x0.35. The share read from memory ramps from 0 at a footprint of a quarter of the cache to 1 at the
  cache's size (``cold_share``); the cache's size is the target's, recorded with the fit;
- on eager torch a whole network runs 13-32% slower than its entries' sum, in proportion to the feature
  maps it writes (0.82 ms per million elements, held out rms 3.6% against 6.9% for a scale, on the
  calibration networks of one torch table): a term per feature-map element, fitted, for torch only
  (``ALLOCATING``). Its cause is not measured part by part (a network allocating its feature maps afresh on
  every pass, where a block in a loop reuses its buffers, is the likely one); onnxruntime and ExecuTorch plan
  their buffers once, and on onnxruntime the free term took weight from the others and lost accuracy
  (``benchmarks/latency_lut/latency_lut_2026-12-07c.md``'s timings refitted: references within ±5% 70% and
  70% against 100% and 100%);
- alone, an entry receives its input and returns its output through the runtime; inside the network they stay in
  its buffers: a cost per element of every entry's input and output (``mboundary``), fitted. Since entries are timed
  paired with a reference block (table format 5) the call weight had risen to 2.2-2.9 on onnxruntime and the
  smallest networks were under-predicted (V3-Small x0.35 held out -9.8%): refitted with this term on the four
  onnxruntime tables of format 5, the call weight falls to 0 and the held-out rms from 3.1-4.5% to 2.2-3.8%, lower in
  4 of 4 (too few tables for a sign test to show it: p 0.12); on tables whose entries were timed alone it fitted
  0-0.17 ms and did not lower the rms (1 of 8) (benchmarks/latency_lut/model_terms.md);
- alone, an entry whose weights fit its core's L2 cache reads them from there on every call; inside the network the
  other entries evict them and each pass reads them again from the next level. Profiled on onnxruntime (session 28,
  per node, MobileNetV3-Small with its projections halved): the SE block's two 1x1 convs on the pooled map took 13-14 us
  in the network against 5-7 us alone, the 7x7 blocks' expand and project convs 10-20% longer; whole networks whose
  weights sit in many small blocks (NetAdapt's outputs, thin projections) were under-predicted by 3-7%. A cost per
  million such weights (``mreload``: each entry's weights, in full up to half the L2, none from its size on, linear
  between; ``reload_share``), fitted; the L2's size is the target's, recorded with the fit. Only where it was shown
  (``RELOADING``: onnxruntime); on eager torch it did not lower the held-out error.

The sum is not scaled: entries as timed and networks at the probe's median speed over the build are the same ms
(``measure.table``), and a free scale (model 3's came out near 1.3 on onnxruntime) stood in for the memory effect,
over-predicting the small networks that have none. On the two quiet-host onnxruntime tables of
``benchmarks/latency_lut/latency_lut_2026-12-07b.md`` refitted without the feature term, held out (leave-one-out)
rms error 3.0% and 4.3% against model 3's 4.1% and 4.4%.

**Relative error, checked on held-out networks.** The terms are fitted, all >= 0, so that the *relative*
errors are smallest (each residual divided by the measured latency): a line in absolute ms is dominated by
the largest networks. Each calibration network is then predicted by a fit made without it
(leave-one-out): that held-out error, not the fit's own, says how far to trust a table on networks it was
not fitted on.
"""
from __future__ import annotations

import functools
import hashlib
import os
import random
from collections.abc import Sequence

from space import V3_LARGE, V3_SMALL, ArchSpec, BlockSpec, SearchSpace, available_spaces, format_arch, scale_width
from space.skeleton import last_conv_width

RANDOM_PER_SPACE = 2
ENV = "BNECK_CALIBRATION_SET"


def calibration_set() -> list[ArchSpec]:
    """The networks every table is calibrated on: ``full_set()``, or ``quick_set()`` for tests (module note)."""
    return quick_set() if os.environ.get(ENV) == "quick" else full_set()


def quick_set() -> list[ArchSpec]:
    """Two tiny networks (a stem, two blocks, a head): a fit of the pipeline, not of a machine."""
    small = ArchSpec(8, (BlockSpec(3, 16, 8), BlockSpec(3, 24, 16, True, "HS", 2)), 96, 32)
    return [small, small.with_blocks([BlockSpec(5, 48, 8), BlockSpec(5, 64, 24, True, "HS", 2)])]


def full_set() -> list[ArchSpec]:
    """Both references at several widths and the extremes of every built-in space, without duplicates."""
    return list(named_full_set().values())


def named_full_set() -> dict[str, ArchSpec]:
    """``full_set`` by short name (``V3-Small x0.35``, ``v3_large widest``, ``v3_small random 1``), in order:
    how build warnings name the networks a table misses."""
    named = {f"V3-{ref} x{m:g}": scale_width(arch, m) if m != 1 else arch
             for ref, arch, widths in (("Small", V3_SMALL, (0.35, 0.5, 1)), ("Large", V3_LARGE, (0.5, 0.75, 1, 1.25)))
             for m in widths}
    for name in available_spaces():
        space = SearchSpace.load(name)
        named |= {f"{name} thinnest": extreme(space, largest=False), f"{name} widest": extreme(space, largest=True)}
        named |= {f"{name} random {i}": space.sample(random.Random(f"calibrate-{name}-{i}"))
                  for i in range(RANDOM_PER_SPACE)}
    out: dict[str, ArchSpec] = {}
    seen: set[str] = set()
    for label, arch in named.items():  # the first name of a network met twice wins
        if format_arch(arch) not in seen:
            seen.add(format_arch(arch))
            out[label] = arch
    return out


def names(archs: Sequence[ArchSpec]) -> list[str]:
    """A short name per network: its name in the full set, else ``network <i>``."""
    known = {format_arch(a): label for label, a in named_full_set().items()}
    return [known.get(format_arch(a), f"network {i + 1}") for i, a in enumerate(archs)]


def extreme(space: SearchSpace, *, largest: bool) -> ArchSpec:
    """The slowest (``largest``) or fastest point of ``space``: widest or thinnest choices, kernel, SE and
    h-swish or not, and the smallest or largest stride (every combination of a space builds)."""
    pick = max if largest else min
    blocks = [BlockSpec(pick(bc.kernel), pick(bc.expand), pick(bc.out), pick(bc.se),
                        ("HS" if "HS" in bc.act else bc.act[0]) if largest else ("RE" if "RE" in bc.act else bc.act[0]),
                        (min if largest else max)(bc.stride)) for bc in space.blocks]
    return ArchSpec(space.stem, tuple(blocks), last_conv_width(space.last_conv, blocks[-1].out), space.head,
                    space.dropout)


def set_id(archs: Sequence[ArchSpec]) -> str:
    """A short id of a calibration set (order-free), stored with the fit it was used for."""
    text = "\n".join(sorted(format_arch(a) for a in archs))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


MODEL = 8  # 1: scale x sum + overhead; 2: minus call_weight x calls; 3: the same, fitted on networks timed paired
# with the probe (measure.table); 4: the module note's without feature maps, boundary or reload; 5: without the
# boundary or reload; 6: the same on entries stored as timed (measure.table format 3); 7: without the reload; 8: the
# module note's. A fit of another model is redone (from the stored timings: no entry is timed again)
TERMS = ("call_weight", "depthwise_ms", "cold_ms", "feature_ms", "boundary_ms", "reload_ms")
FITTED = (4, 5, 6, 7, MODEL, 9)  # records that keep the per-network features a refit needs (9: tried, not adopted)
MIN_HELDOUT = 5  # fewer calibration networks (the test suite's quick set): no held-out check, no verdict
HELDOUT_LIMIT = 0.10  # a held-out error beyond this: the build warns, studies refuse the table
BUSY = 0.10  # the probe's 5 timings spread more than this when a table's unit was set: a busy machine
# More of a table's entries than this timed again because their first passes disagreed (latency.confirm): the
# machine was busy during the build. Measured here (benchmarks/latency_lut): quiet builds 1-4%, busy ones 21-46%,
# where the 5 probe timings at the start spread only 2-4%.
RETIMED = 0.10
FLOAT_BYTES = 4


def depthwise_first(arch: ArchSpec) -> int:
    """Blocks of ``arch`` without an expand conv (expansion equal to their input): they start with the depthwise."""
    return sum(not b.has_expand(cin) for cin, b in zip(arch.in_channels(), arch.blocks))


def cold_share(footprint: float, cache: float) -> float:
    """The share of a network's weights read from memory on each pass: 0 while its footprint (bytes) is at most a
    quarter of the last-level ``cache`` (bytes), 1 from the cache's size on, linear between (module note)."""
    return min(1.0, max(0.0, (footprint - cache / 4) / (cache - cache / 4)))


def cold_mweights(arch: ArchSpec, input_size: int, cache: float) -> float:
    """Million weights of ``arch`` read from memory on each pass on a machine with a ``cache``-byte last level."""
    from .macs import count_activations, count_params

    weights = count_params(arch)
    footprint = FLOAT_BYTES * (weights + count_activations(arch, input_size))
    return weights / 1e6 * cold_share(footprint, cache)


def mboundary(arch: ArchSpec, input_size: int) -> float:
    """Million elements crossing the boundaries of ``arch``'s entries: every entry's input and output (the next
    entry's input; the head's few outputs left out). Alone, an entry receives and returns them through the runtime;
    inside the network they stay in its buffers (module note)."""
    from .entries import arch_entries

    inputs = [e.in_channels * e.side * e.side for e in arch_entries(arch, input_size)]
    return (sum(inputs) + sum(inputs[1:])) / 1e6


def reload_share(nbytes: float, l2: float) -> float:
    """The share of an entry's ``nbytes`` of weights that stay in a core's ``l2``-byte cache between its calls when
    it is timed alone, and are read again from the next level in the network: all up to half the L2 (the entry's
    feature maps pass through the rest), none from the L2's size on, linear between (module note)."""
    return min(1.0, max(0.0, (l2 - nbytes) / (l2 / 2)))


# Backends the reload term was shown on (session 28): onnxruntime, profiled per node and validated on fresh networks.
# On eager torch it raised the held-out error of 4 of 4 tables and, on fresh networks, moved one network either way
# (benchmarks/latency_lut/latency_lut_2026-12-07l.md); ExecuTorch is not measured yet.
RELOADING = {"onnxruntime"}


def mreload(arch: ArchSpec, l2: float | None, backend: str = "onnxruntime") -> float:
    """Million weights of ``arch``'s entries that a core's ``l2``-byte cache holds while each is timed alone and that
    the network reads again on every pass (``reload_share``); 0 when the L2's size is unknown or ``backend`` is not
    one the term was shown on (``RELOADING``)."""
    return reload_mweights(arch, l2) if backend in RELOADING else 0.0


def reload_mweights(arch: ArchSpec, l2: float | None) -> float:
    """``mreload`` on any backend: the candidate column (``benchmarks/latency_lut/model_terms.py``)."""
    from .macs import entry_weights

    if not l2:
        return 0.0
    return sum(w * reload_share(FLOAT_BYTES * w, l2) for w in entry_weights(arch)) / 1e6


ALLOCATING = {"torch"}  # backends that allocate a network's feature maps on every pass (eager): the feature term


def mfeatures(arch: ArchSpec, input_size: int, backend: str) -> float:
    """Million feature-map elements ``arch`` writes per pass where ``backend`` allocates them afresh each pass
    (``ALLOCATING``), else 0: onnxruntime and ExecuTorch plan their buffers once (module note)."""
    from .macs import count_activations

    return count_activations(arch, input_size) / 1e6 if backend in ALLOCATING else 0.0


# Each term: the row's column it multiplies (None: 1, a cost per network) and its sign in the prediction.
COLUMNS = {"call_weight": ("calls_ms", -1), "depthwise_ms": ("depthwise", -1), "cold_ms": ("cold_mweights", 1),
           "feature_ms": ("mfeatures", 1), "boundary_ms": ("mboundary", -1), "reload_ms": ("mreload", 1),
           "overhead_ms": (None, 1), "context_share": ("context_ms", 1)}
# The last two are candidates benchmarks/latency_lut/model_terms.py compares, not terms of the model: a cost per
# network, and a share of the entries' sum (eager torch's blocks ran 11-16% slower in a network than alone; as a
# term, session 28's model 9, it over-predicted the smallest reference on fresh networks: latency_lut/latency_lut.md).


def fit(rows: Sequence[dict], measured: Sequence[float], terms: Sequence[str] = TERMS) -> dict:
    """``terms`` (default ``TERMS``) minimising sum((predict(fitted, row) - m) / m)^2, all >= 0; every term of
    ``TERMS`` left out is 0 in the result.

    ``rows``: per network ``sum_ms`` and the columns of ``COLUMNS``. Dividing each row by m turns relative error into
    a linear least-squares problem; ``nnls`` solves it exactly under the signs.
    """
    import numpy as np
    from scipy.optimize import nnls

    m = np.asarray(measured, float)
    cols = np.column_stack([[sign * (1.0 if col is None else r.get(col, 0.0)) for r in rows]
                            for col, sign in (COLUMNS[t] for t in terms)]) / m[:, None]
    coef, _ = nnls(cols, (m - np.array([r["sum_ms"] for r in rows])) / m)
    return {**dict.fromkeys(TERMS, 0.0), **dict(zip(terms, (float(c) for c in coef)))}


def predict(terms: dict, row: dict) -> float:
    """A prediction from fitted ``terms`` and a network's ``row`` (as for ``fit``; module note)."""
    return row["sum_ms"] + sum(sign * terms.get(t, 0.0) * (1.0 if col is None else row.get(col, 0.0))
                               for t, (col, sign) in COLUMNS.items())


RECORDED = {"sum_ms": "sums_ms", "calls_ms": "calls_ms", "depthwise": "depthwise", "cold_mweights": "cold_mweights",
            "mfeatures": "mfeatures", "mboundary": "mboundary", "mreload": "mreload"}


def columns(rows: Sequence[dict]) -> dict:
    """``fit``'s rows as the calibration record stores them: one list per feature (``RECORDED``; one a row lacks
    reads 0, as ``rows_of`` reads it)."""
    return {name: [round(r.get(key, 0.0), 6) for r in rows] for key, name in RECORDED.items()}


def rows_of(cal: dict) -> list[dict]:
    """A calibration record's networks as ``fit``'s rows again (``columns`` undone; a column a model-4 record lacks
    reads 0)."""
    zeros = [0.0] * len(cal["measured_ms"])
    return [dict(zip(RECORDED, values)) for values in zip(*(cal.get(name, zeros) for name in RECORDED.values()))]


def fit_scale(rows: Sequence[dict], measured: Sequence[float]) -> dict:
    """Model 1, for comparison: ``{scale, overhead_ms}`` (both >= 0) of scale x sum + overhead, on relative error."""
    import numpy as np
    from scipy.optimize import nnls

    s, m = np.array([r["sum_ms"] for r in rows]), np.asarray(measured, float)
    coef, _ = nnls(np.column_stack([s / m, 1.0 / m]), np.ones_like(m))
    if coef[0] <= 0:  # timings falling as sums grow (noise on networks of one size): a ratio, never scale 0
        coef = [float((s / m).sum() / ((s / m) ** 2).sum()), 0.0]
    return {"scale": float(coef[0]), "overhead_ms": float(coef[1])}


def predict_scale(terms: dict, row: dict) -> float:
    return terms["scale"] * row["sum_ms"] + terms["overhead_ms"]


def heldout(rows: Sequence[dict], measured: Sequence[float], model=(fit, predict)) -> list[float] | None:
    """Each network's relative error under a fit made on the others (leave-one-out); None below ``MIN_HELDOUT``
    networks, where one left out leaves too few to fit on. ``model``: a (fit, predict) pair; ``(fit_scale,
    predict_scale)`` is the model before issue 27, for comparison."""
    fitter, predictor = model
    n = len(rows)
    if n < MIN_HELDOUT:
        return None
    out = []
    for i in range(n):
        rest = [j for j in range(n) if j != i]
        terms = fitter([rows[j] for j in rest], [measured[j] for j in rest])
        out.append(round(predictor(terms, rows[i]) / measured[i] - 1, 5))
    return out


def summary(cal: dict) -> dict:
    """A calibration record's model, terms, cache and per-network features (what a report keeps of a fit)."""
    return {k: cal.get(k) for k in ("model", *TERMS, "cache_bytes", "l2_bytes", *RECORDED.values())}


def scale_heldout(cal: dict) -> list[float] | None:
    """The held-out errors of model 1 (scale x sum + overhead) refitted on a model-4+ record's timings, for
    comparison with the record's own; None for an older model's record or too few networks."""
    if cal.get("model") not in FITTED:
        return None
    return heldout(rows_of(cal), cal["measured_ms"], (fit_scale, predict_scale))


def refit(cal: dict, terms: Sequence[str] = TERMS, rows: Sequence[dict] | None = None) -> tuple[dict, list | None]:
    """(the fit of ``terms``, its held-out errors) on a model-4+ record's timings (``rows``: its rows, when the
    caller completes columns an older record lacks), for comparing models on the same timings (held-out None below
    ``MIN_HELDOUT`` networks); None for an older record."""
    if cal.get("model") not in FITTED:
        return None
    rows = rows_of(cal) if rows is None else rows
    fitter = functools.partial(fit, terms=tuple(terms))
    return fitter(rows, cal["measured_ms"]), heldout(rows, cal["measured_ms"], (fitter, predict))


def missed(cal: dict, limit: float = HELDOUT_LIMIT) -> list[str]:
    """The calibration networks ``cal``'s held-out errors put beyond ``limit``: ``name (ms) by error`` each."""
    errors = cal.get("heldout_errors") or []
    names = cal.get("names") or [f"network {i + 1}" for i in range(len(errors))]
    return [f"{n} ({m:.2f} ms) by {e:+.1%}" for n, m, e in zip(names, cal["measured_ms"], errors) if abs(e) > limit]
