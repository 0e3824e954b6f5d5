#!/bin/sh
# Checks the module dependency graph: dependencies point down only, the domain folders never
# include each other, and only a wrapper includes its library's headers.
#   drd/app -> replicate (and replicate/volume), snapshot, restore -> policies -> drd/lib/* -> drd/core
# OpenSSL has two wrappers: drd/lib/crypto (libcrypto: hashes, keys, encryption) and
# drd/lib/tlsnet (libssl: TLS connections).
# usage: check-layers.sh REPO_ROOT
set -eu
cd "$1"
fail=0
bad() { echo "layer violation: $*"; fail=1; }
for f in $(git ls-files 'drd/*.c' 'drd/*.h' 'replicate/*.c' 'replicate/*.h' 'snapshot/*.[ch]' 'restore/*.[ch]' 'policies/*.[ch]' 2>/dev/null); do
  mod=$(dirname "$f")
  grep -o '#include [<"][^>"]*[>"]' "$f" | sed 's/#include [<"]\(.*\)[>"]/\1/' | while read -r inc; do
    case "$mod" in
      drd/core) case "$inc" in drd/*|replicate/*|snapshot/*|restore/*|policies/*) [ "${inc#drd/core/}" != "$inc" ] || bad "$f includes $inc";; esac ;;
      drd/lib/*) case "$inc" in replicate/*|snapshot/*|restore/*|policies/*|drd/app/*) bad "$f includes $inc";; esac ;;
      replicate|replicate/*|snapshot|restore|policies)
        case "$inc" in
          drd/app/*) bad "$f includes $inc" ;;
          policies/*) [ "$mod" != policies ] || [ "${inc%%/*}" = "$mod" ] ;;
          replicate/*|snapshot/*|restore/*) [ "${inc%%/*}" = "${mod%%/*}" ] || bad "$f includes $inc" ;;
        esac ;;
    esac
    case "$inc" in
      grpc/*|etcd/*) case "$mod" in drd/lib/etcd) ;; *) bad "$f includes $inc (only drd/lib/etcd may)";; esac ;;
      openssl/*) case "$mod" in drd/lib/crypto|drd/lib/tlsnet) ;; *) bad "$f includes $inc (only drd/lib/crypto and drd/lib/tlsnet may)";; esac ;;
      zstd.h) case "$mod" in drd/lib/zstd) ;; *) bad "$f includes $inc (only drd/lib/zstd may)";; esac ;;
      curl/*|libxml/*) case "$mod" in drd/lib/objstore) ;; *) bad "$f includes $inc (only drd/lib/objstore may)";; esac ;;
      archive.h|archive_entry.h) case "$mod" in drd/lib/archive) ;; *) bad "$f includes $inc (only drd/lib/archive may)";; esac ;;
      jansson.h) case "$mod" in drd/lib/json) ;; *) bad "$f includes $inc (only drd/lib/json may)";; esac ;;
      sqlite3.h) case "$mod" in drd/lib/catalog) ;; *) bad "$f includes $inc (only drd/lib/catalog may)";; esac ;;
      librsync.h) case "$mod" in drd/lib/delta) ;; *) bad "$f includes $inc (only drd/lib/delta may)";; esac ;;
      yaml.h) case "$mod" in drd/lib/yaml) ;; *) bad "$f includes $inc (only drd/lib/yaml may)";; esac ;;
      microhttpd.h) case "$mod" in drd/lib/http) ;; *) bad "$f includes $inc (only drd/lib/http may)";; esac ;;
    esac
  done
done | tee /tmp/.drd-layers.$$
if [ -s /tmp/.drd-layers.$$ ]; then rm -f /tmp/.drd-layers.$$; exit 1; fi
rm -f /tmp/.drd-layers.$$
echo "layers ok"
