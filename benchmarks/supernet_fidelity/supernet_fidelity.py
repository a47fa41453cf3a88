"""Rank fidelity of accuracy=supernet: did supernet-inherited holdout top-1 rank `v3_small` points as standalone
training does? (issue 12's first benchmark.) The record of that study: its report, regenerated from its results.

    python -m benchmarks.supernet_fidelity.supernet_fidelity [--key <supernet key>] [--variants MD]

`supernet_fidelity.jsonl` holds one line per piece of the study: a supernet training session, a point scored with
inherited weights (MobileNetV3-Small and 20 seeded random points, BN re-estimated on training batches), a
standalone training of each point at 4x a trial's budget of `benchmarks/proxy_fidelity`, and one MobileNetV3-Small
at a trial's budget (the per-trial cost of accuracy=train), each keyed by its settings. `--key` picks the supernet
whose report to write (`supernet_key`: its settings in a name); `--variants` writes every supernet side by side.
Measuring anew is `python -m search.fidelity +space=v3_small data=cluttered accuracy=supernet` (the supernet's
settings as `accuracy.<key>=...`), which trains, scores and reports the same comparison on any space and data.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

from benchmarks.common import na, read_jsonl
from benchmarks.proxy_fidelity.proxy_fidelity import BUDGETS, budget_tag
from core import UsageError
from search import stats as st

HERE = Path(__file__).resolve().parent
PROXY = HERE.parent / "proxy_fidelity" / "proxy_fidelity.jsonl"  # the sibling study's standalone runs
SPACE = "v3_small"
TARGET_TAU = 0.7
DEFAULT = "cluttered-64px-2000steps-b64-lr0.05-r2-s0-bn20"  # the study's default supernet


# ---------------------------------------------------------------- settings and keys
def train_key(s: dict) -> str:
    """The trained supernet's key (its folder, its training sessions' lines): scoring settings aside, but the
    BN batches, which named the folders before finetuning existed."""
    return (f"{s['dataset']}-{s['input_size']}px-{s['steps']}steps-b{s['batch_size']}-lr{s['lr']:g}-"
            f"r{s['n_random']}-s{s['seed']}-bn{s['bn_recal_batches']}" + ("-kt" if s.get("kernel_transform") else "")
            + ("-ps" if s.get("progressive_shrinking") else ""))


def supernet_key(s: dict) -> str:
    """The scores' key: the supernet's, plus the finetuning of each point before it is scored."""
    ft = s.get("finetune_steps") or 0
    return train_key(s) + (f"-ft{ft}-lr{s['finetune_lr']:g}" if ft else "")


_KEY = re.compile(r"^(?P<dataset>[a-z0-9_]+)-(?P<input_size>\d+)px-(?P<steps>\d+)steps-b(?P<batch_size>\d+)-"
                  r"lr(?P<lr>.+?)-r(?P<n_random>\d+)-s(?P<seed>\d+)-bn(?P<bn_recal_batches>\d+)(?P<kt>-kt)?(?P<ps>-ps)?"
                  r"(?:-ft(?P<finetune_steps>\d+)-lr(?P<finetune_lr>.+))?$")


def parse_key(key: str) -> dict | None:
    """The settings a scores' key was made from (`supernet_key`'s inverse); None if it is not one."""
    m = _KEY.match(key or "")
    if m is None:
        return None
    g = m.groupdict()
    return {"dataset": g["dataset"], "input_size": int(g["input_size"]), "steps": int(g["steps"]),
            "batch_size": int(g["batch_size"]), "lr": float(g["lr"]), "n_random": int(g["n_random"]),
            "seed": int(g["seed"]), "bn_recal_batches": int(g["bn_recal_batches"]),
            "finetune_steps": int(g["finetune_steps"] or 0),
            "finetune_lr": float(g["finetune_lr"]) if g["finetune_lr"] else 0.01,
            "kernel_transform": bool(g["kt"]), "progressive_shrinking": bool(g["ps"])}


def trial_budget(dataset: str) -> dict:
    return dict(BUDGETS[dataset])


def standalone_budget(dataset: str, multiple: float = 4.0) -> dict:
    """The standalone trainings' budget: `multiple` x a trial's budget (steps or epochs)."""
    b = trial_budget(dataset)
    if b["steps"]:
        b["steps"] = int(round(multiple * b["steps"]))
    else:
        b["epochs"] = multiple * b["epochs"]
    return b


def tag_of(dataset: str, b: dict) -> str:
    return f"{dataset}-{budget_tag(b)}"


# ---------------------------------------------------------------- statistics
def paired(rows: list[dict], skey: str, stand_key: str) -> list[dict]:
    """One dict per point with both a supernet score (key `skey`) and a standalone result (`stand_key`)."""
    scores = {(r["name"], r["arch"]): r for r in rows if r.get("kind") == "score" and r.get("key") == skey}
    out = []
    for r in rows:
        if r.get("kind") == "standalone" and r.get("key") == stand_key and (r["name"], r["arch"]) in scores:
            s = scores[(r["name"], r["arch"])]
            out.append({"name": r["name"], "supernet": 100 * s["top1"], "standalone": 100 * r["top1"],
                        "supernet_test": _pct(s.get("test_top1")), "standalone_test": _pct(r.get("test_top1")),
                        "supernet_loss": s.get("loss"),
                        "macs": r.get("macs"), "params": r.get("params")})
    return sorted(out, key=lambda p: -p["standalone"])


def _pct(v):
    return None if v is None else 100 * v


def fidelity(pairs: list[dict], n_boot: int = 2000) -> dict | None:
    if len(pairs) < 3:
        return None
    a = np.array([p["supernet"] for p in pairs])
    b = np.array([p["standalone"] for p in pairs])
    tau_lo, tau_hi = st.bootstrap_interval(st.kendall_tau, a, b, n_boot=n_boot)
    rho_lo, rho_hi = st.bootstrap_interval(st.spearman_rho, a, b, n_boot=n_boot)
    return {"n": len(pairs), "tau": st.kendall_tau(a, b), "tau_lo": tau_lo, "tau_hi": tau_hi, "rho": st.spearman_rho(a, b),
            "rho_lo": rho_lo, "rho_hi": rho_hi,
            "tau_macs": st.kendall_tau(b, [p["macs"] for p in pairs]) if all(p["macs"] for p in pairs) else math.nan,
            "tau_macs_supernet": st.kendall_tau(a, [p["macs"] for p in pairs]) if all(p["macs"] for p in pairs) else math.nan,
            # Holdout cross-entropy is a smoother score than top-1: does it rank better? (lower is better)
            "tau_loss": (st.kendall_tau([-p["supernet_loss"] for p in pairs], b)
                         if all(p.get("supernet_loss") is not None for p in pairs) else math.nan)}


def _arch_key(arch: str) -> str:
    """One spelling per architecture (JSON key order aside)."""
    try:
        return json.dumps(json.loads(arch), sort_keys=True)
    except (TypeError, ValueError):
        return str(arch)


def _samples(b: dict) -> float:
    return (b.get("steps") or 0) * b.get("batch_size", 0)


def standalone_runs(rows: list[dict], proxy_rows: list[dict], stand_key: str, s: dict,
                    trial: dict) -> dict[str, dict[str, float]]:
    """Every standalone run on the supernet's dataset and input size at >= 4x a trial's training samples, this
    script's (`stand_key`) and `proxy_fidelity.jsonl`'s: run name -> {architecture: holdout top-1 in points}."""
    runs: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("kind") == "standalone" and r.get("key") == stand_key:
            runs.setdefault(f"{stand_key} seed {r['seed']}", {})[_arch_key(r["arch"])] = 100 * r["top1"]
    size = f"{s['input_size']}px-"
    for r in proxy_rows:
        if (r.get("dataset") == s["dataset"] and str(r.get("tag", "")).startswith(size)
                and _samples(r.get("budget") or {}) >= 4 * _samples(trial) > 0):
            runs.setdefault(f"{r['tag']} seed {r['seed']}", {})[_arch_key(r["arch"])] = 100 * r["top1"]
    return runs


def nearly_complete(runs: dict[str, dict], scored, share: float = 0.9) -> dict[str, dict]:
    """The runs holding at least `share` of the `scored` points (and 3): a run still under way would shrink the
    points every run shares, and with them every pooled figure."""
    need = max(3, math.ceil(share * len(scored)))
    return {k: v for k, v in runs.items() if len(set(v) & set(scored)) >= need}


def references(rows: list[dict], proxy_rows: list[dict], skey: str, stand_key: str, s: dict,
               trial: dict) -> dict | None:
    """Every standalone run of the scored points at >= 4x a trial's training samples, this script's and
    `proxy_fidelity.jsonl`'s (same dataset and input size, matched by architecture): the supernet's and MACs'
    tau against each run and against their mean, and how well the runs rank each other (``ceiling``)."""
    scores = {_arch_key(r["arch"]): r for r in rows
              if r.get("kind") == "score" and r.get("key") == skey}
    runs = nearly_complete(standalone_runs(rows, proxy_rows, stand_key, s, trial), scores)
    if len(runs) < 2:
        return None
    common = sorted(set(scores).intersection(*runs.values()))
    if len(common) < 3:
        return None
    sup = np.array([100 * scores[a]["top1"] for a in common])
    macs = np.array([scores[a].get("macs") or 0 for a in common], dtype=float)
    if not macs.all():
        from measure import count_macs
        from space import parse_arch
        macs = np.array([count_macs(parse_arch(a), s["input_size"]) for a in common], dtype=float)
    cols = {k: np.array([v[a] for a in common]) for k, v in runs.items()}
    z = np.mean([(c - c.mean()) / c.std() for c in cols.values()], axis=0)  # runs at other budgets: z-scored
    names = list(cols)
    between = [st.kendall_tau(cols[a], cols[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    lo, hi = st.bootstrap_interval(st.kendall_tau, sup, z)
    return {"n": len(common), "runs": {k: {"supernet": st.kendall_tau(sup, c), "macs": st.kendall_tau(macs, c)} for k, c in cols.items()},
            "between": (min(between), max(between)), "between_all": between,
            "ceiling": (st.tau_ceiling(min(between)), st.tau_ceiling(max(between))),
            "ceiling_mean": st.tau_ceiling(float(np.mean(between)), len(names)),
            "mean": {"supernet": st.kendall_tau(sup, z), "lo": lo, "hi": hi, "macs": st.kendall_tau(macs, z)}}


def costs(rows: list[dict], skey: str, s: dict, trial_key: str, stand_key: str) -> dict:
    """Supernet training (wall, CPU; CPU per step from the recorded sessions), per scored trial, per trial
    trained at a trial's budget, per standalone training."""
    out: dict = {}
    sessions = [r for r in rows if r.get("kind") == "supernet" and r.get("key") == train_key(s)]
    if sessions:
        steps = sum(r["to_step"] - r["from_step"] for r in sessions)
        cpu = sum(r["cpu_s"] for r in sessions)
        out["supernet"] = {"wall_s": max(r["checkpoint_seconds"] for r in sessions), "steps": s["steps"],
                           "recorded_steps": steps, "cpu_s": cpu * s["steps"] / steps if steps else math.nan,
                           "cpu_extrapolated": steps < s["steps"], "sessions": len(sessions),
                           "threads": sorted({r.get("threads") for r in sessions}),
                           "load": [r["load"] for r in sessions]}
    for name, kind, key in (("score", "score", skey), ("trial", "trial", trial_key),
                            ("standalone", "standalone", stand_key)):
        rs = [r for r in rows if r.get("kind") == kind and r.get("key") == key]
        if rs:
            out[name] = {"n": len(rs), "wall_s": float(np.mean([r["wall_s"] for r in rs])),
                         "cpu_s": float(np.mean([r["cpu_s"] for r in rs])), "load": [r["load"] for r in rs]}
    if "score" in out and "trial" in out:
        out["per_cpu_hour"] = {"supernet": 3600 / out["score"]["cpu_s"], "train": 3600 / out["trial"]["cpu_s"]}
        saved = out["trial"]["cpu_s"] - out["score"]["cpu_s"]
        if "supernet" in out and saved > 0:
            # supernet + n * score < n * trial from this n on
            out["break_even"] = math.floor(out["supernet"]["cpu_s"] / saved) + 1
    return out


