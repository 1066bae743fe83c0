/*
 * addr.c - listening addresses from the configuration.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

static int addr_fail(char *why, size_t whylen, const char *reason)
{
	snprintf(why, whylen, "%s", reason);
	return -1;
}

int addr_parse_listen(const char *text, struct addr_listen *out, char *why,
		      size_t whylen)
{
	const char *colon, *host = text, *p;
	size_t hostlen;
	unsigned port = 0;
	unsigned char bin[16];

	memset(out, 0, sizeof(*out));
	if (text[0] == '/') {
		if (strlen(text) >= ADDR_PATH_MAX)
			return addr_fail(why, whylen, "a socket path must be "
					 "shorter than 108 bytes");
		out->is_unix = true;
		snprintf(out->host, sizeof(out->host), "%s", text);
		return 0;
	}
	colon = strrchr(text, ':');
	if (!colon || colon == text)
		return addr_fail(why, whylen, "must be HOST:PORT or an absolute "
				 "socket path");
	hostlen = (size_t)(colon - text);
	if (text[0] == '[') {
		if (hostlen < 3 || text[hostlen - 1] != ']')
			return addr_fail(why, whylen, "an IPv6 address is "
					 "written [::1]:PORT");
		host++;
		hostlen -= 2;
	}
	if (hostlen >= sizeof(out->host))
		return addr_fail(why, whylen, "host too long");
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';
	if (colon[1] == '\0' || strlen(colon + 1) > 5)
		return addr_fail(why, whylen, "the port must be 0 to 65535");
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return addr_fail(why, whylen, "the port must be 0 to "
					 "65535");
		port = port * 10 + (unsigned)(*p - '0');
	}
	if (port > 65535)
		return addr_fail(why, whylen, "the port must be 0 to 65535");
	out->port = (uint16_t)port;
	if (strcmp(out->host, "localhost") == 0)
		return 0;
	if (text[0] == '[') {
		if (inet_pton(AF_INET6, out->host, bin) != 1)
			return addr_fail(why, whylen, "not an IPv6 address");
		if (memcmp(bin, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) != 0)
			return addr_fail(why, whylen, "only a loopback address "
					 "(127.0.0.1, [::1], localhost) or a "
					 "Unix socket");
		return 0;
	}
	if (inet_pton(AF_INET, out->host, bin) != 1)
		return addr_fail(why, whylen, "the host must be an IP address "
				 "or localhost");
	if (bin[0] != 127)
		return addr_fail(why, whylen, "only a loopback address "
				 "(127.0.0.1, [::1], localhost) or a Unix "
				 "socket");
	return 0;
}
