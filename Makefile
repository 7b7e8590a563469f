# lbdpo — build, test, install.  `make help` lists the targets.
#
#   make                 build every program into bin/ (MPI-enabled when mpicc is found)
#   make MPI=0           the same without MPI even when mpicc is found
#   make test            install missing dependencies, build, run all tests
#   make test TESTS='test_model test_cli'
#                        only the tests whose names contain one of the
#                        space-separated patterns (tests/run.sh)
#   make tests-build     build the programs and tests without running them
#   make SANITIZE=1 ...  any target built with AddressSanitizer + UBSan in
#                        build/san/ (programs in build/san/bin); make
#                        SANITIZE=1 test runs the suite on them
#   make CUDA=1          programs with the CUDA kernels (build/cuda-rel/bin/);
#                        with MPI also NCCL for the gradient (NCCL=0: not)
#   make test-gpu        every CUDA kernel against its CPU twin (skips without a GPU)
#   make demo            the embedded LB-DPO experiment (pipelines/demo.mk)
#   make ppo             PPO, GRPO, on-policy DPO/LB-DPO with a rule-based reward
#                        (pipelines/ppo.mk; QUICK=1: one seed, short; LORA=8:
#                        every policy a rank-8 LoRA adapter on the SFT reference,
#                        which stays the reference; work/ppo-lora8)
#   make experiment      the demo over 5 seeds and 8 arms with 95% intervals
#                        (pipelines/experiment.mk; QUICK=1: 2 seeds, short;
#                        DTYPE=bf16: every model run in bf16, work/experiment-bf16,
#                        then make experiment-compare DTYPE=bf16: beside fp32's)
#   make study           does a learned β help? graded label noise, tuned
#                        baselines, 5 seeds (pipelines/study.mk; QUICK=1: tiny)
#   make online          on-policy DPO rounds (judge / reward model) vs offline,
#                        3 seeds (pipelines/online.mk; QUICK=1: 1 seed, short)
#   make bench           benchmarks (not part of test)
#   make bench-lora SHAPE=qwen2.5-1.5b   LoRA vs full fine-tuning on a random
#                        model of a real shape (bench/shapes/; minutes, GBs)
#   make fuzz            fuzz the readers (FUZZ_SECONDS=900 per target)
#   make format          reformat every C, CUDA and C++ source with clang-format
#                        (.clang-format); make format-check lists the lines it
#                        would change and fails if there are any
#   make install PREFIX=/usr/local
#   make ARCHFLAGS=-march=native   binaries for this CPU only

PREFIX  ?= /usr/local
CC      ?= cc
PKGS    := openblas msgpack jansson libpcre2-8 zlib libcrypto libutf8proc
# Portable by default: the hot kernels carry AVX-512/AVX2/baseline clones
# chosen at load time (LBDPO_KERNEL in libcore/nn/cpu/runtime.h). ARCHFLAGS=-march=native
# builds for this machine only (binaries may crash on older CPUs).
ARCHFLAGS ?=

ifeq ($(SANITIZE),1)
  B       := build/san
  BIN     := build/san/bin
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
  NVOPT   := -O1 -g -Xcompiler -fno-omit-frame-pointer
else
  B       := build/rel
  BIN     := bin
  OPT     := -O3 -g $(ARCHFLAGS)
  LDSAN   :=
  NVOPT   := -O3
endif
# CUDA=1 objects differ (-DLBDPO_CUDA): their own tree, so switching back
# and forth never mixes them with the CPU build's.
ifeq ($(CUDA),1)
  B       := $(B:build/%=build/cuda-%)
  BIN     := $(B)/bin
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

comma := ,
# oneDNN (Debian's libdnnl-dev): the bf16 matrix products of --dtype bf16
# (libcore/nn/cpu/gemm_bf16.c). Used when its header is found; DNNL=0 builds
# without it (--dtype bf16 then says so and exits), DNNL=1 insists.
DNNL_H := $(firstword $(wildcard /usr/include/oneapi/dnnl/dnnl.h $(DNNL_HOME)/include/oneapi/dnnl/dnnl.h))
ifeq ($(origin DNNL),undefined)
  DNNL := $(if $(DNNL_H),1,0)
