"""Run every benchmark script (bench_*.py, then roofline.py) in turn; `--smoke` passes tiny
sizes so CI checks that they all still run. Exits non-zero if one fails."""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    extra = sys.argv[1:]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")) + [HERE / "roofline.py"]:
        t0 = time.time()
        print(f"== {script.name} {' '.join(extra)}", flush=True)
        r = subprocess.run([sys.executable, str(script), *extra], cwd=HERE)
        print(f"== {script.name}: {'ok' if r.returncode == 0 else 'FAILED'} in {time.time() - t0:.1f}s", flush=True)
        if r.returncode != 0:
            failed.append(script.name)
    if failed:
        print("failed:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