def variants(rows: list[dict], proxy_rows: list[dict], dataset: str, tb: dict, sb: dict,
             n_boot: int = 2000) -> list[dict]:
    """Every supernet scored in `rows` on `dataset`: its settings, its tau against the standalone runs at `sb`
    and against the mean of every standalone run (`references`), and its costs."""
    stkey, tkey = tag_of(dataset, sb), tag_of(dataset, tb)
    out = []
    for key in sorted({r["key"] for r in rows if r.get("kind") == "score"}):
        s = parse_key(key)
        fid = fidelity(paired(rows, key, stkey), n_boot) if s and s["dataset"] == dataset else None
        if fid is None:
            continue
        ref = references(rows, proxy_rows, key, stkey, s, tb)
        c = costs(rows, key, s, tkey, stkey)
        out.append({"key": key, "settings": s, "fidelity": fid, "mean": ref["mean"] if ref else None,
                    "pairs": {p["name"]: (p["supernet"], p["standalone"]) for p in paired(rows, key, stkey)},
                    "ceiling": (ref["ceiling"], ref["ceiling_mean"], len(ref["runs"])) if ref else None,
                    "train_cpu_s": c.get("supernet", {}).get("cpu_s"),
                    "score_cpu_s": c.get("score", {}).get("cpu_s")})
    return out


