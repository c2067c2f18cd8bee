#!/usr/bin/env bash
# Make (once) the pinned Django venv the interop tests run against.
#
#   tests/django/setup-venv.sh 5.2    ->  <repo>/.venv/django-5.2  (django==5.2.19)
#   tests/django/setup-venv.sh 4.2    ->  <repo>/.venv/django-4.2  (django==4.2.30)
#
# Prints the venv's python as the last line of stdout; everything else goes to
# stderr. If the venv is already there with the pinned Django, it does nothing.
#
# Safe without locks: the venv is built in a temporary directory beside the
# final one and renamed into place only when complete, so a killed run leaves
# at most a stray .tmp directory (swept by later runs), never a half venv at
# the final path; concurrent runs each build their own, the first rename wins.
# Needs only python3 (with venv; ensurepip or pip) and access to PyPI (pip
# honours PIP_INDEX_URL etc.).
set -euo pipefail

usage() { echo "usage: $0 5.2|4.2" >&2; exit 2; }
[ $# -eq 1 ] || usage
series=$1
case "$series" in
  5.2) pin=5.2.19 ;;
  4.2) pin=4.2.30 ;;
  *) usage ;;
esac

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
venvs="$root/.venv"
venv="$venvs/django-$series"
py="$venv/bin/python"

has_pin() {  # has_pin PYTHON: does it import exactly the pinned Django?
  [ -x "$1" ] && "$1" -c "import sys, django; sys.exit(django.__version__ != '$pin')" 2>/dev/null
}

if has_pin "$py"; then
  echo "$py"
  exit 0
fi

host_python=${PYTHON:-python3}
mkdir -p "$venvs"
# Sweep temp dirs left by killed runs (older than a day, so not a live build).
find "$venvs" -maxdepth 1 -name ".django-$series.tmp.*" -mmin +1440 -exec rm -rf {} + 2>/dev/null || true

tmp=$(mktemp -d "$venvs/.django-$series.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "setup-venv: building Django $pin venv in $tmp" >&2
if "$host_python" -m venv --prompt "django-$series" "$tmp" >&2; then
  "$tmp/bin/python" -m pip install --disable-pip-version-check --no-input -q "django==$pin" >&2
else
  # No ensurepip (e.g. Debian without python3-venv): a bare venv, filled by
  # the host's pip (pip >= 22.3 for --python).
  echo "setup-venv: venv with pip failed; trying --without-pip + host pip" >&2
  rm -rf "$tmp" && mkdir "$tmp"
  "$host_python" -m venv --without-pip --prompt "django-$series" "$tmp" >&2
  "$host_python" -m pip --python "$tmp/bin/python" install \
    --disable-pip-version-check --no-input -q "django==$pin" >&2
fi
has_pin "$tmp/bin/python" || { echo "setup-venv: django $pin did not install" >&2; exit 1; }

# venv writes its own absolute path into bin/ scripts (pip's shebang, activate)
# and pyvenv.cfg; point them at the final path. bin/python itself is a symlink
# and finds its venv relative to itself, so it works either way.
"$tmp/bin/python" - "$tmp" "$venv" <<'EOF'
import os, sys
old, new = (os.fsencode(p) for p in sys.argv[1:3])
paths = [os.path.join(sys.argv[1], "pyvenv.cfg")]
bindir = os.path.join(sys.argv[1], "bin")
paths += [os.path.join(bindir, f) for f in os.listdir(bindir)]
for path in paths:
    if os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        data = f.read()
    if old in data and b"\0" not in data:
        with open(path, "wb") as f:
            f.write(data.replace(old, new))
EOF

# rename(2): atomic, and refuses to replace a non-empty directory.
rename() { "$host_python" -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$1" "$2" 2>/dev/null; }

# Move an existing venv with the wrong version out of the way, then rename.
if [ -e "$venv" ] && ! has_pin "$py"; then
  stale="$venvs/.django-$series.tmp.stale.$$"
  rename "$venv" "$stale" && rm -rf "$stale" || true
fi
chmod 755 "$tmp"
if ! rename "$tmp" "$venv"; then
  # Lost a race: another run put a venv there first. Use it if it is good.
  has_pin "$py" || { echo "setup-venv: could not install $venv" >&2; exit 1; }
fi
trap - EXIT
rm -rf "$tmp"
echo "setup-venv: ready: $venv" >&2
echo "$py"
