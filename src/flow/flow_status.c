/*
 * flow_status.c - the messages of the flow engine's status codes, generated
 * from the single table FL_STATUS_MAP in flow.h.
 */
#include "flow.h"

/* Returns the static message of `s` ("ok", "syntax error", ...), or
 * "unknown status" for a value outside the enum. */
const char *fl_status_msg(fl_status s)
{
    static const char *const msgs[] = {
#define FL__M(name, msg) msg,
        FL_STATUS_MAP(FL__M)
#undef FL__M
    };
    if ((unsigned)s >= (unsigned)FL_STATUS_COUNT)
        return "unknown status";
    return msgs[s];
}
