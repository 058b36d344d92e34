/*
 * mcd-load: a single-threaded, non-blocking (epoll) HTTPS load generator
 * for the ngx_mcd benchmarks.
 *
 * Modes:
 *   direct       TCP to the origin, TLS, HTTP/1.1 GET(s);
 *   explicit     TCP to an HTTP proxy, CONNECT name:port, TLS through the
 *                tunnel, GET(s);
 *   transparent  TCP to an SNI gateway, TLS with the target's SNI, GET(s).
 *
 * With --names, every connection uses a name of its own (SNI, Host,
 * CONNECT authority, the name verified), made from a pattern and a
 * counter: a gateway that mints certificates sees first-sight names.
 *
 * Every connection does a full TLS handshake: no session cache, no tickets.
 * See README.md for the options, the report and the known limits.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>


#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT  24
#endif

#define MCD_VERSION          "1"

#ifndef SSL_OP_IGNORE_UNEXPECTED_EOF
#define SSL_OP_IGNORE_UNEXPECTED_EOF  0     /* OpenSSL 1.1.1 */
#endif

#define MAX_SOURCES          64
#define LINE_KEEP            192        /* bytes of a header line kept */
#define MAX_HEADER_BYTES     65536      /* per response or proxy answer */
#define READ_BUF_SIZE        65536
#define READ_BUDGET          (256 * 1024)   /* per connection and turn */
#define MAX_EVENTS           256
#define ERRORS_SHOWN         3          /* details printed per error kind */
#define LOOP_WAIT_MAX_MS     100
#define NAME_MAX_LEN         253        /* a host name, without a dot */
#define NAME_TOKEN           "{n}"      /* the counter in --names */

#define RC_NEXT              0          /* state advanced: run again */
#define RC_AGAIN             1          /* wait for an event */
#define RC_CLOSED            2          /* connection was closed */


typedef enum {
    ERR_CONNECT = 0,
    ERR_CONNECT_STATUS,
    ERR_TLS,
    ERR_VERIFY,
    ERR_HTTP,
    ERR_BODY,
    ERR_TIMEOUT,
    ERR_RESET,
    ERR_KINDS
} err_kind_e;

static const char  *err_names[ERR_KINDS] = {
    "connect", "connect_status", "tls", "verify", "http", "body",
    "timeout", "reset"
};

typedef enum {
    MODE_DIRECT = 0,
    MODE_EXPLICIT,
    MODE_TRANSPARENT
} mode_e;

static const char  *mode_names[] = { "direct", "explicit", "transparent" };

typedef enum {
    ST_FREE = 0,
    ST_CONNECTING,
    ST_PROXY_SEND,
    ST_PROXY_RECV,
    ST_HANDSHAKE,
    ST_SEND,
    ST_RECV,
    ST_IDLE                              /* --hold: established, idle */
} state_e;

/* response parser states */
typedef enum {
    HP_STATUS = 0,
    HP_HEADER,
    HP_BODY_LEN,
    HP_CHUNK_SIZE,
    HP_CHUNK_DATA,
    HP_CHUNK_END,
    HP_TRAILER,
    HP_BODY_EOF,
    HP_DONE
} hp_state_e;


/* log-linear histogram of nanoseconds: 64 exact buckets, then 32 per 2^k */

#define HIST_SUB_BITS        6
#define HIST_SUB             (1 << HIST_SUB_BITS)
#define HIST_HALF            (HIST_SUB / 2)
#define HIST_BUCKETS         (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_HALF)

typedef struct {
    uint64_t            count;
    uint64_t            max;
    uint64_t            b[HIST_BUCKETS];
} hist_t;


typedef struct {
    uint64_t            conns_ok;
    uint64_t            reqs_ok;
    uint64_t            body_bytes;
    uint64_t            bytes_up;
    uint64_t            bytes_down;
    uint64_t            errors[ERR_KINDS];
    hist_t              req;
    hist_t              conn;
    hist_t              setup;
} stats_t;


typedef struct conn_s  conn_t;

struct conn_s {
    int                 fd;
    state_e             state;
    SSL                *ssl;

    conn_t             *prev;           /* inactivity list, oldest first */
    conn_t             *next;
    conn_t             *rprev;          /* ready list: input left to read */
    conn_t             *rnext;

    int64_t             t_connect;
    int64_t             t_request;
    int64_t             t_active;

    unsigned            counted:1;      /* started after the warm-up */
    unsigned            in_list:1;
    unsigned            in_ready:1;
    unsigned            keepalive:1;
    unsigned            chunked:1;
    unsigned            have_len:1;
    unsigned            line_trunc:1;

    unsigned            requests_done;
    size_t              sent;
    uint64_t            raw_up;
    uint64_t            raw_down;

    hp_state_e          hp_state;
    int                 status;
    uint64_t            content_length;
    uint64_t            remaining;
    uint64_t            body_off;
    size_t              header_bytes;
    err_kind_e          err;
    const char         *err_msg;

    const char         *req;            /* the GET request it sends */
    size_t              req_len;
    const char         *proxy_req;      /* the CONNECT request */
    size_t              proxy_req_len;

    size_t              line_len;
    char                line[LINE_KEEP];

    /* not cleared by conn_start(): set up once, or per connection */

    char               *nbuf;           /* --names: its requests */
    char                name[NAME_MAX_LEN + 1];
};


typedef struct {
    mode_e              mode;
    char               *connect_str;
    char               *target_str;
    char                target_name[256];
    unsigned            target_port;
    int                 target_is_ip;
    char               *cafile;
    char               *path;
    char               *expect_file;
    unsigned            concurrency;
    uint64_t            connections;
    double              duration;
    unsigned            requests;
    double              timeout;
    int                 tls13;
    char               *groups;
    double              warmup;
    int                 json;
    int                 hold;
    int                 close_fin;
    int                 drain_request;
    int                 quiet;
    uint64_t            max_errors;
    char               *names;          /* pattern with NAME_TOKEN */
    uint64_t            names_first;
    uint64_t            names_count;    /* 0: never wrap */

    struct sockaddr_storage  connect_addr;
    socklen_t           connect_len;
    struct sockaddr_storage  src[MAX_SOURCES];
    socklen_t           src_len[MAX_SOURCES];
    unsigned            nsrc;
} conf_t;


typedef struct {
    int                 ep;
    SSL_CTX            *ctx;
    int64_t             now;

    char               *req;            /* the GET request */
    size_t              req_len;
    char               *proxy_req;      /* the CONNECT request */
    size_t              proxy_req_len;

    size_t              req_cap;        /* per connection, --names */
    size_t              proxy_req_cap;
    char               *nbufs;          /* --names: all the conn_t.nbuf */
    uint64_t            names_used;     /* connections that took a name */

    const unsigned char *expect;
    size_t              expect_len;

    conn_t             *conns;
    size_t              nconns;
    conn_t            **free_conns;
    size_t              nfree;
    conn_t             *list_head;
    conn_t             *list_tail;
    conn_t             *ready_head;
    conn_t             *ready_tail;

    uint64_t            inprogress;     /* not free and not idle-held */
    uint64_t            started;        /* counted connections started */
    uint64_t            opened;         /* --hold: connections started */
    uint64_t            held;
    uint64_t            held_at_end;
    uint64_t            aborted;
    unsigned            next_src;

    int                 warming;
    int                 stopping;
    int                 holding;
    int64_t             t_begin;
    int64_t             t_warm_end;
    int64_t             t_measure;
    int64_t             t_stop;
    int64_t             t_end;
    int64_t             t_hold_end;
    int64_t             t_holding;      /* when "HOLDING n" was printed */
    int64_t             timeout_ns;
    double              cpu_measure;    /* our CPU seconds at t_measure */
    double              cpu_end;

    unsigned            err_shown[ERR_KINDS];
    stats_t             st[2];          /* [0] warm-up, [1] measured */
} glob_t;


static conf_t                 conf;
static glob_t                 g;
static volatile sig_atomic_t  g_signals;
static unsigned char          rbuf[READ_BUF_SIZE];


static void usage(FILE *f);
static void die(const char *fmt, ...);
static int64_t now_ns(void);
static void hist_add(hist_t *h, uint64_t v);
static double hist_pct(const hist_t *h, double p);
static int parse_hostport(const char *s, char *host, size_t hlen,
    unsigned *port, int need_port);
static size_t make_request(char *buf, size_t cap, const char *name);
static size_t make_connect(char *buf, size_t cap, const char *name);
static void conn_name(conn_t *c);
static int resolve(const char *host, unsigned port,
    struct sockaddr_storage *ss, socklen_t *len);
static void parse_args(int argc, char **argv);
static void setup(void);
static void conn_start(void);
static void conn_run(conn_t *c, uint32_t events);
static void conn_close(conn_t *c, int kind, const char *fmt, ...);
static void conn_touch(conn_t *c);
static void conn_unlist(conn_t *c);
static int to_handshake(conn_t *c);
static int do_connecting(conn_t *c, uint32_t events);
static int do_proxy_send(conn_t *c);
static int do_proxy_recv(conn_t *c);
static int do_handshake(conn_t *c);
static int do_send(conn_t *c);
static int do_recv(conn_t *c);
static int do_idle(conn_t *c);
static int ssl_fail(conn_t *c, int ret, const char *op, int in_body);
static int line_feed(conn_t *c, const unsigned char *p, size_t n,
    size_t *used);
