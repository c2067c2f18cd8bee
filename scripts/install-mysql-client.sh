#!/usr/bin/env bash
# Debian's default-libmysqlclient-dev and pkg-config (apt-get), when pkg-config
# finds no MySQL/MariaDB client library: mysqlclient (Django's MySQL driver)
# builds against them. Used by scripts/test.sh and bench/big-table.
set -uo pipefail
if pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null; then
    echo "present: $(pkg-config --modversion mysqlclient 2>/dev/null || pkg-config --modversion libmariadb)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
echo "installing default-libmysqlclient-dev and pkg-config with apt-get"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 default-libmysqlclient-dev pkg-config >/dev/null \
|| { "${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null \
     && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=600 default-libmysqlclient-dev pkg-config >/dev/null; } \
|| { echo "installing the MySQL client library FAILED"; exit 1; }
