/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the files of ringdev-bench share: the run's settings, the
 * processes it starts (daemons, brokers, the bare libfuse server, workers),
 * the rows of its report and the sections that fill them.
 *
 * Every figure is a median over rounds in which the reference (A) and
 * ringdev (B) alternate; nothing here asserts a time. Any failing system
 * call ends the run through die(): one line naming what failed, every
 * process the run started stopped, every mount it made removed, exit 1.
 */
#ifndef RINGDEV_BENCH_H
#define RINGDEV_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ringdev/ringdev.h>

#define BENCH_MAX_ROUNDS 64
#define BENCH_MAX_DAEMON_ARGS 32
#define BENCH_PATH_MAX 512
#define BENCH_SECTIONS 6

/* ---- settings (main.c) ---- */

/* The sizes of one run: full or --smoke. */
struct bench_sizes {
	uint64_t stream_bytes_small;  /* bytes per stream run of 4 KiB calls */
	uint64_t stream_bytes_large;  /* bytes per stream run of 64 KiB and 128 KiB calls */
	uint64_t pings;               /* round trips per ping-pong run */
	uint64_t small_writes;        /* 64 B writes per writes run */
	uint64_t ioctls;              /* ioctls per latency run and per thread-table cell */
	uint64_t crowd_pipes;         /* section 5: pipes in the crowded daemon */
	uint64_t crowd_handles;       /* section 5: handles held open there */
	uint64_t pair_bytes;          /* section 5: bytes per writer/reader pair */
	uint64_t restart_pipes;       /* section 6: pipes in the loaded daemon */
	uint64_t restart_handles;     /* section 6: handles held open there */
	uint64_t restart_full_pipes;  /* section 6: pipes whose ring is filled */
	uint64_t restart_ring;        /* section 6: the capacity of each of those */
};

struct bench_config {
	const char *ringdevd;
	const char *echo_broker;
	char bench_broker[BENCH_PATH_MAX];
	const char *daemon_args[BENCH_MAX_DAEMON_ARGS];
	int ndaemon_args;
	const char *json_path;
	int rounds;
	bool smoke;
	unsigned sections;            /* bit s-1 set: run section s */
	struct bench_sizes sizes;
};

extern struct bench_config cfg;

/* ---- failing and timing (util.c) ---- */

/* What the run is doing now, named in every failure line. */
extern const char *bench_phase;

/* "ringdev-bench: PHASE: WHAT: strerror(errno)", then stop everything the
 * run started (in the main process) and exit 1; a worker process just
 * exits 1 after its line. */
__attribute__((noreturn)) void die(const char *what);
/* The same with a message of its own instead of errno. */
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);

/* True in the process that started the run (not in a forked worker). */
bool bench_is_main(void);
double now(void);
void write_all(int fd, const void *buf, size_t n);
void read_all(int fd, void *buf, size_t n);
double median(const double *v, int n);
/* A shared anonymous mapping (zeroed) that forked children write into. */
void *shared_alloc(size_t size);

/* ---- /proc (proc.c) ---- */

/* utime + stime of process `pid` (all its threads), in seconds. */
double proc_cpu_seconds(pid_t pid);
/* Pss (smaps_rollup) and VmRSS (status) of `pid`, in bytes. */
uint64_t proc_pss_bytes(pid_t pid);
uint64_t proc_rss_bytes(pid_t pid);

/* ---- processes and mounts (children.c) ---- */

/* The run's temporary directory; made on first use, removed at the end. */
const char *bench_tmpdir(void);
/* A fresh empty directory TMPDIR/TAG for a mount. */
void bench_mkdir(const char *tag, char *path, size_t size);

enum child_kind {
	CHILD_DAEMON,                 /* ringdevd: SIGTERM, then unmount */
	CHILD_SERVER,                 /* the bare libfuse server: the same */
	CHILD_BROKER,                 /* a broker: SIGTERM */
};

/* Fork a child that dies with the run (PR_SET_PDEATHSIG `deathsig`). In
 * the child it returns 0; in the run, the child's pid, registered with
 * its mount (or NULL) so that every exit path stops it and unmounts. */
pid_t spawn(enum child_kind kind, const char *mount, int deathsig);
/* "exit status N", "killed by signal N". */
const char *status_text(int status, char *buf, size_t size);
/* Exec `argv` in a spawned child (never returns). */
__attribute__((noreturn)) void exec_or_die(char *const argv[]);
/* Stop a registered child: SIGTERM, wait (SIGKILL after a few seconds),
 * unmount its mount and remove the directory. Returns its wait status. */
int stop_child(pid_t pid);
/* True if the registered child has exited (it is then reaped and its
 * mount removed); *status gets its wait status. */
bool child_exited(pid_t pid, int *status);
/* Stop every registered child and remove every mount and directory. */
void stop_all_children(void);
/* SIGINT/SIGTERM/SIGHUP end the run through the same cleanup. */
void install_exit_handlers(void);

/* ---- ringdevd and brokers (daemon.c) ---- */

struct daemon {
	pid_t pid;
	int root;                     /* open(MOUNT, O_DIRECTORY): VERSION, STATS, CREATE */
	char mount[BENCH_PATH_MAX];
};

/* Start ringdevd on a new FUSE mount TMPDIR/TAG with the run's options
 * (--max-pipes, --max-memory, every --daemon-arg) and wait until it answers. */
