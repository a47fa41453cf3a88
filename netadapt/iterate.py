"""NetAdapt's iterations: the proposals of the current network, each given the current weights
(``shrink``) and finetuned ``short_steps`` steps, the best kept; each finished iteration made durable.

A mixin of ``loop.NetAdapt``: it reads the run's settings, estimator and folder from it.
"""
from __future__ import annotations

import time

import torch

from space import build_model, parse_arch

from .channels import channel_scores, shrink
from .proposals import Proposal, propose


class _Exhausted(Exception):
    """No proposal reaches the cut: the loop ends above the budget."""



class Iterations:
    """``NetAdapt``'s shrink loop (see the module note)."""

    def importance_inputs(self, n: int = 256) -> torch.Tensor | None:
        """The training images ``importance=activation`` reads (a seeded sample, the same every iteration)."""
        if self.importance != "activation":
            return None
        if self._inputs is None:
            train = self.data.train
            idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))[:n]
            self._inputs = torch.stack([train[int(i)][0] for i in idx])
        return self._inputs

    def _shrink_loop(self, history: list[dict]) -> tuple[list[dict], str | None]:
        from tqdm.auto import tqdm

        gap = self.cost0 - self.target
        closed = lambda cost: min(100.0, max(0.0, 100 * (self.cost0 - cost) / gap))  # noqa: E731
        stopped = None
        arch, state = self.folder.current()
        model = build_model(arch, self.data.num_classes)
        model.load_state_dict(state)
        with tqdm(total=100.0, initial=round(closed(history[-1]["cost"]), 2), desc="netadapt", unit="% of gap",
                  disable=not self.progress, dynamic_ncols=True,
                  bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% of the gap [{elapsed}<{remaining}]{postfix}") as bar:
            while history[-1]["cost"] > self.target:
                k = history[-1]["iteration"] + 1
                if self.max_iterations is not None and k > self.max_iterations:
                    stopped = f"stopped after max_iterations={self.max_iterations} above the budget"
                    break
                try:
                    record, model = self._iteration(k, history[-1], model, bar)
                except _Exhausted as e:
                    stopped = str(e)
                    break
                self.folder.commit(record, model.state_dict())
                history.append(record)
                bar.update(round(closed(record["cost"]) - bar.n, 2))
                self.log(f"iteration {k}: {record['chosen']} -> {record['latency_ms']:.4g} ms, "
                         f"{record['macs'] / 1e6:.1f}M MACs, top1 {record['top1']:.1%}")
        if stopped:
            self.log(f"netadapt: {stopped}")
        return history, stopped

    def _iteration(self, k: int, cur: dict, model, bar):
        t0 = time.perf_counter()
        arch = parse_arch(cur["arch"])
        props = propose(arch, self.cost, self.delta, current=cur["cost"])
        if not props.made:
            unit = "ms" if self.resource_name == "latency" else "MACs"
            raise _Exhausted(f"no proposal cuts {self.delta:.4g} {unit} from iteration {k - 1} "
                             f"({cur['cost']:.4g} > budget {self.target:.4g}): lower step or raise the budget")
        best: tuple[float, Proposal, torch.nn.Module, dict] | None = None
        tried = []
        scores = channel_scores(model, self.importance, self.importance_inputs())  # one set for every proposal
        for j, p in enumerate(props.made):
            bar.set_postfix_str(f"iteration {k}: proposal {j + 1}/{len(props.made)} {p.label}")
            # Scored on holdout only: the test split is read once, for the kept proposal, to report it.
            # train.seeds=k: k finetunes of the same shrunk weights, scored by their mean; the first is kept.
            cand, res = self._train_seeds(lambda _, a=p.arch: shrink(model, a, scores=scores),
                                          f"iteration {k} {p.label}", report=False, steps=self.short_steps,
                                          lr=self.finetune_lr, seed=self.train_cfg.seed + k)
            entry = {"kind": p.kind, "blocks": list(p.blocks), "old": p.old, "new": p.new, "label": p.label,
                     **self._point(p.arch), "cost": p.cost, "top1": res.top1,
                     **({"top1_per_seed": list(res.per_seed)} if res.per_seed else {})}
            tried.append(entry)
            score = (res.top1 if self.select == "accuracy"
                     else (res.top1 - cur["top1"]) / max(cur["cost"] - p.cost, 1e-12))
            if best is None or score > best[0]:
                best = (score, p, cand, entry)
        _, p, cand, entry = best
        record = {"iteration": k, "arch": entry["arch"], "latency_ms": entry["latency_ms"], "macs": entry["macs"],
                  "cost": p.cost, "top1": entry["top1"], "test_top1": self._test_top1(cand),
                  "resource": self.resource_name, "chosen": p.label,
                  "proposals": tried, "skipped": props.skipped,
                  "train_steps": cur["train_steps"] + self.short_steps,
                  "seconds": round(time.perf_counter() - t0, 2)}
        return record, cand
