#!/bin/sh
# it_kafka_state_refused.sh - kafka.commit_states with a state the cluster
# refuses for good (MSG_SIZE_TOO_LARGE, as for a record over the topic's
# max.message.bytes, or one not authorised): its stream's only trace of the
# rows before the commit is lost, so the commit waits. The next checkpoint
# writes the states again, and commits once they are delivered. The run of
# it_kafka_commit_states.sh with the state topic's first produce requests
# refused: the successor continues every window and calibration as there.
# Before, the refused state emptied the producer queue as a delivered one
# does and the commit went by it: the successor restored no state, left
# T - 1 samples of each stream unscored (273 of 360 windows), calibrated
# afresh and raised none of the alerts.
REFUSED=${REFUSED:-2}
. tests/it_kafka_commit_states.sh
