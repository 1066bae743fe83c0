/*
 * rpc_error.h - the protocol's error codes (convd-protocol(7)): what a
 * request's `error.code` says.  Pure; shared by the request layer, the
 * server and the stats.
 */
#ifndef CONVD_RPC_ERROR_H
#define CONVD_RPC_ERROR_H

enum rpc_error {
	E_INVALID_REQUEST,
	E_NO_SUCH_METHOD,
	E_INVALID_PARAMS,
	E_UNAVAILABLE,
	E_TIMEOUT,
	E_OVERLOADED,
	E_PERMISSION_DENIED,
	E_RESULT_TOO_LARGE,
	E_INTERNAL,
	E_CONFLICT,		/* issue 17: set_state's expected_version */
	E_NOT_FOUND,		/* issue 18: not one of the user's messages */
	E_COUNT_		/* also: "no error" where one is optional */
};

/* The code's name on the wire ("invalid_params"); "internal" for an
 * out-of-range value. */
const char *rpc_error_code(enum rpc_error e);

#endif
