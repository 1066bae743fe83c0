/*
 * migrate_sha256.h - SHA-256 (FIPS 180-4) for revision checksums; no
 * crypto library needed.  Pure.
 */
#ifndef CONVD_MIGRATE_SHA256_H
#define CONVD_MIGRATE_SHA256_H

#include "common.h"

#define MIGRATE_SHA256_LEN 32
#define MIGRATE_SHA256_HEXLEN 64

struct migrate_sha256 {
	uint32_t h[8];
	uint64_t nbytes;
	uint8_t buf[64];
	size_t nbuf;
};

void migrate_sha256_init(struct migrate_sha256 *s);
void migrate_sha256_update(struct migrate_sha256 *s, const void *data,
			   size_t len);
void migrate_sha256_final(struct migrate_sha256 *s,
			  uint8_t out[MIGRATE_SHA256_LEN]);

/* One shot: hex (lower case, NUL-terminated) of data.  Exported for
 * tests/unit/test_migrate.c (the test vectors). */
void migrate_sha256_hex(const void *data, size_t len,
			char out[MIGRATE_SHA256_HEXLEN + 1]);
/* Hex of an already computed digest. */
void migrate_sha256_tohex(const uint8_t digest[MIGRATE_SHA256_LEN],
			  char out[MIGRATE_SHA256_HEXLEN + 1]);

#endif
