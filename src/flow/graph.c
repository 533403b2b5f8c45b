/*
 * graph.c - the checked flow graph after parsing: device names and instance
 * counts (fl__graph_resolve), changing a device group's size, printing the
 * graph per layer, and freeing it.  The parser (parse.c) fills the graph.
 */
#include <stdlib.h>
#include <string.h>

#include "flow_int.h"

/* Devices over all device groups (parse.c has the same limit). */
#define FL_MAX_DEVICES 100000u

static const char *const layer_names[] = {"device", "edge", "cloud"};

/* Writes the name of node `idx` of a group with pattern `pat` into buf
 * (NUL-terminated, truncated to cap) and returns its length (untruncated
 * up to cap - 1).  The pattern holds at most one %d, %Nd or %0Nd (checked by
 * the parser) and %% for a percent sign; anything else is copied as is. */
static size_t format_name(const char *pat, uint32_t idx, char *buf,
                          size_t cap)
{
    size_t n = 0;
    const char *p = pat;

    if (cap == 0)
        return 0;
    while (*p != '\0' && n + 1 < cap) {
        if (p[0] == '%' && p[1] == '%') {
            buf[n++] = '%';
            p += 2;
            continue;
        }
        if (p[0] == '%') {
            const char *q = p + 1;
            int zero = 0;
            unsigned width = 0;
            char digits[16];
            int nd = 0;
            uint32_t v = idx;
            if (*q == '0') {
                zero = 1;
                q++;
            }
            while (*q >= '0' && *q <= '9' && width < 100)
                width = width * 10 + (unsigned)(*q++ - '0');
            if (*q == 'd') {
                do {
                    digits[nd++] = (char)('0' + v % 10);
                    v /= 10;
                } while (v != 0);
                while ((unsigned)nd < width && n + 1 < cap) {
                    buf[n++] = zero ? '0' : ' ';
                    width--;
                }
                while (nd > 0 && n + 1 < cap)
                    buf[n++] = digits[--nd];
                p = q + 1;
                continue;
            }
        }
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    return n;
}

typedef struct name_ref {
    const char *s;
    uint32_t idx;
} name_ref;

static int cmp_name_ref(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Finds two devices with the same name.  Returns 1 and sets *first <
 * *second (the pair whose later index is smallest) when there are, 0 when
 * all names differ, -1 when out of memory.  Used by fl__graph_resolve and
 * by parse.c (which reports the pair with positions). */
int fl__graph_find_dup_device(const fl_graph *g, uint32_t *first,
                              uint32_t *second);
int fl__graph_find_dup_device(const fl_graph *g, uint32_t *first,
                              uint32_t *second)
{
    name_ref *v;
    uint32_t i, best = UINT32_MAX, bfirst = 0;

    if (g->ndevices < 2)
        return 0;
    v = malloc((size_t)g->ndevices * sizeof *v);
    if (v == NULL)
        return -1;
    for (i = 0; i < g->ndevices; i++) {
        v[i].s = g->device_names[i];
        v[i].idx = i;
    }
    qsort(v, g->ndevices, sizeof *v, cmp_name_ref);
    for (i = 1; i < g->ndevices; i++) {
        if (strcmp(v[i - 1].s, v[i].s) == 0 && v[i].idx < best) {
            best = v[i].idx;
            bfirst = v[i - 1].idx;
        }
    }
    free(v);
    if (best == UINT32_MAX)
        return 0;
    /* Several equal names sort by index: the earliest one names the pair. */
    for (i = 0; i < best; i++)
        if (strcmp(g->device_names[i], g->device_names[best]) == 0) {
            bfirst = i;
            break;
        }
    *first = bfirst;
    *second = best;
    return 1;
}

/* FNV-1a 32 of a NUL-terminated name (the device index's hash). */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s != '\0')
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

/* Builds the open-addressing index of n device names: *slots (owned by the
 * caller, NULL when n == 0) maps a slot to index + 1, *cap slots (a power
 * of two, at least 2n: probes stay short).  The lowest index of equal names
 * is found first.  Returns 0, or -1 when out of memory. */
static int build_device_index(char *const *names, uint32_t n,
                              uint32_t **slots, uint32_t *cap)
{
    uint32_t c = 16, i, *t;
    *slots = NULL;
    *cap = 0;
    if (n == 0)
        return 0;
    while (c < 2u * n)
        c *= 2;
    t = calloc(c, sizeof *t);
    if (t == NULL)
        return -1;
    for (i = 0; i < n; i++) {
        uint32_t k = name_hash(names[i]) & (c - 1);
        while (t[k] != 0)
            k = (k + 1) & (c - 1);
        t[k] = i + 1;
    }
    *slots = t;
    *cap = c;
    return 0;
}

int64_t fl__graph_device_index(const fl_graph *g, const char *name)
{
    uint32_t k, mask;
    if (g == NULL || name == NULL || g->dev_cap == 0 ||
        g->device_slots == NULL)
        return -1;
    mask = g->dev_cap - 1;
    for (k = name_hash(name) & mask; g->device_slots[k] != 0;
         k = (k + 1) & mask) {
        uint32_t d = g->device_slots[k] - 1;
        if (d < g->ndevices && strcmp(g->device_names[d], name) == 0)
            return d;
    }
    return -1;
}

/* Returns the device group holding global device index `dev`. */
static uint32_t group_of_device(const fl_graph *g, uint32_t dev)
{
    for (uint32_t i = 0; i < g->ngroups; i++) {
        const fl__group *gr = &g->groups[i];
        if (gr->layer == FL__LAYER_DEVICE && dev >= gr->first_device &&
            dev - gr->first_device < gr->count)
            return i;
    }
    return 0;
}

/* Recomputes, from the groups' counts: each device group's first_device,
 * g->ndevices and g->device_names (one allocation holding every name,
 * device_names[0] pointing at its start) with its hash index
 * (fl__graph_device_index), and every stage's ninstances and
 * first_device.  Returns FL_OK; FL_CHECK with a message in err when the
 * devices exceed the limit (nothing changed) or two devices share a name
 * (the names are installed all the same, so that the caller can locate the
 * pair with fl__graph_find_dup_device); FL_NOMEM (nothing changed). */
fl_status fl__graph_resolve(fl_graph *g, char *err, size_t errlen)
{
    uint64_t total = 0, bytes = 0;
    uint32_t i, k, d;
    char **names = NULL;
    char *block = NULL, tmp[256];
    uint32_t *slots = NULL, cap = 0;
    uint32_t old_n;
    char **old_names;
    int dup;
    uint32_t a, b;

    for (i = 0; i < g->ngroups; i++) {
        fl__group *gr = &g->groups[i];
        if (gr->layer != FL__LAYER_DEVICE)
            continue;
        gr->first_device = (uint32_t)total;
        total += gr->count;
        for (k = 0; k < gr->count && total <= FL_MAX_DEVICES; k++)
            bytes += format_name(gr->pattern, k, tmp, sizeof tmp) + 1;
    }
    if (total > FL_MAX_DEVICES) {
        snprintf(err, errlen, "too many devices (%llu; at most %u)",
                 (unsigned long long)total, FL_MAX_DEVICES);
        return FL_CHECK;
    }
    if (total > 0) {
        names = malloc((size_t)total * sizeof *names);
        block = malloc((size_t)bytes);
        if (names == NULL || block == NULL) {
            free(names);
            free(block);
            snprintf(err, errlen, "out of memory");
            return FL_NOMEM;
        }
        d = 0;
        bytes = 0;
        for (i = 0; i < g->ngroups; i++) {
            const fl__group *gr = &g->groups[i];
            if (gr->layer != FL__LAYER_DEVICE)
                continue;
            for (k = 0; k < gr->count; k++) {
                size_t n = format_name(gr->pattern, k, tmp, sizeof tmp);
                names[d++] = block + bytes;
                memcpy(block + bytes, tmp, n + 1);
                bytes += n + 1;
            }
        }
        if (build_device_index(names, (uint32_t)total, &slots, &cap) != 0) {
            free(names);
            free(block);
            snprintf(err, errlen, "out of memory");
            return FL_NOMEM;
        }
    }
    free(g->device_slots);
    g->device_slots = slots;
    g->dev_cap = cap;
    old_n = g->ndevices;
    old_names = g->device_names;
    g->ndevices = (uint32_t)total;
    g->device_names = names;
    if (old_names != NULL) {
        if (old_n > 0)
            free(old_names[0]);
        free(old_names);
    }
    for (i = 0; i < g->nstages; i++) {
        fl__stage *s = &g->stages[i];
        if (s->layer != FL__LAYER_DEVICE) {
            s->ninstances = 1;
            s->first_device = 0;
        } else if (s->group >= 0 && (uint32_t)s->group < g->ngroups) {
            s->ninstances = g->groups[s->group].count;
            s->first_device = g->groups[s->group].first_device;
        } else {
            s->ninstances = g->ndevices;
            s->first_device = 0;
        }
    }
    dup = fl__graph_find_dup_device(g, &a, &b);
    if (dup < 0) {
        snprintf(err, errlen, "out of memory");
        return FL_NOMEM;
    }
    if (dup > 0) {
        snprintf(err, errlen,
                 "device name \"%s\" of group \"%s\" is also in group "
                 "\"%s\"",
                 g->device_names[b], g->groups[group_of_device(g, b)].name,
                 g->groups[group_of_device(g, a)].name);
        return FL_CHECK;
    }
    return FL_OK;
}

/* Changes the node count of device group `group` and recomputes the
 * devices.  Returns FL_OK; FL_ARG for an unknown or non-device group, a
 * count of 0, or a count that makes too many devices or duplicate names
 * (the graph is then unchanged); FL_NOMEM. */
fl_status fl_graph_set_devices(fl_graph *g, const char *group, uint32_t count)
{
    char err[256];
    uint32_t i, old;
    fl_status st;

    if (g == NULL || group == NULL || count == 0 || count > FL_MAX_DEVICES)
        return FL_ARG;
    for (i = 0; i < g->ngroups; i++) {
        fl__group *gr = &g->groups[i];
        if (gr->layer != FL__LAYER_DEVICE || strcmp(gr->name, group) != 0)
            continue;
        if (count > 1 && strchr(gr->pattern, '%') == NULL)
            return FL_ARG; /* a one-device name without %d cannot grow */
        old = gr->count;
        gr->count = count;
        st = fl__graph_resolve(g, err, sizeof err);
        if (st != FL_OK) {
            gr->count = old;
            /* Recompute first_device with the old count (cannot fail in a
             * way that matters: the old configuration was valid). */
            (void)fl__graph_resolve(g, err, sizeof err);
            return st == FL_NOMEM ? FL_NOMEM : FL_ARG;
        }
        return FL_OK;
    }
    return FL_ARG;
}

/* Frees a graph and everything it owns; NULL is allowed. */
void fl_graph_free(fl_graph *g)
{
    uint32_t i;

    if (g == NULL)
        return;
    for (i = 0; i < g->ngroups; i++) {
        free(g->groups[i].name);
        free(g->groups[i].pattern);
        free(g->groups[i].connect);
    }
    for (i = 0; i < g->nnodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].listen);
        free(g->nodes[i].connect);
    }
    free(g->nodes);
    for (i = 0; i < g->nstages; i++) {
        free(g->stages[i].name);
        free(g->stages[i].kind);
        free(g->stages[i].path);
        free(g->stages[i].config);
        free(g->stages[i].actuator);
    }
    for (i = 0; i < g->nflows; i++)
        free(g->flows[i].name);
    if (g->device_names != NULL && g->ndevices > 0)
        free(g->device_names[0]);
    free(g->device_names);
    free(g->device_slots);
    free(g->groups);
    free(g->stages);
    free(g->edges);
    free(g->sources);
    free(g->flows);
    free(g->file);
    free(g->dir);
    free(g);
}

