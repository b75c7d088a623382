#!/usr/bin/env bash
# valgrind memcheck of the C kernels and of the extension:
#     tests/valgrind/run.sh driver          # C-only driver of every kernel family (~10 s)
#     tests/valgrind/run.sh python [files]  # a pytest subset on a -O0 -g build of _core (minutes)
# The driver must be clean, definite leaks included. For Python, CPython and
# the dynamic loader report errors of their own under valgrind (uninitialised
# values in the eval loop and gc, dl-load strncmp over-reads): an error counts
# only when one of its frames is in our code (csrc/**.c file names, _core*.so).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-python}
mode=${1:-driver}
shift || true
command -v valgrind > /dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1

if [ "$mode" = driver ]; then
    sob=$("$py" -c "import scipy_openblas32 as s; print(s.get_lib_dir()[:-4])")
    cc=${CC:-gcc}
    "$cc" -std=c99 -O1 -g -fopenmp -Wall -Wextra -Wno-unused-parameter -DO1P_BLAS_PREFIX_SCIPY \
        -I"$root/csrc" -I"$root/csrc/kernels" -I"$sob/include" "$here/kernels_driver.c" \
        "$root"/csrc/kernels/{rewards,ppo,logprob,fused,model,model_generate,model_optim,runtime}.c \
        "$root"/csrc/kernels/grader_{compare,eval,extract,normalize,number}.c \
        -L"$sob/lib" -lscipy_openblas -Wl,-rpath,"$sob/lib" -lm -o "$tmp/driver"
    valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite "$tmp/driver"
    echo "valgrind memcheck: C driver clean"
    exit 0
fi

# python: a copy of the tree with a debug build (frames carry file:line)
git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar cf - 2>/dev/null) | (cd "$tmp" && tar xf -)
(cd "$tmp" && O1P_DEBUG=1 "$py" setup.py -q build_ext --inplace > /dev/null 2>&1)
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(tests/test_rewards.py tests/test_objectives.py -k "not leak")
set +e
(cd "$tmp" && PYTHONMALLOC=malloc O1P_NUM_THREADS=1 valgrind --log-file="$tmp/vg.log" --leak-check=no \
    "$py" -m pytest -q -p no:cacheprovider "${files[@]}")
rc=$?
set -e
ours=$(cd "$root/csrc" && find . -name '*.c' -printf '%f\n' | sed 's/\./\\./' | paste -sd'|')
"$py" - "$tmp/vg.log" "$ours" <<'PY'
import re, sys
log, ours = open(sys.argv[1]).read(), re.compile(r"\((?:%s):\d+\)|_core\.cpython" % sys.argv[2])
blocks = re.split(r"\n==\d+== \n", log)
errors = [b for b in blocks if re.search(r"==\d+== (Invalid|Conditional|Use of uninit|Mismatched|Source and dest|Syscall param|Argument)", b)]
mine = [b for b in errors if ours.search(b)]
print(f"valgrind memcheck: {len(errors)} error records in total, {len(mine)} with a frame in o1pruner's C code")
for b in mine[:5]:
    print(b)
sys.exit(1 if mine else 0)
PY
exit $rc
