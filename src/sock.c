/*
 * sock.c - listening Unix sockets.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sock.h"

int sock_listen_unix(const char *path, mode_t mode, const char *group,
		     const char *option)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("%s: path too long: %s", option, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			log_error("%s: %s exists and is not a socket; "
				  "refusing to replace it", option, path);
			return -1;
		}
		/* A live convd answers connect(): never steal its socket. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			log_error("%s: %s is in use by a running process; is "
				  "convd already running?", option, path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		log_notice("removing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			log_error("cannot remove stale socket %s: %s", path,
				  strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	/* Create it with no access, then open it up to the configured mode:
	 * there is no moment when the socket is more open than configured. */
	old = umask(0777);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		umask(old);
		log_error("cannot bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (group && *group) {
		struct group *g = getgrnam(group);

		if (!g) {
			log_error("[server] socket_group: no such group '%s'",
				  group);
			goto fail;
		}
		if (chown(path, (uid_t)-1, g->gr_gid) < 0) {
			log_error("cannot set group of %s to %s: %s", path,
				  group, strerror(errno));
			goto fail;
		}
	}
	if (chmod(path, mode) < 0) {
		log_error("cannot chmod %s: %s", path, strerror(errno));
		goto fail;
	}
	if (listen(fd, 1024) < 0) {
		log_error("listen: %s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	unlink(path);
	close(fd);
	return -1;
}
