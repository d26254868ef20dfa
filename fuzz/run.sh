#!/usr/bin/env bash
# Runs every fuzz target in turn for FUZZ_SECONDS (default 60) each, one job
# at a time, starting from the committed seeds. Installs cargo-fuzz if it is
# missing. Needs a nightly toolchain (`rustup toolchain install nightly`).
# A crash makes the script fail; the input is left in artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

for target in open_and_drain byte_records; do
    mkdir -p "corpus/$target"
    echo "== $target for ${seconds}s"
    # -O: optimised, still with debug assertions (the ring's index checks).
    # max_len: room for segments a little larger than the seeds.
    cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1
done
