/*
 * bench_spawn.c - runs one command for bench/run.py and reports its wall time
 * and peak RSS.  A small C parent matters for the RSS figure: Linux carries
 * the parent's resident size into a forked child's peak RSS, so measuring
 * from Python directly would put a ~16 MB floor under every program.
 *
 *   bench_spawn REPORT_FILE CMD [ARGS...]
 *
 * The command inherits stdin/stdout/stderr.  REPORT_FILE receives one line
 * "wall_ns maxrss_kb status" (status: exit code, or 128+signal).  Exits with
 * the same status, or 127 when the command cannot be started.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct timespec t0, t1;
    struct rusage ru;
    int status = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: bench_spawn REPORT_FILE CMD [ARGS...]\n");
        return 2;
    }
    FILE *report = fopen(argv[1], "w");
    if (!report) {
        fprintf(stderr, "bench_spawn: cannot write %s\n", argv[1]);
        return 127;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_spawn: fork");
        return 127;
    }
    if (pid == 0) {
        fclose(report);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "bench_spawn: cannot run %s\n", argv[2]);
        _exit(127);
    }
    memset(&ru, 0, sizeof ru);
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("bench_spawn: wait4");
        return 127;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 127;
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL +
                   (t1.tv_nsec - t0.tv_nsec);
    fprintf(report, "%lld %ld %d\n", ns, (long)ru.ru_maxrss, code);
    if (fclose(report) != 0)
        return 127;
    return code;
}
