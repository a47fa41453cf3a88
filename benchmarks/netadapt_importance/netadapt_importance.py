"""Which channel importance keeps more holdout accuracy right after a cut (digits, MobileNetV3-Small).

    python -m benchmarks.netadapt_importance.netadapt_importance [--seeds 0 1 2] [--epochs 10]

Per seed: MobileNetV3-Small trained ``--epochs`` on digits (32 px, the default data config, train.seed =
seed). Then one node at a time (each block's expansion, each width group: NetAdapt's two kinds of
proposal) loses half of its channels (rounded to a multiple of 8, structure kept), chosen by each
importance (``netadapt.channels``: bn_weight, activation, weight); BN statistics are re-estimated on 10
training batches (as every finetune ends) and the cut network is scored on holdout, with no training.
Selection data only: the test split is never read. Each result is one line of
``benchmarks/netadapt_importance/netadapt_importance.jsonl`` (rerun to resume; trained starts are kept under
``results/benchmarks/netadapt_importance/``), and ``benchmarks/netadapt_importance/netadapt_importance.md`` is rewritten
from all lines: per cut size, mean holdout top-1 per criterion, and the paired difference between
criteria with a 95% t-interval over the per-seed mean differences (proposals of one seed share a
start, so they are not independent draws).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import append_jsonl, bracket, read_jsonl, write_report
from core import compose, plain, quiet_warnings
from netadapt import IMPORTANCE, channel_scores, same_structure, shrink, width_groups, with_expand, with_group_width
from search import stats as st
from space import V3_SMALL, ArchError
from train import TrainConfig, evaluate, load_data, make_estimator, recalibrate_bn

HERE = Path(__file__).resolve().parent
JSONL, MD = HERE / "netadapt_importance.jsonl", HERE / "netadapt_importance.md"
STARTS = HERE.parents[1] / "results" / "benchmarks" / "netadapt_importance"
CUTS = (0.5,)  # share of one node's channels removed


class Cut:
    def __init__(self, label, arch):
        self.label, self.arch = label, arch


def cuts(arch, share: float) -> list[Cut]:
    """Each expansion and each width group of ``arch`` with ``share`` of its channels removed."""
    out = []
    for i, (cin, b) in enumerate(zip(arch.in_channels(), arch.blocks)):
        w = max(int(b.expand * (1 - share)) // 8 * 8, b.out, 8)
        new = _valid(arch, lambda i=i, w=w: with_expand(arch, i, w)) if b.has_expand(cin) and w < b.expand else None
        if new is not None:
            out.append(Cut(f"expand[{i}] {b.expand}->{w}", new))
    for g in width_groups(arch):
        w = max(int(g.width * (1 - share)) // 8 * 8, 8)
        new = _valid(arch, lambda g=g, w=w: with_group_width(arch, g, w)) if w < g.width else None
        if new is not None:
            out.append(Cut(f"width[{','.join(map(str, g.nodes))}] {g.width}->{w}", new))
    return out


def _valid(arch, make):
    """``make()``, or None when the cut is not a valid network of the same structure."""
    try:
        new = make()
    except ArchError:
        return None
    return new if same_structure(arch, new) else None


def start_model(est, seed: int, epochs: float):
    path = STARTS / f"v3_small-digits-e{epochs:g}-seed{seed}.pt"
    model = est.fresh(V3_SMALL)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    est.train(model, f"pretrain seed {seed}", report=False, epochs=epochs, steps=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def run(seeds, epochs: float) -> None:
    done = {(r["seed"], r["epochs"], r["cut"], r["proposal"], r["importance"]) for r in read_jsonl(JSONL)}
    for seed in seeds:
        cfg = plain(compose("netadapt", [f"seed={seed}", "threads=1"]))
        data = load_data(cfg["data"])
        tc = TrainConfig.from_cfg({**cfg["train"], "bn_recal_batches": 10})
        est = make_estimator(cfg["accuracy"], data, tc)
        model = None
        for cut in CUTS:
            props = cuts(V3_SMALL, cut)
            todo = [(p, imp) for p in props for imp in IMPORTANCE if (seed, epochs, cut, p.label, imp) not in done]
            if not todo:
                continue
            if model is None:
                model = start_model(est, seed, epochs)
                base, _ = evaluate(model, data.holdout, device=torch.device("cpu"))
                idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:256]
                inputs = torch.stack([data.train[int(i)][0] for i in idx])
                scores = {imp: channel_scores(model, imp, inputs) for imp in IMPORTANCE}
            for p, imp in todo:
                t0 = time.perf_counter()
                cand = shrink(model, p.arch, scores=scores[imp])
                recalibrate_bn(cand, data.train, tc, torch.device("cpu"))
                top1, loss = evaluate(cand, data.holdout, device=torch.device("cpu"))
                rec = {"seed": seed, "epochs": epochs, "cut": cut, "proposal": p.label, "importance": imp,
                       "start_top1": round(base, 6), "top1": round(top1, 6), "loss": round(loss, 6),
                       "seconds": round(time.perf_counter() - t0, 2)}
                append_jsonl(JSONL, rec)
                print(rec, flush=True)


def interval(per_seed: list[float]) -> str:
    m, h = st.mean_interval(per_seed)
    return bracket(100 * m, 100 * h, "+.2f", " (one seed)")


def report() -> str:
    rows = read_jsonl(JSONL)
    by = {(r["seed"], r["epochs"], r["cut"], r["proposal"], r["importance"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    epochs = sorted({r["epochs"] for r in rows})
    starts = {(r["seed"], r["epochs"]): r["start_top1"] for r in rows}
    lines = ["# Channel importance: holdout accuracy right after a cut (digits, MobileNetV3-Small)", "",
             "`python -m benchmarks.netadapt_importance.netadapt_importance` (results: `netadapt_importance.jsonl`). Start: "
             f"MobileNetV3-Small trained {', '.join(f'{e:g}' for e in epochs)} epochs on digits at 32 px, seeds "
             f"{', '.join(map(str, seeds))} (holdout top-1 of the starts: "
             + ", ".join(f"{100 * v:.1f}%" for v in starts.values()) + "). Each node in turn "
             "(a block's expansion, or a width group) loses the given share of its channels, chosen by each "
             "criterion; BN statistics re-estimated on 10 training batches, no training, scored on holdout "
             "(288 images; 1 image = 0.35 points). The test split is not read.", "",
             "Differences are in points of holdout top-1, mean over all (seed, proposal) pairs, with a 95% "
             "t-interval over the per-seed mean differences.", "",
             "| share of one node cut | nodes x seeds | " + " | ".join(f"{i} top-1" for i in IMPORTANCE)
             + " | bn_weight - weight | activation - weight | activation - bn_weight |",
             "|---|---|" + "---|" * (len(IMPORTANCE) + 3)]
    for cut in sorted({r["cut"] for r in rows}):
        keys = sorted({k[:4] for k in by if k[2] == cut and all(k[:4] + (i,) in by for i in IMPORTANCE)})
        if not keys:
            continue
        mean = {i: statistics.fmean(by[k + (i,)]["top1"] for k in keys) for i in IMPORTANCE}

        def diff(a, b, keys=keys):
            per_seed = [statistics.fmean(by[k + (a,)]["top1"] - by[k + (b,)]["top1"] for k in keys if k[0] == s)
                        for s in seeds if any(k[0] == s for k in keys)]
            return interval(per_seed)

        lines.append(f"| {cut:.0%} | {len(keys)} | " + " | ".join(f"{100 * mean[i]:.1f}%" for i in IMPORTANCE)
                     + f" | {diff('bn_weight', 'weight')} | {diff('activation', 'weight')} "
                     f"| {diff('activation', 'bn_weight')} |")
    wins = {i: 0 for i in IMPORTANCE}
    groups = {k[:4] for k in by if all(k[:4] + (i,) in by for i in IMPORTANCE)}
    for k in groups:
        best = max(by[k + (i,)]["top1"] for i in IMPORTANCE)
        for i in IMPORTANCE:
            wins[i] += by[k + (i,)]["top1"] == best
    loss = {i: statistics.fmean(by[k + (i,)]["loss"] for k in groups) for i in IMPORTANCE}
    lines += ["", "Mean holdout cross-entropy after the cut: " + ", ".join(f"{i} {v:.3f}" for i, v in loss.items())
              + "."]
    lines += ["", f"Best or tied best, of {len(groups)} cuts: " + ", ".join(f"{i} {n}" for i, n in wins.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    quiet_warnings()
    torch.set_num_threads(1)
    if not args.report_only:
        run(args.seeds, args.epochs)
    print(write_report(MD, report()))


if __name__ == "__main__":
    main()
