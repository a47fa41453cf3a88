"""The end of a NetAdapt run: the long finetune of the final network, the width-multiplier baseline
trained with the same number of steps, and start, final and baseline timed end to end.

A mixin of ``loop.NetAdapt``: it reads the run's settings, estimator and folder from it. Each part is
written to the run folder when done, so a rerun skips it.
"""
from __future__ import annotations

from pathlib import Path

from space import REFERENCES, build_model, parse_arch, to_json

from .baseline import match_multiplier
from .report import onnx_bytes
from .store import save_torch, write_atomic


class Finish:
    """``NetAdapt``'s end of run (see the module note)."""

    def _final(self, history: list[dict], stopped: str | None) -> dict:
        summary = self.folder.read_json("summary.json") or {}
        if "final" in summary:
            if "references" not in summary:  # a run finished before references were recorded
                summary["references"] = self._references()
                self.folder.write_json("summary.json", summary)
            return summary
        arch, state = self.folder.current()
        model = build_model(arch, self.data.num_classes)
        model.load_state_dict(state)
        res = self._train(model, "long finetune", epochs=self.long_epochs, steps=None, lr=self.finetune_lr)
        f = self.folder
        write_atomic(f.path("final.onnx"), onnx_bytes(model, self.data.input_size))
        write_atomic(f.path("final.json"), to_json(arch) + "\n")
        save_torch(f.path("final.pt"), model.state_dict())
        last = history[-1]
        summary = {
            "start": {k: history[0].get(k) for k in ("arch", "latency_ms", "latency_raw_ms", "macs", "top1",
                                                      "test_top1", "train_steps") if k in history[0]},
            "final": {**self._point(arch), "top1": res.top1, "test_top1": res.test_top1,
                      "top1_before_long": last["top1"],
                      "iterations": last["iteration"], "train_steps": last["train_steps"] + res.steps},
            "budget": self.target, "resource": self.resource_name, "latency_model": self.latency.name,
            "latency": self.latency_record, "reached_budget": last["cost"] <= self.target, "stopped": stopped,
            "protocol": self._protocol(),
            "references": self._references(),
        }
        f.write_json("summary.json", summary)
        return summary

    def _references(self) -> dict:
        """Both reference networks' latency (this run's model) and MACs: marked on the plot, not trained."""
        from measure import MeasureError, costs

        out = {}
        for name, arch in REFERENCES.items():
            try:
                c = costs(arch, self.latency, input_size=self.input_size)
            except MeasureError as e:  # a table lacking their entries with measure_missing=false: not worth failing
                self.log(f"netadapt: {name} is not marked on the plot: {str(e).splitlines()[0]}")
                c = costs(arch, input_size=self.input_size)
            out[name] = {"latency_ms": None if c.latency_ms is None else round(c.latency_ms, 5), "macs": c.macs}
            if c.latency_raw_ms is not None:
                out[name]["latency_raw_ms"] = round(c.latency_raw_ms, 5)
        return out

    def _baseline(self, history: list[dict], summary: dict) -> dict:
        done = self.folder.read_json("baseline.json")
        if done is not None:
            return done
        final_arch = parse_arch(summary["final"]["arch"])
        m, arch, cost = match_multiplier(self.start, self.cost, self.cost(final_arch))
        steps = summary["final"]["train_steps"]
        model = self._fresh(arch)
        res = self._train(model, f"baseline x{m:.3g}", steps=steps)
        baseline = {"multiplier": round(m, 6), **self._point(arch), "cost": cost, "top1": res.top1,
                    "test_top1": res.test_top1, "train_steps": res.steps}
        self.folder.write_json("baseline.json", baseline)
        return baseline

    def _measured(self, summary: dict, baseline: dict | None) -> dict:
        """Start, final network and baseline timed end to end, back to back (``latency=measured`` with this
        run's latency settings: fastest of ``passes`` timings at the table's reference speed), so the two
        networks compare on measured latency whatever the run's own model (a table's prediction is kept
        beside it). Two rounds in turn, the faster of each network's two counts."""
        if "measured" in summary:
            return summary
        from measure import MeasureError, latency_model

        lat_cfg = dict(self.cfg.get("latency") or {})
        if lat_cfg.get("source", "lut") == "measured" and self.measured is None:
            self.measured = self.raw_latency  # not the memo: each round is a fresh timing
        if self.measured is None:
            self.measured = latency_model({**lat_cfg, "source": "measured"},
                                          Path(str(self.cfg.get("results_dir", "results"))))
        raw: dict[str, list[float]] = {}
        nets = {"start": self.start, "final": parse_arch(summary["final"]["arch"])}
        predicted = {"start": summary["start"]["latency_ms"], "final": summary["final"]["latency_ms"]}
        if baseline is not None:
            nets["baseline"], predicted["baseline"] = parse_arch(baseline["arch"]), baseline["latency_ms"]
        times: dict[str, list[float]] = {k: [] for k in nets}
        try:
            for _ in range(2):
                for name, arch in nets.items():
                    times[name].append(float(self.measured(arch)))
                    raw.setdefault(name, []).append(self.measured.raw_ms(arch))
        except MeasureError as e:  # the run's results stand; a rerun tries the timing again
            self.log(f"netadapt: not timed end to end ({str(e).splitlines()[0]}): rerun to retry")
            return summary
        out = {"latency_model": self.measured.name, "predicted_by": summary["latency_model"]}
        for name in nets:
            out[name] = {"measured_ms": round(min(times[name]), 5), "predicted_ms": predicted[name]}
            if all(r is not None for r in raw[name]):  # wall-clock ms as timed, before conversion to the unit
                out[name]["measured_raw_ms"] = round(min(raw[name]), 5)
        if baseline is not None:
            out["baseline_over_final"] = round(out["baseline"]["measured_ms"] / out["final"]["measured_ms"], 4)
            out["top1_final_minus_baseline"] = round(summary["final"]["top1"] - baseline["top1"], 6)
            if summary["final"].get("test_top1") is not None and baseline.get("test_top1") is not None:
                out["test_top1_final_minus_baseline"] = round(summary["final"]["test_top1"] - baseline["test_top1"], 6)
        summary = {**summary, "measured": out}
        self.folder.write_json("summary.json", summary)
        m = ", ".join(f"{k} {v['measured_ms']:.4g} ms" for k, v in out.items() if isinstance(v, dict))
        self.log(f"measured end to end ({out['latency_model']}): {m}")
        return summary
