"""Files bneck reads but did not write: a CIFAR-10 batch that names code is refused before any of it runs,
every torch checkpoint is loaded weights-only, and nothing else unpickles (a grep of the packages)."""
from __future__ import annotations

import ast
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from test_train import write_cifar

from train import load_data
from train.cifar10 import ALLOWED
from train.errors import DataError

PACKAGES = ("core", "space", "measure", "train", "search", "netadapt", "plots", "benchmarks")


class RunsCommand:
    """What an attacker puts in a batch: unpickling it calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class EvalsCode:
    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


def _evil_payloads(marker: Path) -> dict[str, bytes]:
    touch = f"touch {marker}"
    batch = {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}
    return {
        "os.system at the top": pickle.dumps(RunsCommand(touch), protocol=2),
        "os.system inside the labels": pickle.dumps({**batch, b"labels": [RunsCommand(touch)]}, protocol=2),
        "eval, protocol 5": pickle.dumps({**batch, b"x": EvalsCode(f"open({str(marker)!r}, 'w')")}, protocol=5),
        # Protocol 0 by hand, as an old exploit would be written: posix.system('touch ...').
        "posix.system, protocol 0": f"cposix\nsystem\n(V{touch}\ntR.".encode(),
        # numpy names that are not array rebuilding: numpy.load could unpickle a second file.
        "numpy.load": f"cnumpy\nload\n(V{marker}\ntR.".encode(),
    }


@pytest.mark.parametrize("what", ["os.system at the top", "os.system inside the labels", "eval, protocol 5",
                                  "posix.system, protocol 0", "numpy.load"])
def test_a_batch_that_names_code_is_refused_and_nothing_runs(tmp_path, what):
    root = tmp_path / "cifar-10-batches-py"
    write_cifar(root)
    marker = tmp_path / "pwned"
    (root / "data_batch_3").write_bytes(_evil_payloads(marker)[what])
    with pytest.raises(DataError) as e:
        load_data({"name": "cifar10", "root": str(tmp_path), "input_size": 32})
    assert str(e.value).startswith(f"CIFAR-10 file {root / 'data_batch_3'} is not a CIFAR-10 batch: it asks to run ")
    assert not marker.exists()


def test_the_command_line_refuses_it_in_one_line_with_exit_2(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    write_cifar(root)
    marker = tmp_path / "pwned"
    (root / "test_batch").write_bytes(_evil_payloads(marker)["os.system at the top"])
    p = subprocess.run([sys.executable, "-m", "search.run", "+space=v3_small", "data=cifar10", f"data.root={tmp_path}",
                        f"results_dir={tmp_path / 'results'}", "progress=false"], cwd=REPO, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=300)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == [f"error: CIFAR-10 file {root / 'test_batch'} is not a CIFAR-10 batch: it asks to "
                                     f"run posix.system, which the format never holds (refused, nothing run): "
                                     f"replace it with the official cifar-10-python.tar.gz"]
    assert not marker.exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_batches_as_numpy_pickles_them_load(tmp_path, protocol):
    files = write_cifar(tmp_path / "cifar-10-batches-py")
    for name, obj in files.items():  # rewritten in this protocol, what the official files hold
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(
            pickle.dumps({**obj, b"filenames": [b"a.png"] * 10, b"batch_label": name}, protocol=protocol))
    d = load_data({"name": "cifar10", "root": str(tmp_path), "input_size": 32})
    assert len(d.test) == 10 and int(d.test[3][1]) == files["test_batch"][b"labels"][3]


def test_the_allowed_globals_are_exactly_what_numpy_pickles_a_batch_with():
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2], b"batch_label": "training batch 1 of 5",
             b"filenames": [b"x.png"]}
    named = set()

    class Recorder(pickle.Unpickler):  # the plain unpickler, noting each global it is asked for
        def find_class(self, module, name):
            named.add((module, name))
            return super().find_class(module, name)

    for protocol in (2, 3, 4, 5):
        Recorder(io.BytesIO(pickle.dumps(batch, protocol=protocol)), encoding="bytes").load()
    assert named and named <= ALLOWED
    assert {m for m, _ in ALLOWED} <= {"numpy", "_codecs", "numpy.core.multiarray", "numpy._core.multiarray",
                                       "numpy.core.numeric", "numpy._core.numeric"}


def _calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            yield f"{node.func.value.id}.{node.func.attr}", node


def _unsafe_loads(path: Path) -> list[str]:
    """Each call in ``path`` that unpickles (or may): torch.load without weights_only=True, pickle and its
    kin, numpy.load with allow_pickle, yaml.load without SafeLoader."""
    bad = []
    for name, call in _calls(path):
        kw = {k.arg: k.value for k in call.keywords}
        where = f"{path.name}:{call.lineno} {name}"
        if name == "torch.load" and getattr(kw.get("weights_only"), "value", None) is not True:
            bad.append(where + " without weights_only=True")
        elif name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load",
                      "pd.read_pickle", "pandas.read_pickle", "marshal.loads", "yaml.unsafe_load"):
            bad.append(where)
        elif name in ("np.load", "numpy.load") and "allow_pickle" in kw and getattr(kw["allow_pickle"], "value", 1):
            bad.append(where + " with allow_pickle")
        elif name == "yaml.load" and "SafeLoader" not in ast.unparse(call):
            bad.append(where + " without SafeLoader")
    return bad


def test_no_package_unpickles_outside_the_batch_reader():
    sources = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    assert len(sources) > 50 and any(p.name == "store.py" for p in sources)  # netadapt's checkpoints among them
    assert [b for p in sources for b in _unsafe_loads(p)] == []


def test_the_check_finds_each_unsafe_load(tmp_path):
    bad = tmp_path / "bad.py"  # the check must fail on the mistakes it is there for
    bad.write_text("import torch, pickle, yaml, numpy as np\n"
                   "a = torch.load('x.pt', map_location='cpu')\n"
                   "b = torch.load('y.pt', weights_only=False)\n"
                   "c = torch.load('z.pt', weights_only=True)\n"
                   "d = pickle.load(open('f', 'rb'))\n"
                   "e = np.load('f.npy', allow_pickle=True)\n"
                   "f = np.load('f.npy')\n"
                   "g = yaml.load(open('f'))\n"
                   "h = yaml.load(open('f'), Loader=yaml.SafeLoader)\n")
    assert _unsafe_loads(bad) == ["bad.py:2 torch.load without weights_only=True",
                                  "bad.py:3 torch.load without weights_only=True", "bad.py:5 pickle.load",
                                  "bad.py:6 np.load with allow_pickle", "bad.py:8 yaml.load without SafeLoader"]


def test_an_executorch_cache_entry_is_run_only_when_it_matches_its_key():
    from measure.executorch import entry_problem, entry_record

    program = b"PTE\x00" + bytes(range(256)) * 4
    record = entry_record("k1", program)
    assert entry_problem("k1", program, record) is None
    assert entry_problem("k1", program, None) == "it has no record of its hash"
    assert entry_problem("k1", program, "{not json") == "its record is unreadable"
    assert entry_problem("k2", program, record).startswith("its record names another key")
    tampered = program[:10] + b"\xff" + program[11:]
    assert entry_problem("k1", tampered, record) == "its bytes do not match the hash recorded when it was lowered"
    assert entry_problem("k1", program[:-1], record) is not None  # truncated


def test_a_tampered_or_swapped_cache_entry_is_rebuilt_with_a_warning(tmp_path):
    from measure.executorch import load_or_build

    built = []

    def build(text: bytes):
        def lower():
            built.append(text)
            return text
        return lower

    assert load_or_build(tmp_path, "k1", build(b"program one")) == b"program one"
    assert load_or_build(tmp_path, "k1", build(b"never built")) == b"program one" and built == [b"program one"]
    (tmp_path / "k1.pte").write_bytes(b"program 0ne")  # tampered
    with pytest.warns(UserWarning, match=r"k1.pte is lowered again: its bytes do not match"):
        assert load_or_build(tmp_path, "k1", build(b"program one")) == b"program one"
    assert (tmp_path / "k1.pte").read_bytes() == b"program one" and len(built) == 2
    load_or_build(tmp_path, "k2", build(b"program two"))
    for suffix in (".pte", ".json"):  # another structure's entry, renamed into k1's place
        (tmp_path / f"k1{suffix}").write_bytes((tmp_path / f"k2{suffix}").read_bytes())
    with pytest.warns(UserWarning, match="its record names another key"):
        assert load_or_build(tmp_path, "k1", build(b"program one")) == b"program one"
    (tmp_path / "k1.json").unlink()  # an entry from before records were kept
    with pytest.warns(UserWarning, match="no record"):
        load_or_build(tmp_path, "k1", build(b"program one"))
    assert len(built) == 5


def test_executorch_rebuilds_a_tampered_program_it_would_run(tmp_path, monkeypatch):
    pytest.importorskip("executorch")  # the integrated check, where the extra is installed
    import torch

    import measure.executorch as et
    from space import ArchSpec, BlockSpec, build_model

    monkeypatch.setenv("BNECK_ET_CACHE", str(tmp_path))
    torch.manual_seed(0)
    module = build_model(ArchSpec(8, (BlockSpec(3, 16, 8),), 96, 32)).eval()
    x = torch.randn(1, 3, 32, 32)
    et.et_runner(module, x)
    (pte,) = tmp_path.glob("*.pte")
    data = bytearray(pte.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pte.write_bytes(bytes(data))
    before = et.exports
    with pytest.warns(UserWarning, match="lowered again"):
        run = et.et_runner(module, x)
    assert et.exports == before + 1
    with torch.no_grad():
        assert torch.allclose(run()[0], module(x), atol=1e-4)
