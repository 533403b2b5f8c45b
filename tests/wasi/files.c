/* files.c - WASI test guest for granted directories: writes, reads back and
 * lists a file in the directory given as argv[1], then tries to escape it
 * with "..", an absolute path and a symbolic link named "escape" (which the
 * test creates on the host); prints one line per step. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void try_open(const char *label, const char *path) {
    FILE *f = fopen(path, "r");
    if (f) { printf("%s: OPENED (escape!)\n", label); fclose(f); }
    else printf("%s: refused (%s)\n", label, strerror(errno));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/data";
    char path[512];
    snprintf(path, sizeof path, "%s/note.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) { printf("write: failed (%s)\n", strerror(errno)); return 1; }
    fprintf(f, "isoflow was here\n");
    fclose(f);
    char line[64] = {0};
    f = fopen(path, "r");
    if (!f || !fgets(line, sizeof line, f)) { printf("read: failed\n"); return 1; }
    fclose(f);
    printf("read: %s", line);
    DIR *d = opendir(dir);
    int found = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) if (strcmp(e->d_name, "note.txt") == 0) found = 1;
        closedir(d);
    }
    printf("list: %s\n", found ? "note.txt found" : "note.txt missing");
    snprintf(path, sizeof path, "%s/../outside.txt", dir);
    try_open("dotdot", path);
    try_open("absolute", "/etc/passwd");
    snprintf(path, sizeof path, "%s/escape/passwd", dir);
    try_open("symlink", path);
    return 0;
}
