/*
 * mcd-drip: the drip case of the ngx_mcd benchmark.
 *
 * N connections each send one request head of S bytes -- a CONNECT head
 * (explicit) or a TLS ClientHello (transparent) -- ONE BYTE PER TCP
 * SEGMENT, for a name the gateway's profile denies, then check the answer
 * (403, or a fatal access_denied alert) and report the CPU time the
 * gateway's worker process spent meanwhile.  A front door that re-reads
 * and re-parses the whole prefix on every read event costs O(S^2) per
 * head, a linear one O(S): compare CPU per KB of head at two sizes.
 *
 * Pacing ("--pace worker", the default): one byte is sent on every
 * connection, then the tool waits until the worker has run and gone back
 * to sleep (its /proc/PID/schedstat run count moved and /proc/PID/stat
 * says "S") before the next byte; if the worker is not woken at all (a
 * front door that asks the kernel for more bytes with SO_RCVLOWAT) it
 * waits at most --idle-us.  So every byte arrives as a segment of its own
 * and finds the worker idle: a slow front door does not get bytes
 * coalesced for it, and a fast one is not slowed down by a fixed delay.
 * "--pace USEC" waits a fixed time instead; "--pace burst" sends each head
 * in one send() (the reference: no drip at all).
 *
 * See README.md.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>


#define MAX_CONNS        64
#define MAX_HEAD         (1024 * 1024)
#define ANSWER_MAX       4096
#define TLS_RECORD_MAX   16384
#define WAIT_IDLE_MAX_NS (5LL * 1000000000)     /* a worker busy this long
                                                   on one byte: give up */
#define CHECK_EVERY      512                    /* bytes between checks for
                                                   an early answer */

typedef enum {
    MODE_EXPLICIT = 0,
    MODE_TRANSPARENT
} mode_e;

typedef enum {
    PACE_WORKER = 0,
    PACE_FIXED,
    PACE_BURST
} pace_e;

typedef struct {
    int            fd;
    size_t         got;
    int            eof;
    int            failed;
    unsigned char  answer[ANSWER_MAX];
} conn_t;

typedef struct {
    uint64_t       ticks;          /* utime + stime, clock ticks */
    uint64_t       run_ns;         /* schedstat: time on a CPU */
    uint64_t       runs;           /* schedstat: times scheduled in */
    char           state;
} proc_sample_t;


static mode_e          mode = MODE_EXPLICIT;
static pace_e          pace = PACE_WORKER;
static long            pace_us;
static long            idle_us = 100;
static const char     *connect_to;
static const char     *name = "denied.test";
static unsigned        port = 443;
static size_t          size = 8192;
static size_t          field_size = 400;
static unsigned        parallel = 4;
static long            worker_pid;
static double          timeout_s = 120;
static int             json;
static const char     *dump;

static unsigned char  *head;
static size_t          head_fields;
static size_t          head_records;
static conn_t          conns[MAX_CONNS];
static int             stat_fd = -1;
static int             sched_fd = -1;


