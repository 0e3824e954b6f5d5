#!/usr/bin/env bash
# certs.sh DIR: test certificates for TLS tests, made with openssl (EC P-256, valid 10 years).
#
#   ca.pem, ca-key.pem               the test CA
#   server.pem, server-key.pem       server cert signed by the CA: SAN IP:127.0.0.1, DNS:localhost,
#                                    serverAuth (etcd's --cert-file/--key-file)
#   client.pem, client-key.pem       client cert signed by the CA, clientAuth (CN=drd-client)
#   other-ca.pem, other-ca-key.pem   a second, unrelated CA: for "wrong CA" tests
#   other-client.pem, other-client-key.pem   a client cert signed by the other CA
#   other-name.pem, other-name-key.pem       server cert signed by the test CA for another name
#                                    only (SAN DNS:other.example): for "certificate for another
#                                    name" tests when dialling 127.0.0.1
#
# Keys are mode 0600. Never use these outside tests.
set -euo pipefail

dir=${1:?usage: certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # NAME CN
    key "$1-key.pem"
    openssl req -new -x509 -sha256 -days 3650 -key "$1-key.pem" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem"
}

leaf() {  # NAME CA CN EXTENSIONS
    key "$1-key.pem"
    openssl req -new -sha256 -key "$1-key.pem" -subj "/CN=$3" -out "$1.csr"
    printf '%s\n' "$4" >"$1.ext"
    openssl x509 -req -sha256 -days 3650 -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" \
        -CAcreateserial -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext" "$2.srl"
}

ca ca drd-test-ca
ca other-ca drd-other-test-ca
leaf server ca localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
leaf other-name ca other.example "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:other.example"
leaf client ca drd-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
leaf other-client other-ca drd-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

chmod 0600 ./*-key.pem
chmod 0644 ca.pem other-ca.pem server.pem client.pem other-client.pem other-name.pem
