#!/bin/sh
# `make run`: initialises the embedded default instance on first use and says
# how to reach it.  (The server comes in a later issue; until then the
# instance is used through the mailvault command.)
set -eu
bin=$1
dir=$2
if [ ! -f "$dir/master.sqlite" ]; then
  "$bin" --data-dir "$dir" init
  echo
else
  echo "mailvault instance in $dir (already initialised)"
  "$bin" --data-dir "$dir" stats
  echo
fi
cat <<MSG
mailvault is ready. The data directory is $dir; commands use it by default
from this directory (or set MAILVAULT_DATA_DIR=$dir).

  $bin import PATH --archive john.doe        EML file or directory, mbox or Maildir
  $bin search 'from:alice subject:report'    full-text search (see README.md)
  $bin show 1:42                              a message, byte-exact
  $bin stats                                  counts and disk use
  $bin shell                                  the management shell (Administration API functions)
  $bin cmd VerifyStore --id=1                 one function; 'cmd --list' lists them all
MSG
