#!/usr/bin/env bash
# The command-line clients the tests and runbooks use as independent readers: kcat (Kafka),
# promtool (from Debian's prometheus package) and chromium (headless, for the status-page
# test). Installed only when missing.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

command -v kcat >/dev/null || apt_install kcat
command -v promtool >/dev/null || apt_install prometheus
command -v chromium >/dev/null || apt_install chromium
