# lbdpo — build, test, install.  `make help` lists the targets.
#
#   make                 build every program into bin/
#   make test            install missing dependencies, build, run all tests
#   make SANITIZE=1 test the same under AddressSanitizer + UBSan (build/san/)
#   make demo            the embedded LB-DPO experiment (pipelines/demo.mk)
#   make bench           benchmarks (not part of test)
#   make fuzz            fuzz the readers (FUZZ_SECONDS=600 per target)
#   make install PREFIX=/usr/local
#   make ARCHFLAGS=-march=native   binaries for this CPU only

PREFIX  ?= /usr/local
CC      ?= cc
PKGS    := openblas msgpack jansson libpcre2-8 zlib libcrypto
# Portable by default: the hot kernels carry AVX-512/AVX2/baseline clones
# chosen at load time (LBDPO_KERNEL in libcore/cpu.h). ARCHFLAGS=-march=native
# builds for this machine only (binaries may crash on older CPUs).
ARCHFLAGS ?=

ifeq ($(SANITIZE),1)
  B       := build/san
  BIN     := build/san/bin
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else
  B       := build/rel
  BIN     := bin
  OPT     := -O3 -g $(ARCHFLAGS)
  LDSAN   :=
endif

# With an -march of its own the build is for one CPU: clones for other ISA
# levels would only stop inlining across the target mismatch.
ifneq ($(strip $(ARCHFLAGS)),)
  ifneq ($(SANITIZE),1)
    OPT += -DLBDPO_NO_CLONES
  endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += -std=gnu11 $(OPT) -fno-trapping-math -fno-math-errno -Wall -Wextra -fopenmp -I. $(PKG_CFLAGS) -MMD -MP
LDLIBS  += $(PKG_LIBS) -lm
LDFLAGS += -fopenmp $(LDSAN)

ifeq ($(CUDA),1)
  # Reserved for the GPU backend (DESIGN §5). Until it lands, CUDA=1 builds
  # the CPU programs unchanged and says so.
  $(info lbdpo: CUDA=1: no CUDA backend yet; building the CPU backend)
endif

LIB_SRCS  := $(sort $(wildcard libcore/*.c formats/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/%.o)
LIB       := $(B)/liblbdpo.a
CMD_SRCS  := $(sort $(wildcard cmd/*.c))
PROGS     := $(CMD_SRCS:cmd/%.c=$(BIN)/%)
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(B)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCHES   := $(BENCH_SRCS:bench/%.c=$(B)/bench/bin/%)
MAN1      := $(sort $(wildcard man/*.1))
MAN5      := $(sort $(wildcard man/*.5))
MAN7      := $(sort $(wildcard man/*.7))

.PHONY: all deps test check-deps demo bench fuzz install clean help tests-build
all: $(PROGS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@; ar rcs $@ $^

$(BIN)/%: $(B)/cmd/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(B)/tests/%: $(B)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) $(shell pkg-config --libs criterion) -o $@

$(B)/bench/bin/%: $(B)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

tests-build: $(PROGS) $(TEST_BINS)

deps:
	@bash scripts/deps.sh

# The test suite: unit tests (Criterion) and shell tests of the programs.
# tests/run.sh prints one closing line: "N passed, N failed, N skipped".
test: deps
	@$(MAKE) --no-print-directory tests-build
	@LBDPO_BIN=$(CURDIR)/$(BIN) LBDPO_TESTBIN=$(CURDIR)/$(B)/tests SANITIZE=$(SANITIZE) bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/demo.mk LBDPO_BIN=$(CURDIR)/$(BIN)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@LBDPO_BIN=$(CURDIR)/$(BIN) LBDPO_BENCHBIN=$(CURDIR)/$(B)/bench/bin bash bench/run.sh

fuzz: deps
	@bash tests/fuzz/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 $(MAN7) $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	rm -rf build bin

help:
	@sed -n '2,11p' Makefile | sed 's/^# \{0,1\}//'

-include $(shell find build -name '*.d' 2>/dev/null)
