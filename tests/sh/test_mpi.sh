#!/usr/bin/env bash
# test_mpi.sh — the MPI builds under mpirun with 2 (and 3) ranks on this host:
# libcore/dist/dist.c's operations (tests/mpi/dist_check); lbdpo-refcache and
# lbdpo-logprob under mpirun write byte for byte what one process writes; a
# shared cache and per-host caches; refusals; a rank that dies or is killed
# ends the job with an error and leaves no output, and a re-run completes.
. "$(dirname "$0")/lib.sh"
need_mpi lbdpo-refcache
CHECK="${LBDPO_TESTBIN:?}/mpi/dist_check"
[ -x "$CHECK" ] || fail "$CHECK not built"
cd "$T"
gen() { awk -v seed="$1" -v n="$2" -v V=512 -v sha=1111111111111111111111111111111111111111111111111111111111111111 -f "$ROOT/tests/sh/pairs_gen.awk" >"$3.jsonl" &&
	lbdpo-show --from-json -i "$3.jsonl" -o "$3"; }
summary() { grep 'computed,' "$1" | tail -1; }

# 1. The communication layer itself.
for n in 2 3; do
	mpi -np $n "$CHECK" >out 2>err || { cat err; fail "dist_check with $n ranks"; }
	[ "$(cat out)" = "dist_check: $n ranks ok" ] || fail "dist_check with $n ranks printed: $(cat out)"
done
mpi -np 2 "$CHECK" die 1 >/dev/null 2>err && fail "a rank that died did not fail the job"
grep -qx 'dist_check\[rank 1\]: error: rank 1 failing on purpose' err || fail "no error from the dying rank: $(cat err)"
[ "$(grep -c 'error:' err)" = 1 ] || fail "more than one error line: $(cat err)"

# 2. Equal to one process, byte for byte: 1100 records = several rounds of
# 256 records per rank (libcore/dist/distrec.h), 2 and 3 ranks, file and stdout.
lbdpo-init -q --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128 --vocab 512 --seed 1 -o m1 || fail "lbdpo-init"
gen 11 1100 p.tok || fail "generating records"
mkdir one two three
(cd one && lbdpo-refcache -q --model ../m1 -i ../p.tok -o out.ref && lbdpo-refcache -q --model ../m1 -i ../p.tok >stdout.ref) ||
	fail "lbdpo-refcache"
(cd two && mpi -np 2 lbdpo-refcache -q --model ../m1 -i ../p.tok -o out.ref &&
	mpi -np 2 lbdpo-refcache -q --model ../m1 -i ../p.tok >stdout.ref) || fail "mpirun -np 2 lbdpo-refcache"
(cd three && mpi -np 3 lbdpo-refcache -q --model ../m1 -i ../p.tok -o out.ref) || fail "mpirun -np 3 lbdpo-refcache"
cmp one/out.ref two/out.ref || fail "refcache: 2 ranks differ from one process"
cmp one/stdout.ref two/stdout.ref || fail "refcache: 2 ranks on standard output differ from one process"
cmp one/out.ref three/out.ref || fail "refcache: 3 ranks differ from one process"
# Fewer records than ranks: 0 and 1 records with 3 ranks.
for n in 0 1; do
	gen 5 $n s$n.tok
	(cd one && lbdpo-refcache -q --model ../m1 -i ../s$n.tok -o s.ref) &&
		(cd three && mpi -np 3 lbdpo-refcache -q --model ../m1 -i ../s$n.tok -o s.ref) || fail "$n records"
	cmp one/s.ref three/s.ref || fail "$n records: 3 ranks differ from one process"