def _but_seed(s: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in s.items() if k != "seed"))


def seed_groups(vs: list[dict]) -> list[dict]:
    """Variants that differ only in the supernet's seed, >= 2 seeds per group, most seeds first: the range and
    sd of their tau against the standalone runs and against the runs' mean."""
    groups: dict[tuple, list[dict]] = {}
    for v in vs:
        groups.setdefault(_but_seed(v["settings"]), []).append(v)
    out = []
    for g in groups.values():
        if len(g) < 2:
            continue
        taus = np.array([v["fidelity"]["tau"] for v in g])
        means = np.array([v["mean"]["supernet"] for v in g if v["mean"]])
        whole = len(means) == len(g)
        out.append({"settings": {k: v for k, v in g[0]["settings"].items() if k != "seed"}, "members": g,
                    "seeds": sorted(v["settings"]["seed"] for v in g),
                    "tau": (float(taus.min()), float(taus.max())), "tau_sd": float(taus.std(ddof=1)),
                    "mean": (float(means.min()), float(means.max())) if whole else None,
                    "mean_sd": float(means.std(ddof=1)) if whole else None})
    return sorted(out, key=lambda g: -len(g["seeds"]))


_WORDS = {"steps": lambda v: f"{v} steps",
          "kernel_transform": lambda v: "kernel transform" if v else "no kernel transform",
          "progressive_shrinking": lambda v: "progressive shrinking" if v else "no progressive shrinking",
          "bn_recal_batches": lambda v: f"BN on {v} batches",
          "finetune_steps": lambda v: f"finetuned {v} steps" if v else "not finetuned",
          "finetune_lr": lambda v: f"finetune lr {v:g}", "batch_size": lambda v: f"batch {v}",
          "lr": lambda v: f"lr {v:g}", "n_random": lambda v: f"{v} random points per step",
          "input_size": lambda v: f"{v} px", "dataset": str}


def paired_gain(v: dict | list[dict], base: list[dict], n_boot: int = 2000,
                seed: int = 0) -> tuple[float, float, float]:
    """tau(v) (or the mean tau of a list of seeds `v`) minus the mean tau of the `base` seeds against the standalone
    runs, on the points all of them scored, with its paired 95% interval over resamples of those points."""
    mine = v if isinstance(v, list) else [v]
    names = sorted(set(mine[0]["pairs"]).intersection(*(x["pairs"] for x in mine[1:] + base)))
    stand = [mine[0]["pairs"][n][1] for n in names]
    a, b = ([[x["pairs"][n][0] for n in names] for x in xs] for xs in (mine, base))
    return st.paired_gain(a, b, stand, n_boot=n_boot, seed=seed)


def describe(s: dict, keys=None) -> str:
    """A supernet's settings in words: `keys` of them (default all), then its seed."""
    keys = [k for k in (keys if keys is not None else _WORDS) if k in s]
    if not s.get("finetune_steps"):
        keys = [k for k in keys if k != "finetune_lr"]
    return ", ".join([_WORDS[k](s[k]) for k in keys] + [f"seed {s['seed']}"])


def varying(vs: list[dict]) -> list[str]:
    """The settings (seed aside) in which the supernets of `vs` differ."""
    return [k for k in _WORDS if len({v["settings"].get(k) for v in vs}) > 1]


def _where_in(v: float, lo: float, hi: float) -> str:
    return "inside" if lo <= v <= hi else ("above" if v > hi else "below")


def _verdict(where: str, lo: float, hi: float) -> str:
    """Shown better (worse) only outside the seeds' interval and with a paired interval [lo, hi] excluding 0."""
    return ("shown better" if where == "above" and lo > 0 else
            "shown worse" if where == "below" and hi < 0 else "no difference shown")


