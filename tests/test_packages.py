"""The packages' public names: loaded on first use (``core.lazy``), never shadowed by a module, and importing a
package or its settings does not load torch (so bad input and --help answer before it loads)."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGES = ("measure", "train", "netadapt", "search", "space", "plots", "core")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_is_the_object_it_names_not_a_module_of_the_same_name(name):
    package = importlib.import_module(name)
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    lazy = getattr(package, "_LAZY", {})
    # Importing a submodule sets the package attribute of its name: a lazy name equal to it would turn into
    # the module once anything imported that module (``measure.costs`` did, as a function and a module).
    assert not set(lazy) & modules, set(lazy) & modules
    for public in getattr(package, "__all__", []):
        if public in modules:  # a module public as a module (``from search import stats``)
            continue
        if public in lazy:  # its module loaded first, as another import would have done
            importlib.import_module(lazy[public].partition(":")[0])
        assert type(getattr(package, public)).__name__ != "module", public  # still the object after its module loads


def test_importing_the_packages_and_their_settings_loads_no_torch():
    code = ("import sys, measure, train, netadapt, search, space, measure.settings, train.settings, "
            "netadapt.settings, search.settings; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