static int http_feed(conn_t *c, const unsigned char *p, size_t n,
    size_t *used);
static int http_line(conn_t *c);
static int http_body(conn_t *c, const unsigned char *p, size_t n);
static int http_body_end(conn_t *c);
static void response_done(conn_t *c);
static void report(void);


static void
usage(FILE *f)
{
    fprintf(f,
"usage: mcd-load --mode direct|explicit|transparent --target NAME:PORT\n"
"                [--connect ADDR:PORT] [options]\n"
"\n"
"  --mode M               direct (default), explicit (HTTP CONNECT proxy)\n"
"                         or transparent (SNI gateway)\n"
"  --connect ADDR:PORT    where the TCP connections go: the origin (direct;\n"
"                         default: the target) or the proxy/gateway\n"
"  --proxy ADDR:PORT      same as --connect\n"
"  --target NAME:PORT     SNI, Host, certificate name, CONNECT authority\n"
"  --names PATTERN        a name per connection instead of --target's (its\n"
"                         port stays): PATTERN with " NAME_TOKEN " replaced by a\n"
"                         counter, e.g. n" NAME_TOKEN ".example.test\n"
"  --names-first N        the counter's first value (default 0)\n"
"  --names-count K        K names, then the counter starts over\n"
"                         (default: never; every connection a new name)\n"
"  --cafile FILE          verify the certificate chain and the host name\n"
"                         (without it nothing is verified)\n"
"  --path /PATH           request path (default /)\n"
"  --expect-file FILE     every body must equal this file byte for byte\n"
"  --concurrency N        connections in flight (default 50)\n"
"  --connections N        connections to make, then stop\n"
"  --duration S           stop starting connections after S seconds\n"
"                         (default 10 if --connections is not given)\n"
"  --requests R           requests per connection, keep-alive (default 1)\n"
"  --timeout S            per-connection inactivity timeout (default 10)\n"
"  --tls13                TLS 1.3 only (default TLS 1.2 and 1.3)\n"
"  --groups LIST          key exchange groups, e.g. P-256 or X25519:P-256\n"
"  --warmup S             run S seconds first without counting\n"
"  --source-addrs A,B,..  bind to these local addresses in turn\n"
"                         (e.g. 127.0.0.1,127.0.0.2) to spread ports\n"
"  --close rst|fin        rst (default): SO_LINGER 0 after the last body;\n"
"                         fin: close_notify and an orderly close\n"
"  --max-errors N         stop starting connections after N errors\n"
"  --drain connection|request\n"
"                         at the end of --duration, connections in flight\n"
"                         make all their --requests (connection, default)\n"
"                         or stop after the current one (request)\n"
"  --hold                 open --connections N connections (default\n"
"                         --concurrency), one request each, keep them\n"
"                         idle, print \"HOLDING n\", wait for SIGTERM,\n"
"                         SIGINT or --duration, then exit\n"
"  --json                 print only the final JSON line\n"
"  --quiet                do not print error details on stderr\n"
"  --help                 this text\n"
"\n"
"Exit status: 0 if there was no error and at least one success,\n"
"1 otherwise, 2 for a usage or setup error.\n");
}


static void
die(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "mcd-load: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
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
hist_add(hist_t *h, uint64_t v)
{
    unsigned  msb, e, idx;

    if (v < HIST_SUB) {
        idx = (unsigned) v;

    } else {
        msb = 63 - (unsigned) __builtin_clzll(v);
        e = msb - HIST_SUB_BITS + 1;
        idx = HIST_SUB + (e - 1) * HIST_HALF
              + (unsigned) ((v >> e) - HIST_HALF);
    }

    h->b[idx]++;
    h->count++;

    if (v > h->max) {
        h->max = v;
    }
}


/* the p-quantile (0 < p <= 1), in nanoseconds: the bucket's middle */

static double
hist_pct(const hist_t *h, double p)
{
    unsigned  i, e;
    uint64_t  want, sum, lo, hi;
    double    mid;

    if (h->count == 0) {
        return 0;
    }

    want = (uint64_t) (p * (double) h->count + 0.999999);
    if (want < 1) {
        want = 1;
    }

    sum = 0;

    for (i = 0; i < HIST_BUCKETS; i++) {
        sum += h->b[i];
        if (sum >= want) {
            break;
        }
    }

    if (i < HIST_SUB) {
        lo = i;
        hi = i;

    } else {
        e = (i - HIST_SUB) / HIST_HALF + 1;
        lo = (uint64_t) ((i - HIST_SUB) % HIST_HALF + HIST_HALF) << e;
        hi = lo + ((uint64_t) 1 << e) - 1;
    }

    mid = ((double) lo + (double) hi) / 2;

    return mid > (double) h->max ? (double) h->max : mid;
}


static int
parse_hostport(const char *s, char *host, size_t hlen, unsigned *port,
    int need_port)
{
    const char  *colon, *end;
    char        *ep;
    size_t       n;
    unsigned long  v;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL) {
            return -1;
        }
        n = (size_t) (end - s - 1);
        if (n == 0 || n >= hlen) {
            return -1;
        }
        memcpy(host, s + 1, n);
        host[n] = '\0';
        colon = (end[1] == ':') ? end + 1 : NULL;
        if (end[1] != '\0' && colon == NULL) {
            return -1;
        }

    } else {
        colon = strrchr(s, ':');
        if (colon != NULL && strchr(s, ':') != colon) {
            /* a bare IPv6 address without a port */
            colon = NULL;
        }
        n = colon ? (size_t) (colon - s) : strlen(s);
        if (n == 0 || n >= hlen) {
            return -1;
        }
        memcpy(host, s, n);
        host[n] = '\0';
    }

    if (colon == NULL) {
        if (need_port) {
            return -1;
        }
        *port = 443;
        return 0;
    }

    errno = 0;
    v = strtoul(colon + 1, &ep, 10);
    if (errno || *ep != '\0' || ep == colon + 1 || v == 0 || v > 65535) {
        return -1;
    }

    *port = (unsigned) v;

    return 0;
}


static int
resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len)
{
    int               rc;
    char              pbuf[16];
    struct addrinfo   hints, *res;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    snprintf(pbuf, sizeof(pbuf), "%u", port);

    rc = getaddrinfo(host, pbuf, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "mcd-load: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }

    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);

    return 0;
}


static uint64_t
arg_u64(const char *name, const char *s, uint64_t min)
{
    char                *ep;
    unsigned long long   v;

    errno = 0;
    v = strtoull(s, &ep, 10);
    if (errno || *ep != '\0' || ep == s || s[0] == '-' || v < min) {
        die("--%s: invalid value \"%s\"", name, s);
    }

    return v;
}


static double
arg_secs(const char *name, const char *s)
{
    char    *ep;
    double   v;

    errno = 0;
    v = strtod(s, &ep);
    if (errno || *ep != '\0' || ep == s || !(v >= 0) || v > 1e7) {
        die("--%s: invalid number of seconds \"%s\"", name, s);
    }

    return v;
}


static void
parse_sources(const char *list)
{
    char                 *copy, *tok, *save;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    copy = strdup(list);
    if (copy == NULL) {
        die("out of memory");
    }

    for (tok = strtok_r(copy, ",", &save);
         tok != NULL;
         tok = strtok_r(NULL, ",", &save))
    {
        if (conf.nsrc == MAX_SOURCES) {
            die("--source-addrs: at most %d addresses", MAX_SOURCES);
        }

        memset(&conf.src[conf.nsrc], 0, sizeof(struct sockaddr_storage));
        sin = (struct sockaddr_in *) &conf.src[conf.nsrc];
        sin6 = (struct sockaddr_in6 *) &conf.src[conf.nsrc];

        if (inet_pton(AF_INET, tok, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            conf.src_len[conf.nsrc] = sizeof(struct sockaddr_in);

        } else if (inet_pton(AF_INET6, tok, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            conf.src_len[conf.nsrc] = sizeof(struct sockaddr_in6);

        } else {
            die("--source-addrs: invalid address \"%s\"", tok);
        }

        conf.nsrc++;
    }

    free(copy);

    if (conf.nsrc == 0) {
        die("--source-addrs: empty list");
    }
}


/*
 * --names PATTERN: NAME_TOKEN exactly once, the rest host name bytes;
 * the longest name it can make (a 20-digit counter) must be a valid one.
 */

static void
check_names(void)
{
    const char  *p, *tok;
    size_t       len;

    tok = strstr(conf.names, NAME_TOKEN);

    if (tok == NULL
        || strstr(tok + sizeof(NAME_TOKEN) - 1, NAME_TOKEN) != NULL)
    {
        die("--names: the pattern must hold " NAME_TOKEN " exactly once");
    }

    len = strlen(conf.names) - (sizeof(NAME_TOKEN) - 1) + 20;
    if (len > NAME_MAX_LEN) {
        die("--names: the names would be too long");
    }

    for (p = conf.names; *p; p++) {
        if (p == tok) {
            p += sizeof(NAME_TOKEN) - 2;
            continue;
        }

        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
              || *p == '_'))
        {
            die("--names: \"%c\" is not a host name byte", *p);
        }
    }

    if (conf.names_count
        && conf.names_first > UINT64_MAX - conf.names_count)
    {
        die("--names-first + --names-count: too large");
    }
}


