/*
 * dbbackup.h - --backup FILE: pg_dump -Fc of the database before a change,
 * when it holds data, with the connection's own parameters (the password
 * through a private passfile, never argv).
 */
#ifndef CONVD_DBBACKUP_H
#define CONVD_DBBACKUP_H

#include "dbctx.h"

/* Writes the backup when --backup was given and there is data; returns an
 * exit status (a failed backup stops the run before any change). */
CONVD_WUR int dbbackup_run(struct dbctx *c);
/* --try --backup FILE: what the backup needs (pg_dump in PATH, a writable
 * directory), without writing it. */
CONVD_WUR int dbbackup_check(struct dbctx *c);

#endif
