#!/usr/bin/env bash
# System packages the integration tests need: a Docker engine + registry (and debootstrap to make a
# base image offline), headless Chromium, and the Azurite blob emulator (npm, installed into ./node_modules).
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(docker.io docker-registry debootstrap chromium)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/azurite-blob ]; then
  echo "installing azurite (npm)"
  npm install --no-audit --no-fund --silent azurite@3.35 >/dev/null
fi
echo "system dependencies ready"
