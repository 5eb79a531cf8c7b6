#!/bin/sh
# pdbridge installer for lab machines: one command, then everything works from Pd's own menus.
#   install/install.sh               install for this user (no root needed when Pd is installed)
#   install/install.sh --uninstall   remove everything it added, and nothing else
#   sudo install/install.sh --system only the system packages (Pd with its GUI and extras)
#   install/install.sh --help        the other options (--gpu cpu|cuda, --prefix, --no-doctor)
# Re-running is safe and fast: each step that is already done is skipped. What it does and why:
# install/installer.py and docs/quickstart.md.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
for python in python3 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8; do
    if command -v "$python" >/dev/null 2>&1 &&
       "$python" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
        exec "$python" "$here/installer.py" "$@"
    fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv
    exec python3 "$here/installer.py" "$@"
fi
echo "install.sh: no Python 3 (3.8 or newer) found; ask an admin for: sudo apt-get install python3 python3-venv" >&2
exit 1
