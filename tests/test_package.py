"""The installable package: one import root (`bitbranch.*`), the Verilog shipped inside it, and a wheel that
works from a virtual environment outside the checkout."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker
from bitbranch.isa.artifact import save_artifact
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtl import rtl_dir

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("isa", "compiler", "simulator", "rtl", "rtlharness", "workloads")
BARE = set(FOLDERS)


def python_files() -> list[Path]:
    skip = {".venv", "build", "sim_build", ".git"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def bare_imports(path: Path) -> list[str]:
    """`import isa…` / `from compiler… import` lines: a module found by folder name, not through bitbranch."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] in BARE]
    return found


def test_no_module_imports_a_bare_top_level_package():
    offenders = [line for p in python_files() for line in bare_imports(p)]
    assert offenders == [], "import through bitbranch.*:\n" + "\n".join(offenders)


def test_bare_import_detector_catches_one(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("import isa.spec\nfrom simulator import run\nfrom bitbranch.isa import spec\nfrom . import x\n")
    assert [s.split(": ")[1] for s in bare_imports(path)] == ["isa.spec", "simulator"]


def test_every_python_folder_is_a_listed_package():
    """pyproject's explicit package list covers every folder with an __init__.py (else the wheel drops it)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(cfg["packages"]), cfg["package-dir"]
    found = set()
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "bench" not in rel and "sim_build" not in rel:
                found.add(".".join([name, *rel]))
    assert found == listed


def test_rtl_is_found_as_package_data():
    assert rtl_dir() == ROOT / "rtl"
    assert (rtl_dir() / "bb_core.v").is_file() and (rtl_dir() / "bitbranch_isa.vh").is_file()


def test_version():
    out = subprocess.run([sys.executable, "-m", "bitbranch", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and re.fullmatch(r"bitbranch \d+\.\d+\.\d+\n", out.stdout), out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A wheel built from this checkout, installed (without dependencies) into a fresh venv outside it. The
    pinned dependencies come from this environment through a .pth file: no network, no second torch."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools would leave build/ in the checkout and reuse its stale files next time.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "sim_build", "out", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp / "dist").glob("bitbranch-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "--no-deps", "-q", str(wheel)], capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr[-3000:]
    return venv


def run_installed(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["BITBRANCH_SIM_BUILD"] = str(cwd / "sim_build")
    return subprocess.run([str(venv / "bin" / "bitbranch"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_wheel_holds_the_verilog_and_one_import_root(installed):
    site = next((installed / "lib").glob("python*/site-packages"))
    tops = {p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")}
    assert tops == {"bitbranch"}, tops
    shipped = {p.name for p in (site / "bitbranch" / "rtl").iterdir()}
    assert {p.name for p in ROOT.joinpath("rtl").glob("*.v*")} <= shipped


def test_installed_cli_runs_outside_the_checkout(installed, tmp_path):
    out = run_installed(installed, "--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("bitbranch "), out.stderr
    out = run_installed(installed, "hw", "small", cwd=tmp_path)
    assert out.returncode == 0 and "small:" in out.stdout, out.stderr
    probe = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import bitbranch.rtl, bitbranch.isa; print(bitbranch.rtl.rtl_dir())"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode == 0 and str(installed) in probe.stdout and str(ROOT) not in probe.stdout, probe


def test_installed_verify_runs_the_shipped_rtl(installed, tmp_path):
    g = GraphMaker(5, (6, 6, 3))
    a = g.conv("a", "input", 8, 3, 2, 2, pad=1)
    graph, inputs = g.graph([a])
    lowered = lower_graph(graph, get_config("small"), inputs)
    assert all(len(set(v.ravel().tolist())) > 1 for v in lowered.golden.values())  # outputs carry information
    art = save_artifact(lowered, tmp_path / "net")
    out = run_installed(installed, "verify", str(art), "--sim", "icarus", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["ok"] and result["outputs_match"] and result["cycles_rtl"] == result["cycles_sim"] > 0
    assert not list((tmp_path / "sim_build").glob("**/*.v")) and (tmp_path / "sim_build").is_dir()
