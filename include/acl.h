/*
 * acl.h - who may use convd, and who may call its admin methods: the
 * [server] allow_users, allow_groups, admin_users and admin_groups lists,
 * matched against a Unix socket peer's credentials (SO_PEERCRED, and
 * SO_PEERGROUPS for its supplementary groups, as they were at connect).
 *
 * Empty allow lists allow everyone (the socket's mode and group then
 * decide); empty admin lists make root and convd's own user the admins.
 */
#ifndef CONVD_ACL_H
#define CONVD_ACL_H

#include <sys/types.h>

#include "common.h"
#include "config.h"

#define ACL_MAX_IDS 64
#define ACL_MAX_PEER_GROUPS 256

struct acl_ids {
	int n;
	unsigned int ids[ACL_MAX_IDS];
};

struct acl {
	struct acl_ids allow_users, allow_groups, admin_users, admin_groups;
	bool allow_all, admin_default;
};

/* A peer's credentials. */
struct acl_peer {
	uid_t uid;
	gid_t gid;			/* primary */
	pid_t pid;
	int ngids;			/* gids[0] is the primary group */
	gid_t gids[ACL_MAX_PEER_GROUPS + 1];
};

/*
 * Parses the four lists of cfg ("name, name, 123": user or group names
 * or numeric ids) into out, all or nothing: -1 (logged, naming the
 * option) leaves out as it was.
 */
CONVD_WUR int acl_parse(const struct config *cfg, struct acl *out);

/* Reads the credentials of the peer of Unix socket fd; -1 (errno). */
CONVD_WUR int acl_peer_read(int fd, struct acl_peer *out);

/* Whether the peer may use convd, and whether it may call admin
 * methods. */
bool acl_allows(const struct acl *a, const struct acl_peer *p);
bool acl_admin(const struct acl *a, const struct acl_peer *p);

#endif
