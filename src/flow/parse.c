/*
 * parse.c - the .flow language: a lexer and recursive-descent parser that
 * fill a struct fl_graph (flow_int.h), then every check that must pass
 * before anything runs (names, placements, devices, actuators, sources,
 * cycles, stage files and exports), each error reported with its position,
 * the offending line underlined and what was expected.  The grammar is in
 * docs/FLOW_LANGUAGE.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "flow_int.h"

/* Limits: no input may make the parser use unbounded time or memory. */
#define MAX_TEXT (1024u * 1024u) /* bytes of flow text */
#define MAX_LINE 4096u           /* bytes per line */
#define MAX_DEPTH 64u            /* nesting of [ ] and { } */
#define MAX_STAGES 4096u
#define MAX_GROUPS 256u
#define MAX_FLOWS 1024u
#define MAX_REFS 65536u          /* stage names mentioned in flows */
#define MAX_LINKS 65536u         /* links after flattening blocks */
#define MAX_NAME 31u             /* bytes of a name (the default topic) */
#define MAX_PATTERN 48u          /* bytes of a node name pattern */
#define MAX_DEVICES 100000u      /* devices over all groups (as graph.c) */
#define MAX_STR 4096u            /* bytes of a decoded string */
#define MAX_CREDITS 65536u
#define MAX_DURATION_NS (86400ull * 1000000000ull) /* one day */

/* Defined in graph.c (F1's two files share it; see the report). */
int fl__graph_find_dup_device(const fl_graph *g, uint32_t *first,
                              uint32_t *second);

/* ------------------------------------------------------------------------ */
/* Tokens.                                                                  */

enum {
    T_EOF, T_NL, T_IDENT, T_NUM, T_STR, T_AT, T_COLON, T_LP, T_RP, T_LB,
    T_RB, T_LC, T_RC, T_COMMA, T_ARROW, T_BIARROW, T_BAD
};

typedef struct tok {
    int t;
    size_t off;     /* byte offset in the text */
    uint32_t len;   /* bytes */
    fl__pos pos;
} tok;

/* A stage name mentioned in a flow, resolved after the whole file. */
typedef struct ref {
    size_t off;
    uint32_t len;
    fl__pos pos;
    int32_t stage;
} ref;

/* A link between two refs, before resolution and de-duplication. */
typedef struct plink {
    uint32_t from, to; /* refs */
    uint8_t bidir;
    uint32_t flow;
} plink;

/* What the parser keeps about a stage besides fl__stage. */
typedef struct stage_aux {
    fl__pos place_pos;   /* the name after @ */
    char *place;         /* the placement name */
    fl__pos kind_pos;
    fl__pos arg_pos;     /* the positional argument (len 0: none) */
    fl__pos act_pos;     /* the name after `actuator` */
} stage_aux;

typedef struct src_aux {
    uint32_t ref;        /* the source's ref */
    uint8_t has_every;
    fl__pos buffer_pos;  /* `buffer` keyword (len 0: not given) */
} src_aux;

/* A growable vector of uint32 (entries/exits of a block). */
typedef struct uvec {
    uint32_t *v;
    uint32_t n, cap;
} uvec;

typedef struct parser {
    const char *name;    /* file name for messages */
    const char *text;
    size_t len;
    size_t p;            /* lexer position */
    uint32_t line;       /* lexer line (1-based) */
    size_t line_start;   /* offset of the lexer's line */
    tok tk;              /* the current token */
    fl_graph *g;
    char *err;
    size_t errlen;
    fl_status st;        /* the first error */
    stage_aux *saux;
    uint32_t saux_cap;
    src_aux *xaux;
    uint32_t xaux_cap;
    ref *refs;
    uint32_t nrefs, refs_cap;
    plink *links;
    uint32_t nlinks, links_cap;
    fl__pos *epos;       /* per edge: the position of its `to` ref */
    uint32_t *stage_hash;/* open addressing: stage index + 1, 0 empty */
    uint32_t hash_cap;
    uint32_t stages_cap, groups_cap, flows_cap, sources_cap, nodes_cap;
} parser;

/* ------------------------------------------------------------------------ */
/* Error reporting.                                                         */

