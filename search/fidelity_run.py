"""One worker of ``python -m search.fidelity``: claim trainings until none is left, then write the report.

Each training is the search's proxy training (``accuracy=train``, the ``train`` keys) with ``train.steps``
set to one budget of ``fidelity.steps`` and seeded ``train.seed + i`` for its i-th seed (initialisation
and batch order). Selection figures are holdout top-1; test top-1 is recorded for reports only.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError
from core.files import write_atomic
from core.settings import plain
from space import SearchSpace

from . import fidelity_report as fr
from .fidelity_jobs import Job, Ledger, arch_of, from_study, sampled
from .storage import new_worker_id


@dataclass
class Outcome:
    folder: Path
    networks: int
    trained: int  # by this worker
    total: int  # jobs of the run
    left: int  # not finished (held by other workers) when this worker stopped
    verdicts: list[str]
    seconds: float


def fidelity_folder(results_dir, space_name: str, run: str) -> Path:
    return Path(results_dir) / "fidelity" / space_name / run


class Fidelity:
    """The networks, the jobs and the folder of one fidelity run, as this worker sees them."""

    def __init__(self, cfg, say=print):
        self.cfg, self.say = cfg, say
        f = cfg.fidelity
        self.space = SearchSpace.from_config(plain(cfg.space))
        from train import TrainConfig

        try:
            self.train_cfg = TrainConfig.from_cfg(plain(cfg.train))
        except (TypeError, ValueError) as e:
            raise UsageError(str(e).splitlines()[0]) from None
        self.nets = from_study(str(f.study), int(f.top)) if f.study else sampled(self.space, int(f.archs),
                                                                                   int(f.sample_seed))
        self.seeds, self.steps = int(f.seeds), [int(s) for s in f.steps]
        if int(cfg.train.get("seeds", 1)) != 1:
            raise UsageError(f"train.seeds={cfg.train.seeds} is a search's setting; here fidelity.seeds sets the "
                             f"trainings per network: drop train.seeds, pass e.g. fidelity.seeds={cfg.train.seeds}")
        self.accuracy = plain(cfg.get("accuracy")) or {"name": "train"}
        self.supernet = self.accuracy.get("name") == "supernet"
        self.data_cfg = {k: v for k, v in plain(cfg.data).items() if k not in ("root", "defaults")}
        self.folder = fidelity_folder(cfg.results_dir, self.space.name, str(f.run))
        self.progress = bool(cfg.get("progress", True))
        self.jobs = [Job("train", n, s, self.train_cfg.seed + i)  # a network's seeds back to back: pairs early
                     for s in self.steps for n in self.nets for i in range(self.seeds)]
        if self.supernet:
            self.jobs += [Job("supernet", n) for n in self.nets]
        self._data = self._supernet = None

    def settings(self) -> dict:
        """What every training of the folder shares (budgets, seeds and networks may grow between runs)."""
        tc = dataclasses.asdict(self.train_cfg)
        for k in ("steps", "epochs", "seed", "device", "num_workers"):
            tc.pop(k, None)
        return {"space": self.space.name, "data": self.data_cfg, "train": tc}

    @property
    def data(self):
        if self._data is None:
            from train import load_data

            self._data = load_data(self.cfg.data)
        return self._data

    # -- one job -------------------------------------------------------------------------------------
    def run_job(self, job: Job, worker: str) -> dict:
        from train import DivergedError, TrainEstimator

        row = {"kind": job.kind, "network": job.network.name, "arch": job.network.arch, "steps": job.steps,
               "seed": job.seed, "worker": worker}
        if job.kind == "train":
            tc = dataclasses.replace(self.train_cfg, steps=job.steps, seed=job.seed)
            est = TrainEstimator(self.data, tc)
            label = f"{job.network.name} {job.steps} steps seed {job.seed}"
            setting = {k: v for k, v in dataclasses.asdict(tc).items() if k not in ("device", "num_workers")}
            row["settings"] = {"data": self.data_cfg, "train": setting}
            try:
                # holdout only: the test split is neither read nor needed here
                acc = est.train(est.fresh(arch_of(job.network), job.seed), label, report=False)
            except DivergedError as e:
                return {**row, "top1": None, "test_top1": None, "failure": str(e).splitlines()[0]}
        else:
            est = self.supernet_estimator()
            row["settings"] = {"data": self.data_cfg, "accuracy": est.protocol()}
            acc = est(arch_of(job.network), f"{job.network.name} (supernet)")
        return {**row, "top1": acc.top1, "test_top1": acc.test_top1, "loss": acc.loss,
                "seconds": round(acc.seconds, 2)}

    def supernet_estimator(self):
        if self._supernet is None:
            from train import make_estimator

            est = make_estimator(self.accuracy, self.data, self.train_cfg, space=self.space,
                                 results_dir=Path(self.cfg.results_dir), data_cfg=self.data_cfg,
                                 progress=self.progress)
            outside = [n.name for n in self.nets if not est.covers(arch_of(n))]
            if outside:
                raise UsageError(f"accuracy=supernet scores points of space {self.space.name} only; "
                                 f"{', '.join(outside[:3])} lie outside it: use accuracy=train or another study")
            self.say(est.prepare())
            self._supernet = est
        return self._supernet

    # -- the worker -------------------------------------------------------------------------------------
    def run(self) -> Outcome:
        from tqdm.auto import tqdm

        start, worker = time.perf_counter(), new_worker_id()
        if self.supernet:  # fail before any training on a point the supernet cannot score
            outside = [n.name for n in self.nets if not self.space.contains(arch_of(n))]
            if outside:
                raise UsageError(f"accuracy=supernet scores points of space {self.space.name} only; "
                                 f"{', '.join(outside[:3])} lie outside it: use accuracy=train or another study")
        ledger = Ledger(self.folder, worker)
        ledger.bind(self.settings())
        total = len(self.jobs)
        left = ledger.pending(self.jobs)
        self.say(f"fidelity {self.space.name}: {len(self.nets)} networks x {self.seeds} seeds x budgets "
                 f"{self.steps}{' + supernet scores' if self.supernet else ''}: {total - left} of {total} "
                 f"done in {self.folder}, {left} to run")
        bar = tqdm(total=total, initial=total - left, desc="fidelity trainings", unit="training",
                   disable=not self.progress, dynamic_ncols=True)
        trained = 0
        try:
            while (job := ledger.claim(self.jobs)) is not None:
                row = self.run_job(job, worker)
                ledger.record(row)
                trained += 1
                bar.n = total - ledger.pending(self.jobs)  # other workers' trainings count too
                bar.refresh()
                got = row.get("failure") or f"holdout top1 {row['top1']:.1%}"
                if job.kind == "train":
                    bar.write(f"trained {job.network.name} ({job.steps} steps, seed {job.seed}): {got} in "
                              f"{row['seconds']:.1f} s")
                else:
                    bar.write(f"scored {job.network.name} by the supernet: {got} in {row['seconds']:.1f} s")
        finally:
            bar.close()
        left = ledger.pending(self.jobs)
        verdicts = self.write(ledger.records())
        return Outcome(self.folder, len(self.nets), trained, total, left, verdicts, time.perf_counter() - start)

    # -- the report -------------------------------------------------------------------------------------
    def write(self, records: list[dict]) -> list[str]:
        """fidelity.md and fidelity.png from every record of the folder for this run's networks and budgets."""
        from plots.fidelity import draw_fidelity

        archs = {n.arch for n in self.nets}
        mine = [r for r in records if r["arch"] in archs and (r["kind"] != "train" or r["steps"] in self.steps)]
        budgets = {s: v for s, v in fr.runs_by_budget(mine, self.seeds).items() if s in self.steps}
        # the config's count where the dataset has one: a finished rerun need not build the data
        n_holdout = int(self.data_cfg.get("n_holdout") or len(self.data.holdout))
        holdout_key = "n_holdout" in self.data_cfg
        computed = {s: fr.groups(runs) for s, (_, runs, _) in budgets.items()}
        verdicts = [fr.verdict(s, g, n_holdout, computed, holdout_key) for s, g in computed.items()]
        supernet = {r["arch"]: 100 * r["top1"] for r in mine if r["kind"] == "supernet" and r.get("top1") is not None}
        text = self.markdown(budgets, computed, verdicts, supernet, n_holdout, len(mine))
        write_atomic(self.folder / "fidelity.md", text)
        info = fr.plot_info(f"{self.space.name} / {self.folder.name}: seed 0 against seed 1", budgets, computed)
        write_atomic(self.folder / "fidelity.png", draw_fidelity(info))
        return verdicts

    def markdown(self, budgets, computed, verdicts, supernet, n_holdout: int, n_records: int) -> str:
        f = self.cfg.fidelity
        source = (f"the best {len(self.nets)} finished trials of study `{f.study}` by holdout top-1" if f.study else
                  f"{len(self.nets)} networks of space `{self.space.name}` (its reference networks, then a sample "
                  f"seeded {f.sample_seed})")
        tc = self.settings()["train"]
        L = [f"# Proxy fidelity among the best networks: {self.space.name} / {self.folder.name}", "",
             f"Networks: {source}. Each trained {self.seeds} times (seeds {self.train_cfg.seed} to "
             f"{self.train_cfg.seed + self.seeds - 1}) at each budget, the search's proxy training otherwise: batch "
             f"{tc['batch_size']}, lr {tc['lr']:g}, {tc['schedule']}; data `{self.data_cfg.get('name')}` "
             f"({n_holdout} holdout images). Top-1 on holdout, in points; test is never read here.", "",
             "Best half and best quarter are chosen by the seed mean. Seed tau: Kendall tau between the first two "
             "seeds, 95% percentile bootstrap over networks (2000 resamples, seeded). Arch sd: sd of the seed "
             "means; seed sd: pooled sd of one run. Reliability of one run: (arch variance less the seed noise "
             "left in the means) / (that + seed variance); a trial scored by k seeds has Spearman-Brown's "
             "k r / (1 + (k - 1) r). Holdout share: binomial variance of a top-1 at the group's mean on the "
             "holdout's images, over the seed variance.", "",
             f"{n_records} records in `fidelity.jsonl`.", ""]
        if not budgets:
            L += ["No network has all its seeds at any budget yet: rerun the command to go on.", ""]
        for (steps, (names, runs, archs)), v in zip(budgets.items(), verdicts):
            L += [f"## {steps} steps ({len(names)} networks)", "", *fr.table(computed[steps], n_holdout), "", v, ""]
            if supernet:
                have = [i for i, a in enumerate(archs) if a in supernet]
                if len(have) >= 3:
                    rows = fr.against([supernet[archs[i]] for i in have], runs[have])
                    L += ["Supernet score against the standalone seed mean (accuracy=supernet):", "",
                          "| networks | n | Kendall tau [95%] |", "|---|---|---|"]
                    L += [f"| {r['label']} | {r['n']} | {fr.interval(r['tau'], r['lo'], r['hi'])} |" for r in rows]
                    L.append("")
            best = computed[steps][-1].rows
            L += ["| network | " + " | ".join(f"seed {i}" for i in range(runs.shape[1])) + " | mean | best quarter |",
                  "|---|" + "---|" * (runs.shape[1] + 2)]
            for i in sorted(range(len(names)), key=lambda i: -runs[i].mean()):
                L.append(f"| {names[i]} | " + " | ".join(f"{x:.1f}" for x in runs[i]) +
                         f" | {runs[i].mean():.2f} | {'yes' if i in best else ''} |")
            L.append("")
        return "\n".join(L) + "\n"


def run_fidelity(cfg, say=print) -> Outcome:
    return Fidelity(cfg, say).run()


def dump(o: Outcome) -> str:
    return json.dumps(dataclasses.asdict(o), default=str)