def variants_report(vs: list[dict], sb: dict, dataset: str, path: Path | None = None, n_boot: int = 2000,
                    agree: dict | None = None) -> str:
    """Every supernet variant side by side, the seed spread of the settings run with most seeds, and where each
    other variant lies against that spread (inside it: no difference shown)."""
    stand = f"the `{budget_tag(sb)}` run"
    vary = varying(vs)
    shared = [k for k in _WORDS if k not in vary]
    L = ["# Supernet variants side by side (`benchmarks/supernet_fidelity/supernet_fidelity.py --variants`)", "",
         f"Every supernet in `supernet_fidelity.jsonl` on `{dataset}`, scored on the same MobileNetV3-Small plus "
         f"random `{SPACE}` points. Kendall tau of its inherited holdout top-1 against {stand} (issue 12's target: "
         ">= 0.7) "
         "and against the z-scored mean of every standalone run at >= 4x a trial's samples (`references`); 95% "
         "bootstrap intervals over points. CPU seconds as recorded, on machines whose load differed; a supernet "
         "scored with other BN batches reuses the checkpoint it was trained in (no training line of its own).", "",
         f"Shared by all: {describe({**vs[0]['settings'], 'seed': 0}, shared)[:-len(', seed 0')]}." if vs else "",
         "",
         f"| supernet | points | tau vs {budget_tag(sb)} [95%] | tau vs mean of runs [95%] | training CPU s | "
         "CPU s per trial |", "|---|---|---|---|---|---|"]
    for v in vs:
        f, m = v["fidelity"], v["mean"]
        mean = f"{m['supernet']:.2f} [{m['lo']:.2f}, {m['hi']:.2f}]" if m else "n/a"
        tau = f"{f['tau']:.2f} [{f['tau_lo']:.2f}, {f['tau_hi']:.2f}]"
        L.append(f"| {describe(v['settings'], vary)} | {f['n']} | {tau} | "
                 f"{mean} | {na(v['train_cpu_s'], '.0f')} | {na(v['score_cpu_s'], '.1f')} |")
    L.append("")
    best = max(vs, key=lambda v: v["fidelity"]["tau"]) if vs else None
    if best is not None:
        met = [v for v in vs if v["fidelity"]["tau"] >= TARGET_TAU and v["fidelity"]["n"] >= 21]
        L += [(f"{len(met)} of {len(vs)} supernets meet the target (tau >= 0.7 against {stand}, >= 21 points)."
               if met else
               f"None of the {len(vs)} supernets meets the target (tau >= 0.7 against {stand}, >= 21 points); "
               f"the highest tau is {best['fidelity']['tau']:.2f} ({describe(best['settings'], vary)}, "
               f"{best['fidelity']['n']} points)."), ""]
    ceil = next((v["ceiling"] for v in vs if v["ceiling"]), None)
    if ceil is not None:
        (lo, hi), mean, k = ceil
        L += [f"How far a perfect ranking could go (`ceiling`: each standalone run the truth plus independent "
              f"noise, from how the runs rank each other): tau {lo:.2f}-{hi:.2f} against one run, about {mean:.2f} "
              f"against the mean of the {k} runs.", ""]
    groups = seed_groups(vs)
    if groups:
        g = groups[0]
        L += ["## Seed spread", "",
              f"The supernet with {describe({**g['settings'], 'seed': 0}, vary)[:-len(', seed 0')]} was trained with "
              f"{len(g['seeds'])} seeds ({', '.join(map(str, g['seeds']))}): tau against {stand} "
              f"{g['tau'][0]:.2f}-{g['tau'][1]:.2f} (sd {g['tau_sd']:.2f})"
              + (f", against the mean of runs {g['mean'][0]:.2f}-{g['mean'][1]:.2f} (sd {g['mean_sd']:.2f})"
                 if g["mean"] else "") + ".", ""]
        pi = st.prediction_interval([m["fidelity"]["tau"] for m in g["members"]])
        L += [f"95% prediction interval of one more seed of these settings (t, from the {len(g['seeds'])} seeds): "
              f"tau {pi[0]:.3f}-{pi[1]:.3f} against {stand}. A variant is shown better (worse) only if its tau lies "
              "above (below) that interval, for the supernet's training noise, and the paired bootstrap interval "
              "of its gain over the seeds' mean excludes 0, for the draw of the points.", "",
              "| supernet | tau | against the seeds' interval | gain over the seeds' mean [95%] | verdict |",
              "|---|---|---|---|---|"]
        for v in vs:
            if _but_seed(v["settings"]) == _but_seed({**g["settings"], "seed": 0}):
                continue
            tau = v["fidelity"]["tau"]
            where = _where_in(tau, *pi)
            gain, lo, hi = paired_gain(v, g["members"], n_boot)
            verdict = _verdict(where, lo, hi)
            diff = [k for k in vary if v["settings"].get(k) != g["settings"].get(k)]
            L.append(f"| {describe(v['settings'], diff)} | {tau:.3f} | {where} | {gain:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                     f"| {verdict} |")
        L.append("")
        if len(groups) > 1:
            L += ["Settings run with several seeds, by the mean of their seeds: shown better (worse) only if that "
                  "mean lies above (below) the 95% prediction interval of the mean of as many more seeds of the "
                  "settings above, and the paired bootstrap interval of the means' difference excludes 0.", "",
                  "| supernet | seeds | taus | mean | interval for a mean of as many | gain of the mean [95%] | "
                  "verdict |", "|---|---|---|---|---|---|---|"]
            for o in groups[1:]:
                taus = [m["fidelity"]["tau"] for m in o["members"]]
                pk = st.prediction_interval([m["fidelity"]["tau"] for m in g["members"]], len(taus))
                where = _where_in(float(np.mean(taus)), *pk)
                gain, lo, hi = paired_gain(o["members"], g["members"], n_boot)
                verdict = _verdict(where, lo, hi)
                diff = [k for k in vary if o["settings"].get(k) != g["settings"].get(k)]
                L.append(f"| {describe({**o['settings'], 'seed': 0}, diff)[:-len(', seed 0')]} | "
                         f"{', '.join(map(str, o['seeds']))} | {', '.join(f'{x:.3f}' for x in taus)} | "
                         f"{np.mean(taus):.3f} | {pk[0]:.3f}-{pk[1]:.3f} | {gain:+.2f} [{lo:+.2f}, {hi:+.2f}] | "
                         f"{verdict} |")
            L.append("")
    if agree is not None:
        L += agreement_report(agree, vs, sb, dataset, n_boot)
    text = "\n".join(L)
    if path is not None:
        path.write_text(text + "\n")
    return text



def variant_sections(rows: list[dict], vs: list[dict], default_key: str, tb: dict, sb: dict, n_points: int) -> list[str]:
    """Each supernet's own report but the default's (that one is ``supernet_fidelity.md``), as a section of the
    variants report: one file instead of one per variant, regenerated with it."""
    L = ["# Each supernet's report", "",
         "The full report of every supernet above but the default settings' (`supernet_fidelity.md`), as "
         "`--report-only` with its settings writes it.", ""]
    for v in vs:
        if v["key"] == default_key:
            continue
        lines = report(rows, v["settings"], tb, sb, n_points).splitlines()
        L += [f"## {describe(v['settings'])}", ""] + ["#" + ln if ln.startswith("#") else ln for ln in lines[1:]]
    return L


# ---------------------------------------------------------------- agreement: supernets, runs, and across
def agreement_columns(rows: list[dict], proxy_rows: list[dict], dataset: str, tb: dict, sb: dict) -> dict:
    """Holdout top-1 (points) by architecture of every supernet scored on `dataset` and of every standalone run
    at >= 4x a trial's samples (`standalone_runs`), and each scored point's MACs."""
    sup: dict[str, dict[str, float]] = {}
    macs: dict[str, float] = {}
    s = None
    for r in rows:
        key = parse_key(r["key"]) if r.get("kind") == "score" else None
        if key and key["dataset"] == dataset:
            s = s or key
            sup.setdefault(r["key"], {})[_arch_key(r["arch"])] = 100 * r["top1"]
        if r.get("kind") in ("score", "standalone") and r.get("macs"):
            macs[_arch_key(r["arch"])] = float(r["macs"])
    runs = standalone_runs(rows, proxy_rows, tag_of(dataset, sb), s, tb) if s else {}
    return {"supernets": sup, "runs": runs, "macs": macs}


def _shared(*cols: dict) -> list[str]:
    return sorted(set(cols[0]).intersection(*cols[1:])) if cols else []


def tau_shared(a: dict, b: dict) -> float:
    """Kendall tau of two {architecture: score} columns over the architectures both hold (NaN under 3)."""
    common = _shared(a, b)
    return st.kendall_tau([a[k] for k in common], [b[k] for k in common]) if len(common) >= 3 else math.nan


def pairwise(cols: list[dict], others: list[dict] | None = None) -> list[float]:
    """Kendall tau of every pair within `cols`, or of every column of `cols` with every one of `others`."""
    if others is None:
        return [tau_shared(a, b) for i, a in enumerate(cols) for b in cols[i + 1:]]
    return [tau_shared(a, b) for a in cols for b in others]


def _over_points(cols: list[dict], stat, n_boot: int, seed: int) -> tuple[float, float, float, int]:
    """`stat` of the columns' arrays on the points all of them hold, with its percentile 95% interval over
    resamples of those points, and the number of points."""
    names = _shared(*cols)
    arrs = [np.array([c[n] for n in names]) for c in cols]
    idx = np.arange(len(names))
    lo, hi = st.bootstrap_interval(lambda i: stat([x[i.astype(int)] for x in arrs]), idx, n_boot=n_boot, seed=seed)
    return stat(arrs), lo, hi, len(names)


def reference_shift(seeds: list[dict], run: dict, base: dict, n_boot: int = 2000,
                    seed: int = 0) -> tuple[float, float, float, int]:
    """Mean tau of the `seeds` columns against `run` minus their mean tau against `base`, on the points all hold,
    with its percentile 95% interval over resamples of those points: does the supernet rank `run` better?"""
    def shift(x):
        return float(np.mean([st.kendall_tau(c, x[0]) - st.kendall_tau(c, x[1]) for c in x[2:]]))
    return _over_points([run, base, *seeds], shift, n_boot, seed)


def size_gap(seeds: list[dict], run: dict, macs: dict, n_boot: int = 2000,
             seed: int = 0) -> tuple[float, float, float, int]:
    """Mean tau of the `seeds` columns against `run` minus MACs' tau against it, on the points all hold, with its
    percentile 95% interval over resamples of those points: does the supernet rank `run` better than size does?"""
    def gap(x):
        return float(np.mean([st.kendall_tau(c, x[0]) for c in x[2:]])) - st.kendall_tau(x[1], x[0])
    return _over_points([run, macs, *seeds], gap, n_boot, seed)


_RUN = re.compile(r"(\d+)steps-b(\d+).* seed ([\d+]+)$")  # a run's name: '<tag with steps and batch> seed <n>'


def seed_means(runs: dict[str, dict]) -> dict[str, dict]:
    """For every tag run with two or more seeds, the mean top-1 of its seeds on the points all of them hold,
    named '<tag> seed 0+1': a reference with less of one seed's noise."""
    tags: dict[str, list[str]] = {}
    for n in runs:
        tag, _, sd = n.rpartition(" seed ")
        if sd.isdigit():
            tags.setdefault(tag, []).append(n)
    out = {}
    for tag, names in tags.items():
        names.sort(key=lambda n: int(n.rpartition(" ")[2]))
        common = _shared(*(runs[n] for n in names))
        if len(names) >= 2 and common:
            label = "+".join(n.rpartition(" ")[2] for n in names)
            out[f"{tag} seed {label}"] = {a: float(np.mean([runs[n][a] for n in names])) for a in common}
    return out


def run_label(name: str) -> str:
    """'cluttered-64px-800steps-b32 seed 0' -> '800x32 s0' (steps x batch, seed; 's0+1' for a mean of seeds)."""
    m = _RUN.search(name)
    return f"{m[1]}x{m[2]} s{m[3]}" if m else name


def _run_samples(name: str) -> int:
    """Training samples of a run named by steps and batch (0 for one named by epochs)."""
    m = _RUN.search(name)
    return int(m[1]) * int(m[2]) if m else 0


def agreement_report(agree: dict, vs: list[dict], sb: dict, dataset: str, n_boot: int = 2000) -> list[str]:
    """Markdown lines: every supernet's tau against every run; how supernets, runs, and the two agree; and
    whether the supernet run with most seeds ranks another run better than the `sb` run."""
    sup, runs, macs = agree["supernets"], agree["runs"], agree["macs"]
    vs = [v for v in vs if v["key"] in sup]
    if not vs or len(runs) < 1:
        return []
    names = sorted(runs, key=lambda n: (_run_samples(n), n))
    vary = varying(vs)
    L = ["## Against each standalone run", "",
         f"Kendall tau of each supernet's holdout top-1 against each standalone run of the points on `{dataset}` "
         "(steps x batch, seed), on the points both hold (n: the scored points each run trained); the last row "
         "ranks by MACs.", "",
         "| supernet | " + " | ".join(f"{run_label(n)} (n={len(_shared(runs[n], sup[vs[0]['key']]))})"
                                      for n in names) + " |",
         "|---|" + "---|" * len(names)]
    for v in vs:
        L.append(f"| {describe(v['settings'], vary)} | "
                 + " | ".join(na(tau_shared(sup[v['key']], runs[n]), ".2f") for n in names) + " |")
    L += ["| MACs | " + " | ".join(na(tau_shared(macs, runs[n]), ".2f") for n in names) + " |", ""]
    cols_s = [sup[v["key"]] for v in vs]
    cols_r = list(nearly_complete({n: runs[n] for n in names}, set().union(*cols_s)).values())
    common = _shared(*cols_s, *cols_r)
    if len(common) >= 3 and len(cols_s) >= 2 and len(cols_r) >= 2:
        on = [{k: c[k] for k in common} for c in cols_s], [{k: c[k] for k in common} for c in cols_r]
        ws, wr, ac = pairwise(on[0]), pairwise(on[1]), pairwise(on[0], on[1])
        exp = st.tau_across(float(np.mean(ws)), float(np.mean(wr)))
        L += [f"On the {len(common)} points every supernet and every run holding >= 90% of them has, the "
              f"{len(cols_s)} supernets rank one "
              f"another at tau {min(ws):.2f}-{max(ws):.2f} (mean {np.mean(ws):.2f}), the {len(cols_r)} standalone "
              f"runs one another at {min(wr):.2f}-{max(wr):.2f} (mean {np.mean(wr):.2f}), and a supernet and a "
              f"run at {min(ac):.2f}-{max(ac):.2f} (mean {np.mean(ac):.2f}). Were both families one ranking plus "
              f"independent Gaussian noise, a supernet and a run would agree at about {exp:.2f} "
              "(`expected_across`)"
              + (f"; {np.mean(ac):.2f} is below that: part of the disagreement is systematic." if np.mean(ac) < exp
                 else "; the mean across is not below that."), ""]
    groups = seed_groups(vs)
    base = f"{tag_of(dataset, sb)} seed 0"
    if groups and base in runs:
        g = groups[0]
        seeds = [sup[m["key"]] for m in g["members"]]
        L += ["### Which run the seeds rank best", "",
              f"The {len(seeds)} seeds of the supernet with "
              f"{describe({**g['settings'], 'seed': 0}, vary)[:-len(', seed 0')]}: their mean tau against each "
              f"run, and its difference from their mean tau against `{run_label(base)}`, with the paired "
              f"bootstrap 95% interval over the points both runs hold ({n_boot} resamples). Shown better (worse) "
              "only if the interval excludes 0; each row is its own test at 95%, so among many rows about one in "
              "20 can exclude 0 by chance.", "",
              "| run | points | mean tau of the seeds | minus against " + run_label(base) + " [95%] | verdict |",
              "|---|---|---|---|---|"]
        for n in names:
            if n == base:
                continue
            d, lo, hi, k = reference_shift(seeds, runs[n], runs[base], n_boot)
            mean = float(np.mean([tau_shared(c, runs[n]) for c in seeds]))
            verdict = "ranked better" if lo > 0 else "ranked worse" if hi < 0 else "no difference shown"
            L.append(f"| {run_label(n)} | {k} | {mean:.2f} | {d:+.2f} [{lo:+.2f}, {hi:+.2f}] | {verdict} |")
        L.append("")
        means = seed_means(runs)
        L += ["### The seeds against size", "",
              f"The same seeds' mean tau against each run, and against the mean of each run's seeds where it has "
              f"several (`s0+1`), beside MACs' tau, with the paired bootstrap 95% interval of the difference over "
              f"the points ({n_boot} resamples). Shown only if the interval excludes 0.", "",
              "| run | points | mean tau of the seeds | MACs | seeds minus MACs [95%] | verdict |",
              "|---|---|---|---|---|---|"]
        for n in names + sorted(means, key=lambda n: (_run_samples(n), n)):
            col = runs.get(n) or means[n]
            d, lo, hi, k = size_gap(seeds, col, macs, n_boot)
            mean = float(np.mean([tau_shared(c, col) for c in seeds]))
            verdict = "supernet better" if lo > 0 else "size better" if hi < 0 else "no difference shown"
            L.append(f"| {run_label(n)} | {k} | {mean:.2f} | {tau_shared(macs, col):.2f} | "
                     f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}] | {verdict} |")
        L.append("")
    return L