void daemon_start(struct daemon *d, const char *tag);
/* The same with `extra` (NULL-terminated, at most 16) after the run's own
 * options and before the --daemon-args, which still win. */
void daemon_start_with(struct daemon *d, const char *tag, const char *const *extra);
void daemon_stop(struct daemon *d);
/* open(MOUNT/NAME, flags | O_CREAT, 0600). */
int daemon_open(const struct daemon *d, const char *name, int flags);
/* SET_CONFIG capacity on a pipe handle. */
void pipe_set_capacity(int fd, uint64_t capacity);
/* The capacity of the handle's pipe (PIPE_INFO). */
uint64_t pipe_capacity(int fd);
void daemon_stats(const struct daemon *d, struct ringdev_stats *st);
/* reads + writes the daemon completed so far. */
uint64_t daemon_rw_ops(const struct daemon *d);

/* Start a broker: exec argv[0] with argv[1..] and MOUNT/.ctl last; wait
 * until the daemon reports it connected. */
pid_t broker_start(const struct daemon *d, const char *const *argv);
/* Stop it and wait until the daemon has seen it go. */
void broker_stop(const struct daemon *d, pid_t pid);

/* ---- worker processes (workers.c) ---- */

struct worker;
typedef void worker_fn(const struct worker *w);

/* One process of a measured run. Which fds it uses and how is up to `run`. */
struct worker {
	worker_fn *run;
	int in;                       /* fd it reads, or -1 */
	int out;                      /* fd it writes, or -1 */
	size_t chunk;                 /* bytes per call */
	uint64_t count;               /* calls (or round trips) */
};

#define MAX_WORKERS 16

/* Fork one process per worker, release them together and wait for all.
 * Seconds from the first start to the last end, as the workers timed
 * themselves (fork and exit are not counted). A worker that fails ends
 * the run. */
double run_workers(const struct worker *w, int n);
/* Kill and reap the workers of a run going on (on the way out). */
void workers_kill(void);

/* The bodies: */
void stream_writer(const struct worker *w);  /* count writes of chunk to out */
void stream_reader(const struct worker *w);  /* reads of chunk from in until count*chunk bytes */
void drain_reader(const struct worker *w);   /* reads of 64 KiB until count*chunk bytes; 0 is "none yet" */
void ping_worker(const struct worker *w);    /* count times: write chunk to out, read chunk from in */
void pong_worker(const struct worker *w);    /* count times: read chunk from in, write it to out */

/* ---- the report (report.c) ---- */

struct row {
	int section;
	char key[64];                 /* stable id in the JSON, e.g. "stream.4k.ring64k" */
	char what[96];
	const char *unit;
	char reference[48];           /* what ringdev is measured against ("" for none) */
	const char *ratio_is;         /* what the ratio divides */
	double ref;                   /* median, or NAN */
	double val;                   /* median */
	double ratio;                 /* median of per-round val/ref; NAN when there is none */
	double ref_samples[BENCH_MAX_ROUNDS];
	double val_samples[BENCH_MAX_ROUNDS];
	int nref, nval;
};

/* A new row, appended to the report (fields zeroed, ref and ratio NAN). */
struct row *row_add(int section, const char *key, const char *what, const char *unit);
void row_reference(struct row *r, const char *reference, const char *ratio_is);
/* Samples, one per round; row_finish then takes the medians and, with a
 * reference, the ratio: the median over rounds of val/ref (ringdev over
 * its reference of the same round, for rates and times alike). */
void row_ref_sample(struct row *r, double v);
void row_val_sample(struct row *r, double v);
void row_finish(struct row *r);
/* A row of one figure with no reference and no rounds. */
void row_set(struct row *r, double val);
/* Print one finished row as progress (stderr). */
void row_progress(const struct row *r);
void report_print(void);
void report_json(const char *path);

/* ---- sections ---- */

void section_stream(struct daemon *d);        /* 1 */
void section_pingpong(struct daemon *d);      /* 2 */
void section_writes(struct daemon *d);        /* 3 */
void section_ioctl(struct daemon *d);         /* 4 */
void section_scale(struct daemon *d);         /* 5 */
void section_restart(struct daemon *d);       /* 6 */

/* Shared by section 5 (stream.c, pingpong.c, writes.c). */
void kernel_pipe_1m(int p[2]);  /* pipe2 with a 1 MiB buffer (F_SETPIPE_SZ) */
double stream_kernel_once(size_t chunk, uint64_t calls);
double stream_ringdev_once(struct daemon *d, const char *name, size_t chunk, uint64_t calls, uint64_t capacity);
double pingpong_socketpair_once(uint64_t pings);
double pingpong_ringdev_once(struct daemon *d, uint64_t pings);
double writes_ringdev_once(struct daemon *d, uint64_t writes);

/* The bare libfuse server (barefuse.c): a single-threaded low-level
 * libfuse3 file system with one direct-I/O file that answers every write
 * at once with its full size and every read at once. */
struct bare_server {
	pid_t pid;
	char mount[BENCH_PATH_MAX];
	char file[BENCH_PATH_MAX + 8];
	volatile uint64_t *requests;  /* reads and writes answered (shared with the server) */
};
void bare_start(struct bare_server *s);
void bare_stop(struct bare_server *s);
double writes_bare_once(struct bare_server *s, uint64_t writes);

#endif /* RINGDEV_BENCH_H */