enum {
    OPT_MODE = 256, OPT_CONNECT, OPT_TARGET, OPT_CAFILE, OPT_PATH,
    OPT_EXPECT, OPT_CONCURRENCY, OPT_CONNECTIONS, OPT_DURATION,
    OPT_REQUESTS, OPT_TIMEOUT, OPT_TLS13, OPT_GROUPS, OPT_WARMUP,
    OPT_JSON, OPT_HOLD, OPT_SOURCES, OPT_CLOSE, OPT_MAX_ERRORS, OPT_QUIET,
    OPT_DRAIN, OPT_NAMES, OPT_NAMES_FIRST, OPT_NAMES_COUNT, OPT_HELP
};


static void
parse_args(int argc, char **argv)
{
    int                   opt, i;
    char                  host[256];
    unsigned              port;
    unsigned char         ipbuf[sizeof(struct in6_addr)];
    static struct option  opts[] = {
        { "mode",         required_argument, NULL, OPT_MODE },
        { "connect",      required_argument, NULL, OPT_CONNECT },
        { "proxy",        required_argument, NULL, OPT_CONNECT },
        { "target",       required_argument, NULL, OPT_TARGET },
        { "cafile",       required_argument, NULL, OPT_CAFILE },
        { "path",         required_argument, NULL, OPT_PATH },
        { "expect-file",  required_argument, NULL, OPT_EXPECT },
        { "concurrency",  required_argument, NULL, OPT_CONCURRENCY },
        { "connections",  required_argument, NULL, OPT_CONNECTIONS },
        { "duration",     required_argument, NULL, OPT_DURATION },
        { "requests",     required_argument, NULL, OPT_REQUESTS },
        { "timeout",      required_argument, NULL, OPT_TIMEOUT },
        { "tls13",        no_argument,       NULL, OPT_TLS13 },
        { "groups",       required_argument, NULL, OPT_GROUPS },
        { "warmup",       required_argument, NULL, OPT_WARMUP },
        { "json",         no_argument,       NULL, OPT_JSON },
        { "hold",         no_argument,       NULL, OPT_HOLD },
        { "source-addrs", required_argument, NULL, OPT_SOURCES },
        { "close",        required_argument, NULL, OPT_CLOSE },
        { "max-errors",   required_argument, NULL, OPT_MAX_ERRORS },
        { "drain",        required_argument, NULL, OPT_DRAIN },
        { "quiet",        no_argument,       NULL, OPT_QUIET },
        { "names",        required_argument, NULL, OPT_NAMES },
        { "names-first",  required_argument, NULL, OPT_NAMES_FIRST },
        { "names-count",  required_argument, NULL, OPT_NAMES_COUNT },
        { "help",         no_argument,       NULL, OPT_HELP },
        { NULL, 0, NULL, 0 }
    };

    conf.mode = MODE_DIRECT;
    conf.path = "/";
    conf.concurrency = 50;
    conf.requests = 1;
    conf.timeout = 10;

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {

        switch (opt) {

        case OPT_MODE:
            for (i = 0; i < 3; i++) {
                if (strcmp(optarg, mode_names[i]) == 0) {
                    break;
                }
            }
            if (i == 3) {
                die("--mode: direct, explicit or transparent");
            }
            conf.mode = (mode_e) i;
            break;

        case OPT_CONNECT:
            conf.connect_str = optarg;
            break;

        case OPT_TARGET:
            conf.target_str = optarg;
            break;

        case OPT_CAFILE:
            conf.cafile = optarg;
            break;

        case OPT_PATH:
            if (optarg[0] != '/' || strpbrk(optarg, " \r\n") != NULL) {
                die("--path: must start with / and have no space");
            }
            conf.path = optarg;
            break;

        case OPT_EXPECT:
            conf.expect_file = optarg;
            break;

        case OPT_CONCURRENCY:
            conf.concurrency = (unsigned) arg_u64("concurrency", optarg, 1);
            if (conf.concurrency > 1000000) {
                die("--concurrency: too large");
            }
            break;

        case OPT_CONNECTIONS:
            conf.connections = arg_u64("connections", optarg, 1);
            break;

        case OPT_DURATION:
            conf.duration = arg_secs("duration", optarg);
            break;

        case OPT_REQUESTS:
            conf.requests = (unsigned) arg_u64("requests", optarg, 1);
            break;

        case OPT_TIMEOUT:
            conf.timeout = arg_secs("timeout", optarg);
            if (conf.timeout <= 0) {
                die("--timeout: must be more than 0");
            }
            break;

        case OPT_TLS13:
            conf.tls13 = 1;
            break;

        case OPT_GROUPS:
            conf.groups = optarg;
            break;

        case OPT_WARMUP:
            conf.warmup = arg_secs("warmup", optarg);
            break;

        case OPT_JSON:
            conf.json = 1;
            break;

        case OPT_HOLD:
            conf.hold = 1;
            break;

        case OPT_SOURCES:
            parse_sources(optarg);
            break;

        case OPT_CLOSE:
            if (strcmp(optarg, "rst") == 0) {
                conf.close_fin = 0;
            } else if (strcmp(optarg, "fin") == 0) {
                conf.close_fin = 1;
            } else {
                die("--close: rst or fin");
            }
            break;

        case OPT_DRAIN:
            if (strcmp(optarg, "connection") == 0) {
                conf.drain_request = 0;
            } else if (strcmp(optarg, "request") == 0) {
                conf.drain_request = 1;
            } else {
                die("--drain: connection or request");
            }
            break;

        case OPT_MAX_ERRORS:
            conf.max_errors = arg_u64("max-errors", optarg, 1);
            break;

        case OPT_QUIET:
            conf.quiet = 1;
            break;

        case OPT_NAMES:
            conf.names = optarg;
            break;

        case OPT_NAMES_FIRST:
            conf.names_first = arg_u64("names-first", optarg, 0);
            break;

        case OPT_NAMES_COUNT:
            conf.names_count = arg_u64("names-count", optarg, 1);
            break;

        case OPT_HELP:
        case 'h':
            usage(stdout);
            exit(0);

        default:
            usage(stderr);
            exit(2);
        }
    }

    if (optind != argc) {
        die("unexpected argument \"%s\" (see --help)", argv[optind]);
    }

    if (conf.target_str == NULL) {
        die("--target NAME:PORT is required (see --help)");
    }

    if (parse_hostport(conf.target_str, conf.target_name,
                       sizeof(conf.target_name), &conf.target_port, 0)
        != 0)
    {
        die("--target: invalid NAME:PORT \"%s\"", conf.target_str);
    }

    conf.target_is_ip =
        inet_pton(AF_INET, conf.target_name, ipbuf) == 1
        || inet_pton(AF_INET6, conf.target_name, ipbuf) == 1;

    if (conf.names != NULL) {
        check_names();
    }

    if (conf.connect_str == NULL) {
        if (conf.mode != MODE_DIRECT) {
            die("--connect (or --proxy) ADDR:PORT is required in %s mode",
                mode_names[conf.mode]);
        }
        conf.connect_str = conf.target_str;
    }

    if (parse_hostport(conf.connect_str, host, sizeof(host), &port, 1) != 0)
    {
        die("--connect: invalid ADDR:PORT \"%s\"", conf.connect_str);
    }

    if (resolve(host, port, &conf.connect_addr, &conf.connect_len) != 0) {
        exit(2);
    }

    for (i = 0; i < (int) conf.nsrc; i++) {
        if (conf.src[i].ss_family != conf.connect_addr.ss_family) {
            die("--source-addrs: address family differs from --connect");
        }
    }

    if (conf.hold) {
        if (conf.connections == 0) {
            conf.connections = conf.concurrency;
        }
        if (conf.warmup > 0) {
            die("--warmup makes no sense with --hold");
        }

    } else if (conf.connections == 0 && conf.duration == 0) {
        conf.duration = 10;
    }
}


/* the GET request for a name: Host without ":443" */

static size_t
make_request(char *buf, size_t cap, const char *name)
{
    int     n;
    char    host[NAME_MAX_LEN + 16];
    size_t  len;

    if (strchr(name, ':') != NULL) {
        snprintf(host, sizeof(host), "[%s]", name);
    } else {
        snprintf(host, sizeof(host), "%s", name);
    }

    len = strlen(host);
    if (conf.target_port != 443) {
        snprintf(host + len, sizeof(host) - len, ":%u", conf.target_port);
    }

    n = snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "User-Agent: mcd-load/" MCD_VERSION "\r\n"
                 "Accept: */*\r\n"
                 "\r\n",
                 conf.path, host);

    if (n < 0 || (size_t) n >= cap) {
        die("a request does not fit its buffer");
    }

    return (size_t) n;
}


/* the CONNECT request for a name: the authority always carries the port */

static size_t
make_connect(char *buf, size_t cap, const char *name)
{
    int   n;
    char  host[NAME_MAX_LEN + 16];

    if (strchr(name, ':') != NULL) {
        snprintf(host, sizeof(host), "[%s]:%u", name, conf.target_port);
    } else {
        snprintf(host, sizeof(host), "%s:%u", name, conf.target_port);
    }

    n = snprintf(buf, cap,
                 "CONNECT %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "\r\n",
                 host, host);

    if (n < 0 || (size_t) n >= cap) {
        die("a CONNECT request does not fit its buffer");
    }

    return (size_t) n;
}


