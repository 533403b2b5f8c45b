/*
 * stage_host.h - private to the stage hosts (stage_wasm.c, stage_native.c,
 * stage_builtin.c, stage_registry.c): the ops tables the registry lists and
 * the checks every host applies to the calls a stage makes, so that a
 * stage behaves the same whichever way it is hosted.
 */
#ifndef ISOFLOW_STAGE_HOST_H
#define ISOFLOW_STAGE_HOST_H

#include "flow_int.h"

/* The hosts (one const table each). */
extern const fl__stage_ops fl__wasm_ops;
extern const fl__stage_ops fl__native_ops;
extern const fl__stage_ops fl__log_ops;
extern const fl__stage_ops fl__jsonl_ops;
extern const fl__stage_ops fl__null_ops;
extern const fl__stage_ops fl__sample_ops;
extern const fl__stage_ops fl__rate_ops;
extern const fl__stage_ops fl__filter_ops;
extern const fl__stage_ops fl__delay_ops;

/* Limits on what a stage hands the host (beyond flow_int.h's). */
#define FL__MAX_KEY 64u                 /* kv key bytes */
#define FL__MAX_VALUE (64u * 1024u)     /* kv value bytes */
#define FL__MAX_LOG 1024u               /* log line bytes (longer: cut) */
#define FL__MAX_STAGE_FILE (64u << 20)  /* .wasm / .so file bytes */

/* The checks shared by the hosts: each returns the IF_E* code to hand the
 * stage, or IF_OK when the call may go to the runtime.  `emits` counts the
 * emits of the current process/produce/actuation call. */
int fl__check_emit(uint32_t *emits, size_t topic_len, size_t len);
int fl__check_kv(size_t key_len, size_t val_len);

/* Verifies that `caps` (the stage's IF_CAP_* bits) holds d->need_caps;
 * otherwise FL_CHECK with "stage 'NAME': FILE does not define stage_process
 * (needed: it has an upstream)" (FILE: the path's last component). */
fl_status fl__check_caps(const fl__stage *d, uint32_t caps, char *err,
                         size_t errlen);

/* Reads a whole file (at most `max` bytes) into a malloc'ed buffer the
 * caller frees.  FL_IO with "cannot read PATH: <strerror>" (or "... is
 * larger than N bytes") on failure. */
fl_status fl__read_file(const char *path, size_t max, uint8_t **data,
                        size_t *len, char *err, size_t errlen);

/* The last component of a path (borrowed from `path`). */
const char *fl__base_name(const char *path);

/* A host table whose functions do nothing (check() instantiates stages
 * with it): emits succeed, kv is empty, meta is 0 / "". */
extern const if_host_api fl__dummy_api;

#endif /* ISOFLOW_STAGE_HOST_H */
