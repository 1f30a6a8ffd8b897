#!/bin/sh
# `make run`: initialises the embedded default instance on first use (the
# recovery key and the first administrator's password are printed then,
# once), then runs the server in the foreground until Ctrl-C.
set -eu
bin=$1
dir=$2
if [ ! -f "$dir/master.sqlite" ]; then
  "$bin" --data-dir "$dir" init
  echo
else
  echo "mailvault instance in $dir (already initialised: the admin password was shown by its first 'make run';"
  echo "set a new one with: $bin --data-dir $dir cmd SetUserPassword --userName=admin --password=...)"
fi
cat <<MSG

Starting the server (Ctrl-C stops it). Once it is up:

  Web Access:  https://127.0.0.1:8462/   (log in as admin; the certificate is self-signed: $dir/certs/server.crt)

  $bin cmd --server https://127.0.0.1:8463 --cacert $dir/certs/server.crt --user admin GetServerInfo
  curl --cacert $dir/certs/server.crt -u admin -X POST https://127.0.0.1:8463/api/get-metadata

Local commands on $dir (reading ones run beside the server):
  $bin search 'from:alice subject:report'    full-text search (see README.md)
  $bin audit                                  the audit log
MSG
exec "$bin" --data-dir "$dir" serve