static void
die(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fprintf(stderr, "mcd-drip: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}


static int64_t
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static void
usage(FILE *f)
{
    fprintf(f,
"usage: mcd-drip --mode explicit|transparent --connect ADDR:PORT\n"
"                --size BYTES [--parallel N] [--worker-pid PID]\n"
"                [--pace worker|USEC|burst] [--idle-us USEC]\n"
"                [--name NAME] [--port PORT] [--field-size BYTES]\n"
"                [--timeout S] [--json] [--dump FILE]\n"
"  sends N heads of BYTES bytes each (CONNECT NAME:PORT with X-Pad\n"
"  fields of --field-size bytes, or a ClientHello with SNI NAME and a\n"
"  padding extension, split into records of at most 16 KiB) one byte per\n"
"  TCP segment; the gateway must deny NAME (403 / access_denied alert).\n"
"  --worker-pid: the gateway worker whose CPU is measured (and whose\n"
"  sleep paces \"--pace worker\", the default when it is given).\n"
"  --dump FILE: write one head to FILE and exit.\n");
}


/* the request heads */

static void
build_connect(void)
{
    char    line[64];
    size_t  len, rest, k, i, each, extra, n, pre;

    len = (size_t) snprintf((char *) head, MAX_HEAD,
                            "CONNECT %s:%u HTTP/1.1\r\n"
                            "Host: %s:%u\r\n"
                            "User-Agent: mcd-drip/1\r\n",
                            name, port, name, port);

    if (len + 2 > size) {
        die("--size %zu is smaller than the bare CONNECT head", size);
    }

    /* X-Pad-N fields of about field_size bytes each, then the empty line */

    rest = size - len - 2;
    k = (rest + field_size - 1) / field_size;

    if (k > 0) {
        each = rest / k;
        extra = rest % k;

        for (i = 0; i < k; i++) {
            n = each + (i < extra);
            pre = (size_t) snprintf(line, sizeof(line), "X-Pad-%zu: ", i + 1);

            if (n < pre + 3) {
                die("--size %zu: no room for padding field %zu", size, i + 1);
            }

            memcpy(head + len, line, pre);
            memset(head + len + pre, 'a', n - pre - 2);
            memcpy(head + len + n - 2, "\r\n", 2);
            len += n;
        }
    }

    memcpy(head + len, "\r\n", 2);
    len += 2;

    if (len != size) {
        die("internal: CONNECT head of %zu bytes, not %zu", len, size);
    }

    head_fields = k + 2;
    head_records = 0;
}


static unsigned char *
put16(unsigned char *p, size_t v)
{
    *p++ = (unsigned char) (v >> 8);
    *p++ = (unsigned char) v;
    return p;
}


static void
build_client_hello(void)
{
    size_t          nlen, nrec, hs_len, body_len, fixed, pad, off, r, rlen;
    unsigned char  *hs, *p, *ext;

    nlen = strlen(name);

    /* records: the handshake message is hs_len bytes, 5 bytes per header */

    for (nrec = 1; nrec < 64; nrec++) {
        if (size < 5 * nrec) {
            die("--size %zu is too small for a ClientHello", size);
        }

        hs_len = size - 5 * nrec;

        if ((hs_len + TLS_RECORD_MAX - 1) / TLS_RECORD_MAX == nrec) {
            break;
        }
    }

    if (nrec == 64) {
        die("--size %zu: no record layout fits", size);
    }

    body_len = hs_len - 4;

    /* the body without the padding extension's data */

    fixed = 2 + 32                          /* version, random */
            + 1 + 32                        /* session id */
            + 2 + 10                        /* cipher suites */
            + 2                             /* compression */
            + 2                             /* extensions length */
            + 4 + 2 + 1 + 2 + nlen          /* server_name */
            + 4 + 2 + 4                     /* supported_groups */
            + 4 + 2 + 6                     /* signature_algorithms */
            + 4 + 1 + 2                     /* supported_versions */
            + 4 + 1 + 1                     /* psk_key_exchange_modes */
            + 4 + 2 + 2 + 2 + 32            /* key_share: x25519 */
            + 4;                            /* padding header */

    if (nlen == 0 || nlen > 255) {
        die("--name must be 1..255 bytes");
    }

    if (body_len < fixed) {
        die("--size %zu is smaller than the bare ClientHello", size);
    }

    pad = body_len - fixed;

    if (body_len - 2 - 32 - 1 - 32 - 2 - 10 - 2 - 2 > 65535) {
        die("--size %zu: extensions longer than 65535 bytes", size);
    }

    hs = malloc(hs_len);
    if (hs == NULL) {
        die("out of memory");
    }

    p = hs;
    *p++ = 1;                                       /* client_hello */
    *p++ = (unsigned char) (body_len >> 16);
    p = put16(p, body_len & 0xffff);

    p = put16(p, 0x0303);
    for (r = 0; r < 32; r++) {
        *p++ = (unsigned char) (0x5a ^ r);          /* random */
    }
    *p++ = 32;
    for (r = 0; r < 32; r++) {
        *p++ = (unsigned char) (0xa5 ^ r);          /* session id */
    }
    p = put16(p, 10);
    p = put16(p, 0x1301);
    p = put16(p, 0x1302);
    p = put16(p, 0x1303);
    p = put16(p, 0xc02b);
    p = put16(p, 0xc02f);
    *p++ = 1;
    *p++ = 0;

    ext = p;
    p += 2;

    p = put16(p, 0);                                /* server_name */
    p = put16(p, 2 + 1 + 2 + nlen);
    p = put16(p, 1 + 2 + nlen);
    *p++ = 0;                                       /* host_name */
    p = put16(p, nlen);
    memcpy(p, name, nlen);
    p += nlen;

    p = put16(p, 10);                               /* supported_groups */
    p = put16(p, 6);
    p = put16(p, 4);
    p = put16(p, 0x001d);
    p = put16(p, 0x0017);

    p = put16(p, 13);                               /* signature_algs */
    p = put16(p, 8);
    p = put16(p, 6);
    p = put16(p, 0x0403);
    p = put16(p, 0x0804);
    p = put16(p, 0x0401);

    p = put16(p, 43);                               /* supported_versions */
    p = put16(p, 3);
    *p++ = 2;
    p = put16(p, 0x0304);

    p = put16(p, 45);                               /* psk_ke_modes */
    p = put16(p, 2);
    *p++ = 1;
    *p++ = 1;

    p = put16(p, 51);                               /* key_share */
    p = put16(p, 2 + 2 + 2 + 32);
    p = put16(p, 2 + 2 + 32);
    p = put16(p, 0x001d);
    p = put16(p, 32);
    for (r = 0; r < 32; r++) {
        *p++ = (unsigned char) (0x33 + r);
    }

    p = put16(p, 21);                               /* padding */
    p = put16(p, pad);
    memset(p, 0, pad);
    p += pad;

    put16(ext, (size_t) (p - ext - 2));

    if ((size_t) (p - hs) != hs_len) {
        die("internal: ClientHello of %zu bytes, not %zu",
            (size_t) (p - hs), hs_len);
    }

    /* into records of at most 16 KiB */

    p = head;

    for (off = 0; off < hs_len; off += rlen) {
        rlen = hs_len - off;
        if (rlen > TLS_RECORD_MAX) {
            rlen = TLS_RECORD_MAX;
        }

        *p++ = 22;
        p = put16(p, off == 0 ? 0x0301 : 0x0303);
        p = put16(p, rlen);
        memcpy(p, hs + off, rlen);
        p += rlen;
    }

    if ((size_t) (p - head) != size) {
        die("internal: records of %zu bytes, not %zu",
            (size_t) (p - head), size);
    }

    free(hs);

    head_fields = 0;
    head_records = nrec;
}


/* the worker, from /proc */

static void
proc_open(void)
{
    char  path[64];

    snprintf(path, sizeof(path), "/proc/%ld/stat", worker_pid);
    stat_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (stat_fd == -1) {
        die("%s: %s", path, strerror(errno));
    }

    snprintf(path, sizeof(path), "/proc/%ld/schedstat", worker_pid);
    sched_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (sched_fd == -1) {
        die("%s: %s", path, strerror(errno));
    }
}


static int
proc_read(int fd, char *buf, size_t len)
{
    ssize_t  n;

    n = pread(fd, buf, len - 1, 0);
    if (n <= 0) {
        return -1;
    }

    buf[n] = '\0';
    return 0;
}


static void
proc_sample(proc_sample_t *s, int cpu)
{
    int                 i;
    char                buf[1024], *p, *end;
    unsigned long long  wait;

    if (proc_read(stat_fd, buf, sizeof(buf)) != 0) {
        die("worker %ld: cannot read its stat (gone?)", worker_pid);
    }

    /* after "pid (comm) ": state is field 3, utime 14, stime 15 */

    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') {
        die("worker %ld: unexpected stat line", worker_pid);
    }

    p += 2;
    s->state = *p;

    if (cpu) {
        for (i = 3; i < 14; i++) {
            p = strchr(p, ' ');
            if (p == NULL) {
                die("worker %ld: short stat line", worker_pid);
            }
            p++;
        }

        s->ticks = strtoull(p, &end, 10);
        s->ticks += strtoull(end, NULL, 10);
    }

    if (proc_read(sched_fd, buf, sizeof(buf)) != 0) {
        die("worker %ld: cannot read its schedstat", worker_pid);
    }

    if (sscanf(buf, "%" SCNu64 " %llu %" SCNu64, &s->run_ns, &wait, &s->runs)
        != 3)
    {
        die("worker %ld: unexpected schedstat line", worker_pid);
    }
}


/*
 * wait until the worker has run since "before" and sleeps again, or, when
 * it was not woken at all, until it slept idle_us; 0, or -1 after
 * WAIT_IDLE_MAX_NS
 */

static int
wait_worker_idle(const proc_sample_t *before, long cap_us)
{
    int64_t          t0, t;
    proc_sample_t    now;
    struct timespec  ts = { 0, 0 };

    t0 = now_ns();

    for ( ;; ) {
        proc_sample(&now, 0);
        t = now_ns() - t0;

        if (now.state == 'S'
            && (now.runs != before->runs || t >= cap_us * 1000LL))
        {
            return 0;
        }

        if (t > WAIT_IDLE_MAX_NS) {
            return -1;
        }

        /*
         * poll often while a fast worker may be done any moment, less
         * often behind a slow one: a quarter of the time waited so far,
         * 5 us to 1 ms (the precision is that of the pace, not of the
         * CPU figure)
         */

        ts.tv_nsec = t / 4;
        if (ts.tv_nsec < 5000) {
            ts.tv_nsec = 5000;
        } else if (ts.tv_nsec > 1000000) {
            ts.tv_nsec = 1000000;
        }

        nanosleep(&ts, NULL);
    }
}


/* connections and answers */

static void
parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char                  host[128];
    const char           *colon;
    unsigned long         p;
    size_t                hl;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    colon = strrchr(s, ':');
    if (colon == NULL) {
        die("--connect %s: ADDR:PORT expected", s);
    }

    hl = (size_t) (colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }

    if (hl == 0 || hl >= sizeof(host)) {
        die("--connect: bad address");
    }

    memcpy(host, s, hl);
    host[hl] = '\0';

    p = strtoul(colon + 1, NULL, 10);
    if (p == 0 || p > 65535) {
        die("--connect: bad port");
    }

    memset(ss, 0, sizeof(*ss));

    sin = (struct sockaddr_in *) ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) p);
        *len = sizeof(*sin);
        return;
    }

    sin6 = (struct sockaddr_in6 *) ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) p);
        *len = sizeof(*sin6);
        return;
    }

    die("--connect %s: an IP literal is expected", s);
}