done
for b in 0 4096; do
	(cd one && lbdpo-logprob -q -m ../m1 --per-token -b $b -i ../p.tok -o lp.sc) || fail "lbdpo-logprob"
	(cd two && mpi -np 2 lbdpo-logprob -q -m ../m1 --per-token -b $b -i ../p.tok -o lp.sc) || fail "mpirun lbdpo-logprob"
	# -b 0 scores one pair per forward: exact. Packed (-b 4096) batches hold
	# other pairs per rank, so the GEMMs see other row counts; whether that
	# moves a bit depends on the BLAS core's blocking (the same bits under
	# OpenBLAS's Cooperlake core, not under Haswell's), so there every number
	# must agree within 1e-5 relative and every other byte of JSON exactly.
	if [ $b = 0 ]; then
		cmp one/lp.sc two/lp.sc || fail "logprob -b $b: 2 ranks differ from one process"
	else
		lbdpo-show --f32 -i one/lp.sc >one/lp.json && lbdpo-show --f32 -i two/lp.sc >two/lp.json || fail "lbdpo-show lp.sc"
		num_close one/lp.json two/lp.json 1e-5 || fail "logprob -b $b: 2 ranks differ from one process beyond 1e-5"
	fi
done

# 3. A shared cache: filled by 2 ranks, answers a re-run and one process.
(cd two && mpi -np 2 lbdpo-refcache --model ../m1 -i ../p.tok -o c.ref --cache ../shared-c 2>../s1) || fail "shared cache run"
grep -q '1100 records (2 ranks): 1100 computed, 0 from cache' s1 || fail "shared cache, first run: $(summary s1)"
(cd two && mpi -np 2 lbdpo-refcache --model ../m1 -i ../p.tok -o c.ref --cache ../shared-c 2>../s2) || fail "shared cache re-run"
grep -q '1100 records (2 ranks): 0 computed, 1100 from cache' s2 || fail "shared cache, re-run: $(summary s2)"
(cd one && lbdpo-refcache --model ../m1 -i ../p.tok -o c.ref --cache ../shared-c 2>../s3) || fail "one process on the shared cache"
grep -q '1100 records: 0 computed, 1100 from cache' s3 || fail "one process on the ranks' cache: $(summary s3)"
cmp one/c.ref two/c.ref || fail "cached outputs differ"

# 4. Per-host caches (each rank its own directory, as on hosts without a
# shared filesystem; simulated with one environment per rank): a re-run on
# the same ranks computes nothing; each cache holds its rank's half.
perhost() { mpi -np 1 env LBDPO_REFCACHE=../c0 lbdpo-refcache "$@" : -np 1 env LBDPO_REFCACHE=../c1 lbdpo-refcache "$@"; }
(cd two && perhost --model ../m1 -i ../p.tok -o h.ref 2>../s4 && perhost --model ../m1 -i ../p.tok -o h.ref 2>../s5) || fail "per-host caches"
grep -q '1100 records (2 ranks): 1100 computed' s4 || fail "per-host, first run: $(summary s4)"
grep -q '1100 records (2 ranks): 0 computed, 1100 from cache' s5 || fail "per-host, re-run: $(summary s5)"
lbdpo-refcache --model m1 -i p.tok -o /dev/null --cache c0 2>s6 || fail "one process on rank 0's cache"
grep -q '1100 records: 550 computed, 550 from cache' s6 || fail "rank 0's cache does not hold exactly its half: $(summary s6)"
lbdpo-show --no-header -i two/h.ref | cmp -s - <(lbdpo-show --no-header -i one/out.ref) ||
	fail "per-host caches: records differ"

# 5. Refusals: printed once.
(cd two && mpi -np 2 lbdpo-refcache --model ../m1 <../p.tok >/dev/null 2>../e1) && fail "standard input with 2 ranks accepted"
grep -q 'lbdpo-refcache: error: with 2 MPI ranks the input must be a file' e1 || fail "stdin refusal: $(cat e1)"
[ "$(grep -c 'error:' e1)" = 1 ] || fail "stdin refusal printed more than once: $(cat e1)"
mpi -np 2 lbdpo-refcache --model m1 -i p.tok --shard 0/2 -o x.ref 2>e2 && fail "--shard with 2 ranks accepted"
grep -q 'error: --shard and 2 MPI ranks' e2 || fail "--shard refusal: $(cat e2)"
mpi -np 2 lbdpo-logprob -m m1 <p.tok >/dev/null 2>e3 && fail "logprob: standard input with 2 ranks accepted"
grep -q 'lbdpo-logprob: error: with 2 MPI ranks the input must be a file' e3 || fail "logprob stdin refusal: $(cat e3)"
gen 11 700 short.tok
mpi -np 1 lbdpo-refcache -q --model m1 -i p.tok -o x.ref : -np 1 lbdpo-refcache -q --model m1 -i short.tok -o x.ref 2>e4 &&
	fail "ranks reading different inputs accepted"
