/*
 * sdn.c - systemd integration (sd-daemon), or no-ops without libsystemd.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "clock.h"
#include "log.h"
#include "sdn.h"

void sdn_notify(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	(void)sd_notify(0, buf);
#else
	(void)fmt;
#endif
}

void sdn_reloading(void)
{
	/* the clock now, not the loop pass's (systemd compares them) */
	sdn_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)clock_mono_usec());
}

uint64_t sdn_watchdog_usec(void)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}

int sdn_listen_fd(void)
{
#ifdef HAVE_LIBSYSTEMD
	int n = sd_listen_fds(1);

	if (n < 0) {
		log_error("socket activation: sd_listen_fds failed: %d", n);
		return -2;
	}
	if (n == 0)
		return -1;
	if (n > 1) {
		log_error("socket activation: %d sockets passed, convd takes "
			  "exactly one", n);
		return -2;
	}
	if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <=
	    0) {
		log_error("socket activation: the passed socket is not a "
			  "listening Unix stream socket");
		return -2;
	}
	return SD_LISTEN_FDS_START;
#else
	if (getenv("LISTEN_FDS"))
		log_warn("LISTEN_FDS is set but convd was built without "
			 "libsystemd: ignoring socket activation");
	return -1;
#endif
}
