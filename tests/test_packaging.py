"""The wheel ships the data tables: build it offline, unpack it, load the tables from it.

``hybridver/tables/`` is a plain data folder inside the package (no ``__init__.py``, no
``.py`` files, no symbolic links: a checkout without symbolic links must build the same
wheel).  The wheel is built with the running interpreter's setuptools and no network
(``pip wheel --no-build-isolation --no-index``) from a copy of the package, so the source
tree gets no ``build/`` or ``.egg-info`` folders.  A subprocess whose ``sys.path`` starts
with the unpacked wheel then loads every table through ``hybridver.relaxations.tables``
(which checks each file's sha256 against the manifest) and writes the arrays back; they
must equal the arrays of the source files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hybridver"
TABLES = PACKAGE / "tables"


def _source_manifest() -> dict:
    return json.loads((TABLES / "manifest.json").read_text())


def test_package_has_no_symbolic_links():
    links = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*") if p.is_symlink()]
    assert links == [], f"symbolic links in the package (lost without link support): {links}"


def test_tables_folder_is_data_only():
    assert TABLES.is_dir()
    names = sorted(p.name for p in TABLES.iterdir())
    assert not [n for n in names if n.endswith((".py", ".pyc")) or n == "__pycache__"], names
    assert set(_source_manifest()["files"]) | {"manifest.json"} == set(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the package; skipped without setuptools."""
    setuptools = pytest.importorskip("setuptools")
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    if (major, minor) < (70, 1):  # older setuptools needs the ``wheel`` package
        pytest.importorskip("wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    source, dist = tmp / "source", tmp / "dist"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / "hybridver", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--no-index", "--no-cache-dir", "-q", "-w", str(dist), str(source)]
    done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list(dist.glob("hybridver-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_every_module_and_table(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("hybridver/tables/manifest.json"))
        assert manifest == _source_manifest()
        for name, entry in manifest["files"].items():
            data = archive.read(f"hybridver/tables/{name}")
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
            assert len(data) == entry["bytes"], name
    modules = {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - names == set(), "modules missing from the wheel"
    schemas = {p.relative_to(REPO).as_posix() for p in (PACKAGE / "schemas").glob("*.json")}
    assert schemas and schemas - names == set(), "report schemas missing from the wheel"


LOAD_TABLES = textwrap.dedent("""
    import json, sys
    import numpy as np
    unpacked, out = sys.argv[1], sys.argv[2]
    sys.path.insert(0, unpacked)
    import hybridver
    from hybridver.relaxations import tables
    arrays = {}
    for name in tables.manifest()["files"]:
        for key, value in tables.load_npz(name).items():
            arrays[f"{name}/{key}"] = value
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as handle:
        json.dump({"package": hybridver.__file__, "tables": tables.__file__,
                   "manifest": tables.manifest()}, handle)
""")


def test_installed_wheel_loads_the_tables(wheel, tmp_path):
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    out = tmp_path / "loaded"
    # -I: no PYTHONPATH, no current folder, no user site; the interpreter's site-packages
    # (numpy, torch) stay, and the unpacked wheel goes first on sys.path
    done = subprocess.run([sys.executable, "-I", "-c", LOAD_TABLES, str(unpacked), str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    facts = json.loads(Path(str(out) + ".json").read_text())
    for key in ("package", "tables"):
        assert Path(facts[key]).resolve().is_relative_to(unpacked.resolve()), facts[key]
    manifest = _source_manifest()
    assert facts["manifest"] == manifest
    with np.load(str(out) + ".npz", allow_pickle=False) as loaded:
        seen = set(loaded.files)
        expected = set()
        for name in manifest["files"]:
            with np.load(TABLES / name, allow_pickle=False) as source:
                for key in source.files:
                    expected.add(f"{name}/{key}")
                    got, want = loaded[f"{name}/{key}"], source[key]
                    assert got.dtype == want.dtype and got.shape == want.shape, key
                    np.testing.assert_array_equal(got, want)
    assert seen == expected