/* Prints a duration in the largest unit that divides it (1h, 2m, 1s,
 * 500ms, else ns). */
static void print_dur(FILE *out, uint64_t ns)
{
    if (ns != 0 && ns % 3600000000000ull == 0)
        fprintf(out, "%lluh", (unsigned long long)(ns / 3600000000000ull));
    else if (ns != 0 && ns % 60000000000ull == 0)
        fprintf(out, "%llum", (unsigned long long)(ns / 60000000000ull));
    else if (ns != 0 && ns % 1000000000ull == 0)
        fprintf(out, "%llus", (unsigned long long)(ns / 1000000000ull));
    else if (ns % 1000000ull == 0)
        fprintf(out, "%llums", (unsigned long long)(ns / 1000000ull));
    else
        fprintf(out, "%lluns", (unsigned long long)ns);
}

/* Prints a string in double quotes, escaping quotes, backslashes and
 * control bytes. */
static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static const char *policy_name(uint8_t p)
{
    switch (p) {
    case FL__POLICY_DROP_OLDEST:
        return "drop-oldest";
    case FL__POLICY_SAMPLE:
        return "sample";
    default:
        return "block";
    }
}

static const char *mode_name(uint8_t m)
{
    switch (m) {
    case FL__MODE_PULL:
        return "pull";
    case FL__MODE_DEMAND:
        return "demand";
    default:
        return "push";
    }
}

