#!/bin/sh
# it_alertwatch.sh - the SUMMARY line of tools/alertwatch.py --faults (the
# demo's last line) accounts for every injected fault: alerted (an alert
# raised on its pump while it ran), ended without an alert (more than
# --judge-s before the simulator stopped), or not yet judged at the stop
# (still running, or ended within --judge-s), with the pump, kind and how
# long before the stop. Events are published by hand, as
# tools/demo_pumps.py --events-topic and the daemon publish them.
# With data times (events with "ts_ms" and "id", alerts with "time_ms"):
# an alert arriving late (the daemon draining at the stop) for a fault
# ended shortly before, in data time, counts as alerted; a fault_end ends
# only its own fault of two overlapping on one pump.
# Credentials and TLS: alertwatch connects with the config's
# broker.username, password_file and tls (paths relative to the config),
# to a broker that refuses anonymous clients and plain TCP.
. tests/lib.sh
D=$(mktemp -d /tmp/it_alertwatch.XXXXXX)
DPID= SPID=
trap 'it_daemon_cleanup' EXIT
it_broker_start "$D" || { it_fail "broker starts"; exit 0; }
P=$IT_PORT
pub() { mosquitto_pub -h 127.0.0.1 -p "$P" -q 1 -t "$1" -m "$2"; }
fault() { pub demo/faults "{\"event\": \"$1\", \"pump\": \"$2\", \"kind\": \"$3\", \"minutes\": 40}"; }

# retained: alertwatch prints it once subscribed
mosquitto_pub -h 127.0.0.1 -p "$P" -q 1 -r -t anomalyd/status -m '{"state": "online", "version": "x", "pid": 1}'
$PYTHON tools/alertwatch.py -c conf/anomalyd.json --port "$P" --exit-on-offline --summary \
    --faults demo/faults --judge-s 1 > "$D/out" 2>&1 & SPID=$!
it_wait_log "$D/out" ' ONLINE ' 10 || { it_fail "alertwatch connects" "$(cat "$D/out")"; exit 0; }

fault fault pump1 bearing                                   # alerted
pub anomalyd/alerts/pump/pump1 '{"event": "raised", "alert_id": "a1", "stream": "pump1", "severity": 1.5, "level": "warning"}'
fault fault_end pump1 bearing
fault fault pump2 overheat                                  # missed
fault fault_end pump2 overheat
sleep 1.5
fault fault pump3 cavitation                                # running at the stop
fault fault pump4 blockage                                  # ended just before the stop
fault fault_end pump4 blockage
pub demo/faults '{"event": "stop"}'
pub anomalyd/status '{"state": "offline"}'
it_wait_gone $SPID 10; SPID=
sed 's/^/#   /' "$D/out"

line=$(grep ' SUMMARY ' "$D/out")
want='1 alerts raised, 0 cleared, 0 streams calibrated; 4 faults injected: 1 alerted, 1 ended without an alert, 2 not yet judged at the stop (pump3 cavitation injected 0 s before the stop, still running; pump4 blockage ended 0 s before the stop)'
case $line in
    *"$want") it_ok "SUMMARY: faults alerted, missed, and not yet judged at the stop (running, ended within --judge-s)" ;;
    *) it_fail "SUMMARY: faults alerted, missed, and not yet judged at the stop (running, ended within --judge-s)" \
        "want: ...$want; got: $line" ;;
esac

# --- data times --------------------------------------------------------------------
mosquitto_pub -h 127.0.0.1 -p "$P" -q 1 -r -t anomalyd/status -m '{"state": "online", "version": "x", "pid": 2}'
$PYTHON tools/alertwatch.py -c conf/anomalyd.json --port "$P" --exit-on-offline --summary \
    --faults demo/faults2 --judge-s 1 --judge-ms 600000 > "$D/out2" 2>&1 & SPID=$!
