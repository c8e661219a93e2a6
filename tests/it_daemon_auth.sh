#!/bin/sh
# it_daemon_auth.sh - broker authentication: a password file (the password
# read from broker.password_file) and TLS with a CA made here by openssl, a
# client certificate and hostname verification. Right credentials connect;
# wrong ones are refused with a clear log line and the daemon keeps retrying.
. tests/lib.sh
D=$(mktemp -d /tmp/it_daemon_auth.XXXXXX)
chmod 777 "$D"
BPID= ; DPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors

# broker CONF_LINES...: start mosquitto with these lines, wait for its port
broker() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    PORT=$(it_free_port)
    { echo "listener $PORT 127.0.0.1"; for l in "$@"; do echo "$l"; done; } > "$D/mosq.conf"
    mosquitto -c "$D/mosq.conf" >> "$D/mosq.log" 2>&1 & BPID=$!
    $PYTHON -c "
import socket, time, sys
for i in range(50):
    try:
        socket.create_connection(('127.0.0.1', $PORT), 0.2).close(); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)" || { echo "mosquitto did not start"; cat "$D/mosq.log"; }
}
# daemon BROKER_JSON_EXTRA: write the config and start the daemon
daemon() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $PORT, "client_id": "it-auth", "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5 $1},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"]}]}
EOC
    : > "$D/daemon.log"
    $AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
}
# expect PATTERN COUNT: wait up to 8 s for COUNT log lines matching PATTERN
expect() {
    i=0
    while [ $i -lt 80 ]; do
        [ "$(grep -c "$1" "$D/daemon.log")" -ge "${2:-1}" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}

# --- password file ------------------------------------------------------------
mosquitto_passwd -b -c "$D/passwd" anomalyd 's3cret pass' 2>/dev/null
chmod 644 "$D/passwd"
broker "allow_anonymous false" "password_file $D/passwd"
printf 's3cret pass\n' > "$D/pw.ok"
printf 'wrong\n' > "$D/pw.bad"
daemon ", \"username\": \"anomalyd\", \"password_file\": \"$D/pw.ok\""
expect "mqtt: connected to" && it_ok "password: right credentials connect" ||
    it_fail "password: right credentials connect" "$(cat "$D/daemon.log")"
daemon ", \"username\": \"anomalyd\", \"password_file\": \"$D/pw.bad\""
if expect "broker refused the connection: .*not authori[sz]ed" 2 && kill -0 "$DPID"; then
    it_ok "password: wrong one refused with a clear log line, still retrying"
    grep -m1 "refused" "$D/daemon.log" | sed 's/^/# /'
else
    it_fail "password: wrong one refused with a clear log line, still retrying" "$(cat "$D/daemon.log")"
fi
daemon ""
expect "refused the connection" 2 && it_ok "password: anonymous refused" ||
    it_fail "password: anonymous refused" "$(cat "$D/daemon.log")"

# --- TLS ----------------------------------------------------------------------------
cd "$D" || exit 1
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=it-ca"
ossl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 2 -subj "/CN=other-ca"
ossl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > srv.ext
ossl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile srv.ext
ossl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj "/CN=anomalyd"
ossl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cli.crt -days 2
ossl req -newkey rsa:2048 -nodes -keyout wrong.key -out wrong.csr -subj "/CN=wrong.example"
printf 'subjectAltName=DNS:wrong.example\n' > wrong.ext
ossl x509 -req -in wrong.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out wrong.crt -days 2 -extfile wrong.ext
chmod 644 ./*.key ./*.crt
cd - >/dev/null || exit 1
if [ ! -s "$D/srv.crt" ] || [ ! -s "$D/cli.crt" ]; then
    it_fail "openssl made the test certificates"
    exit 0
fi
broker "allow_anonymous true" "cafile $D/ca.crt" "certfile $D/srv.crt" "keyfile $D/srv.key" \
       "require_certificate true"
TLS="\"enabled\": true, \"ca_file\": \"$D/ca.crt\", \"cert_file\": \"$D/cli.crt\", \"key_file\": \"$D/cli.key\""
daemon ", \"tls\": {$TLS}"
expect "mqtt: connected to" &&
    it_ok "TLS: CA, client certificate, hostname verified: connects" ||
    it_fail "TLS: CA, client certificate, hostname verified: connects" "$(cat "$D/daemon.log") $(tail -3 "$D/mosq.log")"
daemon ", \"tls\": {\"enabled\": true, \"ca_file\": \"$D/other.crt\", \"cert_file\": \"$D/cli.crt\", \"key_file\": \"$D/cli.key\"}"
if expect "cannot connect" 2 && ! grep -q "mqtt: connected to" "$D/daemon.log" && kill -0 "$DPID"; then
    it_ok "TLS: unknown CA refused, logged, still retrying"
    grep -m1 "cannot connect" "$D/daemon.log" | sed 's/^/# /'
else
    it_fail "TLS: unknown CA refused, logged, still retrying" "$(cat "$D/daemon.log")"
fi
daemon ", \"tls\": {\"enabled\": true, \"ca_file\": \"$D/ca.crt\"}"
if expect "cannot connect" 2 && ! grep -q "mqtt: connected to" "$D/daemon.log"; then
    it_ok "TLS: no client certificate refused by the broker"
else
    it_fail "TLS: no client certificate refused by the broker" "$(cat "$D/daemon.log")"
fi
broker "allow_anonymous true" "cafile $D/ca.crt" "certfile $D/wrong.crt" "keyfile $D/wrong.key"
daemon ", \"tls\": {\"enabled\": true, \"ca_file\": \"$D/ca.crt\"}"
if expect "cannot connect" 2 && ! grep -q "mqtt: connected to" "$D/daemon.log"; then
    it_ok "TLS: certificate for another host name refused (verification on)"
else
    it_fail "TLS: certificate for another host name refused (verification on)" "$(cat "$D/daemon.log")"
fi
daemon ", \"tls\": {\"enabled\": true, \"ca_file\": \"$D/ca.crt\", \"verify_hostname\": false}"
expect "mqtt: connected to" && it_ok "TLS: verify_hostname false accepts it" ||
    it_fail "TLS: verify_hostname false accepts it" "$(cat "$D/daemon.log")"
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] && it_ok "clean stop" || it_fail "clean stop" "rc=$rc"

# TLS records holding many packets: a broker that writes several packets at
# once puts them in one record, which the TLS library decrypts whole; what
# it holds is invisible to epoll, so a reader that stopped at its
# per-wakeup bound and waited for the socket would stall (libmosquitto
# reads on while the TLS library holds data; this keeps that so). The
# fake broker (tests/fake_broker.py) sends bursts with nothing after them
# and checks the daemon counts every message within 2 s.
kill "$BPID" 2>/dev/null; wait "$BPID" 2>/dev/null; BPID=
rm -f "$D/port"
$PYTHON tests/fake_broker.py --port-file "$D/port" --messages 50 --keepalive-s 2 \
    --tls-cert "$D/srv.crt" --tls-key "$D/srv.key" > "$D/fake.out" 2>&1 & BPID=$!
i=0; while [ ! -s "$D/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
cat > "$D/ad.json" <<EOC
{"broker": {"port": $(cat "$D/port"), "client_id": "it-auth-fake", "stats_interval_s": 0.2,
            "keepalive": 5, "qos_subscribe": 0, "tls": {"enabled": true, "ca_file": "$D/ca.crt"}},
 "state_dir": null, "workers": 1,
 "detectors": [{"name": "fp", "model": "$MODEL", "topics": ["fp/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
wait "$BPID"; frc=$?; BPID=
[ $frc -eq 0 ] && it_ok "TLS: bursts of packets in shared records all counted, none stalled: $(cat "$D/fake.out")" ||
    it_fail "TLS: bursts of packets in shared records all counted, none stalled" \
        "$(cat "$D/fake.out") $(tail -3 "$D/daemon.log")"
kill -TERM "$DPID" 2>/dev/null; wait "$DPID"; DPID=
exit 0