static void
setup_requests(void)
{
    g.req_cap = strlen(conf.path) + NAME_MAX_LEN + 160;
    g.req = malloc(g.req_cap);
    if (g.req == NULL) {
        die("out of memory");
    }

    g.req_len = make_request(g.req, g.req_cap, conf.target_name);

    if (conf.mode != MODE_EXPLICIT) {
        return;
    }

    g.proxy_req_cap = 2 * (NAME_MAX_LEN + 16) + 64;
    g.proxy_req = malloc(g.proxy_req_cap);
    if (g.proxy_req == NULL) {
        die("out of memory");
    }

    g.proxy_req_len = make_connect(g.proxy_req, g.proxy_req_cap,
                                   conf.target_name);
}


/*
 * --names: the connection's name (the counter's next value) and its
 * requests; without --names, the shared ones of --target
 */

static void
conn_name(conn_t *c)
{
    int       n;
    uint64_t  v;
    size_t    pre;
    char     *req;

    if (conf.names == NULL) {
        c->req = g.req;
        c->req_len = g.req_len;
        c->proxy_req = g.proxy_req;
        c->proxy_req_len = g.proxy_req_len;
        return;
    }

    v = conf.names_count ? conf.names_first + g.names_used % conf.names_count
                         : conf.names_first + g.names_used;
    g.names_used++;

    pre = (size_t) (strstr(conf.names, NAME_TOKEN) - conf.names);

    n = snprintf(c->name, sizeof(c->name), "%.*s%" PRIu64 "%s",
                 (int) pre, conf.names, v,
                 conf.names + pre + sizeof(NAME_TOKEN) - 1);
    if (n < 0 || (size_t) n >= sizeof(c->name)) {
        die("--names: a name is too long");
    }

    req = c->nbuf;

    c->req = req;
    c->req_len = make_request(req, g.req_cap, c->name);

    if (conf.mode == MODE_EXPLICIT) {
        c->proxy_req = req + g.req_cap;
        c->proxy_req_len = make_connect(req + g.req_cap, g.proxy_req_cap,
                                        c->name);
    }
}


static void
setup_expect(void)
{
    int          fd;
    struct stat  sb;
    void        *p;

    if (conf.expect_file == NULL) {
        return;
    }

    fd = open(conf.expect_file, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        die("%s: %s", conf.expect_file, strerror(errno));
    }

    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        die("%s: not a regular file", conf.expect_file);
    }

    g.expect_len = (size_t) sb.st_size;

    if (g.expect_len > 0) {
        p = mmap(NULL, g.expect_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            die("mmap(%s): %s", conf.expect_file, strerror(errno));
        }
        g.expect = p;
    }

    close(fd);
}


static void
setup_ssl(void)
{
    X509_VERIFY_PARAM  *param;

    g.ctx = SSL_CTX_new(TLS_client_method());
    if (g.ctx == NULL) {
        die("SSL_CTX_new() failed");
    }

    SSL_CTX_set_min_proto_version(g.ctx,
                                  conf.tls13 ? TLS1_3_VERSION
                                             : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(g.ctx, TLS1_3_VERSION);

    /* a full handshake every time: no session cache, no tickets */

    SSL_CTX_set_session_cache_mode(g.ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g.ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION
                               | SSL_OP_IGNORE_UNEXPECTED_EOF);

    if (conf.hold) {
        /* idle connections give their read and write buffers back */
        SSL_CTX_set_mode(g.ctx, SSL_MODE_RELEASE_BUFFERS);
    }

    if (conf.groups != NULL
        && SSL_CTX_set1_groups_list(g.ctx, conf.groups) != 1)
    {
        die("--groups: invalid list \"%s\"", conf.groups);
    }

    if (conf.cafile == NULL) {
        SSL_CTX_set_verify(g.ctx, SSL_VERIFY_NONE, NULL);
        if (!conf.json && !conf.quiet) {
            fprintf(stderr, "mcd-load: no --cafile: the server certificate"
                    " is not verified\n");
        }
        return;
    }

    if (SSL_CTX_load_verify_locations(g.ctx, conf.cafile, NULL) != 1) {
        die("--cafile: cannot load \"%s\"", conf.cafile);
    }

    SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);

    param = SSL_CTX_get0_param(g.ctx);

    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);

    if (conf.names != NULL) {
        /* each connection sets its own name (SSL_set1_host) */
        return;
    }

    if (conf.target_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, conf.target_name) != 1) {
            die("X509_VERIFY_PARAM_set1_ip_asc() failed");
        }

    } else {
        if (X509_VERIFY_PARAM_set1_host(param, conf.target_name, 0) != 1) {
            die("X509_VERIFY_PARAM_set1_host() failed");
        }
    }
}


static void
on_signal(int signo)
{
    (void) signo;
    g_signals++;
}


static void
setup(void)
{
    size_t            i, n;
    struct rlimit     rl;
    struct sigaction  sa;

    setup_requests();
    setup_expect();
    setup_ssl();

    /* as many descriptors as allowed */

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    n = conf.hold ? (size_t) conf.connections : conf.concurrency;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && (uint64_t) n + 16 > (uint64_t) rl.rlim_cur)
    {
        die("%zu connections need more descriptors than RLIMIT_NOFILE"
            " (%llu)", n, (unsigned long long) rl.rlim_cur);
    }

    g.conns = calloc(n, sizeof(conn_t));
    g.free_conns = calloc(n, sizeof(conn_t *));
    if (g.conns == NULL || g.free_conns == NULL) {
        die("out of memory");
    }

    if (conf.names != NULL) {
        g.nbufs = malloc(n * (g.req_cap + g.proxy_req_cap));
        if (g.nbufs == NULL) {
            die("out of memory");
        }
    }

    g.nconns = n;
    for (i = 0; i < n; i++) {
        g.conns[i].fd = -1;
        g.free_conns[i] = &g.conns[n - 1 - i];
        if (g.nbufs != NULL) {
            g.conns[i].nbuf = g.nbufs + i * (g.req_cap + g.proxy_req_cap);
        }
    }
    g.nfree = n;

    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep == -1) {
        die("epoll_create1(): %s", strerror(errno));
    }

    /*
     * The handler only counts; the loop looks at the count every turn
     * (a turn waits LOOP_WAIT_MAX_MS at most, and a signal interrupts it).
     */

    signal(SIGPIPE, SIG_IGN);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;           /* epoll_wait() is never restarted */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    g.timeout_ns = (int64_t) (conf.timeout * 1e9);
}


static void
stats_error(conn_t *c, int kind)
{
    g.st[c->counted].errors[kind]++;
}


static uint64_t
errors_total(const stats_t *st)
{
    int       i;
    uint64_t  n;

    n = 0;
    for (i = 0; i < ERR_KINDS; i++) {
        n += st->errors[i];
    }

    return n;
}


static void
conn_start(void)
{
    int                  fd, one, rc;
    conn_t              *c;
    unsigned             i;
    const char          *err;
    struct epoll_event   ev;

    c = g.free_conns[--g.nfree];

    memset(c, 0, offsetof(conn_t, line));
    c->fd = -1;
    c->state = ST_CONNECTING;
    c->counted = !g.warming;
    c->t_connect = g.now;
    c->t_active = g.now;

    conn_name(c);

    g.inprogress++;
    if (c->counted) {
        g.started++;
    }
    if (conf.hold) {
        g.opened++;
    }

    conn_touch(c);

    fd = socket(conf.connect_addr.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        conn_close(c, ERR_CONNECT, "socket(): %s", strerror(errno));
        return;
    }

    c->fd = fd;
    one = 1;

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (conf.nsrc > 0) {
        i = g.next_src++ % conf.nsrc;

        /* choose the port at connect() time, per 4-tuple */
        (void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT,
                          &one, sizeof(one));
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

        if (bind(fd, (struct sockaddr *) &conf.src[i], conf.src_len[i])
            == -1)
        {
            conn_close(c, ERR_CONNECT, "bind(): %s", strerror(errno));
            return;
        }
    }

    /* latencies use a fresh clock: a handler can run for a while */
    g.now = now_ns();
    c->t_connect = g.now;

    rc = connect(fd, (struct sockaddr *) &conf.connect_addr,
                 conf.connect_len);

    if (rc == -1 && errno != EINPROGRESS && errno != EINTR) {
        err = (errno == EADDRNOTAVAIL)
              ? " (out of local ports? try --source-addrs)" : "";
        conn_close(c, ERR_CONNECT, "connect(%s): %s%s", conf.connect_str,
                   strerror(errno), err);
        return;
    }

    /* one registration for the connection's life: edge-triggered */

    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c;

    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        conn_close(c, ERR_CONNECT, "epoll_ctl(): %s", strerror(errno));
        return;
    }

    if (rc == 0) {
        conn_run(c, EPOLLOUT);
    }
}


/*
 * Edge-triggered epoll reports new input once: a connection that stops
 * reading before EAGAIN (its READ_BUDGET was used, to be fair to the
 * others) goes on the ready list and is run again on the next turn.
 */

