#!/usr/bin/env bash
# Builds edgerelay and runs it; with no arguments on its built-in default config (127.0.0.1:1080).
# Arguments go to edgerelay: scripts/run.sh --config deploy/edgerelay.example.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target edgerelay -j"$(nproc)"
exec build/proxy/edgerelay "$@"
