"""Time a command run against an SQLite database while another process
writes to that database, as a live site would, and report how long those
writes waited and how many failed.

    python bench/writes_during.py --db /abs/path/big.db -- keyroll purge --database sqlite:///abs/path/big.db

The writer is Python's ``sqlite3`` with Django's default lock timeout (5 s):
every 50 ms it inserts one row into a table of its own (``writes_during_probe``,
created if missing) in its own transaction. It prints one JSON line: the
command's wall time and exit status, then the writes done, the writes that
failed ("database is locked"), and the median, 99th percentile and longest
wait of those that succeeded, in milliseconds.
"""

import argparse
import json
import sqlite3
import subprocess
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="the SQLite database the command works on")
    ap.add_argument("--timeout", type=float, default=5.0, help="the writer's lock timeout (s)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")

    conn = sqlite3.connect(
        args.db, timeout=args.timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute("CREATE TABLE IF NOT EXISTS writes_during_probe (at REAL)")
    waits, errors, stop = [], [0], threading.Event()

    def write():
        while not stop.is_set():
            t = time.monotonic()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO writes_during_probe VALUES (?)", (time.time(),))
                conn.execute("COMMIT")
                waits.append(time.monotonic() - t)
            except sqlite3.OperationalError:
                errors[0] += 1
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass
            stop.wait(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    started = time.monotonic()
    status = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    wall = time.monotonic() - started
    stop.set()
    writer.join()
    waits.sort()
    ms = lambda q: round(waits[min(len(waits) - 1, int(len(waits) * q))] * 1000) if waits else None
    print(json.dumps({
        "command_s": round(wall, 2), "status": status, "writes": len(waits),
        "failed": errors[0], "wait_p50_ms": ms(0.5), "wait_p99_ms": ms(0.99),
        "wait_max_ms": round(waits[-1] * 1000) if waits else None,
    }))


if __name__ == "__main__":
    main()
