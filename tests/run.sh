#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it.
# Installs what the tests need when it is missing, then checks formatting,
# lints and runs every test. Lab tests build network namespaces: run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v ping >/dev/null || need+=(iputils-ping)
command -v tshark >/dev/null || need+=(tshark)
command -v zstd >/dev/null || need+=(zstd)
# the suite again under a clock moved years ahead (libfaketime)
command -v faketime >/dev/null || need+=(faketime)
# nmap XML: nmap's DTD and stylesheet, and the tools that read them
[ -f /usr/share/nmap/nmap.dtd ] || need+=(nmap)
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v xsltproc >/dev/null || need+=(xsltproc)
/usr/bin/python3 -c 'import libnmap' 2>/dev/null || need+=(python3-libnmap)
# service identification's lab: real Debian services (tests/lab/service_lab.rs)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
command -v openssl >/dev/null || need+=(openssl)
# the HTML report's browser test
command -v chromium >/dev/null || need+=(chromium fonts-liberation)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: missing ${need[*]} and not root to install them: run as root (sudo bash tests/run.sh)" >&2
    exit 2
  fi
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# deploy/kubernetes: validated against Kubernetes' schemas (PyPI)
command -v kubernetes-validate >/dev/null || python3 -m pip install --quiet kubernetes-validate
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: the lab tests need root to build network namespaces; they will fail without it" >&2
fi

rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
# --workspace/--all: the test crates' helpers (tests/support) too.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Benchmarks are scripts (benches/*.sh); clippy above compiles their binaries.
cargo test --locked --lib --bins --tests
cargo test --locked --doc
# No test may depend on today's date: the whole suite again with the clock
# moved to mid-2099 (it ticks on from there; timers keep the real
# monotonic clock). The shipped scopes' windows end on 2099-12-31.
# FAKETIME_DONT_RESET: a process started later (the sonde a test runs,
# minutes into the one lab binary) goes on from its parent's moved clock
# instead of starting at mid-2099 again, so the two agree on the time.
# libfaketime moves only this process tree's clock, not the kernel's: the
# one test that compares round trips measured between the two (packet
# timestamps come from the kernel) cannot hold under it, and is skipped.
FAKETIME_DONT_RESET=1 FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '@2099-06-30 12:00:00' \
  cargo test --locked --lib --bins --tests -- \
  --skip without_wait_the_cooldown_follows_the_round_trips
