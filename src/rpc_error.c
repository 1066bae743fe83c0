/*
 * rpc_error.c - the protocol's error codes (rpc_error.h).
 */
#include "rpc_error.h"

static const char *const rpc_error_codes[E_COUNT_] = {
	[E_INVALID_REQUEST] = "invalid_request",
	[E_NO_SUCH_METHOD] = "no_such_method",
	[E_INVALID_PARAMS] = "invalid_params",
	[E_UNAVAILABLE] = "unavailable",
	[E_TIMEOUT] = "timeout",
	[E_OVERLOADED] = "overloaded",
	[E_PERMISSION_DENIED] = "permission_denied",
	[E_RESULT_TOO_LARGE] = "result_too_large",
	[E_INTERNAL] = "internal",
	[E_CONFLICT] = "conflict",
	[E_NOT_FOUND] = "not_found",
};

const char *rpc_error_code(enum rpc_error e)
{
	return (unsigned)e < E_COUNT_ ? rpc_error_codes[e] : "internal";
}
