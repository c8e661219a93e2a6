# anomalyd - streaming anomaly detection daemon.
#
#   make            build lib (build/libanomalyd.a) and build/anomalyd
#   make test       run every test (unit, golden, integration); ends with
#                   "N passed, N failed, N skipped"
#   make check      the same tests under ASan+UBSan (build/san/)
#   make bench      benchmarks (ratios against PyTorch / the broker, same run)
#   make eval       SKAB held-out/tuning splits + scenario suite -> build/eval/
#   make fuzz       build libFuzzer targets for every parser (clang)
#   make deps       install the Debian packages building, the demo and make
#                   test need (idempotent)
#   make deps-dev   also those of make golden, fuzz, bench and eval
#   make demo       the main job: local broker, daemon, simulated pumps, alerts
#   make golden     regenerate golden reference files with PyTorch
#   make install    PREFIX=/usr/local DESTDIR=

CC       ?= cc
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
PREFIX   ?= /usr/local
SAN      ?=

PKGS      = libuv libmosquitto libcjson openblas rdkafka
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(CFLAGS) -std=gnu11 -pthread -fno-strict-aliasing $(WARN) $(PKG_CFLAGS) -Ilib -Idaemon
ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
ifeq ($(SAN),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
LDLIBS   = $(PKG_LIBS) -lm -pthread

LIB_SRC    := $(wildcard lib/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TOOL_SRC   := $(wildcard tools/*.c)
TOOL_BIN   := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

LIBAD    = $(BUILD)/libanomalyd.a
LIBADD   = $(BUILD)/libanomalyd_daemon.a
BIN      = $(BUILD)/anomalyd

.PHONY: all test check bench fuzz deps deps-dev demo golden install uninstall clean model skab man eval
# Keep object files of pattern chains (tests, benches) between runs.
.SECONDARY:
.DELETE_ON_ERROR:
all: $(BIN) $(TEST_BIN) $(BENCH_BIN) $(TOOL_BIN) $(BUILD)/tests/kafka_mock $(BUILD)/tests/kafka_put

$(BUILD)/%.o: %.c $(wildcard lib/*.h daemon/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBAD): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBADD): $(DAEMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^ $(if $(DAEMON_OBJ),,/dev/null)

$(BIN): $(BUILD)/daemon/main.o $(LIBADD) $(LIBAD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lsystemd

# The Kafka mock cluster of the Kafka integration tests, and their producer
# of records with set timestamps (librdkafka only).
$(BUILD)/tests/kafka_mock: $(BUILD)/tests/kafka_mock.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/kafka_put: $(BUILD)/tests/kafka_put.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBADD) $(LIBAD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lsystemd

# test_batch refuses the daemon's calloc() at one chosen point (out of
# memory there): its own __wrap_calloc sees every call from the linked code.
$(BUILD)/tests/test_batch: LDFLAGS += -Wl,--wrap=calloc

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBADD) $(LIBAD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lsystemd

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(LIBADD) $(LIBAD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lsystemd

test: all
	@sh tests/run.sh $(BUILD)

# make test's last times order the slowest first here too, until a full
# run under the sanitizers has left its own (tests/run.sh)
check:
	AD_TEST_TIMES=$(BUILD)/test-times.txt $(MAKE) BUILD=build/san SAN=1 CFLAGS="-O1 -g" test

bench: all
	@sh bench/run.sh $(BUILD)

FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
fuzz:
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "clang $$f -> build/fuzz/$$n"; \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -std=gnu11 $(PKG_CFLAGS) -Ilib -Idaemon \
	    -o build/fuzz/$$n $$f $(LIB_SRC) $(DAEMON_SRC) $(PKG_LIBS) -lsystemd -lm -pthread || exit 1; \
	done

# Debian packages by purpose. DEB_PKGS: build (compiler, libraries), demo
# (mosquitto, paho-mqtt) and make test (mosquitto-clients, PyTorch and numpy
# for the exporter test it_export.sh and tools/adformat.py, openssl for the
# TLS tests, strace/systemd for the unit's sandbox, groff/mandoc for the man
# pages). DEB_PKGS_DEV: make golden (PyTorch, already above), make fuzz
# (clang, libFuzzer runtime), make bench (PyTorch), make eval (matplotlib).
DEB_PKGS = build-essential pkg-config libuv1-dev libmosquitto-dev mosquitto \
	mosquitto-clients libopenblas-dev libcjson-dev libsystemd-dev systemd \
	python3 python3-torch python3-numpy python3-paho-mqtt openssl mandoc \
	strace groff-base librdkafka-dev kcat
DEB_PKGS_DEV = clang libclang-rt-14-dev python3-matplotlib debhelper dpkg-dev lintian
deps:
	@sh tools/deps.sh $(DEB_PKGS)
deps-dev:
	@sh tools/deps.sh $(DEB_PKGS) $(DEB_PKGS_DEV)

demo: all
	@sh tools/demo.sh $(BUILD) $(ARGS)

golden:
	$(PYTHON) tools/gen_golden.py tests/golden
	$(PYTHON) tools/gen_train_golden.py tests/golden

# Regenerate the generated parts of the man pages (config keys, options).
man: all
	$(PYTHON) tools/gen_man.py --bin $(BIN) --doc $(BUILD)/tools/config_doc

# Regenerate the bundled model conf/models/pump.safetensors from simulated
# pump data (reproducible: same bytes every run) and check its quality.
model: $(BIN)
	sh tools/make_model.sh --check $(BUILD)

# The SKAB protocol (needs ../shared/data/skab): per-file training time and
# error gap, then the full detection protocol with F1/FAR/MAR.
skab: all
	sh bench/skab_train.sh $(BUILD)
	sh bench/skab.sh $(BUILD)

# Evaluation (docs/evaluation.md): SKAB held-out and tuning splits, the
# scenario suite, picture pages; EVAL_SETS / EVAL_SCENARIOS / EVAL_MODES
# select parts. Output: $(BUILD)/eval/index.html, summary.md, summary.json.
eval: $(BIN)
	$(PYTHON) bench/eval.py --build $(BUILD)

clean:
	rm -rf build

# ---- install / uninstall ---------------------------------------------------
#   make install   [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc] [UNITDIR=]
#   make uninstall [same variables] [PURGE=1: also remove the config]
# Installs the binary, the systemd unit (ExecStart= rewritten to BINDIR and
# SYSCONFDIR) and its instance template anomalyd@.service, the man pages (their paths rewritten the same way), the
# bundled models under
# $(PREFIX)/share/anomalyd/models and the example config
# $(SYSCONFDIR)/anomalyd/anomalyd.json with its model paths pointing there.
# An existing config is never overwritten (the new one goes next to it as
# anomalyd.json.new) and uninstall keeps it unless PURGE=1.
SYSCONFDIR ?= /etc
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DATADIR    ?= $(PREFIX)/share/anomalyd
MANDIR     ?= $(PREFIX)/share/man
CONFDIR     = $(SYSCONFDIR)/anomalyd
INST_MODELS := $(wildcard conf/models/*.safetensors)
INST_MAN8   := $(wildcard docs/man/*.8)
INST_MAN5   := $(wildcard docs/man/*.5)
# Rewrites for the installed unit and config (paths must not contain '|').
INST_SED_UNIT = -e 's|/usr/local/bin/anomalyd|$(BINDIR)/anomalyd|g' \
                -e 's|/etc/anomalyd/|$(CONFDIR)/|g'
# The instance template anomalyd@.service is the unit with the instance's own
# config ($(CONFDIR)/INSTANCE.json) and state directory (anomalyd/INSTANCE,
# passed with --state-dir so that one config may serve several instances).
INST_SED_TPL  = -e '1s|.*|\# anomalyd@.service - instance %i of anomalyd: config $(CONFDIR)/%i.json, state anomalyd/%i (written by make install from anomalyd.service)|' \
                -e 's|^\(ExecStart=.* -c $(CONFDIR)/\)anomalyd\.json$$|\1%i.json --state-dir /var/lib/anomalyd/%i|' \
                -e 's|^StateDirectory=anomalyd$$|StateDirectory=anomalyd/%i|' \
                -e 's|^Description=.*|&, instance %i|' \
                -e 's|systemctl edit anomalyd\([ `]\)|systemctl edit anomalyd@INSTANCE\1|g' \
                -e 's|/run/credentials/anomalyd.service/|/run/credentials/anomalyd@INSTANCE.service/|g'
INST_SED_CONF = -e 's|"models/|"$(DATADIR)/models/|g'
INST_SED_MAN  = -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' \
                -e 's|/usr/local/share/anomalyd|$(DATADIR)|g' \
                -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/etc/anomalyd|$(CONFDIR)|g'

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR) \
	  $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/anomalyd
	sed $(INST_SED_UNIT) systemd/anomalyd.service > $(BUILD)/anomalyd.service
	install -m 0644 $(BUILD)/anomalyd.service $(DESTDIR)$(UNITDIR)/anomalyd.service
	sed $(INST_SED_TPL) $(BUILD)/anomalyd.service > $(BUILD)/anomalyd@.service
	install -m 0644 $(BUILD)/anomalyd@.service $(DESTDIR)$(UNITDIR)/anomalyd@.service
	$(if $(INST_MODELS),install -m 0644 $(INST_MODELS) $(DESTDIR)$(DATADIR)/models/)
	for m in $(INST_MAN8) $(INST_MAN5); do \
	  s=$${m##*.}; sed $(INST_SED_MAN) $$m > $(BUILD)/$${m##*/} && \
	  install -m 0644 $(BUILD)/$${m##*/} $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
	sed $(INST_SED_CONF) conf/anomalyd.json > $(BUILD)/anomalyd.json
	@if [ -e $(DESTDIR)$(CONFDIR)/anomalyd.json ] && \
	    ! cmp -s $(BUILD)/anomalyd.json $(DESTDIR)$(CONFDIR)/anomalyd.json; then \
	  echo "keeping $(DESTDIR)$(CONFDIR)/anomalyd.json; new example: anomalyd.json.new"; \
	  install -m 0644 $(BUILD)/anomalyd.json $(DESTDIR)$(CONFDIR)/anomalyd.json.new; \
	else \
	  echo "install -m 0644 $(BUILD)/anomalyd.json $(DESTDIR)$(CONFDIR)/anomalyd.json"; \
	  install -m 0644 $(BUILD)/anomalyd.json $(DESTDIR)$(CONFDIR)/anomalyd.json; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/anomalyd $(DESTDIR)$(UNITDIR)/anomalyd.service \
	  $(DESTDIR)$(UNITDIR)/anomalyd@.service
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/models/,$(notdir $(INST_MODELS)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(INST_MAN8)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(INST_MAN5)))
	rm -f $(DESTDIR)$(CONFDIR)/anomalyd.json.new
	rmdir $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR) 2>/dev/null || true
ifeq ($(PURGE),1)
	rm -f $(DESTDIR)$(CONFDIR)/anomalyd.json
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
else
	@if [ -e $(DESTDIR)$(CONFDIR)/anomalyd.json ]; then \
	  echo "kept $(DESTDIR)$(CONFDIR)/anomalyd.json (make uninstall PURGE=1 removes it)"; fi
endif
