/*
 * log.c - the one logging module.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static struct {
	const char *ident;
	enum log_level level;
	bool journald;
	pid_t pid;
} log_state = {"convd", LOG_LVL_INFO, false, 0};

static const char *const log_names[] = {
	[LOG_LVL_ERROR] = "error",   [LOG_LVL_WARNING] = "warning",
	[LOG_LVL_NOTICE] = "notice", [LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

/* JOURNAL_STREAM is "DEV:INODE" of the stream journald gave us. */
static bool log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_setup(const char *ident, enum log_level level)
{
	log_state.ident = ident;
	log_state.level = level;
	log_state.journald = log_stderr_is_journal();
	log_state.pid = getpid();
}

void log_cleanup(void)
{
	fflush(stderr);
}

void log_set_level(enum log_level level)
{
	log_state.level = level;
}

bool log_enabled(enum log_level level)
{
	return level <= log_state.level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (int l = LOG_LVL_ERROR; l <= LOG_LVL_DEBUG; l++) {
		if (strcmp(name, log_names[l]) == 0) {
			*out = (enum log_level)l;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if (level < LOG_LVL_ERROR || level > LOG_LVL_DEBUG)
		return "unknown";
	return log_names[level];
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	CONVD_PRINTF(2, 0);

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n = 0;
	int saved = errno;

	if (!log_enabled(level))
		return;
	if (log_state.journald) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	} else {
		struct timeval tv;
		struct tm tm;

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      ".%03dZ %s[%d]: %s: ",
				      (int)(tv.tv_usec / 1000), log_state.ident,
				      (int)log_state.pid, log_names[level]);
	}
	if (n < sizeof(line)) {
		int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);

		if (m > 0)
			n += (size_t)m;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	/* One line per message: a newline inside would forge a log line. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
	errno = saved;
}

/* ---- rate-limited messages ------------------------------------------------ */

/* limiters with a count to report */
static LIST_HEAD(, log_ratelimit) log_rl = LIST_HEAD_INITIALIZER(log_rl);

/* Ends rl's window: its count, if any, is logged. */
static void log_rl_close(struct log_ratelimit *rl, int64_t now)
{
	if (rl->suppressed > 0)
		log_msg(rl->level,
			"%llu more %s suppressed in the last %lld s",
			(unsigned long long)rl->suppressed, rl->what,
			(long long)((now - rl->start) / 1000000));
	rl->suppressed = 0;
	rl->shown = 0;
	rl->start = now;
}

static void log_rl_unlist(struct log_ratelimit *rl)
{
	LIST_REMOVE(rl, link);
	rl->listed = false;
}

void log_msg_rl(struct log_ratelimit *rl, enum log_level level,
		const char *fmt, ...)
{
	int64_t now;
	va_list ap;

	if (!log_enabled(level))
		return;
	now = clock_mono_usec();
	if (rl->start == 0 ||
	    now - rl->start >= (int64_t)LOG_RL_INTERVAL_SEC * 1000000) {
		log_rl_close(rl, now);
		if (rl->listed)
			log_rl_unlist(rl);
	}
	rl->level = level;
	if (rl->shown >= LOG_RL_BURST) {
		if (rl->suppressed++ == 0 && !rl->listed) {
			LIST_INSERT_HEAD(&log_rl, rl, link);
			rl->listed = true;
		}
		return;
	}
	rl->shown++;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	if (rl->shown == LOG_RL_BURST)
		log_msg(level, "further %s are counted, not logged, for %d s",
			rl->what, LOG_RL_INTERVAL_SEC);
}

void log_ratelimit_flush(void)
{
	int64_t now = clock_mono_usec();
	struct log_ratelimit *rl, *next;

	/* (LIST_FOREACH_SAFE is not in glibc's <sys/queue.h>) */
	for (rl = LIST_FIRST(&log_rl); rl; rl = next) {
		next = LIST_NEXT(rl, link);
		if (now - rl->start < (int64_t)LOG_RL_INTERVAL_SEC * 1000000)
			continue;
		log_rl_unlist(rl);
		log_rl_close(rl, now);
	}
}
