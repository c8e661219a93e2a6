/*
 * kafka_mock.c - a Kafka cluster for tests: librdkafka's mock cluster
 * (rdkafka_mock.h) with 3 brokers listening on 127.0.0.1, speaking the real
 * protocol (consumer groups, offsets, idempotent producers). Prints its
 * bootstrap list on the first line of stdout, then runs until SIGTERM/SIGINT.
 * SIGUSR1: the next offset commit (of any client) is refused with
 * ILLEGAL_GENERATION, as a coordinator refuses a commit of a generation a
 * rebalance has ended. SIGUSR2: broker 3 goes down (its connections
 * closed, new ones refused), or up again at the next SIGUSR2: with --slow,
 * TOPIC has no leader meanwhile. Environment KAFKA_MOCK_PRODUCE_ERRORS=N:ERR:
 * the first N produce requests are refused with Kafka error code ERR (10:
 * MSG_SIZE_TOO_LARGE, as a broker refuses a record over the topic's
 * max.message.bytes). KAFKA_MOCK_SLOW_PRODUCE_ERRORS=N:ERR (with --slow):
 * the same for the first N produce requests to broker 3, TOPIC's leader
 * (a state topic refusing states, the other topics taking theirs).
 *
 *   kafka_mock [--slow TOPIC:MS:GROUP] [TOPIC:PARTITIONS ...]
 *
 * Topics are created up front. --slow: the partitions of TOPIC are led by
 * broker 3, which answers every request MS milliseconds late; the other
 * topics and the coordinator of consumer group GROUP are on broker 1
 * (reading TOPIC, a state topic, takes a few such round trips).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define API_OFFSET_COMMIT 8         /* Kafka protocol request types */
#define API_PRODUCE 0

static volatile sig_atomic_t stop, refuse, toggle;
static void on_signal(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; refuse = 1; }
static void on_usr2(int sig) { (void)sig; toggle = 1; }

int main(int argc, char **argv)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;

    if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    if (!(mc = rd_kafka_mock_cluster_new(rk, 3))) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        return 1;
    }
    const char *slow = NULL, *group = NULL;
    int slow_ms = 0, a0 = 1;
    if (argc > 2 && strcmp(argv[1], "--slow") == 0) {
        char *c = strchr(argv[2], ':'), *g = c ? strchr(c + 1, ':') : NULL;
        if (!g || (slow_ms = atoi(c + 1)) <= 0 || !g[1]) {
            fprintf(stderr, "kafka_mock: --slow %s: expected TOPIC:MS:GROUP\n", argv[2]);
            return 2;
        }
        *c = '\0';
        slow = argv[2];
        group = g + 1;
        a0 = 3;
    }
    for (int i = a0; i < argc; i++) {
        char *c = strrchr(argv[i], ':');
        int n = c ? atoi(c + 1) : 0;
        if (!c || n <= 0) {
            fprintf(stderr, "kafka_mock: %s: expected TOPIC:PARTITIONS\n", argv[i]);
            return 2;
        }
        *c = '\0';
        if (rd_kafka_mock_topic_create(mc, argv[i], n, 3)) {
            fprintf(stderr, "kafka_mock: cannot create topic %s\n", argv[i]);
            return 1;
        }
        for (int p = 0; slow && p < n; p++)
            rd_kafka_mock_partition_set_leader(mc, argv[i], p, strcmp(argv[i], slow) ? 1 : 3);
    }
    if (slow) {
        rd_kafka_mock_coordinator_set(mc, "group", group, 1);
        rd_kafka_mock_broker_set_rtt(mc, 3, slow_ms);
    }
    const char *pe = getenv("KAFKA_MOCK_PRODUCE_ERRORS");
    if (pe && *pe) {
        const char *c = strchr(pe, ':');
        int n = atoi(pe), code = c ? atoi(c + 1) : 0;
        if (n <= 0 || code <= 0) {
            fprintf(stderr, "kafka_mock: KAFKA_MOCK_PRODUCE_ERRORS=%s: expected N:ERR\n", pe);
            return 2;
        }
        for (int i = 0; i < n; i++)
            rd_kafka_mock_push_request_errors(mc, API_PRODUCE, 1, (rd_kafka_resp_err_t)code);
    }
    const char *se = getenv("KAFKA_MOCK_SLOW_PRODUCE_ERRORS");
    if (se && *se) {
        const char *c = strchr(se, ':');
        int n = atoi(se), code = c ? atoi(c + 1) : 0;
        if (n <= 0 || code <= 0 || !slow) {
            fprintf(stderr, "kafka_mock: KAFKA_MOCK_SLOW_PRODUCE_ERRORS=%s: expected N:ERR "
                    "and --slow\n", se);
            return 2;
        }
        for (int i = 0; i < n; i++)
            rd_kafka_mock_broker_push_request_error_rtts(mc, 3, API_PRODUCE, 1,
                                                         (rd_kafka_resp_err_t)code, 0);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    int down = 0;
    while (!stop) {
        pause();
        if (toggle) {
            toggle = 0;
            down = !down;
            if (down)
                rd_kafka_mock_broker_set_down(mc, 3);
            else
                rd_kafka_mock_broker_set_up(mc, 3);
        }
        if (refuse) {
            refuse = 0;
            rd_kafka_mock_push_request_errors(mc, API_OFFSET_COMMIT, 1,
                                              RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION);
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
