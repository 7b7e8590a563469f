# gen_pairs.awk — synthetic preference records as JSON Lines, for
# `lbdpo-show --from-json` (tests only).
#   awk -v seed=S -v n=N [-v flip=1] [-v tagend=1] [-v ref=FP] -f gen_pairs.awk
# Prompt: [tag, 4 tokens from 3..15]; tag 1 = group "even", 2 = group "odd".
# tagend=1: [1, 4 tokens, tag] instead (the last prompt token tells the groups apart).
# chosen = the prompt's 4 tokens again (a copy task); rejected = 4 tokens
# from 16..31. flip=1 swaps chosen and rejected on the group "odd" records.
# The reference scores are those of a uniform model over V = 32 tokens
# (−n·log V), which a small random init is close to. The header names
# reference ref (default 64 zeros: no model, so lbdpo-step starting a run needs
# --ignore-provenance), e.g. the fingerprint of the model a test trains from.
BEGIN {
	srand(seed); V = 32; L = 4; lr = -L * log(V)
	printf "{\"lbdpo\": 1, \"kind\": \"ref\", \"history\": [], \"reference\": {\"path\": \"synthetic scores\", \"fingerprint\": \"%s\"}}\n", ref != "" ? ref : sprintf("%064d", 0)
	for (r = 0; r < n; r++) {
		p = ""; c = ""; j = ""; odd = r % 2
		for (i = 0; i < L; i++) {
			t = 3 + int(rand() * 13); u = 16 + int(rand() * 16)
			p = p ", " t; c = c (i ? ", " : "") t; j = j (i ? ", " : "") u
		}
		if (flip && odd) { x = c; c = j; j = x }
		pp = tagend ? "1" p ", " (1 + odd) : (1 + odd) p
		printf "{\"id\": \"r%d\", \"group\": \"%s\", \"prompt_ids\": [%s], \"chosen_ids\": [%s], \"rejected_ids\": [%s], \"ref_chosen_logp\": %.6f, \"ref_rejected_logp\": %.6f, \"ref_chosen_n\": %d, \"ref_rejected_n\": %d, \"ref_prompt_logp\": %.6f, \"ref_prompt_entropy\": %.6f}\n", r, (odd ? "odd" : "even"), pp, c, j, lr, lr, L, L, -log(V), log(V)
	}
}