# ---------------------------------------------------------------- report
def _loads(xs: list) -> str:
    return f"{min(xs):.1f}-{max(xs):.1f}" if xs else "n/a"


def report(rows: list[dict], s: dict, tb: dict, sb: dict, n_points: int, path: Path | None = None,
           n_boot: int = 2000) -> str:
    skey, tkey, stkey = supernet_key(s), tag_of(s["dataset"], tb), tag_of(s["dataset"], sb)
    mine = [r for r in rows if r.get("key") in (skey, train_key(s), tkey, stkey)]
    machines = "; ".join(sorted({r["machine"] for r in mine if r.get("machine")}))
    pairs = paired(rows, skey, stkey)
    fid = fidelity(pairs, n_boot)
    c = costs(rows, skey, s, tkey, stkey)
    n_scored = sum(1 for r in rows if r.get("kind") == "score" and r.get("key") == skey)
    n_stand = sum(1 for r in rows if r.get("kind") == "standalone" and r.get("key") == stkey)
    L = ["# Supernet rank fidelity (`benchmarks/supernet_fidelity/supernet_fidelity.py`)", "",
         f"Space `{SPACE}`, dataset `{s['dataset']}` at {s['input_size']} px. MobileNetV3-Small plus "
         f"{n_points - 1} seeded random points; {n_scored}/{n_points} scored with supernet-inherited weights, "
         f"{n_stand}/{n_points} trained standalone. Top-1 in points (%), on holdout (what selection sees); test is "
         f"reported only.", "",
         "Settings:", "",
         f"- supernet `{skey}`: {s['steps']} sandwich steps (largest + smallest + {s['n_random']} random points "
         f"per step), batch {s['batch_size']}, lr {s['lr']:g}, seed {s['seed']}"
         + ("; smaller kernels by Once-for-All's learned kernel transform" if s.get("kernel_transform") else "")
         + ("; Once-for-All's progressive shrinking (quarters of the steps: the largest point alone, then kernel, "
            "expansion, every choice opened)" if s.get("progressive_shrinking") else "")
         + f"; scoring re-estimates BN on "
         f"{s['bn_recal_batches']} training batches"
         + (f" after {s['finetune_steps']} SGD steps (lr {s['finetune_lr']:g}, cosine) of the point's inherited "
            "weights on training batches" if s.get("finetune_steps") else ""),
         f"- a trial's budget (accuracy=train): `{budget_tag(tb)}`",
         f"- standalone training: `{budget_tag(sb)}`, one seed per network",
         f"- machine: {machines or 'not recorded'}; 1-minute load averages recorded as each piece finished are "
         f"given beside the times below (other jobs share the machine when it is above the core count)", ""]
    L += ["## Fidelity", ""]
    if fid is None:
        L += [f"Only {len(pairs)} point(s) have both figures yet: no rank statistics.", ""]
    else:
        L += ["| points | Kendall tau [95%] | Spearman rho [95%] | target tau >= 0.7 over >= 21 points |",
              "|---|---|---|---|"]
        met = fid["tau"] >= TARGET_TAU and fid["n"] >= 21
        L += [f"| {fid['n']} | {fid['tau']:.2f} [{fid['tau_lo']:.2f}, {fid['tau_hi']:.2f}] | {fid['rho']:.2f} "
              f"[{fid['rho_lo']:.2f}, {fid['rho_hi']:.2f}] | {'met' if met else '**not met**'} |", "",
              f"Intervals: percentile bootstrap over points ({n_boot} resamples of the pairs). "
              "Kendall tau against MACs (how much size alone explains): standalone top-1 "
              f"{na(fid['tau_macs'], '.2f')}, "
              f"supernet top-1 {na(fid['tau_macs_supernet'], '.2f')}."
              + (f" Ranked by the supernet's holdout loss instead of its top-1 (lower is better), tau against "
                 f"standalone top-1 is {fid['tau_loss']:.2f}." if math.isfinite(fid["tau_loss"]) else ""),
              ""]
        if not met:
            why = (f"tau {fid['tau']:.2f} is below 0.7" if fid["tau"] < TARGET_TAU
                   else f"only {fid['n']} points (issue 12 asks for >= 20 random points plus the reference)")
            L += [f"The target is **not met**: {why}.", ""]
        else:
            L += [f"The target is met: tau {fid['tau']:.2f} >= 0.7 over {fid['n']} points "
                  f"(the lower end of its interval is {fid['tau_lo']:.2f}).", ""]
        L += best_fractions(pairs, n_boot)
    ref = references(rows, read_jsonl(PROXY), skey, stkey, s, tb)
    if ref is not None:
        L += ["### Against every standalone run of these points", "",
              f"The points also trained by `benchmarks/proxy_fidelity/proxy_fidelity.py` (same draws, same dataset and size) at "
              f">= 4x a trial's training samples give {len(ref['runs'])} standalone runs of the {ref['n']} points "
              "they share. Kendall tau of each column against each run, and against the mean of the runs (each "
              "z-scored, as their budgets differ):", "",
              "| standalone run | supernet | MACs |", "|---|---|---|"]
        L += [f"| {k} | {v['supernet']:.2f} | {v['macs']:.2f} |" for k, v in ref["runs"].items()]
        m = ref["mean"]
        L += [f"| mean of the {len(ref['runs'])} runs | {m['supernet']:.2f} [{m['lo']:.2f}, {m['hi']:.2f}] | "
              f"{m['macs']:.2f} |", "",
              f"The standalone runs rank each other at tau {ref['between'][0]:.2f}-{ref['between'][1]:.2f}: one "
              "standalone training is itself a noisy ranking. If each run is the true ranking plus independent "
              "Gaussian noise, a perfect estimator would reach only tau "
              f"{ref['ceiling'][0]:.2f}-{ref['ceiling'][1]:.2f} against one run (`ceiling`), so the 0.7 target "
              "against one run is near what these references can show at all. Against the mean of the "
              f"{len(ref['runs'])} runs (their mean agreement, tau {np.mean(ref['between_all']):.2f}) it would "
              f"reach about {ref['ceiling_mean']:.2f}; the supernet's {m['supernet']:.2f} [{m['lo']:.2f}, "
              f"{m['hi']:.2f}] there "
              + ("lies below it: that gap is the supernet's, not the yardstick's." if m["hi"] < ref["ceiling_mean"]
                 else "is not shown to fall short of it."), ""]
    if pairs:
        L += ["| network | supernet holdout | standalone holdout | supernet test | standalone test | MACs |",
              "|---|---|---|---|---|---|"]
        L += [f"| {p['name']} | {p['supernet']:.1f} | {p['standalone']:.1f} | {na(p['supernet_test'])} | "
              f"{na(p['standalone_test'])} | {na(p['macs'] / 1e6 if p['macs'] else None)}M |" for p in pairs]
        L.append("")
    L += ["## Cost", "", "| | runs | wall s | CPU s | load average (1 min) |", "|---|---|---|---|---|"]
    if "supernet" in c:
        sn = c["supernet"]
        cpu_note = (f" (extrapolated from {sn['recorded_steps']} recorded steps)" if sn["cpu_extrapolated"] else "")
        L.append(f"| supernet training, {sn['steps']} steps ({sn['sessions']} session(s), "
                 f"threads {sn['threads']}) | 1 | {sn['wall_s']:.0f} | {sn['cpu_s']:.0f}{cpu_note} | "
                 f"{_loads(sn['load'])} |")
    ft = (f"finetuned {s['finetune_steps']} steps, " if s.get("finetune_steps") else "")
    labels = {"score": f"one trial, accuracy=supernet (extract, {ft}BN re-estimated, holdout + test)",
              "trial": f"one trial, accuracy=train (`{budget_tag(tb)}` from scratch, holdout + test)",
              "standalone": f"one standalone training (`{budget_tag(sb)}`, holdout + test)"}
    for k, label in labels.items():
        if k in c:
            L.append(f"| {label} | {c[k]['n']} | {c[k]['wall_s']:.2f} | {c[k]['cpu_s']:.2f} | "
                     f"{_loads(c[k]['load'])} |")
    L.append("")
    if "per_cpu_hour" in c:
        ph = c["per_cpu_hour"]
        L += [f"Trials per CPU-hour once the supernet is trained: {ph['supernet']:.0f} scored by the supernet "
              f"against {ph['train']:.0f} trained at a trial's budget ({ph['supernet'] / ph['train']:.1f}x)."]
        if "break_even" in c:
            n = c["break_even"]
            L += [f"Counting the supernet's training CPU seconds, the supernet costs less CPU than per-trial "
                  f"training from {n} trial{'s' if n != 1 else ''} on."]
        L.append("")
    L += ["CPU seconds are this process's (or worker's) own; on a shared machine wall seconds also measure the "
          "neighbours, so the CPU seconds are the comparable figure. The supernet trains in the main process, "
          "trials are scored there one at a time, and the trainings run in single-thread worker processes "
          "(`--workers` of them side by side). Trials per CPU-hour are 3600 over the mean CPU seconds of the "
          "table; a trial's scoring and training both include the holdout and test evaluations.", ""]
    text = "\n".join(L)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text


