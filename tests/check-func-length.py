#!/usr/bin/env python3
"""tests/check-func-length.py: no function in server/**/*.c (tests excluded) is
longer than --limit lines (default 80, the issue's "about 80 lines"), counted from the first line of its
signature to its closing brace, unless its opening comment (the comment block
right above it) or the line just before it says "long: <reason>", or the
allow-list (tests/func-length-allow.txt: "path function  # note") names it.

Prints one line per long function, then "N passed, M failed" (tests/counts.sh):
one pass per clean file and per self-test, one failure per long function that
has no reason. Allow-list entries that no longer match a long function are
reported as stale (not a failure: another change may have split it first).

Functions are found by layout, as kvd's style writes them: a definition starts
at column 0 with a line holding "(" that is not a declaration, a comment, a
preprocessor line or an initializer, its "{" ends the signature, and a "}" at
column 0 closes it. This is a lint, not a C parser.

  --limit N      the line limit (default 80)
  --list         print every function over the limit, reasons or not, and exit 0
  files ...      check these instead of server/**/*.c
"""
import glob
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOW = os.path.join(ROOT, "tests", "func-length-allow.txt")
NAME_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def functions(lines):
    """Yields (name, first_line, last_line, has_reason) per function (1-based)."""
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if (not line or line[0] in " \t#/*}" or "(" not in line or
                "=" in line.split("(")[0] or line.startswith("typedef")):
            i += 1
            continue
        # the signature runs until a line ending in "{" (definition) or ";"
        j = i
        while j < n and not lines[j].rstrip().endswith(("{", ";")) and j - i < 20:
            j += 1
        if j >= n or not lines[j].rstrip().endswith("{"):
            i = j + 1
            continue
        m = NAME_RE.search(line.split("(")[0] + "(")
        name = m.group(1) if m else "?"
        k = j + 1
        while k < n and lines[k].rstrip() != "}":
            k += 1
        yield name, i + 1, k + 1, reason_above(lines, i)
        i = k + 1


def reason_above(lines, i):
    """True if the comment block right above line i, or the line before it, says long:."""
    k = i - 1
    if k >= 0 and "long:" in lines[k]:
        return True
    while k >= 0 and lines[k].lstrip().startswith(("/*", "*", "//")):
        if "long:" in lines[k]:
            return True
        k -= 1
    return False


def load_allow():
    allow = set()
    if os.path.exists(ALLOW):
        for raw in open(ALLOW):
            entry = raw.split("#", 1)[0].split()
            if len(entry) >= 2:
                allow.add((entry[0], entry[1]))
    return allow


def check(paths, limit, allow, out):
    """Returns (passes, failures, allow entries used)."""
    passes = fails = 0
    used = set()
    for path in paths:
        rel = os.path.relpath(path, ROOT)
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
        bad = 0
        for name, first, last, reason in functions(lines):
            length = last - first + 1
            if length <= limit or reason:
                continue
            if (rel, name) in allow:
                used.add((rel, name))
                out.append(f"allowed {rel}:{first} {name}: {length} lines (allow-list)")
                continue
            out.append(f"FAIL {rel}:{first} {name}: {length} lines > {limit}, "
                       f"no 'long: <reason>' comment")
            bad += 1
        if bad:
            fails += bad
        else:
            passes += 1
    return passes, fails, used


def self_test(limit):
    """The check must fail on a long function and pass with a reason."""
    body = "    x++;\n" * limit
    cases = [
        ("int f(int x) {\n" + body + "    return x;\n}\n", 1, "long function fails"),
        ("/* f: long: a table */\nint f(int x) {\n" + body + "    return x;\n}\n", 0,
         "long: in the opening comment passes"),
        ("int f(int x) {\n" + "    x++;\n" * (limit - 3) + "    return x;\n}\n", 0,
         "a function of exactly the limit passes"),
        ("static int\ng(int a,\n  int b) {\n" + body + "}\nint h(void);\n", 1,
         "a multi-line signature is found"),
    ]
    passes = fails = 0
    for text, want, what in cases:
        with tempfile.NamedTemporaryFile("w", suffix=".c", delete=False) as fp:
            fp.write(text)
        try:
            _, f, _ = check([fp.name], limit, set(), [])
        finally:
            os.unlink(fp.name)
        if (f > 0) == (want > 0):
            passes += 1
        else:
            fails += 1
            print(f"FAIL self-test: {what}")
    return passes, fails


def main(argv):
    limit, list_only, paths = 80, False, []
    i = 0
    while i < len(argv):
        if argv[i] == "--limit":
            limit = int(argv[i + 1])
            i += 2
            continue
        if argv[i] == "--list":
            list_only = True
        else:
            paths.append(os.path.abspath(argv[i]))
        i += 1
    if not paths:
        paths = sorted(p for p in glob.glob(os.path.join(ROOT, "server", "**", "*.c"),
                                            recursive=True)
                       if not p.endswith("_test.c"))
    if list_only:
        for path in paths:
            lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
            for name, first, last, reason in functions(lines):
                if last - first + 1 > limit:
                    print(f"{os.path.relpath(path, ROOT)}:{first} {name} "
                          f"{last - first + 1}{' (long: reason)' if reason else ''}")
        return 0
    allow = load_allow()
    out = []
    p, f, used = check(paths, limit, allow, out)
    sp, sf = self_test(limit)
    for line in out:
        print(line)
    for rel, name in sorted(allow - used):
        print(f"stale allow-list entry (no longer long, or gone): {rel} {name}")
    print(f"{p + sp} passed, {f + sf} failed")
    return 1 if f + sf else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