/* Appends printf-style text to buf[*n..cap), keeping it NUL-terminated. */
static void bufadd(char *buf, size_t cap, size_t *n, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void bufadd(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int r;
    if (*n + 1 >= cap)
        return;
    va_start(ap, fmt);
    r = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    *n += (size_t)r < cap - *n ? (size_t)r : cap - *n - 1;
}

/* Finds line `line` (1-based) of the text: sets *start and *end (end
 * excludes the newline and a trailing CR). */
static void find_line(const parser *P, uint32_t line, size_t *start,
                      size_t *end)
{
    size_t s = 0, e;
    uint32_t l = 1;
    while (l < line && s < P->len) {
        const char *nl = memchr(P->text + s, '\n', P->len - s);
        if (nl == NULL) {
            s = P->len;
            break;
        }
        s = (size_t)(nl - P->text) + 1;
        l++;
    }
    e = s;
    while (e < P->len && P->text[e] != '\n')
        e++;
    if (e > s && P->text[e - 1] == '\r')
        e--;
    *start = s;
    *end = e;
}

/* Records the first error: "FILE:LINE:COL: error: WHAT", the offending
 * line (tabs shown as spaces, other control bytes as '?', long lines as a
 * window around the column), and a caret-and-tildes underline followed by
 * " expected EXPECT" when expect is not NULL.  With pos.line 0 only
 * "FILE: error: WHAT".  Later errors are ignored. */
static void perr(parser *P, fl_status st, fl__pos pos, const char *expect,
                 const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static void perr(parser *P, fl_status st, fl__pos pos, const char *expect,
                 const char *fmt, ...)
{
    char buf[2048], what[768];
    size_t n = 0, ls, le, ws, we, i, col0, ulen;
    va_list ap;

    if (P->st != FL_OK)
        return;
    P->st = st;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (pos.line == 0) {
        bufadd(buf, sizeof buf, &n, "%s: error: %s", P->name, what);
        goto out;
    }
    bufadd(buf, sizeof buf, &n, "%s:%u:%u: error: %s\n  ", P->name,
           pos.line, pos.col, what);
    find_line(P, pos.line, &ls, &le);
    col0 = pos.col > 0 ? pos.col - 1 : 0;
    if (col0 > le - ls)
        col0 = le - ls;
    /* A window of at most 120 bytes around the column. */
    ws = ls;
    we = le;
    if (le - ls > 120) {
        ws = col0 > 60 ? ls + col0 - 60 : ls;
        we = ws + 120 < le ? ws + 120 : le;
    }
    if (ws > ls)
        bufadd(buf, sizeof buf, &n, "...");
    for (i = ws; i < we; i++) {
        unsigned char c = (unsigned char)P->text[i];
        if (c == '\t')
            c = ' ';
        else if (c < 0x20 || c == 0x7f)
            c = '?';
        bufadd(buf, sizeof buf, &n, "%c", c);
    }
    if (we < le)
        bufadd(buf, sizeof buf, &n, "...");
    bufadd(buf, sizeof buf, &n, "\n  %s", ws > ls ? "   " : "");
    for (i = ls + col0; i > ws; i--)
        bufadd(buf, sizeof buf, &n, " ");
    bufadd(buf, sizeof buf, &n, "^");
    ulen = pos.len;
    if (ls + col0 + ulen > we)
        ulen = we > ls + col0 ? we - (ls + col0) : 1;
    for (i = 1; i < ulen; i++)
        bufadd(buf, sizeof buf, &n, "~");
    if (expect != NULL)
        bufadd(buf, sizeof buf, &n, " expected %s", expect);
out:
    if (P->err != NULL && P->errlen > 0)
        snprintf(P->err, P->errlen, "%s", buf);
}

static void oom(parser *P)
{
    fl__pos none = {0, 0, 0};
    perr(P, FL_NOMEM, none, NULL, "out of memory");
}

/* Grows *arr (elements of size `elem`) to hold n + 1; returns 0 or -1
 * (out of memory, reported). */
static int grow(parser *P, void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
    void *na;
    uint32_t nc;
    if (n < *cap)
        return 0;
    nc = *cap ? *cap * 2 : 16;
    na = realloc(*arr, (size_t)nc * elem);
    if (na == NULL) {
        oom(P);
        return -1;
    }
    memset((char *)na + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *arr = na;
    *cap = nc;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The lexer.                                                               */

static int is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident_char(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static fl__pos pos_at(const parser *P, size_t off, uint32_t len)
{
    fl__pos p;
    p.line = P->line;
    p.col = (uint32_t)(off - P->line_start + 1);
    p.len = len;
    return p;
}

/* Checks every line's length and the absence of NUL bytes up front, so that
 * the lexer and the messages may rely on both.  Returns 0 or -1. */
static int check_lines(parser *P)
{
    size_t s = 0, i;
    uint32_t line = 1;
    for (i = 0; i <= P->len; i++) {
        if (i == P->len || P->text[i] == '\n') {
            if (i - s > MAX_LINE) {
                fl__pos pos = {line, MAX_LINE + 1, 1};
                perr(P, FL_SYNTAX, pos, "at most 4096 bytes per line",
                     "line too long (%zu bytes)", i - s);
                return -1;
            }
            s = i + 1;
            line++;
        } else if (P->text[i] == '\0') {
            fl__pos pos = {line, (uint32_t)(i - s + 1), 1};
            perr(P, FL_SYNTAX, pos, "text (a flow file holds no NUL bytes)",
                 "unexpected NUL byte");
            return -1;
        }
    }
    return 0;
}

/* Reads the next token into P->tk.  Comments (# to the end of the line),
 * spaces, tabs and CRs are skipped; a newline is a token.  A malformed
 * token (bad character, unterminated string) is reported and gives T_BAD. */
static void lex(parser *P)
{
    const char *t = P->text;
    size_t p = P->p, s;
    tok *k = &P->tk;

    for (;;) {
        while (p < P->len && (t[p] == ' ' || t[p] == '\t' || t[p] == '\r'))
            p++;
        if (p < P->len && t[p] == '#') {
            while (p < P->len && t[p] != '\n')
                p++;
            continue;
        }
        break;
    }
    s = p;
    k->off = s;
    if (p >= P->len) {
        k->t = T_EOF;
        k->pos = pos_at(P, s, 1);
        k->len = 0;
        P->p = p;
        return;
    }
    if (t[p] == '\n') {
        k->t = T_NL;
        k->len = 1;
        k->pos = pos_at(P, s, 1);
        P->p = p + 1;
        P->line++;
        P->line_start = p + 1;
        return;
    }
    if (is_ident_start((unsigned char)t[p])) {
        while (p < P->len && is_ident_char((unsigned char)t[p]))
            p++;
        k->t = T_IDENT;
    } else if (t[p] >= '0' && t[p] <= '9') {
        while (p < P->len && (is_ident_char((unsigned char)t[p]) ||
                              t[p] == '.'))
            p++;
        k->t = T_NUM;
    } else if (t[p] == '"') {
        p++;
        while (p < P->len && t[p] != '"' && t[p] != '\n') {
            if (t[p] == '\\' && p + 1 < P->len && t[p + 1] != '\n')
                p++;
            p++;
        }
        if (p >= P->len || t[p] != '"') {
            size_t e = p;
            if (e > s && t[e - 1] == '\r')
                e--;
            k->t = T_BAD;
            k->pos = pos_at(P, s, (uint32_t)(e - s));
            perr(P, FL_SYNTAX, k->pos, "a closing \" on the same line",
                 "unterminated string");
            P->p = p;
            return;
        }
        p++;
        k->t = T_STR;
    } else if (t[p] == '~' && p + 1 < P->len && t[p + 1] == '>') {
        p += 2;
        k->t = T_ARROW;
    } else if (t[p] == '<' && p + 2 < P->len && t[p + 1] == '~' &&
               t[p + 2] == '>') {
        p += 3;
        k->t = T_BIARROW;
    } else {
        static const char punct[] = "@:()[]{},";
        static const int ptok[] = {T_AT, T_LP + 100, T_LP, T_RP, T_LB,
                                   T_RB, T_LC, T_RC, T_COMMA};
        const char *c = memchr(punct, t[p], sizeof punct - 1);
        if (c == NULL) {
            unsigned char ch = (unsigned char)t[p];
            k->t = T_BAD;
            k->pos = pos_at(P, s, 1);
            if (ch >= 0x21 && ch < 0x7f)
                perr(P, FL_SYNTAX, k->pos,
                     "a name, number, string or one of @ : ( ) [ ] { } , ~> "
                     "<~>",
                     "unexpected character \"%c\"", ch);
            else
                perr(P, FL_SYNTAX, k->pos,
                     "a name, number, string or one of @ : ( ) [ ] { } , ~> "
                     "<~>",
                     "unexpected byte \\x%02x", ch);
            P->p = p + 1;
            return;
        }
        k->t = ptok[c - punct] == T_LP + 100 ? T_COLON : ptok[c - punct];
        p++;
    }
    k->len = (uint32_t)(p - s);
    k->pos = pos_at(P, s, k->len);
    P->p = p;
}

/* Describes a token for "unexpected ..." messages. */
static void tok_desc(const parser *P, const tok *k, char *buf, size_t cap)
{
    size_t n = 0, i, m;
    if (k->t == T_NL) {
        snprintf(buf, cap, "end of line");
        return;
    }
    if (k->t == T_EOF) {
        snprintf(buf, cap, "end of file");
        return;
    }
    if (k->t == T_STR)
        bufadd(buf, cap, &n, "string ");
    else
        bufadd(buf, cap, &n, "\"");
    m = k->len > 40 ? 40 : k->len;
    for (i = 0; i < m; i++) {
        unsigned char c = (unsigned char)P->text[k->off + i];
        bufadd(buf, cap, &n, "%c", c < 0x20 || c == 0x7f ? '?' : c);
    }
    if (k->len > 40)
        bufadd(buf, cap, &n, "...");
    if (k->t != T_STR)
        bufadd(buf, cap, &n, "\"");
}

/* Reports "unexpected <token>" at the current token, expecting `expect`. */
static int unexpected(parser *P, const char *expect)
{
    char d[96];
    if (P->tk.t == T_BAD)
        return -1; /* already reported by the lexer */
    tok_desc(P, &P->tk, d, sizeof d);
    perr(P, FL_SYNTAX, P->tk.pos, expect, "unexpected %s", d);
    return -1;
}

static int tok_is(const parser *P, const char *word)
{
    size_t n = strlen(word);
    return P->tk.t == T_IDENT && P->tk.len == n &&
           memcmp(P->text + P->tk.off, word, n) == 0;
}

static void skip_nl(parser *P)
{
    while (P->tk.t == T_NL)
        lex(P);
}

/* Copies the current token's text into a new string (NULL: out of memory,
 * reported). */
static char *tok_dup(parser *P, const tok *k)
{
    char *s = malloc((size_t)k->len + 1);
    if (s == NULL) {
        oom(P);
        return NULL;
    }
    memcpy(s, P->text + k->off, k->len);
    s[k->len] = '\0';
    return s;
}

/* Takes a name (identifier) from the current token: checks its length and
 * returns a copy, or NULL after reporting.  `what` names it in the
 * expectation ("a stage name"). */
static char *take_name(parser *P, const char *what, fl__pos *pos)
{
    char *s;
    if (P->tk.t != T_IDENT) {
        unexpected(P, what);
        return NULL;
    }
    if (P->tk.len > MAX_NAME) {
        perr(P, FL_SYNTAX, P->tk.pos, "at most 31 bytes",
             "name too long (%u bytes)", P->tk.len);
        return NULL;
    }
    s = tok_dup(P, &P->tk);
    if (s != NULL && pos != NULL)
        *pos = P->tk.pos;
    if (s != NULL)
        lex(P);
    return s;
}

/* Decodes the current string token (escapes \" \\ \n \t) into a new
 * string; NULL after reporting. */
static char *take_string(parser *P)
{
    const char *t = P->text + P->tk.off + 1;
    size_t n = P->tk.len - 2, i, o = 0;
    char *s;

    if (n > MAX_STR) {
        perr(P, FL_SYNTAX, P->tk.pos, "at most 4096 bytes",
             "string too long (%zu bytes)", n);
        return NULL;
    }
    s = malloc(n + 1);
    if (s == NULL) {
        oom(P);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (t[i] != '\\') {
            s[o++] = t[i];
            continue;
        }
        i++;
        switch (t[i]) {
        case '"': s[o++] = '"'; break;
        case '\\': s[o++] = '\\'; break;
        case 'n': s[o++] = '\n'; break;
        case 't': s[o++] = '\t'; break;
        default: {
            fl__pos pos = P->tk.pos;
            unsigned char c = (unsigned char)t[i];
            pos.col += (uint32_t)i; /* the backslash */
            pos.len = 2;
            if (c >= 0x20 && c < 0x7f)
                perr(P, FL_SYNTAX, pos, "\\\", \\\\, \\n or \\t",
                     "invalid escape \"\\%c\" in string", c);
            else
                perr(P, FL_SYNTAX, pos, "\\\", \\\\, \\n or \\t",
                     "invalid escape in string");
            free(s);
            return NULL;
        }
        }
    }
    s[o] = '\0';
    lex(P);
    return s;
}

/* Parses the digits of a number token into *v and returns a pointer to
 * its suffix (letters after the digits) and its length; -1 when there are
 * no digits or the value overflows 64 bits. */
static int num_split(const parser *P, const tok *k, uint64_t *v,
                     const char **suf, size_t *suflen)
{
    const char *t = P->text + k->off;
    size_t i = 0;
    uint64_t x = 0;
    while (i < k->len && t[i] >= '0' && t[i] <= '9') {
        unsigned d = (unsigned)(t[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
        i++;
    }
    if (i == 0)
        return -1;
    *v = x;
    *suf = t + i;
    *suflen = k->len - i;
    return 0;
}

static int suffix_is(const char *suf, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(suf, word, n) == 0;
}

/* Takes a whole number in [lo, hi] (no suffix); `what` is used in
 * messages ("a device count").  Returns 0 or -1 after reporting. */
static int take_uint(parser *P, const char *what, uint64_t lo, uint64_t hi,
                     uint64_t *out)
{
    uint64_t v;
    const char *suf;
    size_t sl;
    char exp[96];
    snprintf(exp, sizeof exp, "a whole number from %llu to %llu",
             (unsigned long long)lo, (unsigned long long)hi);
    if (P->tk.t != T_NUM)
        return unexpected(P, exp);
    if (num_split(P, &P->tk, &v, &suf, &sl) != 0 || sl != 0 || v < lo ||
        v > hi) {
        perr(P, FL_SYNTAX, P->tk.pos, exp, "invalid %s \"%.*s\"", what,
             (int)(P->tk.len > 40 ? 40 : P->tk.len), P->text + P->tk.off);
        return -1;
    }
    *out = v;
    lex(P);
    return 0;
}

/* Takes a duration: a whole number with ms, s, m or h, greater than 0 and
 * at most one day.  Returns 0 or -1 after reporting. */
static int take_duration(parser *P, uint64_t *ns)
{
    static const char exp[] =
        "a whole number with ms, s, m or h (e.g. 500ms, 1s), at most 24h";
    uint64_t v, mul = 0;
    const char *suf;
    size_t sl;
    if (P->tk.t != T_NUM)
        return unexpected(P, "a duration (e.g. 500ms, 1s, 2m)");
    if (num_split(P, &P->tk, &v, &suf, &sl) == 0) {
        if (suffix_is(suf, sl, "ms"))
            mul = 1000000ull;
        else if (suffix_is(suf, sl, "s"))
            mul = 1000000000ull;
        else if (suffix_is(suf, sl, "m"))
            mul = 60000000000ull;
        else if (suffix_is(suf, sl, "h"))
            mul = 3600000000000ull;
    }
    if (mul == 0 || v == 0 || v > MAX_DURATION_NS / mul) {
        perr(P, FL_SYNTAX, P->tk.pos, exp, "invalid duration \"%.*s\"",
             (int)(P->tk.len > 40 ? 40 : P->tk.len), P->text + P->tk.off);
        return -1;
    }
    *ns = v * mul;
    lex(P);
    return 0;
}

/* Takes a memory size: a number of bytes with K, M or G (KiB, MiB, GiB) or
 * none, a multiple of 64K from 64K to 4G; gives Wasm pages. */
static int take_memory(parser *P, uint32_t *pages)
{
    static const char exp[] =
        "a multiple of 64K from 64K to 4G (e.g. 16M, 640K)";
    uint64_t v, mul = 0;
    const char *suf;
    size_t sl;
    if (P->tk.t != T_NUM)
        return unexpected(P, "a memory size (e.g. 16M)");
    if (num_split(P, &P->tk, &v, &suf, &sl) == 0) {
        if (sl == 0)
            mul = 1;
        else if (suffix_is(suf, sl, "K"))
            mul = 1024;
        else if (suffix_is(suf, sl, "M"))
            mul = 1024 * 1024;
        else if (suffix_is(suf, sl, "G"))
            mul = 1024ull * 1024 * 1024;
    }
    if (mul == 0 || v == 0 || v > (4ull << 30) / mul ||
        (v * mul) % 65536 != 0) {
        perr(P, FL_SYNTAX, P->tk.pos, exp, "invalid memory size \"%.*s\"",
             (int)(P->tk.len > 40 ? 40 : P->tk.len), P->text + P->tk.off);
        return -1;
    }
    *pages = (uint32_t)(v * mul / 65536);
    lex(P);
    return 0;
}

/* Ends a declaration: a newline or the end of the text. */
static int end_of_decl(parser *P, const char *expect)
{
    if (P->tk.t == T_NL || P->tk.t == T_EOF)
        return 0;
    return unexpected(P, expect);
}

/* ------------------------------------------------------------------------ */
/* Declarations.                                                            */

static int is_layer_name(const char *s)
{
    return strcmp(s, "device") == 0 || strcmp(s, "edge") == 0 ||
           strcmp(s, "cloud") == 0;
}

/* Checks a node name pattern: at most one %d, %Nd or %0Nd (N at most 9),
 * %% for a percent sign, and a conversion when count > 1.  Returns 0 or
 * -1 after reporting at `pos`. */
static int check_pattern(parser *P, const char *pat, uint32_t count,
                         fl__pos pos)
{
    static const char exp[] =
        "a name with one %d, %Nd or %0Nd (N at most 9) for the node number "
        "when there is more than one node; %% for a percent sign";
    size_t i;
    int conv = 0, bad = 0;
    if (pat[0] == '\0')
        bad = 1;
    for (i = 0; pat[i] != '\0' && !bad; i++) {
        if (pat[i] != '%')
            continue;
        if (pat[i + 1] == '%') {
            i++;
            continue;
        }
        i++;
        if (pat[i] == '0')
            i++;
        if (pat[i] >= '1' && pat[i] <= '9')
            i++;
        if (pat[i] != 'd' || conv) {
            bad = 1;
            break; /* pat[i] may be the terminating NUL */
        }
        conv = 1;
    }
    if (!bad && count > 1 && !conv)
        bad = 1;
    if (bad) {
        perr(P, FL_SYNTAX, pos, exp, "invalid node name pattern \"%s\"", pat);
        return -1;
    }
    return 0;
}

static int find_group(const fl_graph *g, const char *name)
{
    for (uint32_t i = 0; i < g->ngroups; i++)
        if (strcmp(g->groups[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* `devices NAME [PATTERN] [x COUNT]` and `group NAME @LAYER [PATTERN]
 * [x COUNT]`: a group of nodes.  Without a pattern a group of one node is
 * named after the group and a larger one "NAME-%d". */
static int parse_group(parser *P, int is_devices)
{
    fl_graph *g = P->g;
    fl__group gr;
    fl__pos pos, ppos = P->tk.pos;
    uint8_t layer = FL__LAYER_DEVICE;
    uint64_t count = 1;
    int has_pat = 0;
    char *pat = NULL, *name, *conn = NULL;
    int prev;

    memset(&gr, 0, sizeof gr);
    gr.connect_idx = -1;
    lex(P);
    name = take_name(P, "a group name", &pos);
    if (name == NULL)
        return -1;
    if (is_layer_name(name)) {
        perr(P, FL_SYNTAX, pos, "a name other than device, edge or cloud",
             "group name \"%s\" is reserved", name);
        goto fail;
    }
    prev = find_group(g, name);
    if (prev >= 0) {
        perr(P, FL_CHECK, pos, "a name not used by another group",
             "duplicate group \"%s\" (first declared at %u:%u)", name,
             g->groups[prev].pos.line, g->groups[prev].pos.col);
        goto fail;
    }
    if (!is_devices) {
        if (P->tk.t != T_AT) {
            unexpected(P, "\"@device\", \"@edge\" or \"@cloud\"");
            goto fail;
        }
        lex(P);
        if (tok_is(P, "device"))
            layer = FL__LAYER_DEVICE;
        else if (tok_is(P, "edge"))
            layer = FL__LAYER_EDGE;
        else if (tok_is(P, "cloud"))
            layer = FL__LAYER_CLOUD;
        else {
            unexpected(P, "a layer: device, edge or cloud");
            goto fail;
        }
        lex(P);
    }
    if (P->tk.t == T_STR) {
        ppos = P->tk.pos;
        has_pat = 1;
        if (P->tk.len - 2 > MAX_PATTERN) {
            perr(P, FL_SYNTAX, P->tk.pos, "at most 48 bytes",
                 "node name pattern too long");
            goto fail;
        }
        pat = take_string(P);
        if (pat == NULL)
            goto fail;
    }
    if (tok_is(P, "x")) {
        lex(P);
        if (take_uint(P, "node count", 1, MAX_DEVICES, &count) != 0)
            goto fail;
    }
    if (layer == FL__LAYER_DEVICE && tok_is(P, "connect")) {
        lex(P);
        conn = take_name(P, "a node name", &gr.connect_pos);
        if (conn == NULL)
            goto fail;
    }
    if (end_of_decl(P, conn != NULL ? "end of line"
                       : has_pat || count > 1
                           ? "\"connect NODE\" or end of line"
                           : "a name pattern (a string), \"x COUNT\", "
                             "\"connect NODE\" or end of line"))
        goto fail;
    if (!has_pat) {
        size_t n = strlen(name) + 4;
        pat = malloc(n);
        if (pat == NULL) {
            oom(P);
            goto fail;
        }
        snprintf(pat, n, count > 1 ? "%s-%%d" : "%s", name);
        /* A group name never holds '%', so the pattern is valid. */
    } else if (check_pattern(P, pat, (uint32_t)count, ppos) != 0) {
        goto fail;
    }
    if (g->ngroups >= MAX_GROUPS) {
        perr(P, FL_SYNTAX, pos, "at most 256 groups", "too many groups");
        goto fail;
    }
    if (grow(P, (void **)&g->groups, &P->groups_cap, g->ngroups,
             sizeof *g->groups) != 0)
        goto fail;
    gr.name = name;
    gr.layer = layer;
    gr.pattern = pat;
    gr.count = (uint32_t)count;
    gr.connect = conn;
    gr.pos = pos;
    g->groups[g->ngroups++] = gr;
    return 0;
fail:
    free(name);
    free(pat);
    free(conn);
    return -1;
}

#define MAX_NODES 256u
#define MAX_ADDR 255u

static int find_node(const fl_graph *g, const char *name)
{
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* `node NAME @edge|@cloud [listen "HOST:PORT"] [connect NODE]`: a node
 * process of the edge or cloud layer, where it listens for the layer below
 * and which node of the layer above it connects to (checked after the whole
 * file).  Returns 0 or -1 after reporting. */
static int parse_node(parser *P)
{
    fl_graph *g = P->g;
    fl__node nd;
    fl__pos pos;
    char *name;
    int prev;

    memset(&nd, 0, sizeof nd);
    nd.connect_idx = -1;
    lex(P);
    name = take_name(P, "a node name", &pos);
    if (name == NULL)
        return -1;
    nd.name = name;
    nd.pos = pos;
    prev = find_node(g, name);
    if (prev >= 0) {
        perr(P, FL_CHECK, pos, "a name not used by another node",
             "duplicate node \"%s\" (first declared at %u:%u)", name,
             g->nodes[prev].pos.line, g->nodes[prev].pos.col);
        goto fail;
    }
    if (P->tk.t != T_AT) {
        unexpected(P, "\"@edge\" or \"@cloud\"");
        goto fail;
    }
    lex(P);
    if (tok_is(P, "edge"))
        nd.layer = FL__LAYER_EDGE;
    else if (tok_is(P, "cloud"))
        nd.layer = FL__LAYER_CLOUD;
    else {
        unexpected(P, "a layer: edge or cloud (device nodes are declared "
                      "with \"devices ... connect NODE\")");
        goto fail;
    }
    lex(P);
    for (;;) {
        if (tok_is(P, "listen") && nd.listen == NULL) {
            lex(P);
            if (P->tk.t != T_STR) {
                unexpected(P, "an address \"HOST:PORT\"");
                goto fail;
            }
            nd.listen_pos = P->tk.pos;
            if (P->tk.len - 2 > MAX_ADDR) {
                perr(P, FL_SYNTAX, P->tk.pos, "at most 255 bytes",
                     "address too long");
                goto fail;
            }
            nd.listen = take_string(P);
            if (nd.listen == NULL)
                goto fail;
            const char *colon = strrchr(nd.listen, ':');
            if (colon == NULL || colon == nd.listen || colon[1] == '\0' ||
                strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
                strlen(colon + 1) > 5 || strtoul(colon + 1, NULL, 10) > 65535) {
                perr(P, FL_SYNTAX, nd.listen_pos, "\"HOST:PORT\"",
                     "invalid address \"%s\"", nd.listen);
                goto fail;
            }
        } else if (tok_is(P, "connect") && nd.connect == NULL) {
            lex(P);
            nd.connect = take_name(P, "a node name", &nd.connect_pos);
            if (nd.connect == NULL)
                goto fail;
        } else {
            break;
        }
    }
    if (end_of_decl(P, nd.listen == NULL && nd.connect == NULL
                           ? "\"listen \"HOST:PORT\"\" or \"connect NODE\""
                       : nd.listen == NULL ? "\"listen \"HOST:PORT\"\" or end of line"
                       : nd.connect == NULL ? "\"connect NODE\" or end of line"
                                            : "end of line"))
        goto fail;
    if (g->nnodes >= MAX_NODES) {
        perr(P, FL_SYNTAX, pos, "at most 256 nodes", "too many nodes");
        goto fail;
    }
    if (grow(P, (void **)&g->nodes, &P->nodes_cap, g->nnodes,
             sizeof *g->nodes) != 0)
        goto fail;
    g->nodes[g->nnodes++] = nd;
    return 0;
fail:
    free(nd.name);
    free(nd.listen);
    free(nd.connect);
    return -1;
}

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Looks a stage name up; returns its index or -1. */
static int32_t find_stage(const parser *P, const char *s, size_t n)
{
    uint32_t mask = P->hash_cap - 1, h, e;
    if (P->hash_cap == 0)
        return -1;
    for (h = hash_name(s, n) & mask;; h = (h + 1) & mask) {
        e = P->stage_hash[h];
        if (e == 0)
            return -1;
        if (strlen(P->g->stages[e - 1].name) == n &&
            memcmp(P->g->stages[e - 1].name, s, n) == 0)
            return (int32_t)(e - 1);
    }
}

static void hash_insert(parser *P, uint32_t idx)
{
    const char *s = P->g->stages[idx].name;
    uint32_t mask = P->hash_cap - 1, h;
    for (h = hash_name(s, strlen(s)) & mask; P->stage_hash[h] != 0;
         h = (h + 1) & mask)
        ;
    P->stage_hash[h] = idx + 1;
}

/* Kinds whose argument is a file (resolved against the flow's directory)
 * rather than the configuration string. */
static int kind_takes_file(const char *kind)
{
    return strcmp(kind, "wasm") == 0 || strcmp(kind, "native") == 0 ||
           strcmp(kind, "jsonl") == 0;
}

/* Joins dir and a relative path (absolute paths and a NULL dir are kept);
 * NULL after reporting out of memory. */
static char *resolve_path(parser *P, const char *path)
{
    const char *dir = P->g->dir;
    size_t n;
    char *s;
    if (path[0] == '/' || dir == NULL || dir[0] == '\0' ||
        strcmp(dir, ".") == 0) {
        n = strlen(path) + 1;
        s = malloc(n);
        if (s != NULL)
            memcpy(s, path, n);
    } else {
        n = strlen(dir) + strlen(path) + 2;
        s = malloc(n);
        if (s != NULL)
            snprintf(s, n, "%s%s%s", dir,
                     dir[strlen(dir) - 1] == '/' ? "" : "/", path);
    }
    if (s == NULL)
        oom(P);
    return s;
}

/* Lists the builtin kinds of the registry, for "unknown stage kind". */
static void builtin_list(char *buf, size_t cap)
{
    const fl__stage_ops *const *all = fl__stage_ops_all();
    size_t n = 0;
    int first = 1;
    bufadd(buf, cap, &n, "\"wasm\", \"native\" or a builtin:");
    for (; all != NULL && *all != NULL; all++) {
        if (strcmp((*all)->kind, "wasm") == 0 ||
            strcmp((*all)->kind, "native") == 0)
            continue;
        bufadd(buf, cap, &n, "%s %s", first ? "" : ",", (*all)->kind);
        first = 0;
    }
}

static const char stage_opts[] =
    "an option (config, every, actuator, fuel, memory) or end of line";

/* `stage NAME @PLACEMENT KIND [ARG] {OPTION}`. */
static int parse_stage(parser *P)
{
    fl_graph *g = P->g;
    fl__stage s;
    stage_aux ax;
    fl__pos pos;
    char *arg = NULL, seen[5] = {0, 0, 0, 0, 0};
    const fl__stage_ops *ops;
    int32_t prev;

    memset(&s, 0, sizeof s);
    memset(&ax, 0, sizeof ax);
    s.group = -1;
    s.actuator_idx = -1;
    lex(P);
    s.name = take_name(P, "a stage name", &pos);
    if (s.name == NULL)
        return -1;
    s.pos = pos;
    prev = find_stage(P, s.name, strlen(s.name));
    if (prev >= 0) {
        perr(P, FL_CHECK, pos, "a name not used by another stage",
             "duplicate stage \"%s\" (first declared at %u:%u)", s.name,
             g->stages[prev].pos.line, g->stages[prev].pos.col);
        goto fail;
    }
    if (P->tk.t != T_AT) {
        unexpected(P, "a placement: @device, @edge, @cloud or @GROUP");
        goto fail;
    }
    lex(P);
    ax.place = take_name(P, "a placement: device, edge, cloud or a group "
                            "name", &ax.place_pos);
    if (ax.place == NULL)
        goto fail;
    if (P->tk.t != T_IDENT) {
        unexpected(P, "a stage kind: wasm, native or a builtin");
        goto fail;
    }
    ax.kind_pos = P->tk.pos;
    s.kind = tok_dup(P, &P->tk);
    if (s.kind == NULL)
        goto fail;
    ops = fl__stage_ops_find(s.kind);
    if (ops == NULL) {
        char list[512];
        builtin_list(list, sizeof list);
        perr(P, FL_CHECK, ax.kind_pos, list, "unknown stage kind \"%s\"",
             s.kind);
        goto fail;
    }
    lex(P);
    /* The positional argument: a string or a number. */
    if (P->tk.t == T_STR || P->tk.t == T_NUM) {
        ax.arg_pos = P->tk.pos;
        if (P->tk.t == T_STR)
            arg = take_string(P);
        else if ((arg = tok_dup(P, &P->tk)) != NULL)
            lex(P);
        if (arg == NULL)
            goto fail;
    } else if (kind_takes_file(s.kind)) {
        unexpected(P, strcmp(s.kind, "jsonl") == 0
                          ? "the output file name (a string)"
                          : "the stage's file name (a string)");
        goto fail;
    }
    if (arg != NULL && kind_takes_file(s.kind)) {
        if (arg[0] == '\0') {
            perr(P, FL_SYNTAX, ax.arg_pos, "a file name", "empty file name");
            goto fail;
        }
        s.path = resolve_path(P, arg);
        if (s.path == NULL)
            goto fail;
        free(arg);
        arg = NULL;
    }
    /* Options. */
    while (P->tk.t == T_IDENT) {
        static const char *const names[] = {"config", "every", "actuator",
                                            "fuel", "memory"};
        int o;
        uint64_t v;
        for (o = 0; o < 5 && !tok_is(P, names[o]); o++)
            ;
        if (o == 5) {
            unexpected(P, stage_opts);
            goto fail;
        }
        if (seen[o]) {
            perr(P, FL_SYNTAX, P->tk.pos, "each option at most once",
                 "option \"%s\" given twice", names[o]);
            goto fail;
        }
        seen[o] = 1;
        lex(P);
        switch (o) {
        case 0:
            if (P->tk.t != T_STR) {
                unexpected(P, "the configuration (a string)");
                goto fail;
            }
            if (arg != NULL) {
                perr(P, FL_SYNTAX, P->tk.pos,
                     "either an argument after the kind or \"config\"",
                     "stage \"%s\" has both an argument and \"config\"",
                     s.name);
                goto fail;
            }
            s.config = take_string(P);
            if (s.config == NULL)
                goto fail;
            break;
        case 1:
            if (take_duration(P, &s.every_ns) != 0)
                goto fail;
            break;
        case 2:
            s.actuator = take_name(P, "the actuator's stage name",
                                   &ax.act_pos);
            if (s.actuator == NULL)
                goto fail;
            break;
        case 3:
            if (take_uint(P, "fuel", 1, UINT64_MAX / 2, &v) != 0)
                goto fail;
            s.fuel = v;
            break;
        default:
            if (take_memory(P, &s.max_memory_pages) != 0)
                goto fail;
            break;
        }
    }
    if (end_of_decl(P, stage_opts) != 0)
        goto fail;
    if (s.config == NULL && arg != NULL) {
        s.config = arg; /* a builtin's argument is its configuration */
        arg = NULL;
    } else if (s.config == NULL) {
        s.config = malloc(1);
        if (s.config == NULL) {
            oom(P);
            goto fail;
        }
        s.config[0] = '\0';
    }
    if (g->nstages >= MAX_STAGES) {
        perr(P, FL_SYNTAX, pos, "at most 4096 stages", "too many stages");
        goto fail;
    }
    if (grow(P, (void **)&g->stages, &P->stages_cap, g->nstages,
             sizeof *g->stages) != 0 ||
        grow(P, (void **)&P->saux, &P->saux_cap, g->nstages,
             sizeof *P->saux) != 0)
        goto fail;
    if (P->hash_cap < 2 * (g->nstages + 1)) {
        uint32_t nc = P->hash_cap ? P->hash_cap * 2 : 64, i;
        uint32_t *nh = calloc(nc, sizeof *nh);
        if (nh == NULL) {
            oom(P);
            goto fail;
        }
        free(P->stage_hash);
        P->stage_hash = nh;
        P->hash_cap = nc;
        for (i = 0; i < g->nstages; i++)
            hash_insert(P, i);
    }
    g->stages[g->nstages] = s;
    P->saux[g->nstages] = ax;
    hash_insert(P, g->nstages);
    g->nstages++;
    return 0;
fail:
    free(s.name);
    free(s.kind);
    free(s.path);
    free(s.config);
    free(s.actuator);
    free(ax.place);
    free(arg);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Flows.                                                                   */

static int uvec_push(parser *P, uvec *u, uint32_t x)
{
    if (grow(P, (void **)&u->v, &u->cap, u->n, sizeof *u->v) != 0)
        return -1;
    u->v[u->n++] = x;
    return 0;
}

static int uvec_append(parser *P, uvec *u, const uvec *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (uvec_push(P, u, w->v[i]) != 0)
            return -1;
    return 0;
}

static void uvec_free(uvec *u)
{
    free(u->v);
    u->v = NULL;
    u->n = u->cap = 0;
}

/* Adds a ref for the stage name at the current token and advances. */
static int add_ref(parser *P, uint32_t *out)
{
    ref *r;
    if (P->nrefs >= MAX_REFS) {
        perr(P, FL_SYNTAX, P->tk.pos, "at most 65536 in all flows",
             "too many stage names in flows");
        return -1;
    }
    if (grow(P, (void **)&P->refs, &P->refs_cap, P->nrefs, sizeof *P->refs))
        return -1;
    r = &P->refs[P->nrefs];
    r->off = P->tk.off;
    r->len = P->tk.len;
    r->pos = P->tk.pos;
    r->stage = -1;
    *out = P->nrefs++;
    lex(P);
    return 0;
}

/* Links every ref in `from` to every ref in `to`. */
static int connect(parser *P, const uvec *from, const uvec *to, int bidir,
                   uint32_t flow, fl__pos at)
{
    for (uint32_t i = 0; i < from->n; i++)
        for (uint32_t j = 0; j < to->n; j++) {
            plink *l;
            if (P->nlinks >= MAX_LINKS) {
                perr(P, FL_SYNTAX, at, "at most 65536 links after "
                                       "flattening blocks",
                     "too many links");
                return -1;
            }
            if (grow(P, (void **)&P->links, &P->links_cap, P->nlinks,
                     sizeof *P->links) != 0)
                return -1;
            l = &P->links[P->nlinks++];
            l->from = from->v[i];
            l->to = to->v[j];
            l->bidir = (uint8_t)bidir;
            l->flow = flow;
        }
    return 0;
}

static const char expr_exp[] = "a stage name, \"[\" or \"{\"";

/* EXPR := NAME | "[" EXPR {"," EXPR} "]" | "{" EXPR {"," EXPR} "}".
 * Fills `entries` (refs receiving what enters the expression) and `exits`
 * (refs whose output leaves it).  Links inside a serial block are
 * bidirectional. */
static int parse_expr(parser *P, uint32_t depth, uint32_t flow,
                      uvec *entries, uvec *exits)
{
    uint32_t r;
    int serial, close, first = 1, rc = -1;
    uvec e = {0}, x = {0}, prev = {0};

    if (P->tk.t == T_IDENT) {
        if (P->tk.len > MAX_NAME) {
            perr(P, FL_SYNTAX, P->tk.pos, "at most 31 bytes",
                 "name too long (%u bytes)", P->tk.len);
            return -1;
        }
        if (add_ref(P, &r) != 0)
            return -1;
        if (uvec_push(P, entries, r) != 0 || uvec_push(P, exits, r) != 0)
            return -1;
        return 0;
    }
    if (P->tk.t != T_LB && P->tk.t != T_LC)
        return unexpected(P, expr_exp);
    if (depth >= MAX_DEPTH) {
        perr(P, FL_SYNTAX, P->tk.pos, "at most 64 levels of [ ] and { }",
             "blocks nested too deeply");
        return -1;
    }
    serial = P->tk.t == T_LB;
    close = serial ? T_RB : T_RC;
    lex(P);
    skip_nl(P);
    for (;;) {
        fl__pos at = P->tk.pos;
        e.n = x.n = 0;
        if (parse_expr(P, depth + 1, flow, &e, &x) != 0)
            goto out;
        if (!serial) {
            if (uvec_append(P, entries, &e) || uvec_append(P, exits, &x))
                goto out;
        } else {
            if (first) {
                if (uvec_append(P, entries, &e) != 0)
                    goto out;
            } else if (connect(P, &prev, &e, 1, flow, at) != 0) {
                goto out;
            }
            prev.n = 0;
            if (uvec_append(P, &prev, &x) != 0)
                goto out;
        }
        first = 0;
        skip_nl(P);
        if (P->tk.t == T_COMMA) {
            lex(P);
            skip_nl(P);
            continue;
        }
        if (P->tk.t == close)
            break;
        unexpected(P, serial ? "\",\" or \"]\"" : "\",\" or \"}\"");
        goto out;
    }
    lex(P);
    if (serial && uvec_append(P, exits, &prev) != 0)
        goto out;
    rc = 0;
out:
    uvec_free(&e);
    uvec_free(&x);
    uvec_free(&prev);
    return rc;
}

/* `flow NAME: MODE(SOURCE {SRCOPT}) OP EXPR {OP EXPR}`. */
static int parse_flow(parser *P)
{
    fl_graph *g = P->g;
    fl__flow f;
    fl__source src;
    src_aux xa;
    uvec prev = {0}, e = {0}, x = {0};
    uint32_t fi = g->nflows, r, i;
    int nops = 0, rc = -1;
    char seen[4] = {0, 0, 0, 0};
    const char *optexp;

    memset(&f, 0, sizeof f);
    memset(&src, 0, sizeof src);
    memset(&xa, 0, sizeof xa);
    lex(P);
    f.name = take_name(P, "a flow name", &f.pos);
    if (f.name == NULL)
        return -1;
    for (i = 0; i < g->nflows; i++)
        if (strcmp(g->flows[i].name, f.name) == 0) {
            perr(P, FL_CHECK, f.pos, "a name not used by another flow",
                 "duplicate flow \"%s\" (first declared at %u:%u)", f.name,
                 g->flows[i].pos.line, g->flows[i].pos.col);
            goto out;
        }
    if (g->nflows >= MAX_FLOWS) {
        perr(P, FL_SYNTAX, f.pos, "at most 1024 flows", "too many flows");
        goto out;
    }
    if (P->tk.t != T_COLON) {
        unexpected(P, "\":\"");
        goto out;
    }
    lex(P);
    skip_nl(P);
    if (tok_is(P, "push")) {
        src.mode = FL__MODE_PUSH;
        optexp = "\"every\" or \")\"";
    } else if (tok_is(P, "pull")) {
        src.mode = FL__MODE_PULL;
        optexp = "\"every\" or \")\"";
    } else if (tok_is(P, "demand")) {
        src.mode = FL__MODE_DEMAND;
        optexp = "\"every\", \"credits\", \"policy\", \"buffer\" or \")\"";
    } else {
        unexpected(P, "a source mode: push, pull or demand");
        goto out;
    }
    lex(P);
    if (P->tk.t != T_LP) {
        unexpected(P, "\"(\"");
        goto out;
    }
    lex(P);
    skip_nl(P);
    if (P->tk.t != T_IDENT) {
        unexpected(P, "the source's stage name");
        goto out;
    }
    if (P->tk.len > MAX_NAME) {
        perr(P, FL_SYNTAX, P->tk.pos, "at most 31 bytes",
             "name too long (%u bytes)", P->tk.len);
        goto out;
    }
    src.pos = P->tk.pos;
    if (add_ref(P, &r) != 0)
        goto out;
    xa.ref = r;
    src.credits = 16;
    src.policy = FL__POLICY_BLOCK;
    src.buffer = 16;
    src.flow = fi;
    for (;;) {
        static const char *const names[] = {"every", "credits", "policy",
                                            "buffer"};
        int o;
        uint64_t v;
        skip_nl(P);
        if (P->tk.t == T_RP)
            break;
        for (o = 0; o < 4 && !tok_is(P, names[o]); o++)
            ;
        if (o == 4 || (o > 0 && src.mode != FL__MODE_DEMAND)) {
            unexpected(P, optexp);
            goto out;
        }
        if (seen[o]) {
            perr(P, FL_SYNTAX, P->tk.pos, "each option at most once",
                 "option \"%s\" given twice", names[o]);
            goto out;
        }
        seen[o] = 1;
        if (o == 3)
            xa.buffer_pos = P->tk.pos;
        lex(P);
        switch (o) {
        case 0:
            if (take_duration(P, &src.interval_ns) != 0)
                goto out;
            xa.has_every = 1;
            break;
        case 1:
            if (take_uint(P, "credits", 1, MAX_CREDITS, &v) != 0)
                goto out;
            src.credits = (uint32_t)v;
            break;
        case 2:
            if (tok_is(P, "block"))
                src.policy = FL__POLICY_BLOCK;
            else if (tok_is(P, "drop-oldest"))
                src.policy = FL__POLICY_DROP_OLDEST;
            else if (tok_is(P, "sample"))
                src.policy = FL__POLICY_SAMPLE;
            else {
                unexpected(P, "a policy: block, drop-oldest or sample");
                goto out;
            }
            lex(P);
            break;
        default:
            if (take_uint(P, "buffer", 1, MAX_CREDITS, &v) != 0)
                goto out;
            src.buffer = (uint32_t)v;
            break;
        }
    }
    if (xa.buffer_pos.line != 0 && src.policy != FL__POLICY_DROP_OLDEST) {
        perr(P, FL_SYNTAX, xa.buffer_pos,
             "\"buffer\" only with \"policy drop-oldest\"",
             "\"buffer\" applies only to policy drop-oldest");
        goto out;
    }
    if (src.policy == FL__POLICY_SAMPLE)
        src.buffer = 1;
    lex(P); /* ")" */
    if (uvec_push(P, &prev, r) != 0)
        goto out;
    while (P->tk.t == T_ARROW || P->tk.t == T_BIARROW) {
        int bidir = P->tk.t == T_BIARROW;
        fl__pos at;
        lex(P);
        skip_nl(P);
        at = P->tk.pos;
        e.n = x.n = 0;
        if (parse_expr(P, 0, fi, &e, &x) != 0)
            goto out;
        if (connect(P, &prev, &e, bidir, fi, at) != 0)
            goto out;
        prev.n = 0;
        if (uvec_append(P, &prev, &x) != 0)
            goto out;
        nops++;
    }
    if (nops == 0) {
        unexpected(P, "\"~>\" or \"<~>\" (a flow needs a stage after its "
                      "source)");
        goto out;
    }
    if (end_of_decl(P, "\"~>\", \"<~>\" or end of line") != 0)
        goto out;
    if (grow(P, (void **)&g->flows, &P->flows_cap, g->nflows,
             sizeof *g->flows) != 0 ||
        grow(P, (void **)&g->sources, &P->sources_cap, g->nsources,
             sizeof *g->sources) != 0 ||
        grow(P, (void **)&P->xaux, &P->xaux_cap, g->nsources,
             sizeof *P->xaux) != 0)
        goto out;
    f.source = g->nsources;
    P->xaux[g->nsources] = xa;
    g->sources[g->nsources++] = src;
    g->flows[g->nflows++] = f;
    f.name = NULL;
    rc = 0;
out:
    free(f.name);
    uvec_free(&prev);
    uvec_free(&e);
    uvec_free(&x);
    return rc;
}

/* The whole text: one declaration per line. */
static int parse_text(parser *P)
{
    lex(P);
    while (P->st == FL_OK) {
        int rc;
        if (P->tk.t == T_EOF)
            return 0;
        if (P->tk.t == T_NL) {
            lex(P);
            continue;
        }
        if (tok_is(P, "devices"))
            rc = parse_group(P, 1);
        else if (tok_is(P, "group"))
            rc = parse_group(P, 0);
        else if (tok_is(P, "stage"))
            rc = parse_stage(P);
        else if (tok_is(P, "flow"))
            rc = parse_flow(P);
        else if (tok_is(P, "node"))
            rc = parse_node(P);
        else
            rc = unexpected(P, "a declaration: devices, group, node, stage "
                               "or flow");
        if (rc != 0)
            return -1;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Checks after parsing.                                                    */

static const char *const layer_names[] = {"device", "edge", "cloud"};

/* Placements: device, edge, cloud or a declared group. */
static int resolve_placements(parser *P)
{
    fl_graph *g = P->g;
    for (uint32_t i = 0; i < g->nstages; i++) {
        fl__stage *s = &g->stages[i];
        const char *pl = P->saux[i].place;
        int gi;
        if (strcmp(pl, "device") == 0)
            s->layer = FL__LAYER_DEVICE;
        else if (strcmp(pl, "edge") == 0)
            s->layer = FL__LAYER_EDGE;
        else if (strcmp(pl, "cloud") == 0)
            s->layer = FL__LAYER_CLOUD;
        else if ((gi = find_group(g, pl)) >= 0) {
            s->layer = g->groups[gi].layer;
            s->group = gi;
        } else {
            perr(P, FL_CHECK, P->saux[i].place_pos,
                 "device, edge, cloud or a declared group",
                 "unknown placement \"%s\" of stage \"%s\"", pl, s->name);
            return -1;
        }
    }
    return 0;
}

static uint32_t device_group(const fl_graph *g, uint32_t dev)
{
    for (uint32_t i = 0; i < g->ngroups; i++)
        if (g->groups[i].layer == FL__LAYER_DEVICE &&
            dev >= g->groups[i].first_device &&
            dev - g->groups[i].first_device < g->groups[i].count)
            return i;
    return 0;
}

/* Devices: totals, names (unique over all groups), instance counts. */
static int resolve_devices(parser *P)
{
    fl_graph *g = P->g;
    uint64_t total = 0;
    uint32_t i, a, b, ga, gb;
    char msg[256];
    fl_status st;
    int dup;

    for (i = 0; i < g->ngroups; i++) {
        if (g->groups[i].layer != FL__LAYER_DEVICE)
            continue;
        total += g->groups[i].count;
        if (total > MAX_DEVICES) {
            perr(P, FL_CHECK, g->groups[i].pos,
                 "at most 100000 devices over all groups",
                 "too many devices (%llu)", (unsigned long long)total);
            return -1;
        }
    }
    st = fl__graph_resolve(g, msg, sizeof msg);
    if (st == FL_OK)
        return 0;
    if (st == FL_NOMEM) {
        oom(P);
        return -1;
    }
    dup = fl__graph_find_dup_device(g, &a, &b);
    if (dup <= 0) {
        fl__pos none = {0, 0, 0};
        if (dup < 0)
            oom(P);
        else
            perr(P, FL_CHECK, none, NULL, "%s", msg);
        return -1;
    }
    ga = device_group(g, a);
    gb = device_group(g, b);
    perr(P, FL_CHECK, g->groups[gb].pos, "device names unique over all groups",
         "device name \"%s\" of group \"%s\" is also in group \"%s\"",
         g->device_names[b], g->groups[gb].name, g->groups[ga].name);
    return -1;
}

/* Nodes: `connect` names a declared node of the next layer up, listen
 * addresses are unique, a node that is connected to listens, and when any
 * node is declared every layer with stages has a node (devices: their group
 * connects somewhere).  Returns 0 or -1 after reporting. */
static int resolve_nodes(parser *P)
{
    fl_graph *g = P->g;
    int has_dev_nodes = 0;
    for (uint32_t i = 0; i < g->ngroups; i++)
        has_dev_nodes |= g->groups[i].connect != NULL;
    if (g->nnodes == 0 && !has_dev_nodes)
        return 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        fl__node *n = &g->nodes[i];
        for (uint32_t k = 0; k < i && n->listen; k++)
            if (g->nodes[k].listen && strcmp(g->nodes[k].listen, n->listen) == 0) {
                perr(P, FL_CHECK, n->listen_pos, "an address no other node listens on",
                     "duplicate address \"%s\" of node \"%s\" (node \"%s\" "
                     "listens there)", n->listen, n->name, g->nodes[k].name);
                return -1;
            }
        if (n->connect == NULL)
            continue;
        int c = find_node(g, n->connect);
        if (c < 0) {
            perr(P, FL_CHECK, n->connect_pos, "a declared node",
                 "unknown node \"%s\" in connect of node \"%s\"", n->connect,
                 n->name);
            return -1;
        }
        if (g->nodes[c].layer != n->layer + 1) {
            perr(P, FL_CHECK, n->connect_pos, "a node of the next layer up",
                 "node \"%s\" (%s) cannot connect to node \"%s\" (%s)",
                 n->name, layer_names[n->layer], n->connect,
                 layer_names[g->nodes[c].layer]);
            return -1;
        }
        n->connect_idx = c;
    }
    for (uint32_t i = 0; i < g->ngroups; i++) {
        fl__group *gr = &g->groups[i];
        if (gr->connect == NULL)
            continue;
        int c = find_node(g, gr->connect);
        if (c < 0) {
            perr(P, FL_CHECK, gr->connect_pos, "a declared node",
                 "unknown node \"%s\" in connect of devices \"%s\"",
                 gr->connect, gr->name);
            return -1;
        }
        if (g->nodes[c].layer != FL__LAYER_EDGE &&
            g->nodes[c].layer != FL__LAYER_CLOUD) {
            perr(P, FL_CHECK, gr->connect_pos, "an edge or cloud node",
                 "devices \"%s\" cannot connect to node \"%s\"", gr->name,
                 gr->connect);
            return -1;
        }
        gr->connect_idx = c;
    }
    for (uint32_t i = 0; i < g->nnodes; i++) {
        fl__node *n = &g->nodes[i];
        int wanted = 0;
        for (uint32_t k = 0; k < g->nnodes; k++)
            wanted |= g->nodes[k].connect_idx == (int32_t)i;
        for (uint32_t k = 0; k < g->ngroups; k++)
            wanted |= g->groups[k].connect_idx == (int32_t)i;
        if (wanted && n->listen == NULL) {
            perr(P, FL_CHECK, n->pos, "\"listen \"HOST:PORT\"\"",
                 "node \"%s\" is connected to but does not listen", n->name);
            return -1;
        }
    }
    for (uint32_t i = 0; i < g->nstages; i++) {
        fl__stage *s = &g->stages[i];
        int found = 0;
        s->node_mode = 1;
        if (s->layer == FL__LAYER_DEVICE) {
            for (uint32_t k = 0; k < g->ngroups; k++)
                if (g->groups[k].layer == FL__LAYER_DEVICE &&
                    (s->group < 0 || (uint32_t)s->group == k) &&
                    g->groups[k].connect == NULL) {
                    perr(P, FL_CHECK, g->groups[k].pos,
                         "\"connect NODE\" on the devices declaration",
                         "devices \"%s\" run stage \"%s\" but connect to no "
                         "node", g->groups[k].name, s->name);
                    return -1;
                }
            continue;
        }
        for (uint32_t k = 0; k < g->nnodes; k++)
            found |= g->nodes[k].layer == s->layer;
        if (!found) {
            perr(P, FL_CHECK, P->saux[i].place_pos,
                 "a \"node NAME @LAYER ...\" declaration for this layer",
                 "stage \"%s\" is on the %s layer, which has no node",
                 s->name, layer_names[s->layer]);
            return -1;
        }
    }
    return 0;
}

/* A stage placed @device needs at least one device group. */
static int check_devices(parser *P)
{
    fl_graph *g = P->g;
    uint32_t i;
    for (i = 0; i < g->nstages; i++) {
        fl__stage *s = &g->stages[i];
        if (s->layer == FL__LAYER_DEVICE && s->group < 0 &&
            g->ndevices == 0) {
            perr(P, FL_CHECK, P->saux[i].place_pos,
                 "a \"devices NAME ...\" declaration",
                 "stage \"%s\" is placed @device but no device group is "
                 "declared",
                 s->name);
            return -1;
        }
    }
    return 0;
}

/* Actuators: a declared stage on the device layer running on (at least)
 * the same devices as the stage naming it, which is a device stage. */
static int resolve_actuators(parser *P)
{
    fl_graph *g = P->g;
    for (uint32_t i = 0; i < g->nstages; i++) {
        fl__stage *s = &g->stages[i];
        fl__stage *a;
        int32_t ai;
        fl__pos pos = P->saux[i].act_pos;
        char exp[96];
        if (s->actuator == NULL)
            continue;
        if (s->layer != FL__LAYER_DEVICE) {
            perr(P, FL_CHECK, pos, "\"actuator\" only on device stages",
                 "stage \"%s\" on the %s layer cannot have an actuator",
                 s->name, layer_names[s->layer]);
            return -1;
        }
        ai = find_stage(P, s->actuator, strlen(s->actuator));
        if (ai < 0) {
            perr(P, FL_CHECK, pos, "a declared stage",
                 "unknown actuator stage \"%s\"", s->actuator);
            return -1;
        }
        a = &g->stages[ai];
        if (s->group >= 0)
            snprintf(exp, sizeof exp, "a stage placed @device or @%s",
                     g->groups[s->group].name);
        else
            snprintf(exp, sizeof exp, "a stage placed @device");
        if (a->layer != FL__LAYER_DEVICE) {
            perr(P, FL_CHECK, pos, exp,
                 "actuator \"%s\" of stage \"%s\" is on the %s layer",
                 a->name, s->name, layer_names[a->layer]);
            return -1;
        }
        if (a->group >= 0 && a->group != s->group) {
            perr(P, FL_CHECK, pos, exp,
                 "actuator \"%s\" of stage \"%s\" does not run on the same "
                 "devices",
                 a->name, s->name);
            return -1;
        }
        if (ai == (int32_t)i) {
            /* A source acting on itself needs no actuator option, but it is
             * harmless: keep it. */
        }
        s->actuator_idx = ai;
        a->need_caps |= IF_CAP_ACTUATION;
    }
    return 0;
}

/* Flow refs to stages, then sources (one flow per source, an interval for
 * push and pull). */
static int resolve_flows(parser *P)
{
    fl_graph *g = P->g;
    uint32_t i;
    int32_t *src_of;

    for (i = 0; i < P->nrefs; i++) {
        ref *r = &P->refs[i];
        r->stage = find_stage(P, P->text + r->off, r->len);
        if (r->stage < 0) {
            uint32_t f = 0;
            /* The flow holding the ref: the last flow whose line is not
             * after it (flows are stored in order). */
            for (uint32_t k = 0; k < g->nflows; k++)
                if (g->flows[k].pos.line <= r->pos.line)
                    f = k;
            perr(P, FL_CHECK, r->pos, "a declared stage",
                 "unknown stage \"%.*s\" in flow \"%s\"", (int)r->len,
                 P->text + r->off, g->nflows ? g->flows[f].name : "?");
            return -1;
        }
    }
    src_of = malloc((size_t)(g->nstages ? g->nstages : 1) * sizeof *src_of);
    if (src_of == NULL) {
        oom(P);
        return -1;
    }
    for (i = 0; i < g->nstages; i++)
        src_of[i] = -1;
    for (i = 0; i < g->nsources; i++) {
        fl__source *src = &g->sources[i];
        const fl__stage *s;
        src->stage = (uint32_t)P->refs[P->xaux[i].ref].stage;
        s = &g->stages[src->stage];
        if (src_of[src->stage] >= 0) {
            perr(P, FL_CHECK, src->pos, "one flow per source",
                 "stage \"%s\" is already the source of flow \"%s\"",
                 s->name, g->flows[g->sources[src_of[src->stage]].flow].name);
            free(src_of);
            return -1;
        }
        src_of[src->stage] = (int32_t)i;
        if (!P->xaux[i].has_every)
            src->interval_ns = s->every_ns;
        if (src->interval_ns == 0 && src->mode != FL__MODE_DEMAND) {
            perr(P, FL_CHECK, src->pos,
                 "\"every DURATION\" here or in the stage's declaration",
                 "%s source \"%s\" has no interval",
                 src->mode == FL__MODE_PUSH ? "push" : "pull", s->name);
            free(src_of);
            return -1;
        }
        g->stages[src->stage].need_caps |= IF_CAP_PRODUCE;
    }
    free(src_of);
    return 0;
}

/* Links from refs to stages, without duplicates (a second link between the
 * same stages makes the first bidirectional if it is). */
static int build_edges(parser *P)
{
    fl_graph *g = P->g;
    uint32_t hcap = 16, mask, i, h;
    uint32_t *tab;

    while (hcap < 2 * (P->nlinks + 1))
        hcap *= 2;
    mask = hcap - 1;
    tab = calloc(hcap, sizeof *tab);
    g->edges = malloc((size_t)(P->nlinks ? P->nlinks : 1) * sizeof *g->edges);
    P->epos = malloc((size_t)(P->nlinks ? P->nlinks : 1) * sizeof *P->epos);
    if (tab == NULL || g->edges == NULL || P->epos == NULL) {
        free(tab);
        oom(P);
        return -1;
    }
    for (i = 0; i < P->nlinks; i++) {
        const plink *l = &P->links[i];
        uint32_t from = (uint32_t)P->refs[l->from].stage;
        uint32_t to = (uint32_t)P->refs[l->to].stage;
        uint32_t key = from * 4099u + to * 7u;
        for (h = (key * 2654435761u) & mask; tab[h] != 0; h = (h + 1) & mask) {
            fl__edge *e = &g->edges[tab[h] - 1];
            if (e->from == from && e->to == to) {
                e->bidir |= l->bidir;
                break;
            }
        }
        if (tab[h] != 0)
            continue;
        g->edges[g->nedges].from = from;
        g->edges[g->nedges].to = to;
        g->edges[g->nedges].bidir = l->bidir;
        g->edges[g->nedges].flow = l->flow;
        P->epos[g->nedges] = P->refs[l->to].pos;
        tab[h] = ++g->nedges;
        g->stages[to].need_caps |= IF_CAP_PROCESS;
    }
    free(tab);
    return 0;
}

/* Finds a cycle with an iterative depth-first search; reports the stages
 * on it at the link that closes it. */
static int check_cycles(parser *P)
{
    fl_graph *g = P->g;
    uint32_t n = g->nstages, i, *start = NULL, *adj = NULL, *stk = NULL,
             *it = NULL, sp;
    uint8_t *color = NULL;
    int rc = -1;

    start = calloc((size_t)n + 1, sizeof *start);
    adj = malloc((size_t)(g->nedges ? g->nedges : 1) * sizeof *adj);
    stk = malloc((size_t)(n ? n : 1) * sizeof *stk);
    it = malloc((size_t)(n ? n : 1) * sizeof *it);
    color = calloc(n ? n : 1, 1);
    if (!start || !adj || !stk || !it || !color) {
        oom(P);
        goto out;
    }
    for (i = 0; i < g->nedges; i++)
        start[g->edges[i].from + 1]++;
    for (i = 0; i < n; i++)
        start[i + 1] += start[i];
    {
        uint32_t *fill = it; /* reuse as a cursor */
        for (i = 0; i < n; i++)
            fill[i] = start[i];
        for (i = 0; i < g->nedges; i++)
            adj[fill[g->edges[i].from]++] = i;
    }
    for (uint32_t root = 0; root < n; root++) {
        if (color[root] != 0)
            continue;
        sp = 0;
        stk[sp] = root;
        it[sp] = start[root];
        sp++;
        color[root] = 1;
        while (sp > 0) {
            uint32_t u = stk[sp - 1];
            if (it[sp - 1] == start[u + 1]) {
                color[u] = 2;
                sp--;
                continue;
            }
            uint32_t ei = adj[it[sp - 1]++];
            uint32_t v = g->edges[ei].to;
            if (color[v] == 0) {
                color[v] = 1;
                stk[sp] = v;
                it[sp] = start[v];
                sp++;
            } else if (color[v] == 1) {
                char path[512];
                size_t pn = 0;
                uint32_t k = sp;
                while (k > 0 && stk[k - 1] != v)
                    k--;
                for (k = k - 1; k < sp; k++)
                    bufadd(path, sizeof path, &pn, "\"%s\" ~> ",
                           g->stages[stk[k]].name);
                bufadd(path, sizeof path, &pn, "\"%s\"", g->stages[v].name);
                perr(P, FL_CHECK, P->epos[ei],
                     "no path from a stage back to itself",
                     "cycle in flow \"%s\": %s",
                     g->flows[g->edges[ei].flow].name, path);
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(start);
    free(adj);
    free(stk);
    free(it);
    free(color);
    return rc;
}

/* The functions a stage must define for its role, for expectations. */
static void caps_list(unsigned caps, char *buf, size_t cap)
{
    size_t n = 0;
    bufadd(buf, cap, &n, "a stage defining");
    if (caps & IF_CAP_PRODUCE)
        bufadd(buf, cap, &n, " stage_produce (it is a source)%s",
               caps & (IF_CAP_PROCESS | IF_CAP_ACTUATION) ? "," : "");
    if (caps & IF_CAP_PROCESS)
        bufadd(buf, cap, &n, " stage_process (it has an upstream)%s",
               caps & IF_CAP_ACTUATION ? "," : "");
    if (caps & IF_CAP_ACTUATION)
        bufadd(buf, cap, &n, " stage_actuation (it is an actuator)");
    if ((caps & (IF_CAP_PRODUCE | IF_CAP_PROCESS | IF_CAP_ACTUATION)) == 0)
        snprintf(buf, cap, "a valid stage");
}

/* Stage files exist and every stage passes its host's check. */
static int check_stages(parser *P)
{
    fl_graph *g = P->g;
    for (uint32_t i = 0; i < g->nstages; i++) {
        const fl__stage *s = &g->stages[i];
        const fl__stage_ops *ops = fl__stage_ops_find(s->kind);
        fl__pos at = P->saux[i].arg_pos.line ? P->saux[i].arg_pos
                                             : P->saux[i].kind_pos;
        char msg[512], exp[256];
        if (ops == NULL)
            continue; /* cannot happen: kinds are checked while parsing */
        /* "embedded:NAME" is no file: the host's check resolves it. */
        if (s->path != NULL && strcmp(s->kind, "jsonl") != 0 &&
            fl_embed_find(s->path, NULL, NULL, NULL, 0) == FL_PASS) {
            FILE *f = fopen(s->path, "rb");
            if (f == NULL) {
                int e = errno;
                perr(P, FL_CHECK, at,
                     strcmp(s->kind, "wasm") == 0
                         ? "an existing .wasm file (relative paths start at "
                           "the flow file's directory)"
                         : "an existing .so file (relative paths start at "
                           "the flow file's directory)",
                     "stage \"%s\": cannot open \"%s\": %s", s->name,
                     s->path, strerror(e));
                return -1;
            }
            fclose(f);
        }
        if (ops->check == NULL)
            continue;
        msg[0] = '\0';
        if (ops->check(s, msg, sizeof msg) != FL_OK) {
            if (strcmp(s->kind, "jsonl") == 0)
                snprintf(exp, sizeof exp, "an output file in an existing, "
                                          "writable directory");
            else if (kind_takes_file(s->kind))
                caps_list(s->need_caps, exp, sizeof exp);
            else
                snprintf(exp, sizeof exp,
                         "a configuration \"%s\" accepts (see its help)",
                         s->kind);
            perr(P, FL_CHECK, at, exp, "%s",
                 msg[0] ? msg : "the stage host rejected it");
            return -1;
        }
    }
    return 0;
}

/* Frees the parser's scratch state (not the graph). */
static void parser_free(parser *P)
{
    for (uint32_t i = 0; P->g != NULL && i < P->g->nstages; i++)
        free(P->saux[i].place);
    free(P->saux);
    free(P->xaux);
    free(P->refs);
    free(P->links);
    free(P->epos);
    free(P->stage_hash);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* Parses and checks a flow from memory (see flow.h). */
fl_status fl_graph_parse(const char *name, const char *text, size_t len,
                         const char *basedir, int check_files,
                         fl_graph **out, char *err, size_t errlen)
{
    parser P;
    fl_graph *g;
    fl_status st;

    if (out != NULL)
        *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (name == NULL)
        name = "<flow>";
    if ((text == NULL && len > 0) || out == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: error: invalid argument", name);
        return FL_ARG;
    }
    memset(&P, 0, sizeof P);
    P.name = name;
    P.text = text != NULL ? text : "";
    P.len = len;
    P.line = 1;
    P.err = err;
    P.errlen = errlen;
    g = calloc(1, sizeof *g);
    if (g == NULL ||
        (g->file = dup_str(name)) == NULL ||
        (g->dir = dup_str(basedir != NULL ? basedir : ".")) == NULL) {
        fl_graph_free(g);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: error: out of memory", name);
        return FL_NOMEM;
    }
    P.g = g;
    if (len > MAX_TEXT) {
        fl__pos none = {0, 0, 0};
        perr(&P, FL_SYNTAX, none, NULL,
             "flow text too large (%zu bytes; at most %u)", len, MAX_TEXT);
        goto done;
    }
    if (check_lines(&P) != 0 || parse_text(&P) != 0)
        goto done;
    if (resolve_placements(&P) != 0 || resolve_devices(&P) != 0 ||
        check_devices(&P) != 0 || resolve_nodes(&P) != 0 ||
        resolve_actuators(&P) != 0 ||
        resolve_flows(&P) != 0 || build_edges(&P) != 0 ||
        check_cycles(&P) != 0)
        goto done;
    if (check_files && check_stages(&P) != 0)
        goto done;
done:
    st = P.st;
    parser_free(&P);
    if (st != FL_OK) {
        fl_graph_free(g);
        return st;
    }
    *out = g;
    return FL_OK;
}

/* Reads a flow file (at most MAX_TEXT bytes) and parses it with
 * relative paths resolved against its directory (see flow.h). */
fl_status fl_graph_load(const char *path, fl_graph **out, char *err,
                        size_t errlen)
{
    FILE *f;
    char *buf = NULL, *dir = NULL, *slash;
    size_t n = 0, got;
    fl_status st;

    if (out != NULL)
        *out = NULL;
    if (path == NULL || out == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "error: invalid argument");
        return FL_ARG;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: error: cannot open: %s", path,
                     strerror(e));
        return FL_IO;
    }
    buf = malloc(MAX_TEXT + 1);
    if (buf == NULL) {
        fclose(f);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: error: out of memory", path);
        return FL_NOMEM;
    }
    while ((got = fread(buf + n, 1, MAX_TEXT + 1 - n, f)) > 0)
        n += got;
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: error: cannot read: %s", path,
                     strerror(e));
        return FL_IO;
    }
    fclose(f);
    dir = dup_str(path);
    if (dir == NULL) {
        free(buf);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: error: out of memory", path);
        return FL_NOMEM;
    }
    slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, strlen(dir) + 1, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    st = fl_graph_parse(path, buf, n, dir, 1, out, err, errlen);
    free(dir);
    free(buf);
    return st;
}
