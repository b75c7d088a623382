#!/usr/bin/env bash
# Coverage-guided fuzzing of the answer grader with libFuzzer (clang) under
# ASan + UBSan, for a fixed budget. Usage:
#     tests/fuzz/run.sh [seconds=120] [jobs=1]
# Prints libFuzzer's final stats (executions, coverage); a crash leaves its
# input in tests/fuzz/crashes/ and the script exits non-zero. The corpus grows
# in $O1P_FUZZ_CORPUS (default: a temporary folder, seeded from seeds/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-120}
cc=${CC_FUZZ:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$cc" ]; then echo "clang not found (apt-get install clang)" >&2; exit 2; fi
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
"$cc" -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/csrc" -I"$root/csrc/kernels" \
    "$here/fuzz_grader.c" "$root"/csrc/kernels/grader_{compare,eval,extract,normalize,number}.c \
    -lm -o "$build/fuzz_grader"
corpus=${O1P_FUZZ_CORPUS:-$build/corpus}
mkdir -p "$corpus" "$here/crashes"
cp -n "$here"/seeds/* "$corpus"/ 2>/dev/null || true
# -use_value_profile: guide through numeric comparisons; -max_len covers deep
# nesting; -rss_limit_mb bounds the grader's arena; -timeout flags slow inputs
status=0
"$build/fuzz_grader" "$corpus" -max_total_time="$secs" -max_len=4096 -use_value_profile=1 \
    -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$here/crashes/" \
    -dict="$here/grader.dict" > "$build/log" 2>&1 || status=$?
grep -E "^#[0-9]+[[:space:]]+(pulse|DONE|NEW|REDUCE)" "$build/log" | tail -n 1 || true
grep -E "^Done|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$build/log" || true
if [ "$status" -ne 0 ]; then
    tail -n 60 "$build/log"
    echo "fuzzing found a failure: input saved in $here/crashes/" >&2
    exit "$status"
fi

# Source coverage of the grader reached by the final corpus (clang's
# source-based coverage: the corpus replayed once by an instrumented build).
prof=$(command -v llvm-profdata || command -v llvm-profdata-14 || true)
cov=$(command -v llvm-cov || command -v llvm-cov-14 || true)
if [ -n "$prof" ] && [ -n "$cov" ]; then
    "$cc" -std=c99 -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
        -I"$root/csrc" -I"$root/csrc/kernels" \
        "$here/fuzz_grader.c" "$root"/csrc/kernels/grader_{compare,eval,extract,normalize,number}.c \
        -lm -o "$build/cov_grader"
    LLVM_PROFILE_FILE="$build/cov.profraw" "$build/cov_grader" -runs=0 "$corpus" > /dev/null 2>&1
    "$prof" merge -sparse "$build/cov.profraw" -o "$build/cov.profdata"
    echo "corpus: $(ls "$corpus" | wc -l) inputs; source coverage of the grader:"
    "$cov" report "$build/cov_grader" -instr-profile="$build/cov.profdata" \
        "$root"/csrc/kernels/grader_*.c | awk 'NR == 1 || /TOTAL/ || /grader_/' | cut -c1-160
fi
