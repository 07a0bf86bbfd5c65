#!/bin/sh
echo "coverage is not supported: the coverage tools archive is not vendored (offline build)" >&2
exit 1
