#!/usr/bin/env bash
# The benchmark, from a fresh Debian 12 machine: installs what it needs
# (squid-openssl, linux-perf, time), builds the module and the load
# generator, runs bench/bench.pl (all peers on loopback, one worker each)
# and prints the table of ratios.
#   bash bench/run.sh [--smoke] [bench.pl options]
#   bash bench/run.sh --drip [--smoke]    only the drip case (issue 7)
#   bash bench/run.sh --decrypt [--smoke] only the decryption peers
#   bash bench/run.sh --metrics [--smoke] only pass-through "conn" runs,
#                                         counters on and off (issue 10)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh --bench
bash scripts/build-module.sh >/dev/null
make -s -C bench/loadgen

# 10,000 idle tunnels need 20,000+ descriptors in each process
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

exec perl bench/bench.pl "$@"
