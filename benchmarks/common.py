"""Shared helpers of the benchmarks: timing (medians of repeats, side by
side in one run), machine description, peak memory in a child process, and
result files under benchmarks/results/.

Every benchmark checks its results against a reference before timing, prints
ratios rather than absolute times, and has a --smoke mode with small sizes that
CI runs so the scripts never rot. Timings are never test assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _check_import() -> None:
    """The benchmarks run the installed package: ``python benchmarks/X.py``
    from anywhere (the script's folder, not the source tree, is first on
    sys.path). A source tree put first (``PYTHONPATH=..``) has no built C
    core after a non-editable ``pip install .``: say so instead of failing
    with "cannot import name '_core'"."""
    try:
        import o1pruner  # noqa: F401
    except ImportError as e:
        if "_core" not in str(e):
            raise
        import importlib.util

        spec = importlib.util.find_spec("o1pruner")
        where = os.path.dirname(spec.origin) if spec and spec.origin else "?"
        sys.exit(f"benchmarks: the o1pruner imported from {where} has no built C core ({e}). Run the benchmarks "
                 "against the installed package, without PYTHONPATH: python benchmarks/bench_model.py (or build in "
                 "place: python setup.py build_ext --inplace)")


_check_import()


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat: checks the script runs")
    p.add_argument("--repeat", type=int, default=7, help="timed repeats per measurement (median reported)")
    p.add_argument("--threads", type=int, default=None, help="threads for o1pruner, BLAS and torch")
    p.add_argument("--out", type=Path, default=None, help="result JSON path (default benchmarks/results/<name>.json)")
    return p


def setup_threads(n: int | None) -> int:
    import o1pruner

    n = n or os.cpu_count() or 1
    o1pruner.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def median_time(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds over `repeat` runs after `warmup`."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def interleaved_medians(fns: Dict[str, Callable[[], object]], repeat: int = 7, warmup: int = 1) -> Dict[str, float]:
    """Median times of several functions measured round-robin, so that noise
    from the shared machine hits all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeat)):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def machine() -> dict:
    import numpy

    import o1pruner

    cfg = o1pruner.config()
    info = {
        "cpu": cfg.get("cpu"),
        "cpu_count": os.cpu_count(),
        "threads": o1pruner.get_num_threads(),
        "blas": cfg.get("blas"),
        "blas_corename": cfg.get("blas_corename"),
        "simd": cfg.get("simd"),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def peak_rss_of(code: str, timeout: float = 600) -> int:
    """Peak RSS (VmHWM, bytes) of a fresh Python child process running `code`,
    minus the peak of one that only runs the imports before the first blank
    line of `code`. C allocations do not show in tracemalloc, so this is the
    way to see them."""
    imports = code.split("\n\n", 1)[0]

    def run(src: str) -> int:
        src += "\nimport re\nprint('VMHWM', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(src)
            path = f.name
        try:
            out = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=timeout)
        finally:
            os.unlink(path)
        if out.returncode != 0:
            raise RuntimeError(f"child failed: {out.stderr[-2000:]}")
        line = [l for l in out.stdout.splitlines() if l.startswith("VMHWM")][-1]
        return int(line.split()[1]) * 1024

    return run(code) - run(imports)


def write_result(name: str, payload: dict, out: Path | None = None, smoke: bool = False) -> Path:
    """Write results as JSON (atomically) and return the path. Smoke runs go
    to results/smoke/ (ignored by git)."""
    path = out or (RESULTS / ("smoke" if smoke else "") / f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("machine", machine())
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def table(rows: List[List[object]], header: List[str]) -> str:
    """A Markdown table (for the console and the README)."""
    cells = [[str(c) for c in r] for r in [header] + rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in cells[1:]])