endif
ifeq ($(DNNL),1)
  ifeq ($(DNNL_H),)
    $(error DNNL=1 but oneapi/dnnl/dnnl.h is not found: apt-get install libdnnl-dev (or set DNNL_HOME), or DNNL=0)
  endif
  DNNL_CFLAGS := -DLBDPO_DNNL $(if $(DNNL_HOME),-I$(DNNL_HOME)/include)
  DNNL_LIBDIR := $(if $(DNNL_HOME),-L$(DNNL_HOME)/lib -Wl$(comma)-rpath$(comma)$(DNNL_HOME)/lib)
  LDLIBS += $(DNNL_LIBDIR) -ldnnl
endif

# MPI: when mpicc is found (or with MPI=1), the programs in MPI_CMDS are
# linked with the MPI build of libcore/dist/dist.c (compiled by mpicc with
# -DLBDPO_MPI) and run as N cooperating ranks under mpirun; everything else,
# and every program when MPI=0 or mpicc is absent, links the plain build
# (one process). The quick start needs no MPI.
MPICC    ?= mpicc
MPI_CMDS := lbdpo-refcache lbdpo-logprob lbdpo-reward lbdpo-step
ifeq ($(origin MPI),undefined)
  MPI := $(if $(shell command -v $(MPICC) 2>/dev/null),1,0)
endif
ifeq ($(MPI),1)
  ifeq ($(shell command -v $(MPICC) 2>/dev/null),)
    $(error MPI=1 but $(MPICC) is not found: apt-get install libopenmpi-dev openmpi-bin)
  endif
  MPI_DIST  := $(B)/mpi/dist.o
  MPI_PROGS := $(MPI_CMDS:%=$(BIN)/%)
  MPI_TESTS := $(B)/tests/mpi/dist_check $(B)/tests/mpi/st_close
endif
# Switching MPI (or NCCL, below) on or off rebuilds dist.o and relinks the
# programs (recursive: NCCL is set further down).
MPI_STAMP = $(B)/mpi-$(MPI)$(NCCL).stamp

# backend_cuda.c is linked only into CUDA builds (below), never archived.
LIB_SRCS  := $(sort $(filter-out libcore/nn/backend_cuda.c,$(wildcard base/*.c formats/*.c libcore/*/*.c libcore/*/*/*.c)))
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/%.o)

# ---- CUDA (libcore/nn/cuda, tests/gpu) ----
# nvcc from PATH, else the Toolkit's usual place. When it is present, `make
# test` also compiles the CUDA objects and the GPU test harness (CI checks
# that they build; the harness skips without a GPU). CUDA=1 links them into
# every program and defines LBDPO_CUDA.
# Targets: native code for Hopper (sm_90: H100/H200) and PTX of compute_80,
# which the driver compiles at load time for A100, Ada, Blackwell and later:
# two code generations per file instead of one per architecture keeps the
# compile short. Override with CUDA_ARCH='-gencode ...'.
ifeq ($(origin NVCC),undefined)
  NVCC := $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