it_wait_log "$D/out2" ' ONLINE ' 10 || { it_fail "alertwatch connects" "$(cat "$D/out2")"; exit 0; }
ev() { # ev EVENT ID PUMP KIND TS_MS
    pub demo/faults2 "{\"event\": \"$1\", \"id\": \"$2\", \"pump\": \"$3\", \"kind\": \"$4\", \"minutes\": 40, \"ts_ms\": $5}"
}
T0=1700000000000 M=60000
ev fault p1-1 pump1 bearing $T0                               # alerted late
ev fault_end p1-1 pump1 bearing $((T0 + 40 * M))
ev fault p2-1 pump2 overheat $((T0 + 10 * M))                 # overlapping: still running
ev fault p2-2 pump2 blockage $((T0 + 20 * M))                 # ended long ago, missed
ev fault_end p2-2 pump2 blockage $((T0 + 30 * M))
sleep 1.5
pub demo/faults2 "{\"event\": \"stop\", \"ts_ms\": $((T0 + 45 * M))}"
sleep 1.5     # the alert comes well after the stop and the fault's end
pub anomalyd/alerts/pump/pump1 "{\"event\": \"raised\", \"alert_id\": \"b1\", \"stream\": \"pump1\", \"severity\": 1.5, \"level\": \"warning\", \"time_ms\": $((T0 + 43 * M))}"
pub anomalyd/status '{"state": "offline"}'
it_wait_gone $SPID 10; SPID=
sed 's/^/#   /' "$D/out2"
line=$(grep ' SUMMARY ' "$D/out2")
want='3 faults injected: 1 alerted, 1 ended without an alert, 1 not yet judged at the stop (pump2 overheat injected N s before the stop, still running)'
case $line in
    *"${want%% N s*} "[0-9]*" s${want#* N s}") it_ok "SUMMARY by data times: a late alert counts, overlapping faults on one pump told apart" ;;
    *) it_fail "SUMMARY by data times: a late alert counts, overlapping faults on one pump told apart" \
        "want: ...$want; got: $line" ;;
esac

# --- the config's credentials and TLS ------------------------------------------------
it_broker_stop
chmod 755 "$D"      # mosquitto runs as its own user: it reads the password file
cd "$D" || exit 1
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=it-ca"
ossl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > srv.ext
ossl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile srv.ext
ossl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj "/CN=watcher"
ossl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cli.crt -days 2
chmod 644 ./*.key ./*.crt
cd - >/dev/null || exit 1
if [ ! -s "$D/srv.crt" ] || [ ! -s "$D/cli.crt" ]; then
    it_fail "openssl made the test certificates"
    exit 0
fi
mosquitto_passwd -b -c "$D/passwd" watcher 's3cret pass' 2>/dev/null
chmod 644 "$D/passwd"
P=$(it_free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\npersistence false\n' \
    "$P" "$D/passwd" "$D/ca.crt" "$D/srv.crt" "$D/srv.key" > "$D/tls.conf"
mosquitto -c "$D/tls.conf" > "$D/tls.log" 2>&1 & IT_BROKER_PID=$!
printf 's3cret pass\n' > "$D/pw"
TPUB="-h 127.0.0.1 -p $P --cafile $D/ca.crt --cert $D/cli.crt --key $D/cli.key -u watcher -P"
i=0
until mosquitto_pub $TPUB 's3cret pass' -q 1 -r -t anomalyd/status \
        -m '{"state": "online", "version": "x", "pid": 3}' 2>/dev/null; do
    i=$((i + 1)); [ $i -ge 50 ] && { it_fail "TLS broker starts" "$(cat "$D/tls.log")"; exit 0; }
    sleep 0.1
done
# relative paths: against the config's directory, not the working directory
cat > "$D/watch.json" <<EOC
{"broker": {"port": $P, "username": "watcher", "password_file": "pw",
            "tls": {"enabled": true, "ca_file": "ca.crt", "cert_file": "cli.crt", "key_file": "cli.key"}},
 "detectors": [{"name": "pump", "model": "x", "topics": ["sensors/+/pump"]}]}
EOC
$PYTHON tools/alertwatch.py -c "$D/watch.json" --exit-on-offline > "$D/out3" 2>&1 & SPID=$!
if it_wait_log "$D/out3" ' ONLINE ' 10; then
    it_ok "credentials and TLS from the config: password file, CA, client certificate (relative paths)"
else
    it_fail "credentials and TLS from the config: password file, CA, client certificate (relative paths)" \
        "$(cat "$D/out3"; tail -3 "$D/tls.log")"
fi
mosquitto_pub $TPUB 's3cret pass' -q 1 -t anomalyd/status -m '{"state": "offline"}'
it_wait_gone $SPID 10 && SPID=     # else the EXIT trap stops it
