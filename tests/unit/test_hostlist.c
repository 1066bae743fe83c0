/*
 * test_hostlist.c - libpq's multi-host lists (hostlist.c): which host an
 * attempt is on, and the parameters of the attempt after it.
 */
#include <string.h>

#include "hostlist.h"
#include "tap.h"

/* A PQconninfo-like array: keyword/value pairs, then {NULL}. */
#define MAXOPT 16
struct opts {
	PQconninfoOption o[MAXOPT];
	int n;
};

static void opt(struct opts *op, const char *k, const char *v)
{
	memset(&op->o[op->n], 0, sizeof(op->o[0]));
	op->o[op->n].keyword = (char *)k;
	op->o[op->n].val = (char *)v;
	op->n++;
	memset(&op->o[op->n], 0, sizeof(op->o[0]));
}

/* host and port lists with a database, as a conninfo has them */
static void hosts(struct opts *op, const char *host, const char *port)
{
	op->n = 0;
	opt(op, "user", NULL);
	opt(op, "host", host);
	opt(op, "port", port);
	opt(op, "dbname", "convd");
}

static const char *get(const struct hostlist_next *nx, const char *k)
{
	for (int i = 0; nx->keys[i]; i++)
		if (strcmp(nx->keys[i], k) == 0)
			return nx->vals[i];
	return NULL;
}

/* The next attempt from `now` is hosts/addrs/ports (NULL: key absent). */
static void next_is(struct opts *op, const char *host, const char *port,
		    const char *addr, bool others, const char *want_host,
		    const char *want_addr, const char *want_port,
		    const char *name)
{
	struct hostlist_next nx;

	if (!ok(hostlist_next(op->o, host, port, addr, others, &nx) == 0,
		"%s: there is a next attempt", name))
		return;
	if (want_host)
		is_str(get(&nx, "host"), want_host, "%s: host", name);
	else
		ok(get(&nx, "host") == NULL, "%s: no host", name);
	if (want_addr)
		is_str(get(&nx, "hostaddr"), want_addr, "%s: hostaddr", name);
	else
		ok(get(&nx, "hostaddr") == NULL, "%s: no hostaddr", name);
	if (want_port)
		is_str(get(&nx, "port"), want_port, "%s: port", name);
	else
		ok(get(&nx, "port") == NULL, "%s: no port", name);
	is_str(get(&nx, "dbname"), "convd", "%s: other options kept", name);
	ok(get(&nx, "user") == NULL, "%s: unset options left out", name);
	hostlist_next_free(&nx);
}

static void none(struct opts *op, const char *host, const char *port,
		 const char *addr, bool others, const char *name)
{
	struct hostlist_next nx;

	ok(hostlist_next(op->o, host, port, addr, others, &nx) < 0 &&
		   nx.keys == NULL && nx.vals == NULL,
	   "%s: no next attempt", name);
}

static void test_in_order(void)
{
	struct opts op;

	hosts(&op, "a,b,c", "5432");
	next_is(&op, "a", "5432", NULL, false, "b,c", NULL, "5432,5432",
		"after the first");
	next_is(&op, "b", "5432", NULL, false, "c", NULL, "5432",
		"after the second");
	none(&op, "c", "5432", NULL, false, "after the last");
	next_is(&op, "c", "5432", NULL, true, "a,b", NULL, "5432,5432",
		"others of the last");
	next_is(&op, "b", "5432", NULL, true, "a,c", NULL, "5432,5432",
		"others of the second");
	none(&op, "d", "5432", NULL, false, "a host not in the list");
	none(&op, "a", "6543", NULL, false, "a port not the list's");
	none(&op, NULL, NULL, NULL, false, "no current host");
}

static void test_random_order(void)
{
	struct opts op;

	hosts(&op, "a,b,c", "1,2,3");
	opt(&op, "load_balance_hosts", "random");
	next_is(&op, "b", "2", NULL, false, "a,c", NULL, "1,3",
		"random: every other host");
	next_is(&op, "c", "3", NULL, false, "a,b", NULL, "1,2",
		"random: the last one too");
}

static void test_same_host_two_ports(void)
{
	struct opts op;

	hosts(&op, "db,db", "5432,5433");
	next_is(&op, "db", "5432", NULL, false, "db", NULL, "5433",
		"same host: told apart by the port");
	none(&op, "db", "5433", NULL, false, "same host: the last port");
}

static void test_hostaddr(void)
{
	struct opts op = {.n = 0};

	opt(&op, "host", "p1,p2");
	opt(&op, "hostaddr", "10.0.0.1,10.0.0.2");
	opt(&op, "dbname", "convd");
	next_is(&op, "p1", NULL, "10.0.0.1", false, "p2", "10.0.0.2", NULL,
		"host and hostaddr cut together");
	none(&op, "p1", NULL, "10.0.0.9", false, "another hostaddr");

	op.n = 0;
	opt(&op, "hostaddr", "10.0.0.1,10.0.0.2,10.0.0.3");
	opt(&op, "dbname", "convd");
	/* without host, libpq names a host by its hostaddr */
	next_is(&op, "10.0.0.2", NULL, "10.0.0.2", false, NULL, "10.0.0.3",
		NULL, "hostaddr alone");
}

static void test_refused(void)
{
	struct opts op = {.n = 0};
	char many[64 * 4 + 8];

	opt(&op, "host", "a,,c");
	opt(&op, "dbname", "convd");
	none(&op, "a", NULL, NULL, false, "an empty host would be a default");

	op.n = 0;
	opt(&op, "host", "a,b");
	opt(&op, "port", "1,,3");
	none(&op, "a", "1", NULL, false, "lists of different lengths");

	op.n = 0;
	opt(&op, "host", "a,b");
	opt(&op, "port", "1,");
	none(&op, "a", "1", NULL, false, "an empty port would be a default");

	op.n = 0;
	opt(&op, "host", "a,b");
	opt(&op, "hostaddr", "10.0.0.1");
	none(&op, "a", NULL, "10.0.0.1", false,
	     "one hostaddr for two hosts");

	many[0] = '\0';
	for (int i = 0; i < HOSTLIST_MAX + 1; i++)
		strcat(many, i ? ",h" : "h");
	op.n = 0;
	opt(&op, "host", many);
	none(&op, "h", NULL, NULL, true, "more than HOSTLIST_MAX hosts");

	op.n = 0;
	opt(&op, "host", "a");
	none(&op, "a", NULL, NULL, true, "one host: no other");
}

static void test_label(void)
{
	char l[HOSTLIST_LABEL_MAX];

	hostlist_label(l, sizeof(l), "db1", "5432", NULL);
	is_str(l, "db1:5432", "label without hostaddr");
	hostlist_label(l, sizeof(l), "db1", "5432", "");
	is_str(l, "db1:5432", "label with an empty hostaddr");
	hostlist_label(l, sizeof(l), "db1", "5432", "10.0.0.1");
	is_str(l, "db1:5432 (10.0.0.1)", "label with hostaddr");
	hostlist_label(l, sizeof(l), NULL, NULL, NULL);
	is_str(l, ":", "label of nothing");
}

int main(void)
{
	test_in_order();
	test_random_order();
	test_same_host_two_ports();
	test_hostaddr();
	test_refused();
	test_label();
	return tap_done();
}
