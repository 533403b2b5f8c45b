/*
 * status.c - names and messages of status codes, trap codes, value types and
 * extern kinds, generated from the X-macro tables in wasm.h.
 */
#include "wasm.h"

static const char *const status_names[] = {
#define IW__X(name, msg) "IW_" #name,
    IW_STATUS_MAP(IW__X)
#undef IW__X
};

static const char *const status_msgs[] = {
#define IW__X(name, msg) msg,
    IW_STATUS_MAP(IW__X)
#undef IW__X
};

static const char *const trap_msgs[] = {
#define IW__X(name, msg) msg,
    IW_TRAP_MAP(IW__X)
#undef IW__X
};

const char *iw_status_name(iw_status s)
{
    unsigned u = (unsigned)s;
    return u < (unsigned)IW_STATUS_COUNT ? status_names[u] : "IW_?";
}

const char *iw_status_msg(iw_status s)
{
    unsigned u = (unsigned)s;
    return u < (unsigned)IW_STATUS_COUNT ? status_msgs[u] : "unknown status";
}

const char *iw_trap_msg(iw_trap t)
{
    unsigned u = (unsigned)t;
    return u < (unsigned)IW_TRAP_COUNT ? trap_msgs[u] : "unknown trap";
}

const char *iw_valtype_name(uint8_t t)
{
    switch (t) {
    case IW_I32:
        return "i32";
    case IW_I64:
        return "i64";
    case IW_F32:
        return "f32";
    case IW_F64:
        return "f64";
    case IW_FUNCREF:
        return "funcref";
    case IW_EXTERNREF:
        return "externref";
    default:
        return "?";
    }
}

const char *iw_extern_kind_name(iw_extern_kind k)
{
    switch ((unsigned)k) {
    case IW_EXTERN_FUNC:
        return "func";
    case IW_EXTERN_TABLE:
        return "table";
    case IW_EXTERN_MEMORY:
        return "memory";
    case IW_EXTERN_GLOBAL:
        return "global";
    default:
        return "?";
    }
}