static void
open_conns(void)
{
    int                      one = 1;
    unsigned                 i;
    socklen_t                len;
    struct timeval           tv = { 5, 0 };
    struct sockaddr_storage  ss;

    parse_addr(connect_to, &ss, &len);

    for (i = 0; i < parallel; i++) {
        conns[i].fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (conns[i].fd == -1) {
            die("socket: %s", strerror(errno));
        }

        setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(conns[i].fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

        if (connect(conns[i].fd, (struct sockaddr *) &ss, len) == -1) {
            die("connect %s: %s", connect_to, strerror(errno));
        }
    }
}


/* read what is there without blocking; returns bytes read or 0 */

static size_t
read_answer(conn_t *c)
{
    ssize_t  n;
    size_t   total;

    total = 0;

    while (!c->eof) {
        if (c->got == ANSWER_MAX) {
            c->eof = 1;      /* more than any answer: checked as wrong */
            break;
        }

        n = recv(c->fd, c->answer + c->got, ANSWER_MAX - c->got,
                 MSG_DONTWAIT);

        if (n > 0) {
            c->got += (size_t) n;
            total += (size_t) n;
            continue;
        }

        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = 1;
        }

        break;
    }

    return total;
}


static const char *
check_answer(const conn_t *c)
{
    static const char  http[] = "HTTP/1.1 403 ";

    if (mode == MODE_EXPLICIT) {
        if (c->got < sizeof(http) - 1
            || memcmp(c->answer, http, sizeof(http) - 1) != 0)
        {
            return "not \"HTTP/1.1 403\"";
        }

        return NULL;
    }

    /* a fatal alert record: 21 3.x 0 2 2 49 */

    if (c->got != 7 || c->answer[0] != 21 || c->answer[1] != 3
        || c->answer[3] != 0 || c->answer[4] != 2
        || c->answer[5] != 2 || c->answer[6] != 49)
    {
        return "not a fatal access_denied alert (21 3 x 0 2 2 49)";
    }

    return NULL;
}


