#!/usr/bin/env python3
"""
t/callgraph.py: which src/ files call (or point at) which, from the
objects of a build: a symbol one object leaves undefined and another
defines is an edge between their files, whether it is called or stored
in a table (tw_classes[], routes[]).  Prints the edges, then every
cycle (a strongly connected set of files); exit 1 if there is one, so
"make check" fails on a cycle (architecture.md §16: no file calls back
up into one that calls it).

	t/callgraph.py [BUILDDIR]   # make check: $top_builddir
	dev/callgraph [BUILDDIR]    # default: build/werror, else build/mine

The build must be current: run make there first.
"""

import collections
import glob
import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def objects(build):
    """{file.c: object} for the worker's and telehookctl's objects; an
    object whose source is no longer in src/ (left by a build from
    before a rename) is not the code's, and is left out."""
    src = os.path.join(os.environ.get("top_srcdir") or TOP, "src")
    out = {}
    for o in glob.glob(os.path.join(build, "src", "*.o")):
        name = re.sub(r"^telehookctl-", "", os.path.basename(o))
        if os.path.exists(os.path.join(src, name[:-2] + ".c")):
            out[name[:-2] + ".c"] = o
    return out


def graph(objs):
    defs, uses = {}, collections.defaultdict(set)
    for f, o in objs.items():
        nm = subprocess.run(["nm", o], capture_output=True, text=True,
                            check=True).stdout
        for line in nm.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBR":
                defs[p[2]] = f
            elif len(p) == 2 and p[0] == "U":
                uses[f].add(p[1])
    edges = collections.defaultdict(set)
    for f, syms in uses.items():
        for s in syms:
            if s in defs and defs[s] != f:
                edges[f].add(defs[s])
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of more than one file."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) > 1:
        build = sys.argv[1]
    elif os.environ.get("top_builddir"):
        build = os.environ["top_builddir"]
        if not glob.glob(os.path.join(build, "src", "*.o")):
            print("callgraph: no objects in %s: skipped" % build)
            return 77
    else:
        build = next((os.path.join(TOP, "build", b) for b in
                      ("werror", "mine") if glob.glob(os.path.join(
                          TOP, "build", b, "src", "*.o"))), None)
    if build is None or not glob.glob(os.path.join(build, "src", "*.o")):
        sys.exit("callgraph: no objects; build first (make)")
    edges = graph(objects(build))
    for f in sorted(edges):
        print("%s -> %s" % (f, " ".join(sorted(edges[f]))))
    cyc = cycles(edges)
    for c in cyc:
        print("cycle: " + " ".join(c))
    print("callgraph: %d files, %d cycles" % (
        len(set(edges) | {w for ws in edges.values() for w in ws}),
        len(cyc)))
    return 1 if cyc else 0


if __name__ == "__main__":
    sys.exit(main())
