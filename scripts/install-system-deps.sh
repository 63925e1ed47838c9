#!/usr/bin/env bash
# System packages defectflow needs on a bare Debian 12 / Ubuntu 24.04 (run as root; apt-get).
#   install-system-deps.sh base   what `make setup` / `make demo` need: python3-venv (venv + ensurepip),
#                                 libgomp1 (LightGBM's wheel links the system OpenMP), and make itself
#                                 (a bare Debian has none: run this script first there)
#   install-system-deps.sh        what `make test` needs on top: a Docker engine + registry (and debootstrap
#                                 to make a base image offline), headless Chromium, Node.js + npm and the
#                                 Azurite blob emulator (npm, into ./node_modules), and PostgreSQL (the
#                                 test suite starts its own throwaway cluster with initdb + pg_ctl), and
#                                 kubectl (Debian's kubernetes-client) for `kubectl kustomize` of infra/k8s.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
level=${1:-full}

missing=()
need() { dpkg -s "$1" >/dev/null 2>&1 || missing+=("$1"); }

# python3 -m venv needs ensurepip, which Debian and Ubuntu ship separately in python3-venv.
python3 -c "import ensurepip, venv" 2>/dev/null || need python3-venv
command -v make >/dev/null 2>&1 || need make
# LightGBM's manylinux wheel does not bundle OpenMP: without libgomp.so.1 `import lightgbm` fails.
need libgomp1
if [ "$level" = full ]; then
  for p in docker.io docker-registry debootstrap; do need "$p"; done
  # Node.js/npm and PostgreSQL may come from elsewhere (NodeSource, PGDG): what counts is the commands.
  command -v npm >/dev/null 2>&1 || { need nodejs; need npm; }
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || need postgresql
  # `kubectl kustomize` checks infra/k8s; Debian 12's kubernetes-client (kubectl 1.20) is enough, because
  # the manifests avoid kustomize fields newer than it (it refused the `labels:` transformer).
  command -v kubectl >/dev/null 2>&1 || need kubernetes-client
  # Ubuntu's "chromium" is a snap wrapper that does not run without snapd; Debian's is the real browser.
  if grep -qi '^ID=debian' /etc/os-release; then need chromium; fi
  # Playwright drives the browser through the Node.js it bundles, which links libatomic.so.1.
  need libatomic1
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$level" = full ] && [ ! -x node_modules/.bin/azurite-blob ]; then
  echo "installing azurite (npm)"
  npm install --no-audit --no-fund --silent azurite@3.35 >/dev/null
fi
echo "system dependencies ready ($level)"
