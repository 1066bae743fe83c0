/*
 * hostlist.c - libpq's multi-host lists: the attempt after the current
 * host (hostlist.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostlist.h"

/* Splits a comma-separated list in place; returns the number of items,
 * -1 past max. */
static int hostlist_split(char *s, char **item, int max)
{
	int n = 0;

	if (!s)
		return 0;
	for (;;) {
		char *comma = strchr(s, ',');

		if (n == max)
			return -1;
		item[n++] = s;
		if (!comma)
			return n;
		*comma = '\0';
		s = comma + 1;
	}
}

/* Joins the items picked by idx[0..n) with commas into out (all of them
 * the same item when one is given for every host); false if it does not
 * fit. */
static bool hostlist_join(char *out, size_t len, char **item, int nitems,
			  const int *idx, int n)
{
	size_t at = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		int w = snprintf(out + at, len - at, "%s%s", i ? "," : "",
				 item[nitems == 1 ? 0 : idx[i]]);

		if (w < 0 || (size_t)w >= len - at)
			return false;
		at += (size_t)w;
	}
	return true;
}

int hostlist_next(const PQconninfoOption *opts, const char *now_host,
		  const char *now_port, const char *now_addr, bool others,
		  struct hostlist_next *out)
{
	const PQconninfoOption *o;
	char *h[HOSTLIST_MAX], *a[HOSTLIST_MAX], *p[HOSTLIST_MAX];
	char *hosts = NULL, *addrs = NULL, *ports = NULL;
	int idx[HOSTLIST_MAX];
	int nh, na, np, n, cur = -1, nopts = 0, k = 0, nidx = 0, rc = -1;
	bool random_order = false;

	out->keys = out->vals = NULL;
	if (!opts || !now_host)
		goto out;
	for (o = opts; o->keyword; o++, nopts++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			hosts = strdup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addrs = strdup(o->val);
		else if (strcmp(o->keyword, "port") == 0)
			ports = strdup(o->val);
		else if (strcmp(o->keyword, "load_balance_hosts") == 0)
			random_order = strcmp(o->val, "random") == 0;
	}
	nh = hostlist_split(hosts, h, HOSTLIST_MAX);
	na = hostlist_split(addrs, a, HOSTLIST_MAX);
	np = hostlist_split(ports, p, HOSTLIST_MAX);
	if (nh < 0 || na < 0 || np < 0)
		goto out;
	n = nh > na ? nh : na;
	if ((nh && nh != n) || (na && na != n) || (np > 1 && np != n))
		goto out;
	for (int i = 0; i < n; i++) {
		const char *name = nh && *h[i] ? h[i] : na ? a[i] : "";
		const char *addr = na ? a[i] : "";
		const char *port = np == 1 ? p[0] : np ? p[i] : "";

		if (!*name || (np && !*port))
			goto out;	/* a default: see hostlist.h */
		if (cur < 0 && strcmp(name, now_host) == 0 &&
		    (!*port || !now_port || strcmp(port, now_port) == 0) &&
		    (!*addr || !now_addr || strcmp(addr, now_addr) == 0))
			cur = i;
	}
	if (cur < 0)
		goto out;
	/* others: every host but the current one, in order */
	for (int i = random_order || others ? 0 : cur + 1; i < n; i++)
		if (i != cur)
			idx[nidx++] = i;
	if (nidx == 0 ||
	    !hostlist_join(out->hosts, sizeof(out->hosts), h, nh, idx,
			   nh ? nidx : 0) ||
	    !hostlist_join(out->addrs, sizeof(out->addrs), a, na, idx,
			   na ? nidx : 0) ||
	    !hostlist_join(out->ports, sizeof(out->ports), p, np, idx,
			   np ? nidx : 0))
		goto out;
	out->keys = calloc((size_t)nopts + 1, sizeof(*out->keys));
	out->vals = calloc((size_t)nopts + 1, sizeof(*out->vals));
	if (!out->keys || !out->vals)
		goto out;
	for (o = opts; o->keyword; o++) {
		const char *v = o->val;

		if (strcmp(o->keyword, "host") == 0)
			v = nh > 0 ? out->hosts : NULL;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			v = na > 0 ? out->addrs : NULL;
		else if (strcmp(o->keyword, "port") == 0)
			v = np > 0 ? out->ports : NULL;
		if (!v || !*v)
			continue;
		out->keys[k] = o->keyword;
		out->vals[k++] = v;
	}
	rc = 0;
out:
	if (rc < 0)
		hostlist_next_free(out);
	free(hosts);
	free(addrs);
	free(ports);
	return rc;
}

void hostlist_next_free(struct hostlist_next *out)
{
	free(out->keys);
	free(out->vals);
	out->keys = out->vals = NULL;
}

void hostlist_label(char *out, size_t len, const char *host, const char *port,
		    const char *addr)
{
	snprintf(out, len, "%s:%s%s%s%s", host ? host : "", port ? port : "",
		 addr && *addr ? " (" : "", addr && *addr ? addr : "",
		 addr && *addr ? ")" : "");
}
