"""Run daphne or uvicorn with memory and CPU accounting on signals (connections.py).

Usage: ``python benchmarks/conn_server.py OUTDIR daphne|uvicorn ARGS...``. With
``BENCH_TRACEMALLOC=1`` tracemalloc runs from the start. On SIGUSR1 the process writes
``OUTDIR/<pid>-<n>.snap`` (a tracemalloc snapshot, when tracing) and
``OUTDIR/<pid>-<n>.types.json`` (live objects by type: count and ``sys.getsizeof``
bytes, after a full collection). SIGUSR2 starts cProfile, the next SIGUSR2 stops it and
writes ``OUTDIR/<pid>.prof``. Nothing of this is in the package: only this wrapper
around the server's own entry point.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

OUT = Path(sys.argv[1])
SERVER = sys.argv[2]
_dumps = 0
_profile: cProfile.Profile | None = None


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _dump(signum: int, frame: FrameType | None) -> None:
    global _dumps
    name = OUT / f"{os.getpid()}-{_dumps}"
    _dumps += 1
    gc.collect()
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(f"{name}.snap")
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        key = _type_name(obj)
        counts[key] += 1
        try:
            sizes[key] += sys.getsizeof(obj)
        except TypeError:
            pass
    types = {key: [counts[key], sizes[key]] for key in counts}
    # Written under a temporary name: the reader waits for the final one.
    Path(f"{name}.types.tmp").write_text(json.dumps(types))
    os.replace(f"{name}.types.tmp", f"{name}.types.json")


def _toggle_profile(signum: int, frame: FrameType | None) -> None:
    global _profile
    if _profile is None:
        _profile = cProfile.Profile()
        _profile.enable()
        return
    _profile.disable()
    _profile.dump_stats(OUT / f"{os.getpid()}.prof.tmp")
    os.replace(OUT / f"{os.getpid()}.prof.tmp", OUT / f"{os.getpid()}.prof")
    _profile = None


def main() -> None:
    if os.environ.get("BENCH_TRACEMALLOC") == "1":
        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))
    signal.signal(signal.SIGUSR1, _dump)
    signal.signal(signal.SIGUSR2, _toggle_profile)
    sys.argv = [SERVER, *sys.argv[3:]]
    if SERVER == "uvicorn":
        import uvicorn

        uvicorn.main()
    else:
        from daphne.cli import CommandLineInterface

        CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
