"""Run (or resume) one study: open it, enqueue the reference, optimise to the budget, write results.

Budget: ``n_trials`` is the total the study should hold, counted by ``results.counts`` (finished
with a result, divergences included, or running). Each worker checks it before a trial starts and
again right after its trial is created -- a trial that finds ``n_trials`` counted trials ahead of it
is surplus and ends PRUNED -- so workers sharing a storage stop together at exactly ``n_trials``.
A second copy of the reference trial (two workers opening a new study at once) ends PRUNED too.

Companions: the reference networks that are not points of the space (V3-Small beside a v3_large
study, and vice versa) are evaluated once per study with the trials' objective, after this worker's
first trial (on a new study, the space's own reference) or at the end of a run that found the budget
met. They are not trials (their parameters are outside the space), so they do not count against
``n_trials``; each result is kept in the study user attribute ``companions`` once it is complete, so
a killed evaluation is redone by the next run, a finished one never, and when two workers finish one
at once the first stored result stays. ``companions=false`` skips them. A table built for this space
(``measure.lut build``) lacks the other reference's entries: with ``measure_missing=false`` the worker
says so once and goes on, where a trial would stop it, and a later run evaluates it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from tqdm.auto import tqdm

import measure
import train
from core.redact import redact
from core.rerun import differences, flat, shorten
from core.settings import plain as _plain
from space import REFERENCES, ArchSpec, SearchSpace

from . import SearchError
from .objective import DIRECTIONS, METRIC_NAMES, Objective, TrialFailed
from .pareto import HVRef
from .plot import write_pareto_png
from .results import (
    companion_line,
    companions_of,
    counts,
    duplicate_reference,
    finished,
    front_postfix,
    hypervolume_rows,
    pareto_rows,
    retried,
    trial_rows,
    write_results,
)
from .samplers import make_sampler
from .storage import new_worker_id, open_storage, recover

# Settings a study is bound to: every worker and every rerun must agree on them, or the trials
# would not be comparable. n_trials, seed, sampler and storage may change between runs. The stored
# "accuracy" protocol (the estimator and its budget; accuracy=train's derives from data and train,
# accuracy=supernet's names its supernet) is compared too, so a study never mixes estimators.
# The latency record (table, content hash, calibration, unit) is compared apart: a changed table has a
# message and an override of its own (latency.accept_changed).
BOUND = ("space", "objective", "data", "train", "target_ms", "w", "max_latency_ms", "max_macs", "accuracy")


@dataclass
class Outcome:
    study_name: str
    folder: Path
    storage: str
    finished: int
    front: list[dict]
    reference: dict | None
    companions: list[dict]  # the other reference networks' results (see the module note)
    hypervolume: float
    seconds: float
    ran: int  # trials this process ran


def study_folder(results_dir, space_name: str, study_name: str) -> Path:
    return Path(results_dir) / "search" / space_name / study_name


class Search:
    """A study bound to one space, dataset, accuracy estimator and latency model, run by this worker.

    The constructor only assigns; ``from_config`` reads the config, loads the data and opens the
    storage, so tests and other front ends can pass their own dependencies.
    """

    def __init__(self, cfg, *, space: SearchSpace, train_cfg, estimator, latency, storage, journal,
                 storage_name: str, worker: str):
        self.cfg, self.space, self.train_cfg, self.estimator, self.latency = cfg, space, train_cfg, estimator, latency
        self.n_trials, self.mode = int(cfg.n_trials), cfg.objective
        self.with_companions = cfg.get("companions", True)
        self.limits = {k: None if cfg.get(k) is None else float(cfg.get(k)) for k in ("max_latency_ms", "max_macs")}
        self.results_dir = Path(cfg.results_dir)
        self.folder = study_folder(self.results_dir, self.space.name, str(cfg.study_name))
        self.storage, self.journal, self.storage_name, self.worker = storage, journal, storage_name, worker
        self.unmeasurable: set[str] = set()  # companions this worker's latency table cannot cost
        self.slot_lock = None  # held while this worker runs: its GPU slot (train/placement.py)

    @classmethod
    def from_config(cls, cfg) -> Search:
        """Every value was checked against ``search/settings.py`` when the config was composed."""
        space = SearchSpace.from_config(_plain(cfg.space))
        try:
            train_cfg = train.TrainConfig.from_cfg(_plain(cfg.train))
        except (TypeError, ValueError) as e:
            raise SearchError(str(e).splitlines()[0]) from None
        results_dir = Path(cfg.results_dir)
        log = study_folder(results_dir, space.name, str(cfg.study_name)) / "study.log"
        url = cfg.get("storage")
        # A database is opened before the data loads: a bad URL is refused at once. A journal file waits, so
        # a run refused for other reasons leaves nothing in results/.
        opened = open_storage(url, log) if url and "://" in str(url) else None
        from train.placement import worker_device

        # Before the data loads: a device the host lacks is refused at once; the slot lock lives as long as we do.
        device, slot_lock = worker_device(train_cfg.device, study_folder(results_dir, space.name, str(cfg.study_name)),
                                          int(cfg.train.get("workers_per_gpu", 1)))
        train_cfg = dataclasses.replace(train_cfg, device=device)
        data = train.load_data(cfg.data)
        estimator = train.make_estimator(_plain(cfg.get("accuracy")), data, train_cfg, space=space,
                                         results_dir=results_dir, data_cfg=_plain(cfg.data),
                                         progress=bool(cfg.get("progress", True)),
                                         seeds=int(cfg.train.get("seeds", 1)))
        latency = measure.latency_model(_plain(cfg.latency), results_dir)
        worker = new_worker_id()
        storage, journal = opened or open_storage(url, log)
        if journal is not None:
            journal.register(worker)
        search = cls(cfg, space=space, train_cfg=train_cfg, estimator=estimator, latency=latency, storage=storage,
                     journal=journal, storage_name=redact(str(url or log)), worker=worker)
        search.slot_lock = slot_lock
        return search

    # -- the study ---------------------------------------------------------------------------------
    def settings(self) -> dict:
        tc = dataclasses.asdict(self.train_cfg)
        for k in ("device", "num_workers", "channels_last", "compile"):  # where and how fast it runs, not what
            tc.pop(k, None)
        if tc.get("precision") == "fp32":  # bound only when used: studies made before it existed still resume
            tc.pop("precision")
        return {"space": self.space.name, "objective": self.mode,
                "data": {k: v for k, v in _plain(self.cfg.data).items() if k != "root"},
                "latency": self.latency.describe(), "train": tc, "accuracy": self.estimator.protocol(),
                "target_ms": self.cfg.get("target_ms"), "w": float(self.cfg.w) if self.mode == "mnas" else None,
                **self.limits}

    def open(self) -> optuna.Study:
        seed = self.cfg.get("seed")
        name = str(self.cfg.study_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                study = optuna.create_study(study_name=name, storage=self.storage, directions=DIRECTIONS[self.mode],
                                            sampler=make_sampler(self.cfg.sampler, seed))
                study.set_metric_names(METRIC_NAMES[self.mode])
            except optuna.exceptions.DuplicatedStudyError:
                # Joining or resuming: a seed of its own, or this worker would replay the
                # creator's random start-up points.
                salt = None if seed is None else int(hashlib.sha1(f"{seed}:{self.worker}".encode()).hexdigest()[:8], 16)
                study = optuna.load_study(study_name=name, storage=self.storage,
                                          sampler=make_sampler(self.cfg.sampler, salt))
        self._bind(study)
        return study

    def _bind(self, study: optuna.Study) -> None:
        """Store the settings and the hypervolume reference on first use; check them after."""
        attrs = study.user_attrs
        mine = self.settings()
        if [d.name.lower() for d in study.directions] != DIRECTIONS[self.mode]:
            raise SearchError(f"study {study.study_name} has directions {[d.name.lower() for d in study.directions]}, "
                              f"not those of objective={self.mode}: pass another study_name")
        if "settings" in attrs:
            theirs, ours = {k: attrs["settings"].get(k) for k in BOUND}, {k: mine.get(k) for k in BOUND}
            # In BOUND's order, accuracy last: accuracy=train's protocol repeats train.*, named first.
            diff = differences(theirs, ours, order=lambda k: (BOUND.index(k.split(".")[0]), k))
            if diff:
                k, theirs, ours = diff[0], flat(theirs), flat(ours)
                raise SearchError(f"study {study.study_name} was run with {k}={_short(theirs.get(k))}, not "
                                  f"{_short(ours.get(k))}: use the same settings or pass another study_name")
            self._check_latency(study, attrs["settings"], mine)
        else:
            study.set_user_attr("settings", mine)
        ref = self.space.reference
        if "hv_ref" not in attrs:
            if ref is None:
                raise SearchError(f"space {self.space.name} has no reference network: add `reference:` to its YAML "
                                  f"(needed to fix the hypervolume box)")
            c = Objective(self.space, self.estimator, self.latency, input_size=self._input_size()).costs(ref)
            study.set_user_attr("hv_ref", {"latency_ms": c.latency_ms, "macs": c.macs})
            study.set_user_attr("reference", ref.name or self.space.name)
        if ref is not None and not any(t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False)):
            # First, so every front is compared with the network it should beat.
            study.enqueue_trial(self.space.params_of(ref), user_attrs={"reference": ref.name or self.space.name})

    def _check_latency(self, study: optuna.Study, theirs: dict, mine: dict) -> None:
        """Refuse a latency table that changed since the study started, unless latency.accept_changed=true:
        then the new record is bound and the old one kept in the study user attribute ``latency_history``."""
        what = measure.model.changed(theirs.get("latency"), mine["latency"])
        if what is None:
            return
        if not self.cfg.latency.get("accept_changed", False):
            raise SearchError(f"the latency table of study {study.study_name} changed since it started ({what}): "
                              f"restore it, pass latency.accept_changed=true to go on with it, or pass another "
                              f"study_name")
        study.set_user_attr("latency_history", [*study.user_attrs.get("latency_history", []), theirs.get("latency")])
        study.set_user_attr("settings", {**theirs, "latency": mine["latency"]})
        print(f"study {study.study_name}: latency table changed ({what}); accepted (latency.accept_changed=true)")

    def _input_size(self) -> int:
        return int(self.cfg.latency.get("input_size") or 224)

    def hv_ref(self, study) -> HVRef:
        r = study.user_attrs["hv_ref"]
        return HVRef(float(r["latency_ms"]), float(r["macs"]))

    def objective(self, study) -> Objective:
        target = self.cfg.get("target_ms")
        if self.mode == "mnas" and target is None:
            target = self.hv_ref(study).latency_ms  # the reference network's latency
        return Objective(self.space, self.estimator, self.latency, mode=self.mode,
                         input_size=self._input_size(), target_ms=None if target is None else float(target),
                         w=float(self.cfg.w), worker=self.worker,
                         device=str(train.resolve_device(self.train_cfg.device)), **self.limits)

    # -- running -----------------------------------------------------------------------------------
    def tally(self, study) -> tuple[int, int]:
        """(finished, counted) trials: counted also includes the running ones."""
        trials = study.get_trials(deepcopy=False)
        redone = retried(trials)
        return sum(finished(t, redone) for t in trials), sum(counts(t, redone) for t in trials)

    # -- the other reference networks (see the module note) ---------------------------------------
    def others(self) -> list[ArchSpec]:
        return [a for a in REFERENCES.values() if a != self.space.reference]

    def add_companions(self, study: optuna.Study, objective: Objective, say=print) -> None:
        """Evaluate each other reference this study lacks, as a trial would be, and keep the result."""
        if not self.with_companions:
            return
        for arch in self.others():
            if arch.name in study.user_attrs.get("companions", {}) or arch.name in self.unmeasurable:
                continue  # done (by an earlier run or another worker), or not costable by this worker
            covers = getattr(self.estimator, "covers", None)  # accuracy=supernet scores its space's points only
            if covers is not None and not covers(arch):
                self.unmeasurable.add(arch.name)
                say(f"reference {arch.name} not evaluated: it is outside space {self.space.name}, which "
                    f"accuracy={self.estimator.name} covers (companions=false skips it)")
                continue
            try:
                result = {"name": arch.name, **objective.evaluate(arch, f"reference {arch.name}"),
                          "worker": self.worker}
            except measure.MeasureError as e:  # see the module note: a plot mark is not worth the search
                self.unmeasurable.add(arch.name)
                say(f"reference {arch.name} not evaluated by this worker: {str(e).splitlines()[0]}")
                continue
            done = study.user_attrs.get("companions", {})  # read again: a worker may have finished meanwhile
            kept = arch.name not in done
            if kept:
                study.set_user_attr("companions", {**done, arch.name: result})
            say(companion_line(result, self.space.name) + ("" if kept else " (another worker's result is kept)"))

    def write(self, study):
        companions = companions_of(study.user_attrs)
        out = write_results(self.folder, study.get_trials(deepcopy=False), self.hv_ref(study),
                            companions=companions, protocol=self.estimator.protocol(), **self.limits)
        write_pareto_png(out.png, out.rows, out.hv, companions=companions,
                         title=f"{self.space.name} / {study.study_name} ({self.mode})", **self.limits)
        return out

    def calibrate_latency(self) -> None:
        """Let the latency model prepare before any number (a lookup table calibrates on its fixed set,
        as ``measure.lut build`` would), so trial latencies are end-to-end ms from the first."""
        done = self.latency.prepare()
        if done:
            print(done, flush=True)

    def run(self, progress: bool = True) -> Outcome:
        start = time.perf_counter()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are reported on the bar instead
        self.calibrate_latency()
        study = self.open()
        prepare = getattr(self.estimator, "prepare", None)  # accuracy=supernet: train it, or wait for it, once
        if prepare is not None:
            prepare()
        recover(study, self.journal)
        done, counted = self.tally(study)
        objective = self.objective(study)
        ran = 0

        def guarded(trial: optuna.Trial):
            trials = study.get_trials(deepcopy=False)
            redone = retried(trials)
            twin = duplicate_reference(trial, trials, redone)
            if twin is not None:  # two workers joined a new study at once and both enqueued it
                trial.set_user_attr("worker", self.worker)
                trial.set_user_attr("failure", f"duplicate: the reference is trial {twin}")
                raise optuna.TrialPruned("duplicate reference")
            ahead = sum(counts(t, redone) for t in trials if t.number < trial.number)
            if ahead >= self.n_trials:
                trial.set_user_attr("worker", self.worker)
                requeue(study, trial, trials)
                raise optuna.TrialPruned("surplus")
            return objective(trial)

        bar = tqdm(total=self.n_trials, initial=min(done, self.n_trials), desc=f"search {self.space.name}",
                   disable=not progress, dynamic_ncols=True, unit="trial")

        def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            nonlocal ran
            ran += 1
            if trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs.get("failure"):
                bar.write(f"trial {trial.number} failed: {trial.user_attrs['failure']}")
            self.add_companions(study, objective, bar.write)  # one storage read once they are done
            out = self.write(study)
            recover(study, self.journal)
            n_done, n_counted = self.tally(study)
            bar.n = min(n_done, self.n_trials)
            bar.set_postfix_str(front_postfix(out.pareto), refresh=True)
            if n_counted >= self.n_trials:
                study.stop()

        try:
            self.write(study)
            if counted < self.n_trials:
                study.optimize(guarded, callbacks=[after], catch=(TrialFailed,), gc_after_trial=True)
            self.add_companions(study, objective, bar.write)  # the budget was met before this run
        finally:
            bar.close()
            self.write(study)
        rows = trial_rows(study.get_trials(deepcopy=False))
        hv = hypervolume_rows(rows, self.hv_ref(study), **self.limits)
        return Outcome(study.study_name, self.folder, self.storage_name, self.tally(study)[0],
                       pareto_rows(rows, **self.limits), next((r for r in rows if r["reference"]), None),
                       companions_of(study.user_attrs), hv[-1]["hypervolume"] if hv else 0.0,
                       time.perf_counter() - start, ran)


def requeue(study: optuna.Study, trial: optuna.Trial, trials) -> None:
    """Put a surplus trial's enqueued point (a reference, a redo) back in the queue, so it is not lost.

    ``optuna.Trial`` exposes no system attributes; its frozen copy in ``trials`` does."""
    frozen = next((t for t in trials if t.number == trial.number), None)
    fixed = frozen.system_attrs.get("fixed_params") if frozen is not None else None
    if fixed:
        keep = {k: v for k, v in trial.user_attrs.items() if k in ("reference", "retry_of")}
        study.enqueue_trial(fixed, user_attrs=keep)


def _short(v) -> str:
    return shorten(str(v), 80)
