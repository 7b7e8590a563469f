/* fuzz_jinja.c — libFuzzer target for the chat-template engine: the input is
 * a template, compiled and rendered with a small conversation. Any input must
 * give a rendering or a one-line error, never a crash. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *vars;
	if (!vars)
		vars = json_loads(
			"{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
			"{\"role\": \"user\", \"content\": \" Hi </think> x \"},"
			"{\"role\": \"assistant\", \"content\": \"Hello.\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1.5}}}]}],"
			"\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"tools\": null}",
			0, NULL);
	char err[512];
	jinja *t = jinja_compile((const char *)data, size, err, sizeof err);
	if (!t)
		return 0;
	char *out;
	size_t n;
	if (jinja_render(t, vars, &out, &n, err, sizeof err) == 0)
		free(out);
	jinja_free(t);
	return 0;
}