/* Prints one stage line: name, kind, file, config, instances, options. */
static void print_stage(const fl_graph *g, const fl__stage *s, FILE *out)
{
    fprintf(out, "    %-12s %s", s->name, s->kind);
    if (s->path != NULL) {
        fputc(' ', out);
        print_quoted(out, s->path);
    }
    if (s->config != NULL && s->config[0] != '\0') {
        fputs(" config ", out);
        print_quoted(out, s->config);
    }
    fprintf(out, "  %u instance%s", s->ninstances,
            s->ninstances == 1 ? "" : "s");
    if (s->layer == FL__LAYER_DEVICE && s->ninstances > 0 &&
        s->first_device + s->ninstances <= g->ndevices) {
        if (s->ninstances == 1)
            fprintf(out, " (%s)", g->device_names[s->first_device]);
        else
            fprintf(out, " (%s .. %s)", g->device_names[s->first_device],
                    g->device_names[s->first_device + s->ninstances - 1]);
    }
    if (s->every_ns != 0) {
        fputs("  every ", out);
        print_dur(out, s->every_ns);
    }
    if (s->actuator != NULL)
        fprintf(out, "  actuator %s", s->actuator);
    if (s->fuel != 0)
        fprintf(out, "  fuel %llu", (unsigned long long)s->fuel);
    if (s->max_memory_pages != 0 && s->max_memory_pages % 16 == 0)
        fprintf(out, "  memory %uM", s->max_memory_pages / 16u);
    else if (s->max_memory_pages != 0)
        fprintf(out, "  memory %uK", s->max_memory_pages * 64u);
    fputc('\n', out);
}

