#!/usr/bin/env python3
"""Consistency check of the two interop scripts against each other.

    python3 tests/django/selfcheck.py --python .venv/django-5.2/bin/python \\
                                      --python .venv/django-4.2/bin/python

For each Django python given (default: the one running this script), it:

1. runs make_cases.py twice and checks the output is byte-identical
   (determinism) and well-formed (schema, unique ids, key_index in range);
2. takes a sample of the cases (every (format, outcome) pair represented,
   the rest random), strips ``expect``, shuffles them (so no verdict can
   depend on the previous case), and pipes them through check_tokens.py in a
   separate process;
3. checks check_tokens.py reproduces every verdict: ok, reason, and value
   (compared as JSON text, so 1, 1.0 and true differ);
4. probes each accepted case's key_index: the same token must be refused
   ("signature") with keys[:key_index] and accepted with keys[:key_index+1].

Needs no Django itself. Exits 1 on any disagreement, 2 if a script fails.
"""

import argparse
import collections
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_CASES = os.path.join(HERE, "make_cases.py")
CHECK_TOKENS = os.path.join(HERE, "check_tokens.py")

FORMATS = {"salted_hmac", "signer", "timestamp", "object", "db_session", "cookie_session",
           "auth_hash", "reset_token", "signed_cookie", "messages"}
REASONS = {"signature", "expired", "malformed"}
INPUT_FIELDS = ("id", "format", "params", "keys", "token", "now")


def run(cmd, stdin=None):
    proc = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        raise SystemExit("selfcheck: %s exited %d" % (" ".join(cmd), proc.returncode))
    return proc.stdout, proc.stderr.decode("utf-8", "replace")


def outcome(expect_or_result):
    return "ok" if expect_or_result["ok"] else expect_or_result["reason"]


def schema_errors(case):
    """Problems with one make_cases line, as strings."""
    errs = []
    if set(case) != set(INPUT_FIELDS) | {"expect"}:
        errs.append("fields %s" % sorted(case))
        return errs
    if case["format"] not in FORMATS:
        errs.append("format %r" % case["format"])
    if not isinstance(case["keys"], list) or not case["keys"]:
        errs.append("keys")
    if not isinstance(case["now"], float):
        errs.append("now is not a float")
    exp = case["expect"]
    if exp.get("ok") is True:
        if set(exp) != {"ok", "value", "key_index"}:
            errs.append("expect fields %s" % sorted(exp))
        elif not (isinstance(exp["key_index"], int) and 0 <= exp["key_index"] < len(case["keys"])):
            errs.append("key_index %r" % exp["key_index"])
        elif case["keys"].index(case["keys"][exp["key_index"]]) != exp["key_index"]:
            errs.append("key_index is not the first equal key")
    elif exp.get("ok") is False:
        if set(exp) != {"ok", "reason"} or exp["reason"] not in REASONS:
            errs.append("expect %r" % exp)
    else:
        errs.append("expect.ok %r" % exp.get("ok"))
    return errs


def sample(cases, n, rng):
    """Every (format, outcome) stratum gets up to 25 cases; random ones fill up to n."""
    strata = collections.defaultdict(list)
    for c in cases:
        strata[(c["format"], outcome(c["expect"]))].append(c)
    picked = {}
    for key in sorted(strata):
        for c in rng.sample(strata[key], min(25, len(strata[key]))):
            picked[c["id"]] = c
    rest = [c for c in cases if c["id"] not in picked]
    for c in rng.sample(rest, max(0, min(len(rest), n - len(picked)))):
        picked[c["id"]] = c
    return list(picked.values())


def probes(case):
    """Key-ring probes for an accepted case: (probe case, expected outcome)."""
    if not case["expect"]["ok"] or case["format"] == "salted_hmac":
        return []
    k = case["expect"]["key_index"]
    base = {f: case[f] for f in INPUT_FIELDS}
    out = [(dict(base, id=case["id"] + "#upto", keys=case["keys"][: k + 1]), "ok")]
    if k > 0:
        out.append((dict(base, id=case["id"] + "#without", keys=case["keys"][:k]), "signature"))
    return out


def check_python(python, n, seed, verbose):
    name = os.path.basename(os.path.dirname(os.path.dirname(python))) or python
    out1, summary = run([python, MAKE_CASES])
    out2, _ = run([python, MAKE_CASES])
    problems = []
    if out1 != out2:
        problems.append("make_cases.py output differs between two runs")
    # Split on "\n" only: str.splitlines() also splits at U+2028, U+0085 ...
    cases = [json.loads(line) for line in out1.decode("utf-8").split("\n") if line]
    ids = collections.Counter(c["id"] for c in cases)
    problems += ["duplicate id %s" % i for i, k in ids.items() if k > 1]
    for c in cases:
        problems += ["%s: %s" % (c.get("id"), e) for e in schema_errors(c)]
    missing = FORMATS - {c["format"] for c in cases}
    if missing:
        problems.append("formats never generated: %s" % sorted(missing))

    rng = random.Random(seed)
    chosen = sample(cases, n, rng)
    expected = {}
    lines = []
    for c in chosen:
        expected[c["id"]] = c
        lines.append({f: c[f] for f in INPUT_FIELDS})
        for probe, want in probes(c):
            expected[probe["id"]] = want
            lines.append(probe)
    rng.shuffle(lines)
    stdin = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
    out, _ = run([python, CHECK_TOKENS], stdin)
    results = [json.loads(line) for line in out.decode("utf-8").split("\n") if line]
    if [r["id"] for r in results] != [x["id"] for x in lines]:
        problems.append("check_tokens.py output ids are not the input ids in order")

    n_probes = 0
    for r in results:
        want = expected.get(r["id"])
        if set(r) != {"id", "ok", "value", "reason"}:
            problems.append("%s: result fields %s" % (r["id"], sorted(r)))
        elif isinstance(want, str):  # a key-ring probe
            n_probes += 1
            if outcome(r) != want:
                problems.append("%s: probe wanted %s, Django says %s" % (r["id"], want, outcome(r)))
        else:
            exp = want["expect"]
            if outcome(r) != outcome(exp):
                problems.append("%s: make_cases says %s, check_tokens says %s" % (r["id"], outcome(exp), outcome(r)))
                continue
            if not r["ok"]:
                if r["value"] is not None:
                    problems.append("%s: value on a failure" % r["id"])
                continue
            got = r["value"]
            wanted = want["token"] if want["format"] == "salted_hmac" else exp["value"]
            # Compare as JSON text: 1, 1.0 and true are equal in Python, not here.
            if json.dumps(got, sort_keys=False) != json.dumps(wanted, sort_keys=False):
                problems.append("%s: value %.80r != %.80r" % (r["id"], got, wanted))

    print("selfcheck %s: %d cases generated (deterministic: %s); checked %d + %d key-ring probes; %d problems"
          % (name, len(cases), out1 == out2, len(chosen), n_probes, len(problems)))
    if verbose:
        sys.stdout.write("  " + summary)
    for p in problems[:30]:
        print("  " + p)
    return not problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append",
                        help="a Django venv's python (repeatable; default: this interpreter)")
    parser.add_argument("--sample", type=int, default=3000, help="cases to check (default %(default)s)")
    parser.add_argument("--all", action="store_true", help="check every case")
    parser.add_argument("--seed", default="selfcheck", help="sampling seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="show make_cases.py's summary")
    args = parser.parse_args()
    pythons = args.python or [sys.executable]
    n = 10**9 if args.all else args.sample
    ok = all([check_python(p, n, args.seed, args.verbose) for p in pythons])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