static void
ready_add(conn_t *c)
{
    if (c->in_ready) {
        return;
    }

    c->rprev = g.ready_tail;
    c->rnext = NULL;

    if (g.ready_tail) {
        g.ready_tail->rnext = c;
    } else {
        g.ready_head = c;
    }

    g.ready_tail = c;
    c->in_ready = 1;
}


static void
ready_remove(conn_t *c)
{
    if (!c->in_ready) {
        return;
    }

    if (c->rprev) {
        c->rprev->rnext = c->rnext;
    } else {
        g.ready_head = c->rnext;
    }

    if (c->rnext) {
        c->rnext->rprev = c->rprev;
    } else {
        g.ready_tail = c->rprev;
    }

    c->rprev = NULL;
    c->rnext = NULL;
    c->in_ready = 0;
}


static void
ready_run(void)
{
    size_t   n;
    conn_t  *c;

    /* only those already there: a connection put back waits a turn */

    n = 0;
    for (c = g.ready_head; c != NULL; c = c->rnext) {
        n++;
    }

    while (n-- > 0 && g.ready_head != NULL) {
        c = g.ready_head;
        ready_remove(c);

        g.now = now_ns();
        conn_touch(c);
        conn_run(c, 0);
    }
}


/* the inactivity list is kept in order of last activity */

static void
conn_unlist(conn_t *c)
{
    if (!c->in_list) {
        return;
    }

    if (c->prev) {
        c->prev->next = c->next;
    } else {
        g.list_head = c->next;
    }

    if (c->next) {
        c->next->prev = c->prev;
    } else {
        g.list_tail = c->prev;
    }

    c->prev = NULL;
    c->next = NULL;
    c->in_list = 0;
}


static void
conn_touch(conn_t *c)
{
    c->t_active = g.now;

    if (c->in_list && g.list_tail == c) {
        return;
    }

    conn_unlist(c);

    c->prev = g.list_tail;
    c->next = NULL;

    if (g.list_tail) {
        g.list_tail->next = c;
    } else {
        g.list_head = c;
    }

    g.list_tail = c;
    c->in_list = 1;
}


static void
conn_bytes(conn_t *c)
{
    stats_t  *st;

    st = &g.st[c->counted];

    st->bytes_up += c->raw_up;
    st->bytes_down += c->raw_down;

    if (c->ssl != NULL) {
        st->bytes_up += BIO_number_written(SSL_get_wbio(c->ssl));
        st->bytes_down += BIO_number_read(SSL_get_rbio(c->ssl));
    }
}


/* kind < 0: no error (success, or shut down at exit) */

static void
conn_close(conn_t *c, int kind, const char *fmt, ...)
{
    va_list        ap;
    struct linger  lg;

    if (kind >= 0) {
        stats_error(c, kind);

        if (!conf.quiet && g.err_shown[kind] < ERRORS_SHOWN) {
            g.err_shown[kind]++;
            fprintf(stderr, "mcd-load: error %s: ", err_names[kind]);
            va_start(ap, fmt);
            vfprintf(stderr, fmt, ap);
            va_end(ap);
            fprintf(stderr, "%s\n", g.err_shown[kind] == ERRORS_SHOWN
                                    ? " (further ones not shown)" : "");
        }
    }

    if (c->fd != -1) {
        if (conf.close_fin) {
            if (c->ssl != NULL && kind < 0) {
                (void) SSL_shutdown(c->ssl);
            }

        } else {
            /* RST: no TIME_WAIT on either side, the port is free again */
            lg.l_onoff = 1;
            lg.l_linger = 0;
            (void) setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }

        close(c->fd);
        c->fd = -1;
    }

    conn_bytes(c);

    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }

    ERR_clear_error();

    conn_unlist(c);
    ready_remove(c);

    if (c->state == ST_IDLE) {
        g.held--;
    } else {
        g.inprogress--;
    }

    c->state = ST_FREE;
    g.free_conns[g.nfree++] = c;

    if (conf.max_errors && kind >= 0
        && errors_total(&g.st[1]) >= conf.max_errors)
    {
        g.stopping = 1;
    }
}


static void
conn_run(conn_t *c, uint32_t events)
{
    int  rc;

    for ( ;; ) {

        switch (c->state) {

        case ST_CONNECTING:
            rc = do_connecting(c, events);
            break;

        case ST_PROXY_SEND:
            rc = do_proxy_send(c);
            break;

        case ST_PROXY_RECV:
            rc = do_proxy_recv(c);
            break;

        case ST_HANDSHAKE:
            rc = do_handshake(c);
            break;

        case ST_SEND:
            rc = do_send(c);
            break;

        case ST_RECV:
            rc = do_recv(c);
            break;

        case ST_IDLE:
            rc = do_idle(c);
            break;

        default:
            return;
        }

        if (rc != RC_NEXT) {
            return;
        }
    }
}


static int
to_handshake(conn_t *c)
{
    c->ssl = SSL_new(g.ctx);
    if (c->ssl == NULL) {
        conn_close(c, ERR_TLS, "SSL_new() failed");
        return RC_CLOSED;
    }

    if (SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_close(c, ERR_TLS, "SSL_set_fd() failed");
        return RC_CLOSED;
    }

    if (conf.names != NULL) {
        if (SSL_set_tlsext_host_name(c->ssl, c->name) != 1) {
            conn_close(c, ERR_TLS, "SSL_set_tlsext_host_name() failed");
            return RC_CLOSED;
        }

        if (conf.cafile != NULL && SSL_set1_host(c->ssl, c->name) != 1) {
            conn_close(c, ERR_TLS, "SSL_set1_host() failed");
            return RC_CLOSED;
        }

    } else if (!conf.target_is_ip
               && SSL_set_tlsext_host_name(c->ssl, conf.target_name) != 1)
    {
        conn_close(c, ERR_TLS, "SSL_set_tlsext_host_name() failed");
        return RC_CLOSED;
    }

    SSL_set_connect_state(c->ssl);
    c->state = ST_HANDSHAKE;

    return RC_NEXT;
}


static int
do_connecting(conn_t *c, uint32_t events)
{
    int        err;
    socklen_t  len;

    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        return RC_AGAIN;
    }

    err = 0;
    len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }

    if (err != 0) {
        conn_close(c, ERR_CONNECT, "connect(%s): %s", conf.connect_str,
                   strerror(err));
        return RC_CLOSED;
    }

    if (conf.mode == MODE_EXPLICIT) {
        c->state = ST_PROXY_SEND;
        return RC_NEXT;
    }

    return to_handshake(c);
}


static int
do_proxy_send(conn_t *c)
{
    ssize_t  n;

    while (c->sent < c->proxy_req_len) {
        n = send(c->fd, c->proxy_req + c->sent, c->proxy_req_len - c->sent,
                 MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR) {
                return RC_AGAIN;
            }

            conn_close(c, (errno == ECONNRESET || errno == EPIPE)
                          ? ERR_RESET : ERR_CONNECT,
                       "sending CONNECT: %s", strerror(errno));
            return RC_CLOSED;
        }

        c->sent += (size_t) n;
        c->raw_up += (uint64_t) n;
    }

    c->state = ST_PROXY_RECV;
    c->hp_state = HP_STATUS;
    c->line_len = 0;
    c->line_trunc = 0;
    c->header_bytes = 0;

    return RC_NEXT;
}


/* the proxy's answer: "HTTP/1.x 200 ...", headers, an empty line */

static int
do_proxy_recv(conn_t *c)
{
    ssize_t         n;
    size_t          off, used;
    unsigned char   buf[2048];
    const char     *l;

    for ( ;; ) {
        n = recv(c->fd, buf, sizeof(buf), 0);

        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR) {
                return RC_AGAIN;
            }

            conn_close(c, errno == ECONNRESET ? ERR_RESET : ERR_CONNECT_STATUS,
                       "reading the CONNECT answer: %s", strerror(errno));
            return RC_CLOSED;
        }

        if (n == 0) {
            conn_close(c, ERR_CONNECT_STATUS,
                       "the proxy closed the connection before a complete"
                       " answer to CONNECT");
            return RC_CLOSED;
        }

        c->raw_down += (uint64_t) n;
        off = 0;

        while (off < (size_t) n) {

            if (line_feed(c, buf + off, (size_t) n - off, &used) == 0) {
                if (c->err_msg != NULL) {
                    conn_close(c, ERR_CONNECT_STATUS, "CONNECT answer: %s",
                               c->err_msg);
                    return RC_CLOSED;
                }
                break;
            }

            off += used;
            l = c->line;

            if (c->hp_state == HP_STATUS) {

                if (strncmp(l, "HTTP/1.", 7) != 0
                    || (l[7] != '0' && l[7] != '1') || l[8] != ' '
                    || strncmp(l + 9, "200", 3) != 0
                    || (l[12] != '\0' && l[12] != ' '))
                {
                    conn_close(c, ERR_CONNECT_STATUS,
                               "CONNECT answered \"%.80s\"", l);
                    return RC_CLOSED;
                }

                c->hp_state = HP_HEADER;

            } else if (c->line_len == 0) {

                if (off != (size_t) n) {
                    conn_close(c, ERR_CONNECT_STATUS, "%zu unexpected bytes"
                               " after the CONNECT answer",
                               (size_t) n - off);
                    return RC_CLOSED;
                }

                return to_handshake(c);
            }

            c->line_len = 0;
            c->line_trunc = 0;
        }
    }
}


