"""The optional native build (EDGEWALK_NATIVE=1, -march=native) against the installed one, in the
same run: the C extension is built a second time with -march=native into a temporary directory
(as module ``_native_march``, from the same sources) and every kernel runs through both, rounds
interleaved. Checks that both builds give the same results bit for bit; reports the native
build's speed-up per kernel (extra_info ``speedup``; no goal is set). Needs Cython and a C
compiler (skipped otherwise); if the installed build is itself native the figures compare a build
with itself."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import _native, graph, kernels, policy
from measure import Round, rate, record_rate, run_pedantic
from edgewalk.planning import gradient_statistics, simulate

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3
CASES = [  # (name, policy, search or "gradient", rollouts)
    ("plain-pretrained", "pretrained", "none", 4_000),
    ("plain-rlvr", "rlvr", "none", 200_000),
    ("search-mask-sft", "sft", "mask", 60_000),
    ("search-reject-sft", "sft", "reject", 60_000),
    ("gradient-pretrained", "pretrained", "gradient", 4_000),
    ("gradient-rlvr", "rlvr", "gradient", 200_000),
]
SETUP = """
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup
sys.argv[1:] = ["build_ext", "--inplace", "-q"]
setup(ext_modules=cythonize([Extension(
    "_native_march", ["_native_march.pyx"], include_dirs=["."],
    define_macros=[("EW_MARCH_NATIVE", "1")],
    extra_compile_args=["-O3", "-fopenmp", "-march=native"], extra_link_args=["-fopenmp"])],
    compiler_directives={"language_level": "3"}, quiet=True))
"""


@pytest.fixture(scope="module")
def march(tmp_path_factory: pytest.TempPathFactory):
    """The C extension built with -march=native, imported as _native_march."""
    if importlib.util.find_spec("Cython") is None:
        pytest.skip("needs Cython to build the native copy of the extension")
    if sys.platform == "win32" or shutil.which(sysconfig.get_config_var("CC").split()[0]) is None:
        pytest.skip("needs the C compiler Python was built with (and -march=native)")
    build = tmp_path_factory.mktemp("native-build")
    for header in (ROOT / "native").glob("*.h"):
        shutil.copy(header, build)
    shutil.copy(ROOT / "native" / "_native.pyx", build / "_native_march.pyx")
    subprocess.run([sys.executable, "-c", SETUP], cwd=build, check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location(
        "_native_march", next(build.glob("_native_march*" + sysconfig.get_config_var("EXT_SUFFIX"))))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ABI == _native.ABI and module.BUILD == "native"
    return module


def run(case: tuple, monkeypatch: pytest.MonkeyPatch, extension) -> tuple[Round, tuple]:
    """One round of a case through ``extension``: (steps, seconds) and the result's figures."""
    _, policy_name, mode, rollouts = case
    pol = getattr(policy, policy_name)(graph.path_star(15, 15, 5))
    with monkeypatch.context() as patch:
        patch.setattr(kernels, "_native", extension)
        if mode == "gradient":
            r = gradient_statistics(pol, rollouts=rollouts, backend="cython", threads=1)
            figures = (r.steps, r.hits, tuple(r.visits), tuple(r.remaining_sum))
        else:
            r = simulate(pol, rollouts=rollouts, backend="cython", threads=1, search=mode, method="step")
            figures = (r.steps, r.hits, r.total, r.total_of_squares, r.draws_total,
                       tuple(r.counts))
    return (r.steps, r.seconds), figures


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_native_build(benchmark: BenchmarkFixture, case: tuple, march,
                      monkeypatch: pytest.MonkeyPatch, report: Callable[[str], None]) -> None:
    portable: list[Round] = []
    results: dict[str, tuple] = {}

    def native_round() -> Round:
        timed, results["native"] = run(case, monkeypatch, march)
        return timed

    def portable_round() -> None:
        timed, results["installed"] = run(case, monkeypatch, _native)
        portable.append(timed)

    rounds = run_pedantic(benchmark, native_round, ROUNDS, between=portable_round)
    speedup = rate(rounds) / rate(portable)
    record_rate(benchmark, rounds, installed_steps_per_second=rate(portable), speedup=speedup,
                installed_build=_native.BUILD)
    report(f"cython {case[0]}, -march=native: {rate(rounds):.3g} steps/s, {speedup:.2f}x the "
           f"installed {_native.BUILD} build at {rate(portable):.3g}")
    assert results["native"] == results["installed"]
