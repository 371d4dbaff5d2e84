#!/bin/sh
# need-check.sh: stands in for the unit tests when configure found no
# Check, so "make check" fails instead of passing with tests missing.
echo "the Check unit test framework was not found (Debian: check);"
echo "install it and run configure again"
exit 1