/* classify a failed SSL_* call; returns RC_AGAIN or RC_CLOSED */

static int
ssl_fail(conn_t *c, int ret, const char *op, int in_body)
{
    int            err, kind, sys;
    long           vr;
    unsigned long  e;
    char           buf[256];

    sys = errno;
    err = SSL_get_error(c->ssl, ret);

    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return RC_AGAIN;
    }

    e = ERR_peek_error();
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
    } else {
        buf[0] = '\0';
    }

    if (c->state == ST_HANDSHAKE) {
        vr = SSL_get_verify_result(c->ssl);

        if (vr != X509_V_OK) {
            conn_close(c, ERR_VERIFY, "%s: certificate verification: %s",
                       op, X509_verify_cert_error_string(vr));
            return RC_CLOSED;
        }
    }

    switch (err) {

    case SSL_ERROR_ZERO_RETURN:
        kind = (c->state == ST_HANDSHAKE) ? ERR_TLS
               : (in_body ? ERR_BODY : ERR_HTTP);
        conn_close(c, kind, "%s: connection closed by the peer%s", op,
                   in_body ? " inside the body" : "");
        return RC_CLOSED;

    case SSL_ERROR_SYSCALL:
        if (e == 0 && (sys == ECONNRESET || sys == EPIPE)) {
            conn_close(c, ERR_RESET, "%s: %s", op, strerror(sys));
            return RC_CLOSED;
        }

        if (e == 0 && sys == 0) {
            kind = (c->state == ST_HANDSHAKE) ? ERR_TLS
                   : (in_body ? ERR_BODY : ERR_HTTP);
            conn_close(c, kind, "%s: unexpected EOF", op);
            return RC_CLOSED;
        }

        conn_close(c, ERR_TLS, "%s: %s %s", op, strerror(sys), buf);
        return RC_CLOSED;

    default:
        conn_close(c, ERR_TLS, "%s: %s", op, buf[0] ? buf : "TLS error");
        return RC_CLOSED;
    }
}


static int
do_handshake(conn_t *c)
{
    int  rc;

    errno = 0;
    rc = SSL_do_handshake(c->ssl);

    if (rc != 1) {
        return ssl_fail(c, rc, "handshake", 0);
    }

    g.now = now_ns();
    hist_add(&g.st[c->counted].setup, (uint64_t) (g.now - c->t_connect));

    c->state = ST_SEND;
    c->t_request = g.now;

    return RC_NEXT;
}


static int
do_send(conn_t *c)
{
    int  rc;

    errno = 0;
    rc = SSL_write(c->ssl, c->req, (int) c->req_len);

    if (rc <= 0) {
        return ssl_fail(c, rc, "sending the request", 0);
    }

    c->state = ST_RECV;
    c->hp_state = HP_STATUS;
    c->line_len = 0;
    c->line_trunc = 0;
    c->header_bytes = 0;
    c->have_len = 0;
    c->chunked = 0;
    c->keepalive = 0;
    c->status = 0;
    c->body_off = 0;
    c->err_msg = NULL;

    return RC_NEXT;
}


static int
do_recv(conn_t *c)
{
    int     rc, err, in_body;
    size_t  used, got;

    got = 0;

    for ( ;; ) {

        if (got >= READ_BUDGET) {
            ready_add(c);
            return RC_AGAIN;
        }

        errno = 0;
        rc = SSL_read(c->ssl, rbuf, sizeof(rbuf));

        if (rc <= 0) {
            err = SSL_get_error(c->ssl, rc);

            if (c->hp_state == HP_BODY_EOF
                && (err == SSL_ERROR_ZERO_RETURN
                    || (err == SSL_ERROR_SYSCALL && errno == 0
                        && ERR_peek_error() == 0)))
            {
                /* a body delimited by the end of the connection */

                if (http_body_end(c) != 0) {
                    conn_close(c, c->err, "%s", c->err_msg);
                    return RC_CLOSED;
                }

                c->keepalive = 0;
                response_done(c);
                return RC_CLOSED;
            }

            in_body = c->hp_state >= HP_BODY_LEN;
            return ssl_fail(c, rc, "reading the response", in_body);
        }

        got += (size_t) rc;
        rc = http_feed(c, rbuf, (size_t) rc, &used);

        if (rc < 0) {
            conn_close(c, c->err, "%s", c->err_msg);
            return RC_CLOSED;
        }

        if (rc == 1) {
            response_done(c);
            return c->state == ST_FREE ? RC_CLOSED : RC_NEXT;
        }
    }
}


static void
response_done(conn_t *c)
{
    stats_t  *st;

    st = &g.st[c->counted];
    g.now = now_ns();

    st->reqs_ok++;
    st->body_bytes += c->body_off;
    hist_add(&st->req, (uint64_t) (g.now - c->t_request));

    c->requests_done++;

    if (conf.hold) {
        st->conns_ok++;
        hist_add(&st->conn, (uint64_t) (g.now - c->t_connect));
        conn_unlist(c);
        c->state = ST_IDLE;
        g.inprogress--;
        g.held++;
        return;
    }

    if (c->requests_done >= conf.requests
        || (g.stopping && conf.drain_request))
    {
        st->conns_ok++;
        hist_add(&st->conn, (uint64_t) (g.now - c->t_connect));
        conn_close(c, -1, NULL);
        return;
    }

    if (!c->keepalive) {
        conn_close(c, ERR_HTTP, "the server closes the connection after"
                   " request %u of %u", c->requests_done, conf.requests);
        return;
    }

    c->state = ST_SEND;
    c->t_request = g.now;
}


static int
do_idle(conn_t *c)
{
    int  rc;

    for ( ;; ) {
        errno = 0;
        rc = SSL_read(c->ssl, rbuf, sizeof(rbuf));

        if (rc > 0) {
            conn_close(c, ERR_HTTP, "%d unexpected bytes on an idle"
                       " connection", rc);
            return RC_CLOSED;
        }

        switch (SSL_get_error(c->ssl, rc)) {

        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return RC_AGAIN;

        case SSL_ERROR_ZERO_RETURN:
            conn_close(c, ERR_RESET, "a held connection was closed by the"
                       " peer");
            return RC_CLOSED;

        default:
            conn_close(c, ERR_RESET, "a held connection failed: %s",
                       errno ? strerror(errno) : "TLS error");
            return RC_CLOSED;
        }
    }
}


/*
 * Collects one line (up to LF) into c->line, keeping its first
 * LINE_KEEP - 1 bytes.  Returns 1 with a complete line (CR stripped),
 * 0 if more input is needed (or on error, with c->err_msg set).
 */

static int
line_feed(conn_t *c, const unsigned char *p, size_t n, size_t *used)
{
    const unsigned char  *lf;
    size_t                len, keep;

    lf = memchr(p, '\n', n);
    len = lf ? (size_t) (lf - p) + 1 : n;

    *used = len;

    c->header_bytes += len;
    if (c->header_bytes > MAX_HEADER_BYTES) {
        c->err = ERR_HTTP;
        c->err_msg = "header section too long";
        return 0;
    }

    keep = lf ? len - 1 : len;

    if (c->line_len + keep >= LINE_KEEP) {
        keep = LINE_KEEP - 1 - c->line_len;
        c->line_trunc = 1;
    }

    memcpy(c->line + c->line_len, p, keep);
    c->line_len += keep;

    if (lf == NULL) {
        return 0;
    }

    if (!c->line_trunc && c->line_len > 0
        && c->line[c->line_len - 1] == '\r')
    {
        c->line_len--;
    }

    c->line[c->line_len] = '\0';

    return 1;
}


static int
http_error(conn_t *c, err_kind_e kind, const char *msg)
{
    c->err = kind;
    c->err_msg = msg;

    return -1;
}


/*
 * Feeds decrypted response bytes to the parser.
 * Returns 0: more is needed; 1: the response is complete and all of the
 * input was used; -1: error (c->err, c->err_msg).
 */

static int
http_feed(conn_t *c, const unsigned char *p, size_t n, size_t *used)
{
    size_t    i, k;
    uint64_t  take;

    i = 0;

    while (i < n) {

        switch (c->hp_state) {

        case HP_STATUS:
        case HP_HEADER:
        case HP_CHUNK_SIZE:
        case HP_CHUNK_END:
        case HP_TRAILER:
            if (!line_feed(c, p + i, n - i, &k)) {
                if (c->err_msg != NULL) {
                    return -1;
                }
                i += k;
                break;
            }

            i += k;

            if (http_line(c) != 0) {
                return -1;
            }

            c->line_len = 0;
            c->line_trunc = 0;

            if (c->hp_state == HP_DONE) {
                goto done;
            }

            break;

        case HP_BODY_LEN:
        case HP_CHUNK_DATA:
            take = n - i;
            if (take > c->remaining) {
                take = c->remaining;
            }

            if (http_body(c, p + i, (size_t) take) != 0) {
                return -1;
            }

            i += (size_t) take;
            c->remaining -= take;

            if (c->remaining > 0) {
                break;
            }

            if (c->hp_state == HP_CHUNK_DATA) {
                c->hp_state = HP_CHUNK_END;
                c->header_bytes = 0;
                break;
            }

            c->hp_state = HP_DONE;
            goto done;

        case HP_BODY_EOF:
            if (http_body(c, p + i, n - i) != 0) {
                return -1;
            }
            i = n;
            break;

        default:
            return http_error(c, ERR_HTTP, "parser state");
        }
    }

    *used = i;

    return 0;

done:

    *used = i;

    if (http_body_end(c) != 0) {
        return -1;
    }

    if (i != n || SSL_pending(c->ssl) > 0) {
        return http_error(c, ERR_HTTP, "unexpected bytes after the"
                          " response");
    }

    return 1;
}


