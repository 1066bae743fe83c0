/*
 * test_acl.c - the access lists: parsing of user and group names and ids
 * (all four lists or none), their bounds, and who is allowed and who is
 * an admin for a peer's uid, primary and supplementary groups.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "log.h"
#include "tap.h"

static struct config cfg;

static int parse(const char *au, const char *ag, const char *mu,
		 const char *mg, struct acl *out)
{
	cfg.server.allow_users = (char *)au;
	cfg.server.allow_groups = (char *)ag;
	cfg.server.admin_users = (char *)mu;
	cfg.server.admin_groups = (char *)mg;
	return acl_parse(&cfg, out);
}

static struct acl_peer peer(uid_t uid, gid_t gid, int nsup,
			    const gid_t *sup)
{
	struct acl_peer p = {.uid = uid, .gid = gid, .pid = 1, .ngids = 1};

	p.gids[0] = gid;
	for (int i = 0; i < nsup; i++)
		p.gids[p.ngids++] = sup[i];
	return p;
}

/* Whether two lists hold the same ids (what acl_parse wrote: the slots
 * past n are not part of a list and may be uninitialised). */
static bool ids_same(const struct acl_ids *x, const struct acl_ids *y)
{
	return x->n == y->n &&
	       memcmp(x->ids, y->ids, (size_t)x->n * sizeof(x->ids[0])) == 0;
}

static bool acl_same(const struct acl *x, const struct acl *y)
{
	return ids_same(&x->allow_users, &y->allow_users) &&
	       ids_same(&x->allow_groups, &y->allow_groups) &&
	       ids_same(&x->admin_users, &y->admin_users) &&
	       ids_same(&x->admin_groups, &y->admin_groups) &&
	       x->allow_all == y->allow_all &&
	       x->admin_default == y->admin_default;
}

int main(void)
{
	static const gid_t sup[] = {300, 301};
	struct acl a, keep;
	struct acl_peer p;
	char many[1100];
	size_t n = 0;

	log_setup("test_acl", LOG_LVL_ERROR);

	is_int(parse(NULL, "", NULL, NULL, &a), 0, "empty lists parse");
	ok(a.allow_all && a.admin_default, "empty lists: everyone, default "
					   "admins");
	p = peer(12345, 12345, 0, NULL);
	ok(acl_allows(&a, &p), "empty allow lists allow anyone");
	ok(!acl_admin(&a, &p), "default admins: not another uid");
	p = peer(0, 0, 0, NULL);
	ok(acl_admin(&a, &p), "default admins: root");
	p = peer(geteuid(), 4242, 0, NULL);
	ok(acl_admin(&a, &p), "default admins: convd's own user");

	is_int(parse("1000, root,\t1002", "200 300", "1000", "", &a), 0,
	       "names and ids, commas, spaces and tabs");
	is_int(a.allow_users.n, 3, "three users");
	is_int(a.allow_users.ids[1], 0, "root is uid 0");
	is_int(a.allow_groups.n, 2, "two groups");
	ok(!a.allow_all && !a.admin_default, "lists given: not the defaults");
	p = peer(1002, 50, 0, NULL);
	ok(acl_allows(&a, &p), "a listed uid is allowed");
	p = peer(7, 200, 0, NULL);
	ok(acl_allows(&a, &p), "a listed primary group is allowed");
	p = peer(7, 50, 2, sup);
	ok(acl_allows(&a, &p), "a listed supplementary group is allowed");
	p = peer(7, 50, 1, sup + 1);
	ok(!acl_allows(&a, &p), "nothing listed: refused");
	p = peer(1000, 50, 0, NULL);
	ok(acl_admin(&a, &p), "admin_users lists 1000");
	p = peer(0, 0, 0, NULL);
	ok(!acl_admin(&a, &p), "with admin lists, root is no admin by default");

	is_int(parse("", "", "", "root", &a), 0, "a group name: root");
	p = peer(5, 5, 1, (const gid_t[]){0});
	ok(acl_admin(&a, &p), "admin through a supplementary group");

	keep = a;
	is_int(parse("no-such-user-convd-test", "", "", "", &a), -1,
	       "an unknown user fails");
	is_int(parse("", "", "", "no-such-group-convd-test", &a), -1,
	       "an unknown group fails");
	ok(acl_same(&a, &keep) && a.admin_groups.n == 1 &&
	   a.admin_groups.ids[0] == 0,
	   "a failed parse leaves the lists as they were");
	for (int i = 0; i < ACL_MAX_IDS + 1; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%d,", i);
	is_int(parse(many, "", "", "", &a), -1,
	       "more than %d entries fail", ACL_MAX_IDS);
	memset(many, '1', sizeof(many) - 1);
	many[sizeof(many) - 1] = '\0';
	is_int(parse(many, "", "", "", &a), -1,
	       "a list of 1024 bytes or more fails");
	return tap_done();
}
