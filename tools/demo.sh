#!/bin/sh
# demo.sh - the main job on embedded defaults. Until the daemon lands this
# shows the engine end to end on simulated pump data; the live demo (local
# broker, daemon, simulated pumps, alerts) is coming next.
BUILD=${1:-build}
echo "anomalyd demo: the live MQTT demo is coming next (daemon not built yet)."
echo "What runs today: the engine on the bundled model, if present."
if [ -f conf/models/pump.safetensors ]; then
    "$BUILD/anomalyd" info --model conf/models/pump.safetensors
fi
