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

/* Makes the calling thread's next `bytes` of allocations fast: faults that
 * much of its malloc arena in at once (glibc; elsewhere nothing) and keeps
 * freed memory with the process (16 MiB; first call, process-wide).  A
 * cold process paid a page fault per 4 KiB of every new buffer, on some
 * VMs ~20 us each: a 100 KB module crossing a node cost ~0.5 ms per copy.
 * Used by the threads a live deploy crosses (link loops, the control
 * thread).  At most 64 MiB. */
void pl_heap_warm(size_t bytes);

#endif /* ISOFLOW_PLATFORM_H */
