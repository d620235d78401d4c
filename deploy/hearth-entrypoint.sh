#!/bin/sh
# Maps the image's entry points to the hearth CLI; anything else runs as given.
set -eu
role="${1:-api}"
[ "$#" -gt 0 ] && shift
case "$role" in
    api) exec hearth serve "$@" ;;
    worker) exec hearth worker "$@" ;;
    migrate) exec hearth db migrate "$@" ;;
    *) exec "$role" "$@" ;;
esac
