/*
 * kafka_put.c - a Kafka producer for tests that sets each record's
 * timestamp (kcat sets none: its records carry their produce time). Reads
 * lines "TS|KEY|VALUE" from stdin and produces each to TOPIC, partition
 * PARTITION, in order, with timestamp TS (ms since the epoch; "now": the
 * produce time, as any client stamps CreateTime; -1: no timestamp, as a
 * record of a message format older than Kafka 0.10 reads). Exits 0 once
 * every record is delivered, 1 otherwise (said on stderr).
 *
 *   kafka_put BOOTSTRAP TOPIC PARTITION < lines
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

static int failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        fprintf(stderr, "kafka_put: delivery failed: %s\n", rd_kafka_err2str(m->err));
        failed = 1;
    }
}

int main(int argc, char **argv)
{
    char err[512], line[65536];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    long n = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: kafka_put BOOTSTRAP TOPIC PARTITION < \"TS|KEY|VALUE\" lines\n");
        return 2;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err)) {
        fprintf(stderr, "kafka_put: %s\n", err);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        fprintf(stderr, "kafka_put: %s\n", err);
        return 1;
    }
    while (fgets(line, sizeof line, stdin)) {
        char *k = strchr(line, '|'), *v = k ? strchr(k + 1, '|') : NULL;
        size_t vl;
        int64_t ts;
        rd_kafka_resp_err_t e;

        if (!v) {
            fprintf(stderr, "kafka_put: line %ld: expected TS|KEY|VALUE\n", n + 1);
            failed = 1;
            break;
        }
        *k++ = '\0';
        *v++ = '\0';
        vl = strcspn(v, "\n");
        /* librdkafka stamps a record whose timestamp is 0 with the time of
         * the call: "now" */
        ts = strcmp(line, "now") == 0 ? 0 : strtoll(line, NULL, 10);
        do {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]),
                                  RD_KAFKA_V_PARTITION(atoi(argv[3])),
                                  RD_KAFKA_V_KEY(k, (size_t)(v - 1 - k)),
                                  RD_KAFKA_V_VALUE(v, vl),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 100);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e) {
            fprintf(stderr, "kafka_put: line %ld: %s\n", n + 1, rd_kafka_err2str(e));
            failed = 1;
            break;
        }
        rd_kafka_poll(rk, 0);
        n++;
    }
    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka_put: %d record(s) not delivered in 30 s\n", rd_kafka_outq_len(rk));
        failed = 1;
    }
    rd_kafka_destroy(rk);
    return failed;
}