static int
header_is(const char *line, const char *name, const char **value)
{
    size_t  len;

    len = strlen(name);

    if (strncasecmp(line, name, len) != 0 || line[len] != ':') {
        return 0;
    }

    line += len + 1;
    while (*line == ' ' || *line == '\t') {
        line++;
    }

    *value = line;

    return 1;
}


static int
http_line(conn_t *c)
{
    char          *l, *ep;
    const char    *v;
    size_t         len;
    unsigned long long  n;

    l = c->line;

    switch (c->hp_state) {

    case HP_STATUS:
        if (strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1')
            || l[8] != ' ' || l[9] < '1' || l[9] > '5'
            || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9'
            || (l[12] != '\0' && l[12] != ' '))
        {
            return http_error(c, ERR_HTTP, "invalid status line");
        }

        c->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');

        if (c->status != 200) {
            return http_error(c, ERR_HTTP, c->status == 404
                              ? "status 404" : "status is not 200");
        }

        c->keepalive = (l[7] == '1');
        c->hp_state = HP_HEADER;
        return 0;

    case HP_HEADER:
        if (c->line_len == 0) {
            break;
        }

        if (header_is(l, "content-length", &v)) {
            if (c->line_trunc) {
                return http_error(c, ERR_HTTP, "Content-Length too long");
            }

            errno = 0;
            n = strtoull(v, &ep, 10);
            while (*ep == ' ' || *ep == '\t') {
                ep++;
            }

            if (errno || ep == v || *ep != '\0' || *v == '-'
                || (c->have_len && n != c->content_length))
            {
                return http_error(c, ERR_HTTP, "invalid Content-Length");
            }

            c->have_len = 1;
            c->content_length = n;

        } else if (header_is(l, "transfer-encoding", &v)) {
            len = strlen(v);
            while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
                len--;
            }

            if (c->line_trunc || len < 7
                || strncasecmp(v + len - 7, "chunked", 7) != 0)
            {
                return http_error(c, ERR_HTTP,
                                  "unsupported Transfer-Encoding");
            }

            c->chunked = 1;

        } else if (header_is(l, "connection", &v)) {
            if (strcasestr(v, "close") != NULL) {
                c->keepalive = 0;
            } else if (strcasestr(v, "keep-alive") != NULL) {
                c->keepalive = 1;
            }
        }

        return 0;

    case HP_CHUNK_SIZE:
        n = 0;
        len = 0;

        for (v = l; ; v++) {
            if (*v >= '0' && *v <= '9') {
                n = n * 16 + (unsigned) (*v - '0');
            } else if ((*v | 0x20) >= 'a' && (*v | 0x20) <= 'f') {
                n = n * 16 + (unsigned) ((*v | 0x20) - 'a' + 10);
            } else {
                break;
            }

            if (++len > 15) {
                return http_error(c, ERR_HTTP, "chunk size too large");
            }
        }

        if (len == 0 || (*v != '\0' && *v != ';' && *v != ' '
                         && *v != '\t'))
        {
            return http_error(c, ERR_HTTP, "invalid chunk size");
        }

        if (n == 0) {
            c->hp_state = HP_TRAILER;
            return 0;
        }

        c->remaining = n;
        c->hp_state = HP_CHUNK_DATA;
        return 0;

    case HP_CHUNK_END:
        if (c->line_len != 0) {
            return http_error(c, ERR_HTTP, "no CRLF after chunk data");
        }

        c->hp_state = HP_CHUNK_SIZE;
        return 0;

    case HP_TRAILER:
        if (c->line_len == 0) {
            c->hp_state = HP_DONE;
        }
        return 0;

    default:
        return http_error(c, ERR_HTTP, "parser state");
    }

    /* the end of the header section */

    if (c->chunked) {
        c->hp_state = HP_CHUNK_SIZE;
        c->header_bytes = 0;
        return 0;
    }

    if (c->have_len) {
        if (conf.expect_file != NULL && c->content_length != g.expect_len) {
            return http_error(c, ERR_BODY, "Content-Length differs from"
                              " the length of --expect-file");
        }

        c->remaining = c->content_length;
        c->hp_state = c->remaining ? HP_BODY_LEN : HP_DONE;
        return 0;
    }

    /* no length: the body ends with the connection */

    c->keepalive = 0;
    c->hp_state = HP_BODY_EOF;

    return 0;
}


static int
http_body(conn_t *c, const unsigned char *p, size_t n)
{
    if (conf.expect_file != NULL) {
        if (c->body_off + n > g.expect_len) {
            return http_error(c, ERR_BODY, "body longer than --expect-file");
        }

        if (n > 0 && memcmp(g.expect + c->body_off, p, n) != 0) {
            return http_error(c, ERR_BODY, "body differs from --expect-file");
        }
    }

    c->body_off += n;

    return 0;
}


static int
http_body_end(conn_t *c)
{
    if (conf.expect_file != NULL && c->body_off != g.expect_len) {
        return http_error(c, ERR_BODY, "body shorter than --expect-file");
    }

    if (c->have_len && !c->chunked && c->body_off != c->content_length) {
        return http_error(c, ERR_BODY, "body length differs from"
                          " Content-Length");
    }

    return 0;
}


static void
expire(void)
{
    conn_t  *c;

    while (g.list_head != NULL
           && g.list_head->t_active + g.timeout_ns <= g.now)
    {
        c = g.list_head;
        conn_close(c, ERR_TIMEOUT, "no progress for %.3f s (state %d)",
                   conf.timeout, (int) c->state);
    }
}


static void
close_all(int count_aborted)
{
    size_t   i;
    conn_t  *c;

    for (i = 0; i < g.nconns; i++) {
        c = &g.conns[i];

        if (c->state != ST_FREE) {
            if (count_aborted && c->state != ST_IDLE) {
                g.aborted++;
            }
            conn_close(c, -1, NULL);
        }
    }
}


static int
may_start(void)
{
    if (g.stopping || g.nfree == 0) {
        return 0;
    }

    if (conf.hold) {
        return g.opened < conf.connections
               && g.inprogress < conf.concurrency;
    }

    if (g.inprogress >= conf.concurrency) {
        return 0;
    }

    if (!g.warming && conf.connections && g.started >= conf.connections) {
        return 0;
    }

    return 1;
}


static double
cpu_seconds(void)
{
    struct rusage  ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }

    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


static void
phase(void)
{
    if (g.warming && g.now >= g.t_warm_end) {
        g.warming = 0;
        g.t_measure = g.now;
        g.cpu_measure = cpu_seconds();
        if (conf.duration > 0) {
            g.t_stop = g.now + (int64_t) (conf.duration * 1e9);
        }
    }

    if (!conf.hold && !g.warming && g.t_stop && g.now >= g.t_stop) {
        g.stopping = 1;
    }

    if (g_signals > 0) {
        g.stopping = 1;
    }
}


static int
loop_wait_ms(void)
{
    int64_t  t, w;

    t = g.now + (int64_t) LOOP_WAIT_MAX_MS * 1000000;

    if (g.list_head != NULL && g.list_head->t_active + g.timeout_ns < t) {
        t = g.list_head->t_active + g.timeout_ns;
    }

    if (g.warming && g.t_warm_end < t) {
        t = g.t_warm_end;
    }

    if (!g.warming && g.t_stop && !g.stopping && g.t_stop < t) {
        t = g.t_stop;
    }

    if (g.holding && g.t_hold_end && g.t_hold_end < t) {
        t = g.t_hold_end;
    }

    if (g.ready_head != NULL) {
        return 0;
    }

    w = (t - g.now + 999999) / 1000000;

    return w < 0 ? 0 : (int) w;
}


