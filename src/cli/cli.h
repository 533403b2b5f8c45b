/*
 * cli.h - declarations shared by the files of the `isoflow` command: the
 * subcommand table entry type, the subcommand entry points and small helpers
 * (error printing, bounded file reading, timing) implemented in util.c.
 */
#ifndef ISOFLOW_CLI_H
#define ISOFLOW_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef ISOFLOW_VERSION
#define ISOFLOW_VERSION "0.1.0-dev"
#endif

/* Exit codes used by every subcommand. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,  /* the operation failed (invalid module, I/O, ...) */
    CLI_EXIT_USAGE = 2, /* bad command line or unsupported feature */
    CLI_EXIT_TRAP = 3   /* the guest trapped */
};

/* A subcommand: argv[0] is the subcommand's own name ("wasm"), so the
 * function sees `wasm run --invoke fib f.wasm 10` as argc 6.  `help` prints
 * the subcommand's usage text to `out` (used by `isoflow help CMD`). */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
    void (*help)(FILE *out);
} cli_command;

/* Subcommands (cmd_*.c). */
int cli_cmd_wasm(int argc, char **argv);
void cli_cmd_wasm_help(FILE *out);
int cli_cmd_run(int argc, char **argv);
void cli_cmd_run_help(FILE *out);
int cli_cmd_stages(int argc, char **argv);
void cli_cmd_stages_help(FILE *out);
int cli_cmd_check(int argc, char **argv);
void cli_cmd_check_help(FILE *out);
int cli_cmd_build(int argc, char **argv);
void cli_cmd_build_help(FILE *out);
int cli_cmd_ca(int argc, char **argv);
void cli_cmd_ca_help(FILE *out);
int cli_cmd_node(int argc, char **argv);
void cli_cmd_node_help(FILE *out);
int cli_cmd_key(int argc, char **argv);
void cli_cmd_key_help(FILE *out);
int cli_cmd_sign(int argc, char **argv);
void cli_cmd_sign_help(FILE *out);
int cli_cmd_verify(int argc, char **argv);
void cli_cmd_verify_help(FILE *out);
int cli_cmd_demo(int argc, char **argv);
void cli_cmd_demo_help(FILE *out);
int cli_cmd_deploy(int argc, char **argv);
void cli_cmd_deploy_help(FILE *out);
int cli_cmd_versions(int argc, char **argv);
void cli_cmd_versions_help(FILE *out);
int cli_cmd_rollback(int argc, char **argv);
void cli_cmd_rollback_help(FILE *out);

int cli_cmd_agent(int argc, char **argv);
void cli_cmd_agent_help(FILE *out);

/* The client side of `isoflow agent` (agent.c), for deploy / rollback /
 * versions.  cli_agent_path: the default socket DIR/NAME.agent for --certs
 * DIR --as NAME (0, or -1 when too long for a Unix socket).
 * cli_agent_probe: 0 when an agent answers on path.  cli_agent_connect:
 * a connection to the node at addr (which must present `role`) through
 * the agent; cb runs on a thread of the connection's with conn NULL:
 * on_open once the agent's link is up, on_frame for each CTL_REPLY,
 * on_close once at the end (the link lost or refused, the agent gone:
 * the reason).  0, or -1 with err.  cli_agent_send_ctl: one CTL request
 * (id >= 1), the blob sent from where it is (no copy); 0, -1 when the
 * agent is gone, -2 when no frame can hold it.  cli_agent_close: ends it (after on_close ran). */
typedef struct cli_agent_conn cli_agent_conn;
struct nt_callbacks;
int cli_agent_path(const char *certs, const char *as, char *out, size_t cap);
int cli_agent_probe(const char *path);
int cli_agent_connect(const char *path, const char *addr, int role,
                      const struct nt_callbacks *cb, void *user,
                      cli_agent_conn **out, char *err, size_t errlen);
int cli_agent_send_ctl(cli_agent_conn *c, uint32_t id, const char *json,
                       size_t json_len, const uint8_t *blob,
                       size_t blob_len);
void cli_agent_close(cli_agent_conn *c);

