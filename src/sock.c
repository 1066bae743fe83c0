/*
 * sock.c - listening Unix sockets.
 *
 * Everything happens relative to a descriptor of the socket's directory,
 * and the new node's group and mode are set through a descriptor of the
 * node itself, so that nobody can swap what convd creates for a link.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sock.h"

/*
 * The directory of the socket must not let anyone else swap what convd
 * creates in it: owned by root or by convd's user, and writable by nobody
 * else unless sticky (as /tmp; there, others cannot rename or remove our
 * entries).
 */
static int sock_check_dir(int dirfd, const char *path, const char *option)
{
	struct stat st;

	if (fstat(dirfd, &st) < 0) {
		log_error("%s: directory of %s: %s", option, path,
			  strerror(errno));
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		log_error("%s: the directory of %s belongs to uid %u (neither "
			  "root nor convd's user), who could replace the "
			  "socket; refusing it",
			  option, path, (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & S_ISVTX) == 0 &&
	    ((st.st_mode & S_IWOTH) ||
	     ((st.st_mode & S_IWGRP) && st.st_gid != getegid() &&
	      st.st_gid != 0))) {
		log_error("%s: the directory of %s is writable by others (mode "
			  "%04o) without the sticky bit, so they could replace "
			  "the socket; refusing it (use a directory such as "
			  "/run/convd)",
			  option, path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/*
 * Sets the fresh socket's group and mode through a descriptor of the
 * node itself, opened without following a link and checked to be a
 * socket that convd owns: never by path, so that a racer who swaps the
 * socket for a link (or anything else) after bind() gets nothing
 * chowned or chmodded.  Until then the node has mode 0000 (umask).
 */
static int sock_perms(int dirfd, const char *base, const char *path,
		      mode_t mode, const char *group, const char *option)
{
	char proc[64];
	struct stat st;
	int nfd = openat(dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int rc = -1;

	if (nfd < 0) {
		log_error("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(nfd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    st.st_uid != geteuid()) {
		log_error("%s: %s was replaced right after convd created it; "
			  "refusing to change its owner or mode",
			  option, path);
		goto out;
	}
	if (group && *group) {
		struct group *g = getgrnam(group);

		if (!g) {
			log_error("[server] socket_group: no such group '%s'",
				  group);
			goto out;
		}
		if (fchownat(nfd, "", (uid_t)-1, g->gr_gid,
			     AT_EMPTY_PATH) < 0) {
			log_error("cannot set group of %s to %s: %s", path,
				  group, strerror(errno));
			goto out;
		}
	}
	/* chmod has no AT_EMPTY_PATH before Linux 6.6: the descriptor's
	 * /proc link names this very node, whatever the path holds now. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", nfd);
	if (chmod(proc, mode) < 0) {
		log_error("cannot chmod %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(nfd);
	return rc;
}

int sock_listen_unix(const char *path, mode_t mode, const char *group,
		     const char *option)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	const char *base, *slash;
	struct stat st;
	mode_t old;
	int fd = -1, dirfd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("%s: path too long: %s", option, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	slash = strrchr(path, '/');
	if (slash) {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		memcpy(dir, path, n);
		dir[n] = '\0';
		base = slash + 1;
	} else {
		strcpy(dir, ".");
		base = path;
	}
	if (*base == '\0') {
		log_error("%s: %s names a directory", option, path);
		return -1;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		log_error("%s: cannot open the directory %s: %s", option, dir,
			  strerror(errno));
		return -1;
	}
	if (sock_check_dir(dirfd, path, option) < 0)
		goto fail_dir;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			log_error("%s: %s exists and is not a socket; "
				  "refusing to replace it", option, path);
			goto fail_dir;
		}
		/* A live convd answers connect(): never steal its socket. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			log_error("%s: %s is in use by a running process; is "
				  "convd already running?", option, path);
			goto fail_dir;
		}
		if (probe >= 0)
			close(probe);
		log_notice("removing stale socket %s", path);
		if (unlinkat(dirfd, base, 0) < 0 && errno != ENOENT) {
			log_error("cannot remove stale socket %s: %s", path,
				  strerror(errno));
			goto fail_dir;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		goto fail_dir;
	}
	/* Create it with no access, then open it up to the configured mode:
	 * there is no moment when the socket is more open than configured. */
	old = umask(0777);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		umask(old);
		log_error("cannot bind %s: %s", path, strerror(errno));
		goto fail_dir;
	}
	umask(old);
	if (sock_perms(dirfd, base, path, mode, group, option) < 0)
		goto fail;
	if (listen(fd, 1024) < 0) {
		log_error("listen: %s", strerror(errno));
		goto fail;
	}
	close(dirfd);
	return fd;
fail:
	/* only our own socket is removed, never what replaced it */
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_uid == geteuid())
		unlinkat(dirfd, base, 0);
fail_dir:
	if (fd >= 0)
		close(fd);
	close(dirfd);
	return -1;
}