static void
run(void)
{
    int                 i, n;
    unsigned            k;
    conn_t             *c;
    struct epoll_event  evs[MAX_EVENTS];

    g.now = now_ns();
    g.t_begin = g.now;

    if (conf.warmup > 0) {
        g.warming = 1;
        g.t_warm_end = g.now + (int64_t) (conf.warmup * 1e9);

    } else {
        g.t_measure = g.now;
        g.cpu_measure = cpu_seconds();
        if (conf.duration > 0 && !conf.hold) {
            g.t_stop = g.now + (int64_t) (conf.duration * 1e9);
        }
    }

    for ( ;; ) {
        g.now = now_ns();
        phase();

        if (g_signals > 1 || (g.holding && g_signals > 0)) {
            break;
        }

        if (g.holding && g.t_hold_end && g.now >= g.t_hold_end) {
            break;
        }

        /*
         * At most --concurrency starts a turn: connections that fail at
         * once (no ports, no descriptors, no route) must not spin here.
         */

        for (k = 0; k < conf.concurrency && may_start(); k++) {
            conn_start();
        }

        if (conf.hold && !g.holding && g.inprogress == 0
            && (g.opened >= conf.connections || g.stopping))
        {
            if (g.stopping) {
                break;
            }

            g.holding = 1;
            g.t_holding = g.now;
            printf("HOLDING %" PRIu64 "\n", g.held);
            fflush(stdout);

            if (conf.duration > 0) {
                g.t_hold_end = g.now + (int64_t) (conf.duration * 1e9);
            }

            if (g.held == 0) {
                break;
            }
        }

        if (!conf.hold && g.inprogress == 0 && !may_start()) {
            break;
        }

        if (g.holding && g.held == 0) {
            break;
        }

        n = epoll_wait(g.ep, evs, MAX_EVENTS, loop_wait_ms());

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait(): %s", strerror(errno));
        }

        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;

            if (c->state == ST_FREE) {
                continue;
            }

            g.now = now_ns();

            if (c->state != ST_IDLE) {
                conn_touch(c);
            }

            conn_run(c, evs[i].events);
        }

        ready_run();

        g.now = now_ns();
        expire();
    }

    g.now = now_ns();
    g.t_end = g.now;
    g.cpu_end = cpu_seconds();

    if (g.warming) {
        /* stopped during the warm-up: nothing was measured */
        g.t_measure = g.now;
        g.cpu_measure = g.cpu_end;
    }

    g.held_at_end = g.held;
    close_all(1);
}


static void
json_str(const char *s)
{
    putchar('"');

    for ( ; *s; s++) {
        if (*s == '"' || *s == '\\') {
            printf("\\%c", *s);
        } else if ((unsigned char) *s < 0x20) {
            printf("\\u%04x", (unsigned) (unsigned char) *s);
        } else {
            putchar(*s);
        }
    }

    putchar('"');
}


static void
json_hist(const char *name, const hist_t *h, int comma)
{
    printf("\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"max\":%.3f}%s",
           name, h->count, hist_pct(h, 0.50) / 1e6, hist_pct(h, 0.90) / 1e6,
           hist_pct(h, 0.99) / 1e6, (double) h->max / 1e6, comma ? "," : "");
}


static void
human_hist(const char *name, const hist_t *h)
{
    if (h->count == 0) {
        printf("  %-34s        -        -        -        -\n", name);
        return;
    }

    printf("  %-34s %8.3f %8.3f %8.3f %8.3f\n", name,
           hist_pct(h, 0.50) / 1e6, hist_pct(h, 0.90) / 1e6,
           hist_pct(h, 0.99) / 1e6, (double) h->max / 1e6);
}


static void
report(void)
{
    int            i;
    double         el, cps, rps, mbps, cpu;
    uint64_t       errs, werrs;
    const stats_t  *st;

    st = &g.st[1];
    el = (double) (g.t_end - g.t_measure) / 1e9;
    if (el <= 0) {
        el = 1e-9;
    }

    cps = (double) st->conns_ok / el;
    rps = (double) st->reqs_ok / el;
    mbps = (double) st->body_bytes / el / 1e6;
    cpu = g.cpu_end - g.cpu_measure;
    errs = errors_total(st);
    werrs = errors_total(&g.st[0]);

    if (!conf.json) {
        printf("mcd-load %s: connect %s, target %s, path %s\n",
               mode_names[conf.mode], conf.connect_str, conf.target_str,
               conf.path);
        if (conf.names != NULL) {
            printf("  names %s from %" PRIu64 "%s: %" PRIu64 " used%s\n",
                   conf.names, conf.names_first,
                   conf.names_count ? ", wrapping" : "", g.names_used,
                   (conf.names_count && g.names_used > conf.names_count)
                   ? " (some more than once)" : "");
        }
        printf("  concurrency %u, requests/connection %u%s%s%s\n",
               conf.concurrency, conf.hold ? 1 : conf.requests,
               conf.tls13 ? ", TLS 1.3 only" : "",
               conf.cafile ? ", verified" : ", not verified",
               conf.hold ? ", hold" : "");
        printf("\n");
        printf("  connections completed %14" PRIu64 "\n", st->conns_ok);
        printf("  requests completed    %14" PRIu64 "\n", st->reqs_ok);
        if (conf.hold) {
            printf("  held at the end       %14" PRIu64 "\n", g.held_at_end);
            printf("  time to establish     %14.3f s\n",
                   g.t_holding ? (g.t_holding - g.t_measure) / 1e9 : 0.0);
        }
        printf("  elapsed               %14.3f s\n", el);
        printf("  connections/s         %14.1f\n", cps);
        printf("  requests/s            %14.1f\n", rps);
        printf("  body MB/s (10^6 B)    %14.2f\n", mbps);
        printf("  bytes up / down       %14" PRIu64 " / %" PRIu64 "\n",
               st->bytes_up, st->bytes_down);
        printf("  body bytes            %14" PRIu64 "\n", st->body_bytes);
        printf("  mcd-load CPU          %14.3f s (%.0f%% of one core)\n",
               cpu, 100 * cpu / el);
        printf("\n");
        printf("  latency (ms)                            p50      p90"
               "      p99      max\n");
        human_hist("request (send to full body)", &st->req);
        human_hist("connection (connect to last body)", &st->conn);
        human_hist("setup (connect to TLS done)", &st->setup);
        printf("\n");
        printf("  errors %" PRIu64 ":", errs);
        for (i = 0; i < ERR_KINDS; i++) {
            printf(" %s %" PRIu64, err_names[i], st->errors[i]);
        }
        printf("\n");
        if (werrs || g.aborted) {
            printf("  warm-up errors %" PRIu64 ", aborted in flight %"
                   PRIu64 "\n", werrs, g.aborted);
        }
        printf("\n");
    }

    printf("{\"mode\":\"%s\",\"connect\":", mode_names[conf.mode]);
    json_str(conf.connect_str);
    printf(",\"target\":");
    json_str(conf.target_str);
    printf(",\"path\":");
    json_str(conf.path);
    if (conf.names != NULL) {
        printf(",\"names\":");
        json_str(conf.names);
        printf(",\"names_first\":%" PRIu64 ",\"names_count\":%" PRIu64
               ",\"names_used\":%" PRIu64 ",\"names_wrapped\":%s",
               conf.names_first, conf.names_count, g.names_used,
               (conf.names_count && g.names_used > conf.names_count)
               ? "true" : "false");
    }
    printf(",\"concurrency\":%u,\"requests_per_connection\":%u,"
           "\"tls13_only\":%s,\"verified\":%s,\"hold\":%s,",
           conf.concurrency, conf.hold ? 1 : conf.requests,
           conf.tls13 ? "true" : "false", conf.cafile ? "true" : "false",
           conf.hold ? "true" : "false");
    printf("\"connections\":%" PRIu64 ",\"requests\":%" PRIu64 ","
           "\"elapsed_s\":%.3f,\"connections_per_s\":%.1f,"
           "\"requests_per_s\":%.1f,\"body_mb_per_s\":%.3f,"
           "\"body_bytes\":%" PRIu64 ",\"bytes_up\":%" PRIu64 ","
           "\"bytes_down\":%" PRIu64 ",\"loadgen_cpu_s\":%.3f,"
           "\"loadgen_cpu_pct\":%.1f,",
           st->conns_ok, st->reqs_ok, el, cps, rps, mbps, st->body_bytes,
           st->bytes_up, st->bytes_down, cpu, 100 * cpu / el);
    printf("\"latency_ms\":{");
    json_hist("request", &st->req, 1);
    json_hist("connection", &st->conn, 1);
    json_hist("setup", &st->setup, 0);
    printf("},\"errors\":{");
    for (i = 0; i < ERR_KINDS; i++) {
        printf("\"%s\":%" PRIu64 "%s", err_names[i], st->errors[i],
               i + 1 < ERR_KINDS ? "," : "");
    }
    printf("},\"errors_total\":%" PRIu64 ",\"warmup_errors\":%" PRIu64
           ",\"aborted\":%" PRIu64 ",\"held\":%" PRIu64 ",\"establish_s\":%.3f,"
           "\"ok\":%s}\n",
           errs, werrs, g.aborted, g.held_at_end,
           g.t_holding ? (g.t_holding - g.t_measure) / 1e9 : 0.0,
           (errs == 0 && werrs == 0 && st->reqs_ok > 0) ? "true" : "false");

    fflush(stdout);
}


static void
cleanup(void)
{
    if (g.ctx != NULL) {
        SSL_CTX_free(g.ctx);
    }

    if (g.expect != NULL) {
        munmap((void *) g.expect, g.expect_len);
    }

    if (g.ep != -1) {
        close(g.ep);
    }

    free(g.conns);
    free(g.free_conns);
    free(g.req);
    free(g.proxy_req);
    free(g.nbufs);
}


int
main(int argc, char **argv)
{
    int  ok;

    g.ep = -1;

    parse_args(argc, argv);
    setup();
    run();

    report();

    ok = errors_total(&g.st[1]) == 0 && errors_total(&g.st[0]) == 0
         && g.st[1].reqs_ok > 0;

    cleanup();

    return ok ? 0 : 1;
}
