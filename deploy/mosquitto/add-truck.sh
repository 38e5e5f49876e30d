#!/bin/sh
# Give a truck its own MQTT account: add-truck.sh [-f PASSWORD_FILE] [-H BROKER_HOST] TRUCK_ID
#
# Creates (or replaces) the truck's entry in Mosquitto's password file with a fresh random
# password and prints, once, the --broker URL for that truck's `trivue edge` configuration.
# The ACL (deploy/mosquitto/acl) then confines the truck to trivue/v1/<TRUCK_ID>/...
# Reload Mosquitto afterwards (SIGHUP: `systemctl reload mosquitto`) for the change to apply.
set -eu

passwd_file=/etc/mosquitto/trivue/passwd
host=broker.example.org

usage() {
    echo "usage: $0 [-f PASSWORD_FILE] [-H BROKER_HOST] TRUCK_ID" >&2
    exit 2
}

while getopts f:H:h opt; do
    case $opt in
        f) passwd_file=$OPTARG ;;
        H) host=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
truck=$1

# The same rule as LiftEvent.truck_id, minus ids that start with a dot ("." and ".." would be
# path tricks wherever the id names a folder). MQTT wildcards (+ #) and "/" are refused too: in
# the ACL's %u they would widen the truck's rights.
if ! printf '%s' "$truck" | grep -Eq '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$'; then
    echo "error: truck id '$truck' must be 1 to 64 characters among A-Z a-z 0-9 _ . - and not start with a dot" >&2
    exit 2
fi
case $truck in
    trivue-server*) echo "error: '$truck' is reserved for server accounts" >&2; exit 2 ;;
esac
command -v mosquitto_passwd >/dev/null || { echo "error: mosquitto_passwd not found (apt install mosquitto)" >&2; exit 2; }

# 24 random bytes, URL-safe: the password goes into an mqtts:// URL as is.
password=$(openssl rand -base64 24 | tr '+/' '-_' | tr -d '=\n')
umask 077
if [ -f "$passwd_file" ]; then
    mosquitto_passwd -b "$passwd_file" "$truck" "$password"
else
    mkdir -p "$(dirname "$passwd_file")"
    mosquitto_passwd -c -b "$passwd_file" "$truck" "$password"
fi
# Mosquitto drops root and reads the file as its own user.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown mosquitto: "$passwd_file" 2>/dev/null || true
fi

echo "truck $truck added to $passwd_file; reload Mosquitto (systemctl reload mosquitto)." >&2
echo "Its broker URL (shown once, store it in the truck's configuration only):" >&2
echo "mqtts://$truck:$password@$host:8883"