endif
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(realpath $(NVCC))))
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
NVCCFLAGS += -std=c++17 $(NVOPT) $(CUDA_ARCH) -I. -Xcompiler -Wall,-Wextra
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
CUDA_SRCS := $(sort $(wildcard libcore/nn/cuda/*.cu))
CUDA_OBJS := $(CUDA_SRCS:%.cu=$(B)/%.o)
GPU_SRCS  := $(sort $(wildcard tests/gpu/*.c))
GPU_TEST  := $(B)/tests/gpu/gpu_kernels
# The same kernels and harness on tests/gpu/emu, a CPU emulator of the CUDA
# execution model: needs only g++, runs everywhere (not under SANITIZE:
# its coroutines switch stacks behind ASan's back).
CXX       ?= g++
EMU_OBJS  := $(CUDA_SRCS:%.cu=$(B)/emu/%.o) $(B)/emu/tests/gpu/emu/emu.o
EMU_TEST  := $(B)/tests/gpu/gpu_kernels_emu
EMU_FLAGS := -std=c++17 -O2 -g -DLBDPO_CUDA_EMU -Itests/gpu/emu -I. -Wall -Wextra -Wno-unknown-pragmas \
	     $(PKG_CFLAGS) -MMD -MP
# The compute programs linked with the CUDA backend on the emulator
# (build/rel/emu/bin): `--device cuda` runs the backend table, model.c's
# device/host traffic and the kernels on the CPU; tests/sh/test_cuda_emu.sh
# compares their outputs with --device cpu.
CUDA_BE   := $(B)/libcore/nn/backend_cuda.o
EMU_CMDS  := lbdpo-logprob lbdpo-reward lbdpo-refcache lbdpo-step lbdpo-beta lbdpo-eval lbdpo-sample
EMU_PROGS := $(EMU_CMDS:%=$(B)/emu/bin/%)
# lbdpo-step with the MPI dist.o on the emulated CUDA backend: under mpirun
# its gradient takes the host-copy path of a device (non-unified) backend
# (tests/sh/test_mpi_step.sh; NCCL itself cannot be emulated).
EMU_MPI   := $(if $(MPI_DIST),$(B)/emu/mpi/lbdpo-step)
# With nvcc, the plain build also links the same programs with the real
# CUDA objects (build/rel/cuda/bin): make test checks they link, and
# tests/sh/test_gpu.sh runs test_cuda_emu.sh's comparisons with them when a
# GPU is present.
CUDA_PROGS := $(EMU_CMDS:%=$(B)/cuda/bin/%)
ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error lbdpo: CUDA=1 needs nvcc from the CUDA Toolkit: put it on PATH or set NVCC=/path/to/nvcc)
  endif
  LIB_OBJS  += $(CUDA_OBJS)
  CFLAGS    += -DLBDPO_CUDA
  LDLIBS    += $(CUDA_LIBS)
  PROG_OBJS := $(CUDA_BE)
  GPU_OBJS  :=
  GPU_LIBS  :=
else
  GPU_OBJS  := $(CUDA_OBJS)
  GPU_LIBS  := $(CUDA_LIBS)
endif
# NCCL: with CUDA=1 and MPI both on, the MPI dist.o also carries the NCCL
# gradient all-reduce on device memory (dist.h, dist_allreduce_sum_dev) when
# nccl.h is found: the CUDA Toolkit's, or NCCL_HOME's (NCCL_HOME=/usr for
# Debian's libnccl-dev). NCCL=0 leaves it out; the gradient then goes
# through a host copy, as it does at run time with LBDPO_NCCL=0.
ifeq ($(CUDA)$(MPI),11)
  NCCL_HOME ?= $(CUDA_HOME)
  ifeq ($(origin NCCL),undefined)
    NCCL := $(if $(wildcard $(NCCL_HOME)/include/nccl.h),1,0)
  endif
  ifeq ($(NCCL),1)
    ifeq ($(wildcard $(NCCL_HOME)/include/nccl.h),)
      $(error NCCL=1 but $(NCCL_HOME)/include/nccl.h is not found: set NCCL_HOME, or NCCL=0)
    endif
    NCCL_CFLAGS := -DLBDPO_NCCL -I$(NCCL_HOME)/include
    NCCL_LIBS   := -L$(NCCL_HOME)/lib64 -L$(NCCL_HOME)/lib -Wl,-rpath,$(NCCL_HOME)/lib64 -lnccl
  endif
else
  NCCL :=
endif
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

.PHONY: all deps test check-deps demo experiment experiment-compare study online ppo bench bench-lora fuzz install clean \
	help tests-build test-gpu \
	format format-check
all: $(PROGS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(B)/emu/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) -x c++ $(EMU_FLAGS) -c $< -o $@

$(B)/emu/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@; ar qcs $@ $^ # q, not r: nn/cpu/layers.o and nn/cuda/layers.o share a name

$(BIN)/%: $(B)/cmd/%.o $(PROG_OBJS) $(LIB) $(MPI_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(PROG_OBJS) $(LIB) $(LDLIBS) -o $@

# Only gemm_bf16.o depends on oneDNN; switching DNNL rebuilds it.
DNNL_STAMP = $(B)/dnnl-$(DNNL).stamp
$(DNNL_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(B)/dnnl-*.stamp; touch $@
$(B)/libcore/nn/cpu/gemm_bf16.o: libcore/nn/cpu/gemm_bf16.c $(DNNL_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DNNL_CFLAGS) -c $< -o $@

# A build directory from before libcore's wings (round 3) has dependency
# files naming sources that moved (libcore/model.c is libcore/nn/model.c):
# say so instead of make's bare "No rule to make target".
libcore/%.c libcore/%.h:
	@echo "lbdpo: $@ is gone (libcore/ is in wings: doc/design.md §7); the build directory is older: run 'make clean'" >&2; exit 1

$(MPI_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(B)/mpi-*.stamp; touch $@

$(B)/mpi/dist.o: libcore/dist/dist.c $(MPI_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) $(NCCL_CFLAGS) -DLBDPO_MPI -c $< -o $@

# Static pattern rules win over the generic one above; the MPI dist.o comes
# before the library, so the archive's plain dist.o is not pulled in.
$(MPI_PROGS): $(BIN)/%: $(B)/cmd/%.o $(MPI_DIST) $(PROG_OBJS) $(LIB) $(MPI_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(LDFLAGS) $< $(MPI_DIST) $(PROG_OBJS) $(LIB) $(LDLIBS) $(NCCL_LIBS) -o $@

$(MPI_TESTS): $(B)/tests/mpi/%: $(B)/tests/mpi/%.o $(MPI_DIST) $(LIB)
	@mkdir -p $(dir $@)
	$(MPICC) $(LDFLAGS) $< $(MPI_DIST) $(LIB) $(LDLIBS) $(NCCL_LIBS) -o $@

$(B)/tests/%: $(B)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) $(shell pkg-config --libs criterion) -o $@

$(B)/bench/bin/%: $(B)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# The harness links the backend table too (gpu_kernels --tf32 selects it).
$(GPU_TEST): $(GPU_SRCS:%.c=$(B)/%.o) $(CUDA_BE) $(CUDA_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(GPU_SRCS:%.c=$(B)/%.o) $(CUDA_BE) $(GPU_OBJS) $(LIB) $(GPU_LIBS) $(LDLIBS) -o $@

$(EMU_TEST): $(GPU_SRCS:%.c=$(B)/%.o) $(CUDA_BE) $(EMU_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $(GPU_SRCS:%.c=$(B)/%.o) $(CUDA_BE) $(EMU_OBJS) $(LIB) $(LDLIBS) -o $@

$(EMU_PROGS): $(B)/emu/bin/%: $(B)/cmd/%.o $(CUDA_BE) $(EMU_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $< $(CUDA_BE) $(EMU_OBJS) $(LIB) $(LDLIBS) -o $@

$(EMU_MPI): $(B)/cmd/lbdpo-step.o $(MPI_DIST) $(CUDA_BE) $(EMU_OBJS) $(LIB) $(MPI_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(LDFLAGS) $< $(MPI_DIST) $(CUDA_BE) $(EMU_OBJS) $(LIB) $(LDLIBS) -lstdc++ -o $@

$(CUDA_PROGS): $(B)/cuda/bin/%: $(B)/cmd/%.o $(CUDA_BE) $(CUDA_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(CUDA_BE) $(CUDA_OBJS) $(LIB) $(CUDA_LIBS) $(LDLIBS) -o $@

tests-build: $(PROGS) $(TEST_BINS) $(MPI_TESTS) $(if $(NVCC),$(GPU_TEST) $(if $(filter 1,$(CUDA)),,$(CUDA_PROGS))) \
	$(if $(filter 1,$(SANITIZE)),,$(EMU_TEST) $(if $(filter 1,$(CUDA)),,$(EMU_PROGS) $(EMU_MPI)))

# The GPU harness alone; exits 0 with the reason when it cannot run.
test-gpu:
	@if [ -z "$(NVCC)" ]; then echo "test-gpu: skipped: nvcc not found (install the CUDA Toolkit or set NVCC=)"; \
	else $(MAKE) --no-print-directory $(GPU_TEST) && { $(GPU_TEST); rc=$$?; [ $$rc = 77 ] && rc=0; exit $$rc; }; fi

deps:
	@bash scripts/deps.sh

# The test suite: unit tests (Criterion) and shell tests of the programs.
# tests/run.sh prints one closing line: "N passed, N failed, N skipped".
test: deps
	@bash scripts/deps.sh --mpi
	@$(MAKE) --no-print-directory tests-build
	@LBDPO_BIN=$(CURDIR)/$(BIN) LBDPO_TESTBIN=$(CURDIR)/$(B)/tests SANITIZE=$(SANITIZE) bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/demo.mk LBDPO_BIN=$(CURDIR)/$(BIN)

# PPO, GRPO and on-policy DPO / LB-DPO on the demo's arithmetic task (pipelines/ppo.mk)
ppo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/ppo.mk LBDPO_BIN=$(CURDIR)/$(BIN)

# arms are independent targets: run them on every core unless make -j was given
experiment: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/experiment.mk LBDPO_BIN=$(CURDIR)/$(BIN) \
	  $(if $(findstring j,$(firstword $(MAKEFLAGS))),,-j$(shell nproc 2>/dev/null || echo 2))

# make experiment DTYPE=bf16's arms beside fp32's (both runs done first)
experiment-compare:
	@$(MAKE) --no-print-directory -f pipelines/experiment.mk LBDPO_BIN=$(CURDIR)/$(BIN) compare

study: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/study.mk LBDPO_BIN=$(CURDIR)/$(BIN) $(if $(QUICK),QUICK=$(QUICK)) \
	  $(if $(findstring j,$(firstword $(MAKEFLAGS))),,-j$(shell nproc 2>/dev/null || echo 2))

online: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/online.mk LBDPO_BIN=$(CURDIR)/$(BIN) $(if $(QUICK),QUICK=$(QUICK)) \
	  $(if $(findstring j,$(firstword $(MAKEFLAGS))),,-j$(shell nproc 2>/dev/null || echo 2))

# bench/gpu.sh takes the programs with the CUDA backend (skips without a GPU)
BENCH_CUDA := $(if $(filter 1,$(CUDA)),$(BIN),$(B)/cuda/bin)
bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES) $(if $(NVCC),$(if $(filter 1,$(CUDA)),,$(CUDA_PROGS)))
	@LBDPO_BIN=$(CURDIR)/$(BIN) LBDPO_BENCHBIN=$(CURDIR)/$(B)/bench/bin LBDPO_CUDA_BIN=$(CURDIR)/$(BENCH_CUDA) \
	  bash bench/run.sh

SHAPE ?= qwen2.5-0.5b
bench-lora: deps
	@$(MAKE) --no-print-directory all
	@LBDPO_BIN=$(CURDIR)/$(BIN) bash bench/lora.sh $(SHAPE) $(ARMS)

fuzz: deps
	@bash tests/fuzz/run.sh

# The sources clang-format owns: everything of ours in C, CUDA and C++.
FORMAT_SRCS = $(shell find base formats libcore cmd tests bench \( -name '*.[ch]' -o -name '*.cu' -o -name '*.cc' \) -type f | sort)
CLANG_FORMAT ?= clang-format

format:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "format: $(CLANG_FORMAT) not found (apt-get install clang-format)"; exit 1; }
	$(CLANG_FORMAT) -i $(FORMAT_SRCS)

# "N file" per file clang-format would change (N lines of it), then the total
format-check:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "format-check: $(CLANG_FORMAT) not found (apt-get install clang-format)"; exit 1; }
	@t=0; for f in $(FORMAT_SRCS); do n=$$($(CLANG_FORMAT) $$f | diff $$f - | grep -c '^<'); \
	  [ $$n -gt 0 ] && echo "$$n $$f"; t=$$((t + n)); done; echo "format-check: $$t lines would change"; [ $$t = 0 ]

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 $(MAN7) $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	rm -rf build bin

# the comment block at the top of this file, up to its first blank line
help:
	@sed -n '2,/^$$/p' Makefile | sed -n 's/^# \{0,1\}//p'

-include $(shell find build -name '*.d' 2>/dev/null)
