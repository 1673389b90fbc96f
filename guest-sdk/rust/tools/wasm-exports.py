#!/usr/bin/env python3
"""Print the imports and exports of a .wasm module (no dependencies).

    wasm-exports.py app.wasm [--require NAME]...

With --require, exit 1 unless every NAME is an exported function (for
example `--require __troupe_entry` for a program built with the Rust SDK).
"""
import sys

def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1
        r |= (x & 0x7F) << s; s += 7
        if x < 0x80:
            return r, i

def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode(), i + n

def main(path, required=()):
    found = set()
    b = open(path, "rb").read()
    assert b[:4] == b"\0asm", "not wasm"
    i = 8
    kinds = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
    while i < len(b):
        sid = b[i]; i += 1
        size, i = leb(b, i)
        end = i + size
        if sid == 2:  # imports
            n, j = leb(b, i)
            for _ in range(n):
                m, j = name(b, j); f, j = name(b, j)
                k = b[j]; j += 1
                print(f"import {kinds[k]} {m}.{f}")
                if k == 0: _, j = leb(b, j)
                elif k == 1:
                    j += 1; fl, j = leb(b, j); _, j = leb(b, j)
                    if fl & 1: _, j = leb(b, j)
                elif k == 2:
                    fl, j = leb(b, j); _, j = leb(b, j)
                    if fl & 1: _, j = leb(b, j)
                elif k == 3: j += 2
                else: j += 1; _, j = leb(b, j)
        elif sid == 7:  # exports
            n, j = leb(b, i)
            for _ in range(n):
                f, j = name(b, j); k = b[j]; j += 1; idx, j = leb(b, j)
                print(f"export {kinds[k]} {f}")
                if k == 0:
                    found.add(f)
        i = end
    missing = [r for r in required if r not in found]
    for r in missing:
        print(f"missing export: {r}", file=sys.stderr)
    return 1 if missing else 0

if __name__ == "__main__":
    args = sys.argv[1:]
    required = [args[i + 1] for i, a in enumerate(args) if a == "--require"]
    paths = [a for i, a in enumerate(args) if a != "--require" and (i == 0 or args[i - 1] != "--require")]
    sys.exit(max(main(p, required) for p in paths))
