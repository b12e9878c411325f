"""steerid: is this steering vector really the direction, or one of many that do the same?"""

import os

__version__ = "0.1.0"

# Without these, MKL (torch's float32 BLAS on CPUs) may schedule work dynamically and split
# reductions by the thread count it got: a rerun, a resumed run or a cluster job then differs in
# the last bits, and one sampled token that flips turns those bits into different text. AUTO keeps
# the fastest code path for this CPU; STRICT makes its products independent of the thread count,
# which MKL honours on Intel CPUs with AVX2 or AVX-512 only: elsewhere the same bytes need the same
# thread count (runtime.threads).
# MKL reads them at its first call, which in a steerid process comes after this import; a value
# already in the environment wins.
REPRODUCIBLE_MKL = {"MKL_CBWR": "AUTO,STRICT", "MKL_DYNAMIC": "FALSE"}
for _name, _value in REPRODUCIBLE_MKL.items():
    os.environ.setdefault(_name, _value)