/* The agent's socket protocol as pure functions (agent_proto.c; agent.c
 * describes it).  cli_agent_frame_next: the next whole frame read from fd
 * into in (free in->buf at the end): 1 with *f (valid until the next
 * call), 0 at the end of the stream, -1 with err.  cli_agent_put_json:
 * a CTL or CTL_REPLY frame with id and the JSON object o into b (an
 * nt_status).  cli_agent_parse_open: the command's first frame, CTL id 0
 * {"open": "HOST:PORT", "role": 2|3}: 0 with addr and *role, or -1 with
 * err.  cli_agent_check_request: a frame the agent relays (CTL, id >= 1):
 * 0 with *id, or -1 with err.  cli_agent_parse_reply: the agent's own messages
 * (CTL_REPLY id 0): 1 {"open": true, "peer": ...} (peer filled), 0
 * {"down": ...} (why filled), -1 anything else. */
struct nt_frame;
struct nt_buf;
struct cJSON;
typedef struct cli_agent_frames {
    uint8_t *buf;
    size_t len, cap, used; /* used: the last frame's bytes, dropped next */
} cli_agent_frames;
int cli_agent_frame_next(int fd, cli_agent_frames *in, struct nt_frame *f,
                         char *err, size_t errlen);
int cli_agent_put_json(struct nt_buf *b, uint8_t type, uint32_t id,
                       const struct cJSON *o);
int cli_agent_parse_open(const struct nt_frame *f, char *addr, size_t cap,
                         int *role, char *err, size_t errlen);
int cli_agent_check_request(const struct nt_frame *f, uint32_t *id,
                            char *err, size_t errlen);
int cli_agent_parse_reply(const struct nt_frame *f, char *peer, size_t pcap,
                          char *why, size_t wcap);

/* Reads a flow file for its topology (nodes, groups, stages, addresses)
 * without opening the stage files (the operator commands need names and
 * addresses only; loading every module would cost milliseconds).  An
 * fl_status: FL_OK with *g, or the parser's positioned error in err
 * (FL_IO, err empty, when the file cannot be read: that was printed). */
struct fl_graph;
int cli_load_topology(const char *path, struct fl_graph **g, char *err,
                      size_t errlen);

/* Prints "isoflow: <message>\n" to stderr. */
void cli_errf(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Largest file cli_read_file accepts. */
#define CLI_MAX_FILE_BYTES ((size_t)256 * 1024 * 1024)

/* Reads the whole file `path` (at most `max` bytes) into a malloc'ed buffer
 * the caller frees.  On failure prints "isoflow: cannot read PATH: <why>"
 * and returns -1; on success returns 0 and sets *data / *len (*data is
 * never NULL, even for an empty file). */
int cli_read_file(const char *path, size_t max, uint8_t **data, size_t *len);

/* `isoflow run --watch DIR` (watch.c).  The stage list (names borrowed
 * from the graph) comes from fl_runtime_stats; poll every few hundred ms. */
struct fl_runtime;
struct fl_stage_stats;
typedef struct cli_watch cli_watch;
cli_watch *cli_watch_new(const char *dir, struct fl_runtime *rt,
                         const struct fl_stage_stats *st, uint32_t n);
void cli_watch_poll(cli_watch *w);
void cli_watch_free(cli_watch *w);

/* Clean stops of the long-running commands (run, node, demo, agent):
 * cli_catch_stop makes Ctrl-C and SIGTERM (and SIGHUP when hup) set
 * cli_stop_requested, which the command's main loop polls (cleared here);
 * ignore_pipe: SIGPIPE ignored (a peer's closed socket is an error value,
 * not the end of the process). */
extern volatile sig_atomic_t cli_stop_requested;
void cli_catch_stop(int hup, int ignore_pipe);

/* A monotonic clock in nanoseconds (0 when no clock is available). */
uint64_t cli_now_ns(void);

/* 1 when the strings are equal. */
int cli_streq(const char *a, const char *b);

/* Parses an unsigned decimal in [lo, hi]; 0, or -1 when malformed or out
 * of range. */
int cli_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
/* Parses a finite number > 0; 0 or -1. */
int cli_parse_pos_double(const char *s, double *out);

/* The options `isoflow run` and `isoflow node` share: --duration S,
 * --workers N, --time-scale X, --dead-letter F, --watch DIR, --stats-json
 * F.  Takes option `a` with value `v` into *o / *duration / *watch_dir /
 * *stats_json: 1 when it was one of them, 0 when not, -1 on a bad value
 * (the message printed). */
struct fl_run_opts;
int cli_run_option(const char *a, const char *v, struct fl_run_opts *o,
                   double *duration, const char **watch_dir,
                   const char **stats_json);

#endif /* ISOFLOW_CLI_H */
