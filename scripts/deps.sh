#!/usr/bin/env bash
# Makes sure the Debian packages that building and testing Coalition Ledger
# need are installed.  Quiet when they all are; as root it installs what is
# missing with apt-get; otherwise it says what is missing and how to install
# it, and exits 1.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libuv1-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev
    libcmocka-dev libraft-dev libsodium-dev libjansson-dev
    libhttp-parser-dev libinih-dev
    # scripts/fuzz.sh: clang and its libFuzzer runtime (libclang_rt.fuzzer)
    clang libclang-rt-14-dev
    # the HTTP API tests (tests/process/test_http*.sh, test_openapi.sh)
    curl jq python3 python3-yaml
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ $status != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: install them as root with:" >&2
    echo "  sudo sh -c '$install_cmd'" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
