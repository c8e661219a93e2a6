#!/bin/sh
# it_daemon_dns.sh - a slow broker host name lookup does not freeze the
# daemon. An LD_PRELOAD shim (tests/slow_gai.c, built here) makes
# getaddrinfo("localhost") sleep 3 s before resolving; the daemon's broker
# host is "localhost" (a real broker on 127.0.0.1):
#  - SIGTERM while the lookup is still sleeping ends the daemon with exit
#    status 0 well before the 3 s are over (the connect runs off the loop);
#  - left alone, the daemon connects once the lookup returns and publishes
#    its retained online status (with its own pid), and still stops cleanly.
# Both with MQTT 3.1.1 (mosquitto_connect_async) and with MQTT 5 and a
# persistent session (the blocking mosquitto_connect_bind_v5 first attempt).
# Under ASan (make check) the shim is preloaded with ASan's link-order check
# off; if the sanitizer runtime refuses it anyway, every case not run is
# reported as a skip with the reason.
. tests/lib.sh
D=$(mktemp -d /tmp/it_daemon_dns.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors
DELAY_MS=3000

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

it_shim slow_gai -ldl || { it_fail "getaddrinfo shim builds" "$(cat "$D/cc.log")"; exit 1; }
ASAN_EXTRA=
if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
    ASAN_EXTRA="verify_asan_link_order=0"
    echo "# ASan build: shim preloaded with verify_asan_link_order=0"
fi
# run_daemon LOGFILE: start the daemon in the background with the shim; DPID
run_daemon() {
    : > "$D/gai.log"
    SLOW_GAI_LOG="$D/gai.log" SLOW_GAI_MS=$DELAY_MS LD_PRELOAD="$D/slow_gai.so" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
        $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$1" & DPID=$!
}
it_broker_up

# CASES: the case names of one scenario (the protocol is put in front)
CASES='the lookup was still sleeping when the daemon exited
SIGTERM during a slow broker lookup: exit 0 within 1.5 s
the stop was the clean one (log: stopped)
connects once the slow lookup returns: retained online status of this daemon
the connect went through the slow lookup
SIGTERM after connecting: exit status 0
retained offline status after the stop'
# skip_rest PROTOCOL REASON: this scenario's cases and those of the ones
# after it, as skips
skip_rest() {
    for q in 3.1.1 5; do
        [ "$q" = "$1" ] && from=1
        [ -n "${from:-}" ] || continue
        echo "$CASES" | while IFS= read -r c; do it_skip "MQTT $q: $c" "$2"; done
    done
}

# scenario PROTOCOL: the two runs against a config with that protocol
scenario() {
    p=$1
    cat > "$D/ad.json" <<EOC
{"broker": {"host": "localhost", "port": $IT_PORT, "client_id": "it-dns",
            "protocol": "$p", "clean_session": false,
            "stats_interval_s": 1, "reconnect_min_s": 0.2},
 "state_dir": "$D/state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json"}}]}
EOC
    # --- SIGTERM during the slow lookup ---
    run_daemon "$D/run1.log"
    if ! it_wait_log "$D/gai.log" start 10; then
        if ! kill -0 "$DPID" 2>/dev/null && [ -n "$ASAN_EXTRA" ]; then
            skip_rest "$p" "the ASan build does not start with the preloaded shim: $(head -1 "$D/run1.log")"
            DPID=; exit 0
        fi
        it_fail "MQTT $p: the daemon looks up the broker host through the shim" "$(cat "$D/run1.log")"
        exit 1
    fi
    # the shim logged "start": the lookup has begun its 3 s sleep
    t0=$(now_ms)
    kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
    dt=$(( $(now_ms) - t0 ))
    echo "# MQTT $p: SIGTERM during the lookup: exit $rc after $dt ms (lookup sleeps $DELAY_MS ms)"
    if grep -q end "$D/gai.log"; then
        it_fail "MQTT $p: the lookup was still sleeping when the daemon exited" "$(cat "$D/gai.log")"
    else
        it_ok "MQTT $p: the lookup was still sleeping when the daemon exited"
    fi
    if [ $rc -eq 0 ] && [ $dt -lt 1500 ]; then
        it_ok "MQTT $p: SIGTERM during a slow broker lookup: exit 0 within 1.5 s ($dt ms)"
    else
        it_fail "MQTT $p: SIGTERM during a slow broker lookup: exit 0 within 1.5 s" \
            "rc=$rc after $dt ms; $(cat "$D/run1.log")"
    fi
    grep -q "stopped" "$D/run1.log" && it_ok "MQTT $p: the stop was the clean one (log: stopped)" ||
        it_fail "MQTT $p: the stop was the clean one (log: stopped)" "$(cat "$D/run1.log")"

    # --- the daemon connects after the slow lookup ---
    run_daemon "$D/run2.log"
    t0=$(now_ms)
    # this daemon's status (an older run's retained one names another pid)
    st=$(it_wait_topic "$IT_PORT" anomalyd/status 15 "\"pid\":$DPID,")
    dt=$(( $(now_ms) - t0 ))
    echo "# MQTT $p: online status after $dt ms"
    case "$st" in
        *'"state":"online"'*"\"pid\":$DPID,"*)
            it_ok "MQTT $p: connects once the slow lookup returns: retained online status of this daemon" ;;
        *) it_fail "MQTT $p: connects once the slow lookup returns: retained online status of this daemon" \
            "status '$st' (pid $DPID); $(cat "$D/run2.log")" ;;
    esac
    grep -q end "$D/gai.log" && it_ok "MQTT $p: the connect went through the slow lookup" ||
        it_fail "MQTT $p: the connect went through the slow lookup" "$(cat "$D/gai.log")"
    kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
    [ $rc -eq 0 ] && it_ok "MQTT $p: SIGTERM after connecting: exit status 0" ||
        it_fail "MQTT $p: SIGTERM after connecting: exit status 0" "rc=$rc $(cat "$D/run2.log")"
    st=$(mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t anomalyd/status -C 1 -W 3 2>/dev/null)
    case "$st" in
        *'"state":"offline"'*) it_ok "MQTT $p: retained offline status after the stop" ;;
        *) it_fail "MQTT $p: retained offline status after the stop" "$st" ;;
    esac
}

scenario 3.1.1
scenario 5
exit 0
