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

enum log_level log_get_level(void)
{
	return log_state.level;
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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	size_t n = 0;
	va_list ap;
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
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
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
