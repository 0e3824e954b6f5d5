#!/bin/sh
# Strip gogoproto and google.api annotations from an etcd .proto so protoc-c can compile it.
# usage: strip-proto.sh IN OUT   (all stripped options are file-level or per-rpc http options)
set -eu
mkdir -p "$(dirname "$2")"
awk '
  /^import "gogoproto\/gogo.proto";/ { next }
  /^import "google\/api\/annotations.proto";/ { next }
  /^[ \t]*option \(gogoproto\./ { next }
  /option \(google\.api\.http\) = \{/ { skip = 1; depth = 0 }
  skip {
    n = gsub(/\{/, "{"); m = gsub(/\}/, "}"); depth += n - m
    if (depth <= 0) skip = 0
    next
  }
  { print }
' "$1" > "$2.tmp"
mv "$2.tmp" "$2"
