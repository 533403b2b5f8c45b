/*
 * platform.h - the OS calls isoflow's modules share (POSIX today), kept in
 * one small layer so that porting to another OS is a checklist.  Internal
 * to libisoflow: prefix pl_, nothing here is exported.
 */
#ifndef ISOFLOW_PLATFORM_H
#define ISOFLOW_PLATFORM_H

/* Creates dir and its missing parents (mode 0700 for new ones, like
 * `mkdir -p`) and checks that dir is a directory.  Returns 0, or -1 with
 * errno set (ENAMETOOLONG for paths of 4096 bytes or more, ENOTDIR when a
 * component exists and is not a directory). */
int pl_mkdirs(const char *dir);

#endif /* ISOFLOW_PLATFORM_H */