/* Prints the stages, sources and links of one section: stages on `layer`
 * with group `group` (-2: any group of a device layer, i.e. the device
 * section; -1: no group). */
static void print_section(const fl_graph *g, const char *title, int layer,
                          int32_t group, FILE *out)
{
    uint32_t i, n = 0;
    char *in = calloc(g->nstages ? g->nstages : 1, 1);

    if (in == NULL)
        return;
    for (i = 0; i < g->nstages; i++) {
        const fl__stage *s = &g->stages[i];
        if (s->layer == layer && (group == -2 || s->group == group)) {
            in[i] = 1;
            n++;
        }
    }
    if (n == 0) {
        free(in);
        return;
    }
    fprintf(out, "\n%s\n  stages\n", title);
    for (i = 0; i < g->nstages; i++)
        if (in[i])
            print_stage(g, &g->stages[i], out);
    n = 0;
    for (i = 0; i < g->nsources; i++) {
        const fl__source *src = &g->sources[i];
        if (!in[src->stage])
            continue;
        if (n++ == 0)
            fputs("  sources\n", out);
        fprintf(out, "    %-12s %s", g->stages[src->stage].name,
                mode_name(src->mode));
        if (src->interval_ns != 0) {
            fputs(" every ", out);
            print_dur(out, src->interval_ns);
        }
        if (src->mode == FL__MODE_DEMAND) {
            fprintf(out, " credits %u policy %s", src->credits,
                    policy_name(src->policy));
            if (src->policy == FL__POLICY_DROP_OLDEST)
                fprintf(out, " buffer %u", src->buffer);
        }
        fprintf(out, "  (flow %s)\n", g->flows[src->flow].name);
    }
    n = 0;
    for (i = 0; i < g->nedges; i++) {
        const fl__edge *e = &g->edges[i];
        if (!in[e->from])
            continue;
        if (n++ == 0)
            fputs("  links\n", out);
        fprintf(out, "    %s %s %s  (flow %s)\n", g->stages[e->from].name,
                e->bidir ? "<~>" : "~>", g->stages[e->to].name,
                g->flows[e->flow].name);
    }
    free(in);
}

