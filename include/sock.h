/*
 * sock.h - listening Unix sockets for convd's front ends (the RPC server
 * and the HTTP endpoint).
 */
#ifndef CONVD_SOCK_H
#define CONVD_SOCK_H

#include <sys/types.h>

#include "common.h"

/*
 * Binds and listens on a Unix socket at path (non-blocking, close-on-exec),
 * with the given mode and group ("" or NULL: convd's).  The directory must
 * be root's or convd's and writable by nobody else (unless sticky).  A
 * stale socket left by a dead process is replaced; one that answers
 * connect() is not, nor anything that is not a socket.  option names the
 * setting in error messages ("[server] socket").  Returns the fd, or -1
 * (logged).
 */
CONVD_WUR int sock_listen_unix(const char *path, mode_t mode,
			       const char *group, const char *option);

#endif
