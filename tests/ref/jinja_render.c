/* jinja_render.c — driver for tests/ref/jinja_differential.py: renders each
 * {"t": template, "v": variables} line of stdin with formats/jinja and prints
 * {"ok": output}, {"raised": message} or {"err": message}. */
#include "formats/jinja.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* stdin: lines of JSON {"t": template, "v": vars}; stdout: JSON per line {"ok":out} or {"err":msg} */
int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		json_t *o = json_loads(line, 0, NULL);
		json_t *t = json_object_get(o, "t"), *v = json_object_get(o, "v");
		char err[512];
		json_t *res = json_object();
		jinja *j = jinja_compile(json_string_value(t), json_string_length(t), err, sizeof err);
		if (!j)
			json_object_set_new(res, "err", json_string(err));
		else {
			char *out;
			size_t n;
			int rc = jinja_render(j, v, &out, &n, err, sizeof err);
			if (rc == 0) {
				json_object_set_new(res, "ok", json_stringn(out, n));
				free(out);
			} else
				json_object_set_new(res, rc == JINJA_RAISED ? "raised" : "err", json_string(err));
			jinja_free(j);
		}
		char *s = json_dumps(res, JSON_COMPACT | JSON_ENSURE_ASCII);
		puts(s);
		free(s);
		json_decref(res);
		json_decref(o);
	}
	return 0;
}