/* Prints the graph: the device groups and node groups, then per layer
 * (device, edge, cloud, then each node group on edge/cloud) its stages,
 * the sources placed there and the links leaving its stages. */
void fl_graph_print(const fl_graph *g, FILE *out)
{
    uint32_t i;
    char title[96];

    if (g == NULL || out == NULL)
        return;
    fprintf(out, "flow file %s\n", g->file);
    for (i = 0; i < g->ngroups; i++) {
        const fl__group *gr = &g->groups[i];
        if (gr->layer == FL__LAYER_DEVICE) {
            fprintf(out, "devices %s: %u", gr->name, gr->count);
            if (gr->count > 0 && gr->first_device < g->ndevices) {
                if (gr->count == 1)
                    fprintf(out, " (%s)", g->device_names[gr->first_device]);
                else
                    fprintf(out, " (%s .. %s)",
                            g->device_names[gr->first_device],
                            g->device_names[gr->first_device + gr->count - 1]);
            }
        } else {
            char a[128], b[128];
            format_name(gr->pattern, 0, a, sizeof a);
            format_name(gr->pattern, gr->count - 1, b, sizeof b);
            fprintf(out, "group %s: %s layer, %u node%s", gr->name,
                    layer_names[gr->layer], gr->count,
                    gr->count == 1 ? "" : "s");
            if (gr->count == 1)
                fprintf(out, " (%s)", a);
            else
                fprintf(out, " (%s .. %s)", a, b);
        }
        if (gr->connect)
            fprintf(out, ", connect %s", gr->connect);
        fputc('\n', out);
    }
    for (i = 0; i < g->nnodes; i++) {
        const fl__node *n = &g->nodes[i];
        fprintf(out, "node %s: %s layer", n->name, layer_names[n->layer]);
        if (n->listen)
            fprintf(out, ", listen %s", n->listen);
        if (n->connect)
            fprintf(out, ", connect %s", n->connect);
        fputc('\n', out);
    }
    print_section(g, "device layer", FL__LAYER_DEVICE, -2, out);
    print_section(g, "edge layer", FL__LAYER_EDGE, -1, out);
    print_section(g, "cloud layer", FL__LAYER_CLOUD, -1, out);
    for (i = 0; i < g->ngroups; i++) {
        const fl__group *gr = &g->groups[i];
        if (gr->layer == FL__LAYER_DEVICE)
            continue;
        snprintf(title, sizeof title, "group %s (%s layer)", gr->name,
                 layer_names[gr->layer]);
        print_section(g, title, gr->layer, (int32_t)i, out);
    }
}

