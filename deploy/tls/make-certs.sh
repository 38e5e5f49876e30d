#!/bin/sh
# A private certificate authority and a broker certificate for Mosquitto's TLS listener.
#
#   make-certs.sh OUT_DIR BROKER_NAME [EXTRA_SAN ...]
#   e.g. make-certs.sh /etc/mosquitto/trivue/tls mqtt.trivue.example.fr IP:10.0.0.5
#
# Writes OUT_DIR/ca.crt (install it on every truck: `--broker mqtts://...` trusts it through the
# edge's TLS settings), ca.key (keep it offline: it signs broker certificates), server.crt and
# server.key (Mosquitto's certfile and keyfile). An existing CA in OUT_DIR is reused, so running
# the script again renews only the broker certificate. ECDSA P-256 keys: small and fast on trucks.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 OUT_DIR BROKER_NAME [EXTRA_SAN ...] (EXTRA_SAN: DNS:name or IP:addr)" >&2; exit 2; }
out=$1
name=$2
shift 2
command -v openssl >/dev/null || { echo "error: openssl not found" >&2; exit 2; }

san="DNS:$name"
for extra in "$@"; do
    case $extra in
        DNS:*|IP:*) san="$san,$extra" ;;
        *) echo "error: extra name '$extra' must start with DNS: or IP:" >&2; exit 2 ;;
    esac
done

umask 077
mkdir -p "$out"
# The folder open to reach (its keys stay 0600): Mosquitto 2 drops root to its own user before it
# reads the CA, certificate and key, and umask 077 left the folder closed to that user.
chmod 755 "$out"
if [ ! -f "$out/ca.key" ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 3650 \
        -subj "/O=Trivue/CN=Trivue private CA" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
    echo "new CA: $out/ca.crt (valid 10 years)" >&2
fi

ext=$(mktemp)
trap 'rm -f "$ext" "$out/server.csr"' EXIT
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" > "$ext"
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
    -subj "/O=Trivue/CN=$name" -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
# 397 days: the longest lifetime clients accept for a server certificate; renew yearly.
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days 397 -sha256 -extfile "$ext" -out "$out/server.crt" 2>/dev/null
chmod 644 "$out/ca.crt" "$out/server.crt"
# Mosquitto drops root before it reads its key.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown mosquitto: "$out/server.key" 2>/dev/null || true
fi
echo "broker certificate: $out/server.crt for $san (valid 397 days)" >&2