grep -q 'every rank must read the same input' e4 || fail "different inputs: $(cat e4)"
[ -e x.ref ] && fail "different inputs left an output"

# 6. A rank that dies (rank 1's cache directory is refused) ends the job.
mkdir bad && echo x >bad/file
(cd two && rm -f out.ref && mpi -np 1 lbdpo-refcache --model ../m1 -i ../p.tok -o out.ref : \
	-np 1 env LBDPO_REFCACHE=../bad lbdpo-refcache --model ../m1 -i ../p.tok -o out.ref 2>../e5) && fail "a dying rank did not fail the job"
grep -q 'lbdpo-refcache\[rank 1\]: error: ../bad: not an lbdpo-refcache directory' e5 || fail "dying rank's error: $(cat e5)"
[ -e two/out.ref ] && fail "a failed job left an output"

# 7. A rank killed (SIGKILL) mid-run: the job fails, mpirun (without -q)
# names the rank and the signal, no output is left; a re-run on
# the same shared cache completes and writes what an uninterrupted run does.
gen 12 20000 big.tok
# Same arguments (the header records them) in u/w and k/w.
mkdir -p u/w k/w
(cd u/w && lbdpo-refcache --model ../../m1 -i ../../big.tok -o big.ref --cache ../kc 2>/dev/null) || fail "uninterrupted run"
(cd k/w && exec mpirun --oversubscribe -np 2 lbdpo-refcache --model ../../m1 -i ../../big.tok -o big.ref --cache ../kc 2>../../e6) &
mp=$!
# Rank 1 is stopped (SIGSTOP) as soon as it exists and then let run in
# 50 ms slices until a cache segment appears, so the job cannot finish before
# the kill however fast this machine is (a timed kill raced a fast CI machine).
pid=
for _ in $(seq 500); do
	pid=$(rank_pid 1 'lbdpo-refcache --model ../../m1 -i ../../big.tok')
	[ -n "$pid" ] && break
	kill -0 $mp 2>/dev/null || break
	sleep 0.02
done
[ -n "$pid" ] || { kill $mp 2>/dev/null; fail "rank 1 not found; mpirun printed: $(cat e6)"; }
kill -STOP "$pid" || fail "cannot stop rank 1 ($pid)"
for _ in $(seq 400); do
	[ -n "$(ls k/kc/*/seg-* 2>/dev/null)" ] && break
	kill -CONT "$pid"; sleep 0.05; kill -STOP "$pid"
done
[ -n "$(ls k/kc/*/seg-* 2>/dev/null)" ] || { kill -KILL "$pid"; fail "no cache segment after 20 s of slices"; }
kill -KILL "$pid" || fail "cannot kill rank 1 ($pid)"
wait $mp && fail "the job succeeded although rank 1 was killed (finished too early?)"
[ -e k/w/big.ref ] && fail "a killed job left an output"
grep -q 'rank 1 .*exited on signal 9' e6 || fail "mpirun did not name the killed rank: $(cat e6)"
(cd k/w && mpi -np 2 lbdpo-refcache --model ../../m1 -i ../../big.tok -o big.ref --cache ../kc 2>../../s7) || fail "re-run after the kill"
grep -q '20000 records (2 ranks): [0-9]* computed, [1-9][0-9]* from cache' s7 || fail "re-run used nothing of the killed run: $(summary s7)"
cmp u/w/big.ref k/w/big.ref || fail "re-run after a kill differs from an uninterrupted run"
echo "ok"
