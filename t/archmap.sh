#!/bin/sh
# archmap.sh: docs/architecture.md is the map of the code.  Every
# src/*.c is named in §16 (who calls whom), and every "architecture.md
# §N" a source file cites is a section of it.  Fails naming what is
# missing.
srcdir=${top_srcdir:-$(dirname "$0")/..}
doc=$srcdir/docs/architecture.md
fail=0

layers=$(sed -n '/^## 16\./,/^## 17\./p' "$doc")
for f in "$srcdir"/src/*.c; do
	b=$(basename "$f")
	printf '%s\n' "$layers" | grep -q "\b$b\b" ||
	    { echo "archmap: $b is not in architecture.md §16"; fail=1; }
done
for n in $(grep -ho 'architecture\.md §[0-9]*' "$srcdir"/src/*.[ch] |
    sed 's/.*§//' | sort -un); do
	grep -q "^## $n\. " "$doc" ||
	    { echo "archmap: architecture.md §$n is cited in src/ but" \
	    "is not a section"; fail=1; }
done
[ $fail -eq 0 ] && echo "archmap: every src file mapped, every § cited exists"
exit $fail