static void
show_answer(const conn_t *c, unsigned i, const char *why)
{
    size_t  k;

    fprintf(stderr, "mcd-drip: connection %u: wrong answer (%s), %zu bytes:",
            i, why, c->got);

    for (k = 0; k < c->got && k < 64; k++) {
        if (mode == MODE_EXPLICIT) {
            fputc(c->answer[k] >= 0x20 && c->answer[k] < 0x7f
                  ? c->answer[k] : '.', stderr);
        } else {
            fprintf(stderr, " %02x", c->answer[k]);
        }
    }

    fprintf(stderr, "\n");
}


static void
parse_args(int argc, char **argv)
{
    int          o;
    char        *end;
    static struct option  opts[] = {
        { "mode", required_argument, NULL, 'm' },
        { "connect", required_argument, NULL, 'c' },
        { "size", required_argument, NULL, 's' },
        { "parallel", required_argument, NULL, 'n' },
        { "worker-pid", required_argument, NULL, 'w' },
        { "pace", required_argument, NULL, 'p' },
        { "idle-us", required_argument, NULL, 'i' },
        { "name", required_argument, NULL, 'N' },
        { "port", required_argument, NULL, 'P' },
        { "field-size", required_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "dump", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    pace_us = -1;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm':
            if (strcmp(optarg, "explicit") == 0) {
                mode = MODE_EXPLICIT;
            } else if (strcmp(optarg, "transparent") == 0) {
                mode = MODE_TRANSPARENT;
            } else {
                die("--mode explicit|transparent");
            }
            break;
        case 'c':
            connect_to = optarg;
            break;
        case 's':
            size = strtoul(optarg, &end, 10);
            if (*end == 'k' || *end == 'K') {
                size *= 1024;
            }
            if (size == 0 || size > MAX_HEAD) {
                die("--size 1..%d", MAX_HEAD);
            }
            break;
        case 'n':
            parallel = (unsigned) strtoul(optarg, NULL, 10);
            if (parallel == 0 || parallel > MAX_CONNS) {
                die("--parallel 1..%d", MAX_CONNS);
            }
            break;
        case 'w':
            worker_pid = strtol(optarg, NULL, 10);
            break;
        case 'p':
            if (strcmp(optarg, "worker") == 0) {
                pace = PACE_WORKER;
            } else if (strcmp(optarg, "burst") == 0) {
                pace = PACE_BURST;
            } else {
                pace = PACE_FIXED;
                pace_us = strtol(optarg, &end, 10);
                if (*end != '\0' || pace_us < 0 || pace_us > 1000000) {
                    die("--pace worker|burst|USEC (0..1000000)");
                }
            }
            break;
        case 'i':
            idle_us = strtol(optarg, NULL, 10);
            break;
        case 'N':
            name = optarg;
            break;
        case 'P':
            port = (unsigned) strtoul(optarg, NULL, 10);
            break;
        case 'f':
            field_size = strtoul(optarg, NULL, 10);
            if (field_size < 16) {
                die("--field-size 16 or more");
            }
            break;
        case 't':
            timeout_s = strtod(optarg, NULL);
            break;
        case 'j':
            json = 1;
            break;
        case 'd':
            dump = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }

    if (connect_to == NULL && dump == NULL) {
        usage(stderr);
        exit(2);
    }

    if (pace == PACE_WORKER && worker_pid <= 0 && dump == NULL) {
        die("--pace worker needs --worker-pid");
    }
}


int
main(int argc, char **argv)
{
    int              bad, late;
    size_t           i, sent;
    unsigned         k, open;
    int64_t          t0, t1, deadline;
    const char      *why;
    proc_sample_t    a, b, mark;
    struct pollfd    pfd[MAX_CONNS];
    struct timespec  ts;

    parse_args(argc, argv);

    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

    head = malloc(MAX_HEAD);
    if (head == NULL) {
        die("out of memory");
    }

    if (mode == MODE_EXPLICIT) {
        build_connect();
    } else {
        build_client_hello();
    }

    if (dump != NULL) {
        FILE  *f;

        f = fopen(dump, "w");
        if (f == NULL || fwrite(head, 1, size, f) != size || fclose(f) != 0) {
            die("%s: %s", dump, strerror(errno));
        }

        return 0;
    }

    if (worker_pid > 0) {
        proc_open();
    }

    open_conns();

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    if (worker_pid > 0) {
        /* the accepts are done and the worker sleeps: start from there */

        mark.runs = (uint64_t) -1;
        (void) wait_worker_idle(&mark, 1000);
        proc_sample(&a, 1);
    }

    t0 = now_ns();
    deadline = t0 + (int64_t) (timeout_s * 1e9);
    bad = 0;
    late = 0;

    /* the drip: byte i on every connection, then the pace */

    for (i = 0; i < size; i = sent) {

        if (pace == PACE_BURST) {
            sent = size;
        } else {
            sent = i + 1;
        }

        if (pace == PACE_WORKER) {
            proc_sample(&mark, 0);
        }

        for (k = 0; k < parallel; k++) {
            if (conns[k].eof) {
                continue;
            }

            if (send(conns[k].fd, head + i, sent - i, MSG_NOSIGNAL)
                != (ssize_t) (sent - i))
            {
                fprintf(stderr, "mcd-drip: connection %u: send of byte %zu: "
                        "%s\n", k, i, strerror(errno));
                read_answer(&conns[k]);
                conns[k].eof = 1;
                conns[k].failed = 1;
            }
        }

        if (pace == PACE_WORKER) {
            if (wait_worker_idle(&mark, idle_us) != 0) {
                fprintf(stderr, "mcd-drip: the worker did not go idle within "
                        "5 s of byte %zu\n", i);
                late++;
            }

        } else if (pace == PACE_FIXED && pace_us > 0) {
            ts.tv_sec = pace_us / 1000000;
            ts.tv_nsec = (pace_us % 1000000) * 1000;
            nanosleep(&ts, NULL);
        }

        if (sent < size && sent % CHECK_EVERY == 0) {

            /* an answer before the head is complete is a wrong answer */

            for (k = 0; k < parallel; k++) {
                if (!conns[k].eof && read_answer(&conns[k]) > 0) {
                    show_answer(&conns[k], k, "answered after only "
                                "part of the head");
                    conns[k].eof = 1;
                    conns[k].failed = 1;
                }
            }

            if (now_ns() > deadline) {
                die("timed out after %.0f s at byte %zu of %zu",
                    timeout_s, sent, size);
            }
        }
    }

    /* the answers: the gateway answers and closes, within 10 s */

    deadline = now_ns() + 10000000000LL;

    for ( ;; ) {
        open = 0;

        for (k = 0; k < parallel; k++) {
            if (!conns[k].eof) {
                pfd[open].fd = conns[k].fd;
                pfd[open].events = POLLIN;
                open++;
            }
        }

        if (open == 0) {
            break;
        }

        if (now_ns() > deadline || poll(pfd, open, 100) == -1)
        {
            break;
        }

        for (k = 0; k < parallel; k++) {
            (void) read_answer(&conns[k]);
        }
    }

    t1 = now_ns();

    if (worker_pid > 0) {
        mark.runs = (uint64_t) -1;
        (void) wait_worker_idle(&mark, 1000);
        proc_sample(&b, 1);
    }

    for (k = 0; k < parallel; k++) {
        if (conns[k].failed) {
            bad++;

        } else if (!conns[k].eof) {
            fprintf(stderr, "mcd-drip: connection %u: no answer and no "
                    "close\n", k);
            bad++;

        } else if ((why = check_answer(&conns[k])) != NULL) {
            show_answer(&conns[k], k, why);
            bad++;
        }

        close(conns[k].fd);
    }

    {
        double  kb, cpu_ms, sched_ms;
        long    tick;

        tick = sysconf(_SC_CLK_TCK);
        kb = (double) size * parallel / 1024;
        cpu_ms = (double) (b.ticks - a.ticks) * 1000 / (tick > 0 ? tick : 100);
        sched_ms = (double) (b.run_ns - a.run_ns) / 1e6;

        if (json) {
            printf("{\"mode\":\"%s\",\"size\":%zu,\"parallel\":%u,"
                   "\"pace\":\"%s\",\"fields\":%zu,\"records\":%zu,"
                   "\"head_kb_total\":%.3f,\"wall_s\":%.3f,"
                   "\"cpu_ms\":%.1f,\"sched_cpu_ms\":%.3f,"
                   "\"cpu_ms_per_kb\":%.4f,\"sched_cpu_ms_per_kb\":%.4f,"
                   "\"worker_runs\":%" PRIu64 ",\"answers_ok\":%u,"
                   "\"errors\":%d,\"late\":%d}\n",
                   mode == MODE_EXPLICIT ? "explicit" : "transparent",
                   size, parallel,
                   pace == PACE_WORKER ? "worker"
                   : pace == PACE_BURST ? "burst" : "fixed",
                   head_fields, head_records, kb, (double) (t1 - t0) / 1e9,
                   cpu_ms, sched_ms, cpu_ms / kb, sched_ms / kb,
                   b.runs - a.runs, parallel - (unsigned) bad, bad, late);

        } else {
            printf("%s, %u x %zu bytes (%zu %s), pace %s: %.2f s, "
                   "worker CPU %.0f ms (sched %.1f ms), %.3f ms/KB, "
                   "%" PRIu64 " worker runs, %u/%u answers right\n",
                   mode == MODE_EXPLICIT ? "explicit" : "transparent",
                   parallel, size,
                   mode == MODE_EXPLICIT ? head_fields : head_records,
                   mode == MODE_EXPLICIT ? "fields" : "records",
                   pace == PACE_WORKER ? "worker"
                   : pace == PACE_BURST ? "burst" : "fixed",
                   (double) (t1 - t0) / 1e9, cpu_ms, sched_ms, cpu_ms / kb,
                   b.runs - a.runs, parallel - (unsigned) bad, parallel);
        }
    }

    return bad ? 1 : 0;
}
