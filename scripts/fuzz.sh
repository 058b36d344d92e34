#!/usr/bin/env bash
# Build every libFuzzer target in fuzz/ and run each for a bounded time.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 60 s, all targets)
# A crash, leak or sanitizer report fails the run; the input is kept in
# build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true

bash scripts/deps.sh

out=build/fuzz
mkdir -p "$out"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz_}")
    done
fi

for name in "${targets[@]}"; do
    bin="$out/fuzz_$name"
    clang -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Isrc "src/mcd_$name.c" "fuzz/fuzz_$name.c" -lpcre2-8 -o "$bin"

    corpus="$out/corpus-$name"
    mkdir -p "$corpus"
    seeds=()
    if [ -d "fuzz/seeds/$name" ]; then
        seeds=("fuzz/seeds/$name")
    fi

    echo "fuzz: $name for ${secs}s"
    maxlen=4096
    [ "$name" = tls ] && maxlen=20000
    dict=()
    [ -f "fuzz/$name.dict" ] && dict=("-dict=../../fuzz/$name.dict")
    (cd "$out" && "./fuzz_$name" -max_total_time="$secs" -timeout=10 \
        -max_len="$maxlen" "${dict[@]}" \
        -rss_limit_mb=2048 -print_final_stats=1 \
        "corpus-$name" "${seeds[@]/#/../../}" 2>&1 | tail -n 12)
done
