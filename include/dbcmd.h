/*
 * dbcmd.h - `convctl db ...`: the schema commands that replace db.sh and
 * Alembic.  They connect to PostgreSQL directly (libpq, blocking), with the
 * same config file and environment as convd.
 */
#ifndef CONVD_DBCMD_H
#define CONVD_DBCMD_H

#include "common.h"

/*
 * argv[0] is "db"; argv[1] the subcommand.  config_path is convctl's -c
 * (NULL: the default SYSCONFDIR "/convd.conf" if it exists, else none).
 * json: convctl's --json.  Returns the process exit status:
 * 0 ok, 1 failed / something wrong, 2 usage, 3 cannot reach the database.
 */
int dbcmd_main(int argc, char **argv, const char *config_path, bool json);

#endif
