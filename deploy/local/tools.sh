#!/usr/bin/env bash
# The command-line clients the tests and runbooks use as independent readers: kcat (Kafka),
# promtool (from Debian's prometheus package) and chromium (headless, for the status-page
# test). Installed only when missing.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

command -v kcat >/dev/null || apt_install kcat
command -v promtool >/dev/null || apt_install prometheus
command -v chromium >/dev/null || apt_install chromium
# Offline checks of the deploy files (tests/deploy_*_test.ts): `kubectl kustomize` renders
# deploy/k8s (Debian's kubectl 1.20 embeds kustomize 2, which the overlays are written for;
# a newer kubectl already on the PATH is used as it is) and `docker-compose config` checks
# docker-compose.yml (no Docker engine needed).
command -v kubectl >/dev/null || apt_install kubernetes-client
command -v docker-compose >/dev/null || apt_install docker-compose
