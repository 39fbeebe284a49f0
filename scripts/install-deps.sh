#!/usr/bin/env bash
# Installs the Debian 12 packages edgerelay needs, only those missing. Every entry point calls it.
#   scripts/install-deps.sh build   compiler, CMake, Boost 1.81, OpenSSL, yaml-cpp
#   scripts/install-deps.sh test    build + GoogleTest, clang/libFuzzer, and the real clients tests drive
#   scripts/install-deps.sh bench   build + the reference proxies and tools of bench/compare
set -euo pipefail

build_packages=(cmake ninja-build g++ ccache pkg-config libboost1.81-dev libssl-dev libyaml-cpp-dev)
test_packages=(libgtest-dev clang clang-format clang-tidy libclang-rt-14-dev python3 curl iproute2 openssl procps ncat chromium prometheus
               iptables proxychains4 squid haproxy dante-server dante-client microsocks lftp python3-pyftpdlib stunnel4
               httptunnel python3-websockets podman lintian dpkg-dev python3-yaml systemd)
bench_packages=(iperf3 haproxy dante-server microsocks squid)

wanted=("${build_packages[@]}")
case "${1:-build}" in
  build) ;;
  test) wanted+=("${test_packages[@]}") ;;
  bench) wanted+=("${test_packages[@]}" "${bench_packages[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-deps: missing packages (${missing[*]}) and not root: install them and retry" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
