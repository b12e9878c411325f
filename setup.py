"""Builds steerid._native (pybind11 + Eigen).

Eigen is never vendored: its headers come from the pinned `cmeel-eigen` build requirement,
which installs them under `<site-packages>/cmeel.prefix/include/eigen3`.
"""
import sys
import sysconfig
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup


def eigen_include_dir() -> str:
    # pip's isolated build environment puts build requirements on sys.path, not in sysconfig's paths.
    candidates = [*sys.path, *(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))]
    for site in candidates:
        include = Path(site) / "cmeel.prefix" / "include" / "eigen3"
        if (include / "Eigen" / "Core").is_file():
            return str(include)
    raise RuntimeError(
        "Eigen headers not found under cmeel.prefix/include/eigen3 in "
        f"{candidates}; install the build requirement with `pip install cmeel-eigen==3.4.1`."
    )


# Compile the translation units in parallel (NPY_NUM_BUILD_JOBS overrides the CPU count).
ParallelCompile("NPY_NUM_BUILD_JOBS").install()

native = Pybind11Extension(
    "steerid._native",
    sorted(str(p) for p in Path("csrc").glob("*.cpp")),
    include_dirs=[eigen_include_dir(), "csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-DNDEBUG"],
)

setup(ext_modules=[native], cmdclass={"build_ext": build_ext})
