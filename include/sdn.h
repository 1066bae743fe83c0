/*
 * sdn.h - systemd integration: sd_notify, watchdog and socket activation.
 * Without libsystemd (configure --without-systemd) every call is a no-op
 * and socket activation reports no sockets.
 *
 * The module is sdn (sd notify), prefix sdn_: libsystemd's own names take sd_.
 */
#ifndef CONVD_SDN_H
#define CONVD_SDN_H

#include "common.h"

/* Sends a state string ("READY=1", "STATUS=...") if NOTIFY_SOCKET is set. */
void sdn_notify(const char *fmt, ...) CONVD_PRINTF(1, 2);

/* RELOADING=1 with MONOTONIC_USEC=now, as systemd wants since v253. */
void sdn_reloading(void);

/* Watchdog interval requested by systemd in usec, 0 if none. */
uint64_t sdn_watchdog_usec(void);

/*
 * Socket activation: returns a listening Unix stream socket passed by
 * systemd (LISTEN_FDS), -1 if none was passed, -2 if what was passed is
 * unusable (the reason is logged).
 */
CONVD_WUR int sdn_listen_fd(void);

#endif
