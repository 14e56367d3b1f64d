#!/usr/bin/env bash
# The Debian packages the tests need, installed when missing: PostgreSQL (the tests run initdb
# and pg_ctl on a temporary folder, so the package's own cluster is not used), Prometheus
# (started on a free port with a temporary config and storage), wrk (the serving benchmark) and
# Chromium (headless: the HTML reports are rendered and screenshotted).
#
# `make test` runs this first. As root it installs what is missing; as anyone else, with
# something missing, it stops at once and prints the one command to run. With everything
# present it does nothing (and needs no root).
set -euo pipefail

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -x /usr/bin/prometheus ] || need_apt+=(prometheus)
[ -x /usr/bin/wrk ] || need_apt+=(wrk)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ ${#need_apt[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need Debian packages that are not installed: ${need_apt[*]}." >&2
  echo "Install them (once) with:  sudo $0   (or: sudo apt-get install --no-install-recommends ${need_apt[*]})" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "The tests need ${need_apt[*]}, and this machine has no apt-get: install them with its" >&2
  echo "package manager (see docs/testing.md), then run make test again." >&2
  exit 1
fi

# Keep apt from starting the packages' own daemons. Without systemd, prometheus's postinst runs
# its init script and fails the install if that start fails (`invoke-rc.d … || exit 1`); where it
# succeeds, a stray Prometheus on :9090 or PostgreSQL on :5432 is left running. invoke-rc.d and
# deb-systemd-invoke ask policy-rc.d first: exit 101 means "do not start". Docker's Debian images
# already ship such a policy; it is left as it is.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "Installing the Debian packages the tests need: ${need_apt[*]}"
apt-get update -qq
# No recommends: prometheus would bring prometheus-node-exporter, another daemon.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
