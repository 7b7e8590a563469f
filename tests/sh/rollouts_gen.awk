# rollouts_gen.awk: rollout lines as lbdpo-sample --logprobs writes them (no
# texts), pseudo-random, reproducible: seed, n, V (vocabulary); L > 0 fixes
# the completion length (else 1..12, a stop token on every third)
BEGIN {
	srand(seed);
	for (r = 0; r < n; r++) {
		np = 2 + int(rand() * 12); nc = L > 0 ? L : 1 + int(rand() * 12);
		printf "{\"id\":\"r%d\",\"sample\":%d,\"prompt_ids\":[", r, r % 4;
		for (i = 0; i < np; i++) printf "%s%d", (i ? "," : ""), (i ? 3 + int(rand() * (V - 3)) : 1);
		printf "],\"ids\":["; for (i = 0; i < nc; i++) printf "%s%d", (i ? "," : ""), 3 + int(rand() * (V - 3));
		printf "]%s,\"reward\":%d}\n", (L == 0 && r % 3 == 0) ? ",\"eos_id\":2" : "", int(rand() * 2);
	}
}
