/*
 * addr.h - listening addresses written in the configuration ([http]
 * listen): a loopback HOST:PORT or a Unix socket path.  Pure: no look-up,
 * no socket.
 */
#ifndef CONVD_ADDR_H
#define CONVD_ADDR_H

#include "common.h"

#define ADDR_PATH_MAX 108	/* sizeof(sockaddr_un.sun_path) */

struct addr_listen {
	bool is_unix;		/* host is a socket path */
	char host[ADDR_PATH_MAX]; /* 127.x.y.z, ::1 (no brackets), localhost */
	uint16_t port;		/* 0: any free port */
};

/*
 * Parses "127.0.0.1:9650", "[::1]:9650", "localhost:9650" or
 * "/run/convd/http.sock".  Only loopback hosts are accepted.  Returns -1
 * with the reason in why.
 */
CONVD_WUR int addr_parse_listen(const char *text, struct addr_listen *out,
				char *why, size_t whylen);

#endif
