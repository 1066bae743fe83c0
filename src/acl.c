/*
 * acl.c - who may use convd and call its admin methods (acl.h).
 */
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "log.h"

static bool acl_has(const struct acl_ids *l, unsigned int id)
{
	for (int i = 0; i < l->n; i++)
		if (l->ids[i] == id)
			return true;
	return false;
}

/* Parses "name, name, 123" into ids (users or groups). */
static int acl_parse_ids(const char *text, bool groups, struct acl_ids *out,
			 const char *what)
{
	char buf[1024];
	char *save = NULL, *tok;

	out->n = 0;
	if (!text || !*text)
		return 0;
	if (strlen(text) >= sizeof(buf)) {
		log_error("%s: list too long", what);
		return -1;
	}
	strcpy(buf, text);
	for (tok = strtok_r(buf, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		char *end;
		unsigned long v = strtoul(tok, &end, 10);

		if (out->n == ACL_MAX_IDS) {
			log_error("%s: more than %d entries", what, ACL_MAX_IDS);
			return -1;
		}
		if (*tok >= '0' && *tok <= '9' && *end == '\0') {
			out->ids[out->n++] = (unsigned int)v;
		} else if (groups) {
			struct group *g = getgrnam(tok);

			if (!g) {
				log_error("%s: no such group '%s'", what, tok);
				return -1;
			}
			out->ids[out->n++] = g->gr_gid;
		} else {
			struct passwd *p = getpwnam(tok);

			if (!p) {
				log_error("%s: no such user '%s'", what, tok);
				return -1;
			}
			out->ids[out->n++] = p->pw_uid;
		}
	}
	return 0;
}

int acl_parse(const struct config *cfg, struct acl *out)
{
	struct acl a;

	if (acl_parse_ids(cfg->server.allow_users, false, &a.allow_users,
			  "[server] allow_users") < 0 ||
	    acl_parse_ids(cfg->server.allow_groups, true, &a.allow_groups,
			  "[server] allow_groups") < 0 ||
	    acl_parse_ids(cfg->server.admin_users, false, &a.admin_users,
			  "[server] admin_users") < 0 ||
	    acl_parse_ids(cfg->server.admin_groups, true, &a.admin_groups,
			  "[server] admin_groups") < 0)
		return -1;
	a.allow_all = a.allow_users.n == 0 && a.allow_groups.n == 0;
	a.admin_default = a.admin_users.n == 0 && a.admin_groups.n == 0;
	*out = a;
	return 0;
}

int acl_peer_read(int fd, struct acl_peer *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	out->uid = cred.uid;
	out->gid = cred.gid;
	out->pid = cred.pid;
	out->gids[0] = cred.gid;
	out->ngids = 1;
#ifdef SO_PEERGROUPS
	len = sizeof(gid_t) * ACL_MAX_PEER_GROUPS;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->gids + 1, &len) == 0)
		out->ngids += (int)(len / sizeof(gid_t));
#endif
	return 0;
}

/* Whether the peer (uid, primary gid, supplementary groups) matches. */
static bool acl_match(const struct acl_ids *users, const struct acl_ids *groups,
		      const struct acl_peer *p)
{
	if (acl_has(users, p->uid))
		return true;
	for (int i = 0; i < p->ngids; i++)
		if (acl_has(groups, p->gids[i]))
			return true;
	return false;
}

bool acl_allows(const struct acl *a, const struct acl_peer *p)
{
	return a->allow_all ||
	       acl_match(&a->allow_users, &a->allow_groups, p);
}

bool acl_admin(const struct acl *a, const struct acl_peer *p)
{
	if (a->admin_default)
		return p->uid == 0 || p->uid == geteuid();
	return acl_match(&a->admin_users, &a->admin_groups, p);
}
