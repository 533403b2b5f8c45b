/*
 * platform.h - the OS calls isoflow's modules share (POSIX today), kept in
 * one small layer so that porting to another OS is a checklist, and the
 * few small rules more than one module applies.  Internal to libisoflow:
 * prefix pl_, nothing here is exported.
 */
#ifndef ISOFLOW_PLATFORM_H
#define ISOFLOW_PLATFORM_H

#include <stddef.h>

/* Creates dir and its missing parents (mode 0700 for new ones, like
 * `mkdir -p`) and checks that dir is a directory.  Returns 0, or -1 with
 * errno set (ENAMETOOLONG for paths of 4096 bytes or more, ENOTDIR when a
 * component exists and is not a directory). */
int pl_mkdirs(const char *dir);

/* The name rule of node, device, key and stage names: 1 to max characters
 * from [A-Za-z0-9._-], the first one alphanumeric.  1 when name follows
 * it, else 0 (NULL too). */
int pl_name_ok(const char *name, size_t max);

#endif /* ISOFLOW_PLATFORM_H */
