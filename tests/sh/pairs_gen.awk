# gen.awk: token-pair records as JSON Lines (header first), pseudo-random, reproducible
BEGIN {
	srand(seed);
	printf "{\"lbdpo\":1,\"kind\":\"tokens\",\"history\":[],\"tokenizer\":{\"path\":\"t.json\",\"sha256\":\"%s\",\"vocab_size\":%d,\"bos\":1,\"eos\":2}}\n", sha, V;
	for (r = 0; r < n; r++) {
		np = 1 + int(rand() * 20); nc = 1 + int(rand() * 11); nr = 1 + int(rand() * 11);  # completions are never empty
		printf "{\"id\":\"r%d\",\"group\":\"g%d\",", r, r % 3;
		printf "\"prompt_ids\":["; for (i = 0; i < np; i++) printf "%s%d", (i ? "," : ""), (i ? 3 + int(rand() * (V - 3)) : 1); printf "],";
		printf "\"chosen_ids\":["; for (i = 0; i < nc; i++) printf "%s%d", (i ? "," : ""), 3 + int(rand() * (V - 3)); printf "],";
		printf "\"rejected_ids\":["; for (i = 0; i < nr; i++) printf "%s%d", (i ? "," : ""), 3 + int(rand() * (V - 3)); printf "]}\n";
	}
}