def best_fractions(pairs: list[dict], n_boot: int = 2000) -> list[str]:
    """Supernet against standalone over all points, the best half and the best quarter (by standalone top-1),
    as ``python -m search.fidelity accuracy=supernet`` computes it (``search.fidelity_report.against``)."""
    from search import fidelity_report as fr

    rows = fr.against([p["supernet"] for p in pairs], [[p["standalone"]] for p in pairs], n_boot)
    return ["Among the best points (chosen by their standalone top-1; `search.fidelity_report.against`, as "
            "`python -m search.fidelity accuracy=supernet` computes it):", "",
            "| points | n | Kendall tau supernet vs standalone [95%] |", "|---|---|---|",
            *[f"| {r['label']} | {r['n']} | {fr.interval(r['tau'], r['lo'], r['hi'])} |" for r in rows], "",
            "The standalone column is one seed per point, so the best half and quarter are chosen on a ranking "
            "that is itself noisy there (`benchmarks/proxy_fidelity.md`: seed-to-seed tau in the best quarter "
            "0.11 at 600 steps).", ""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key", default=DEFAULT, help=f"the supernet's scores' key in --results (default {DEFAULT})")
    ap.add_argument("--n-archs", type=int, default=20, help="random points besides MobileNetV3-Small")
    ap.add_argument("--results", type=Path, default=HERE / "supernet_fidelity.jsonl")
    ap.add_argument("--report", type=Path, default=HERE / "supernet_fidelity.md")
    ap.add_argument("--variants", type=Path, default=None, metavar="MD",
                    help="write every supernet of --results on its dataset side by side to MD (and its seed spread)")
    args = ap.parse_args(argv)
    s = parse_key(args.key)
    if s is None:
        raise UsageError(f"--key {args.key!r} is not a supernet's key: pass one like {DEFAULT}")
    tb, sb = trial_budget(s["dataset"]), standalone_budget(s["dataset"])
    rows = read_jsonl(args.results)
    if args.variants is not None:
        proxy_rows = read_jsonl(PROXY)
        vs = variants(rows, proxy_rows, s["dataset"], tb, sb)
        text = variants_report(vs, sb, s["dataset"], agree=agreement_columns(rows, proxy_rows, s["dataset"], tb, sb))
        text += "\n\n" + "\n".join(variant_sections(rows, vs, args.key, tb, sb, args.n_archs + 1))
        args.variants.write_text(text + "\n")
    else:
        text = report(rows, s, tb, sb, args.n_archs + 1, args.report)
    print(text)
    print(f"results: {args.results}; report: {args.variants or args.report}")
    return 0


if __name__ == "__main__":
    from core import run

    run(main)  # bad input: one line, exit 2