/* Counts of a checked graph for summaries (declared in flow.h). */
FL_API void fl_graph_counts(const fl_graph *g, uint32_t *stages,
                            uint32_t *links, uint32_t *devices)
{
    if (stages != NULL)
        *stages = g != NULL ? g->nstages : 0;
    if (links != NULL)
        *links = g != NULL ? g->nedges : 0;
    if (devices != NULL)
        *devices = g != NULL ? g->ndevices : 0;
}

/* ------------------------------------------------------------------------ */
/* Topology for tools (flow.h: fl_place).                                   */

uint32_t fl_graph_place_count(const fl_graph *g)
{
    return g ? g->nnodes + g->ndevices : 0;
}

fl_status fl_graph_place(const fl_graph *g, uint32_t i, fl_place *out)
{
    if (!g || !out || i >= g->nnodes + g->ndevices)
        return FL_ARG;
    memset(out, 0, sizeof *out);
    if (i < g->nnodes) {
        const fl__node *n = &g->nodes[i];
        out->name = n->name;
        out->layer = layer_names[n->layer];
        out->listen = n->listen;
        out->connect = n->connect_idx >= 0 ? g->nodes[n->connect_idx].name
                                           : NULL;
        return FL_OK;
    }
    uint32_t d = i - g->nnodes;
    const fl__group *gr = &g->groups[group_of_device(g, d)];
    out->name = g->device_names[d];
    out->layer = layer_names[FL__LAYER_DEVICE];
    out->group = gr->name;
    out->connect = gr->connect_idx >= 0 ? g->nodes[gr->connect_idx].name
                                        : NULL;
    return FL_OK;
}

fl_status fl_graph_place_find(const fl_graph *g, const char *name,
                              fl_place *out)
{
    if (!g || !name)
        return FL_ARG;
    int64_t d = fl__graph_device_index(g, name);
    if (d >= 0)
        return fl_graph_place(g, g->nnodes + (uint32_t)d, out);
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return fl_graph_place(g, i, out);
    return FL_ARG;
}

static const fl__stage *stage_named(const fl_graph *g, const char *name)
{
    for (uint32_t i = 0; g && name && i < g->nstages; i++)
        if (strcmp(g->stages[i].name, name) == 0)
            return &g->stages[i];
    return NULL;
}

fl_status fl_graph_stage_find(const fl_graph *g, const char *name,
                              fl_stage_desc *out)
{
    const fl__stage *st = stage_named(g, name);
    if (!st || !out)
        return FL_ARG;
    out->name = st->name;
    out->kind = st->kind;
    out->layer = layer_names[st->layer];
    return FL_OK;
}

int fl_graph_stage_on(const fl_graph *g, const char *stage, const char *place)
{
    const fl__stage *st = stage_named(g, stage);
    if (!st || !place)
        return 0;
    int64_t d = fl__graph_device_index(g, place);
    if (d >= 0)
        return st->layer == FL__LAYER_DEVICE &&
               (st->group < 0 ||
                (uint32_t)st->group == group_of_device(g, (uint32_t)d));
    for (uint32_t i = 0; i < g->nnodes; i++) {
        if (strcmp(g->nodes[i].name, place) != 0)
            continue;
        /* On a node: its layer; a stage placed on a device group never
         * runs there. */
        return st->layer == g->nodes[i].layer &&
               !(st->group >= 0 &&
                 g->groups[st->group].layer == FL__LAYER_DEVICE);
    }
    return 0;
}
