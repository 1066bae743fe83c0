/*
 * log.h - the one logging module.
 *
 * Levels follow syslog.  Under journald (JOURNAL_STREAM names our stderr)
 * every line starts with a "<N>" priority prefix and carries no time stamp;
 * otherwise lines are "2026-11-24T06:52:58.123Z convd[pid]: LEVEL: text".
 * Never log a password, or a message's content above LOG_DEBUG.
 */
#ifndef CONVD_LOG_H
#define CONVD_LOG_H

#include <sys/queue.h>	/* LIST only: libevent's headers leave it alone */

#include "common.h"

enum log_level {
	LOG_LVL_ERROR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* ident: program name shown in plain lines. */
void log_setup(const char *ident, enum log_level level);
void log_cleanup(void);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Parses "error", "warning", "notice", "info", "debug". */
CONVD_WUR int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) CONVD_PRINTF(2, 3);

/*
 * A message that can come in bursts (a refused connection, a client cut
 * off): at most LOG_RL_BURST lines per LOG_RL_INTERVAL_SEC seconds per
 * limiter; the others are counted, and the count is logged ("N more ...
 * suppressed") when the window ends: by the next such message, or by
 * log_ratelimit_flush(), which the daemon calls from a timer.
 */
#define LOG_RL_BURST 5
#define LOG_RL_INTERVAL_SEC 5

struct log_ratelimit {
	const char *what;		/* "refused connections" */
	enum log_level level;		/* of the last message */
	int64_t start;			/* window start, monotonic µs */
	unsigned int shown;
	uint64_t suppressed;
	LIST_ENTRY(log_ratelimit) link;	/* on the flush list */
	bool listed;
};

#define LOG_RATELIMIT(what) \
	{(what), LOG_LVL_WARNING, 0, 0, 0, {NULL, NULL}, false}

void log_msg_rl(struct log_ratelimit *rl, enum log_level level,
		const char *fmt, ...) CONVD_PRINTF(3, 4);
/* Logs the counts of windows that have ended. */
void log_ratelimit_flush(void);

#define LOG_AT_RL(rl, lvl, ...)                               \
	do {                                                  \
		if (log_enabled(lvl))                         \
			log_msg_rl((rl), (lvl), __VA_ARGS__); \
	} while (0)

#define log_warn_rl(rl, ...) LOG_AT_RL((rl), LOG_LVL_WARNING, __VA_ARGS__)
#define log_info_rl(rl, ...) LOG_AT_RL((rl), LOG_LVL_INFO, __VA_ARGS__)

/*
 * Every level is checked before its arguments are evaluated or formatted:
 * an argument with a side effect must never be placed in a log call.
 */
#define LOG_AT(lvl, ...)                                  \
	do {                                              \
		if (log_enabled(lvl))                     \
			log_msg((lvl), __VA_ARGS__);      \
	} while (0)

#define log_error(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...) LOG_AT(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
