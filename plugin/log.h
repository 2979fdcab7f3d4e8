/* log.h — one plain-text line per event on stderr, with a level filter (--log-level). Used by the long-running
 * parts (serve, health, registration); one-shot commands report through vgp_error_t and main. */
#ifndef VGP_LOG_H
#define VGP_LOG_H

enum vgp_log_level { VGP_LOG_ERROR, VGP_LOG_WARN, VGP_LOG_INFO, VGP_LOG_DEBUG };

extern enum vgp_log_level vgp_log_level;

/* "error" | "warn" | "info" | "debug" -> level; -1 when unknown. */
int vgp_log_parse_level(const char *s);
void vgp_log(enum vgp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) vgp_log(VGP_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) vgp_log(VGP_LOG_WARN, __VA_ARGS__)
#define log_info(...) vgp_log(VGP_LOG_INFO, __VA_ARGS__)
#define log_debug(...) vgp_log(VGP_LOG_DEBUG, __VA_ARGS__)

#endif
