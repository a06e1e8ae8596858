#!/usr/bin/env bash
# The command-line clients the tests and runbooks use as independent readers: kcat (Kafka)
# and promtool (from Debian's prometheus package). Installed only when missing.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

command -v kcat >/dev/null || apt_install kcat
command -v promtool >/dev/null || apt_install prometheus
