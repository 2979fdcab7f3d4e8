/* log.c — the stderr logger behind log.h: "2026-11-21T02:18:45.123Z info: message". */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum vgp_log_level vgp_log_level = VGP_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
vgp_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void
vgp_log(enum vgp_log_level lvl, const char *fmt, ...)
{
	char line[2048], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl > vgp_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "%s.%03ldZ %s: ", ts, now.tv_nsec / 1000000, level_names[lvl]);
	va_start(ap, fmt);
	if (n >= 0 && (size_t) n < sizeof line)
		vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	/* one write per line, so lines from threads never interleave */
	fprintf(stderr, "%s\n", line);
}
