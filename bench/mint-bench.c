/*
 * mint-bench: what a first-sight name costs the gateway, measured in one
 * process without the network, next to what a cached one costs.
 *
 *   cc -std=c99 -D_GNU_SOURCE -O2 -Isrc src/mcd_cert.c bench/mint-bench.c \
 *       -lssl -lcrypto -o mint-bench
 *   mint-bench --ca gwca.crt --key gwca.key [--n 2000] [--rounds 5]
 *
 * The CA is the gateway CA of the benchmark (any EC or RSA CA will do);
 * the leaf key is generated here as "mcd_leaf_key ec:P-256" does.  CPU
 * time is this thread's (CLOCK_THREAD_CPUTIME_ID), in microseconds per
 * operation; each figure is the median of --rounds rounds:
 *
 *   mint          mcd_cert_mint() for a new name (build + sign);
 *   cache_hit     mcd_cert_cache_get() for a cached name;
 *   hs_static     the server side of a full TLS 1.3 handshake (P-256 key
 *                 exchange, ECDSA) with a static certificate (set once on
 *                 the SSL_CTX, as nginx's ssl_certificate: the
 *                 "terminate" baseline);
 *   hs_cached     the same, the certificate callback taking a cached
 *                 certificate, as ngx_mcd's does: mcd_cert_cache_get() +
 *                 SSL_use_cert_and_key();
 *   hs_first      the same with a new name every handshake, so the
 *                 callback mints (and the cache, 1,000 entries, evicts);
 *   hs_extra      hs_first - hs_cached: what a first-sight name adds to
 *                 the TLS-terminating side of a session;
 *   cb_cost       hs_cached - hs_static: what the certificate callback
 *                 costs a handshake against a static certificate.
 *
 * The client side of the handshakes (in the same thread, over memory
 * BIOs) is not counted: only the server's SSL_do_handshake() calls are
 * timed.  Prints a table and one JSON line.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mcd_cert.h"


#define MINT_CACHE_MAX    1000
#define MINT_CACHED       100
#define MINT_NAME_LEN     64
#define MINT_ROUNDS_MAX   101


typedef struct {
    mcd_cert_ca_t      ca;
    mcd_cert_key_t     key;
    mcd_cert_cache_t  *cache;
    SSL_CTX           *sctx;
    SSL_CTX           *sctx_static;
    SSL_CTX           *cctx;
    unsigned long      serial;        /* the next first-sight name */
    int                first;         /* the callback's case */
    int                check;         /* past the warm-up: hit or mint as told */
    int                failed;
} mint_t;


static mint_t  m;


static void
die(const char *what, const char *err)
{
    fprintf(stderr, "mint-bench: %s%s%s\n", what, err ? ": " : "",
            err ? err : "");
    ERR_print_errors_fp(stderr);
    exit(2);
}


static double
cpu_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof(double), cmp_double);

    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


static size_t
name_of(char *buf, const char *prefix, unsigned long i)
{
    int  n;

    n = snprintf(buf, MINT_NAME_LEN, "%s%lu.example.test", prefix, i);

    return (size_t) n;
}


/* the certificate callback: as ngx_mcd's, the cache first, else a mint */

static int
cert_cb(SSL *ssl, void *arg)
{
    int          minted;
    char         name[MINT_NAME_LEN];
    size_t       len;
    X509        *x;
    const char  *err;

    (void) arg;

    if (m.first) {
        len = name_of(name, "n", m.serial++);
    } else {
        len = name_of(name, "c", m.serial++ % MINT_CACHED);
    }

    x = mcd_cert_cache_get(m.cache, &m.ca, &m.key, (const unsigned char *) name, len,
                           time(NULL), 0, &minted, &err);
    if (x == NULL) {
        m.failed = 1;
        return 0;
    }

    if (m.check && minted != m.first) {
        m.failed = 1;
    }

    if (SSL_use_cert_and_key(ssl, x, m.key.pkey, NULL, 1) != 1) {
        X509_free(x);
        m.failed = 1;
        return 0;
    }

    X509_free(x);

    return 1;
}


/* one full handshake over memory BIOs; returns the server's CPU time */

static double
handshake(SSL_CTX *sctx)
{
    int      rc, sdone, cdone, i;
    SSL     *s, *c;
    BIO     *sb, *cb;
    double   t, spent;

    s = SSL_new(sctx);
    c = SSL_new(m.cctx);
    if (s == NULL || c == NULL) {
        die("SSL_new() failed", NULL);
    }

    if (BIO_new_bio_pair(&sb, 0, &cb, 0) != 1) {
        die("BIO_new_bio_pair() failed", NULL);
    }

    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    SSL_set_tlsext_host_name(c, "bench.example.test");

    spent = 0;
    sdone = 0;
    cdone = 0;

    for (i = 0; i < 100 && !(sdone && cdone); i++) {
        if (!cdone) {
            rc = SSL_do_handshake(c);
            if (rc == 1) {
                cdone = 1;
            } else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ) {
                die("client handshake failed", NULL);
            }
        }

        if (!sdone) {
            t = cpu_us();
            rc = SSL_do_handshake(s);
            spent += cpu_us() - t;

            if (rc == 1) {
                sdone = 1;
            } else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ) {
                die("server handshake failed", NULL);
            }
        }
    }

    if (!(sdone && cdone) || m.failed) {
        die("a handshake did not complete as expected", NULL);
    }

    SSL_free(s);
    SSL_free(c);

    return spent;
}


static void
setup(const char *cafile, const char *keyfile)
{
    FILE                 *f;
    X509                 *cert;
    EVP_PKEY             *pkey;
    const char           *err;
    mcd_cert_key_spec_t   spec;

    f = fopen(cafile, "r");
    if (f == NULL) {
        die(cafile, strerror(errno));
    }
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);

    f = fopen(keyfile, "r");
    if (f == NULL) {
        die(keyfile, strerror(errno));
    }
    pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);

    if (cert == NULL || pkey == NULL) {
        die("cannot read the CA certificate or its key", NULL);
    }

    if (mcd_cert_ca_init(&m.ca, cert, pkey, &err) != 0) {
        die("mcd_cert_ca_init()", err);
    }

    X509_free(cert);
    EVP_PKEY_free(pkey);

    if (mcd_cert_key_spec_parse((const unsigned char *) MCD_CERT_KEY_SPEC_DEFAULT,
                                strlen(MCD_CERT_KEY_SPEC_DEFAULT), &spec,
                                &err)
        != 0
        || mcd_cert_key_generate(&spec, &m.key, &err) != 0)
    {
        die("the leaf key", err);
    }

    m.cache = mcd_cert_cache_create(MINT_CACHE_MAX, 86400, -1, &err);
    if (m.cache == NULL) {
        die("mcd_cert_cache_create()", err);
    }

    /* as the benchmark's servers: TLS 1.3, P-256, no tickets, no cache */

    m.sctx = SSL_CTX_new(TLS_server_method());
    m.cctx = SSL_CTX_new(TLS_client_method());
    if (m.sctx == NULL || m.cctx == NULL) {
        die("SSL_CTX_new() failed", NULL);
    }

    SSL_CTX_set_min_proto_version(m.sctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(m.cctx, TLS1_3_VERSION);
    SSL_CTX_set1_groups_list(m.sctx, "P-256");
    SSL_CTX_set1_groups_list(m.cctx, "P-256");
    SSL_CTX_set_options(m.sctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(m.sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_cache_mode(m.cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(m.cctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_cert_cb(m.sctx, cert_cb, NULL);

    /* the static one: a certificate minted once, set on the context */

    m.sctx_static = SSL_CTX_new(TLS_server_method());
    if (m.sctx_static == NULL) {
        die("SSL_CTX_new() failed", NULL);
    }

    SSL_CTX_set_min_proto_version(m.sctx_static, TLS1_3_VERSION);
    SSL_CTX_set1_groups_list(m.sctx_static, "P-256");
    SSL_CTX_set_options(m.sctx_static, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(m.sctx_static, SSL_SESS_CACHE_OFF);

    cert = mcd_cert_mint(&m.ca, &m.key,
                         (const unsigned char *) "static.example.test",
                         sizeof("static.example.test") - 1, time(NULL), 0,
                         &err);
    if (cert == NULL) {
        die("mcd_cert_mint()", err);
    }

    if (SSL_CTX_use_certificate(m.sctx_static, cert) != 1
        || SSL_CTX_use_PrivateKey(m.sctx_static, m.key.pkey) != 1)
    {
        die("the static certificate", NULL);
    }

    X509_free(cert);
}


int
main(int argc, char **argv)
{
    int            i, j, r, n, rounds;
    char           name[MINT_NAME_LEN];
    size_t         len;
    X509          *x;
    double         t, v_mint[MINT_ROUNDS_MAX], v_hit[MINT_ROUNDS_MAX],
                   v_hc[MINT_ROUNDS_MAX], v_hf[MINT_ROUNDS_MAX],
                   v_hs[MINT_ROUNDS_MAX], v_extra[MINT_ROUNDS_MAX],
                   v_cb[MINT_ROUNDS_MAX], mint, hit, hc, hf, hs, extra, cb;
    const char    *cafile, *keyfile, *err;
    int            minted;
    unsigned long  serial;

    cafile = NULL;
    keyfile = NULL;
    n = 2000;
    rounds = 5;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ca") == 0) {
            cafile = argv[i + 1];
        } else if (strcmp(argv[i], "--key") == 0) {
            keyfile = argv[i + 1];
        } else if (strcmp(argv[i], "--n") == 0) {
            n = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--rounds") == 0) {
            rounds = atoi(argv[i + 1]);
        } else {
            break;
        }
    }

    if (i != argc || cafile == NULL || keyfile == NULL || n < 1
        || rounds < 1 || rounds > MINT_ROUNDS_MAX)
    {
        fprintf(stderr, "usage: mint-bench --ca FILE --key FILE [--n N]"
                " [--rounds R (1-%d)]\n", MINT_ROUNDS_MAX);
        return 2;
    }

    setup(cafile, keyfile);

    serial = 0;

    /* the cached names into the cache, and a warm-up of everything */

    m.first = 0;
    for (i = 0; i < MINT_CACHED; i++) {
        (void) handshake(m.sctx);
    }

    m.first = 1;
    for (i = 0; i < 50; i++) {
        (void) handshake(m.sctx);
    }

    m.check = 1;

    for (r = 0; r < rounds; r++) {

        /* mcd_cert_mint() alone */

        t = cpu_us();
        for (i = 0; i < n; i++) {
            len = name_of(name, "m", serial++);
            x = mcd_cert_mint(&m.ca, &m.key, (const unsigned char *) name, len,
                              time(NULL), 0, &err);
            if (x == NULL) {
                die("mcd_cert_mint()", err);
            }
            X509_free(x);
        }
        v_mint[r] = (cpu_us() - t) / n;

        /* a cache hit */

        t = cpu_us();
        for (i = 0; i < n; i++) {
            len = name_of(name, "c", (unsigned long) i % MINT_CACHED);
            x = mcd_cert_cache_get(m.cache, &m.ca, &m.key, (const unsigned char *) name,
                                   len, time(NULL), 0, &minted, &err);
            if (x == NULL || minted) {
                die("a cached name was not in the cache", err);
            }
            X509_free(x);
        }
        v_hit[r] = (cpu_us() - t) / n;

        /* handshakes, the two cases alternating in blocks of 50 */

        hc = 0;
        hf = 0;
        hs = 0;

        for (i = 0; i < n / 4; i += 50) {
            m.first = 0;
            for (j = 0; j < 50; j++) {
                hc += handshake(m.sctx);
            }

            m.first = 1;
            for (j = 0; j < 50; j++) {
                hf += handshake(m.sctx);
            }

            for (j = 0; j < 50; j++) {
                hs += handshake(m.sctx_static);
            }

            /* the first-sight ones evicted the cached names: back in */

            m.first = 0;
            for (j = 0; j < MINT_CACHED; j++) {
                len = name_of(name, "c", (unsigned long) j);
                x = mcd_cert_cache_get(m.cache, &m.ca, &m.key,
                                       (const unsigned char *) name, len, time(NULL), 0,
                                       &minted, &err);
                if (x == NULL) {
                    die("mcd_cert_cache_get()", err);
                }
                X509_free(x);
            }
        }

        i = (n / 4 + 49) / 50 * 50;
        v_hc[r] = hc / i;
        v_hf[r] = hf / i;
        v_hs[r] = hs / i;
        v_extra[r] = v_hf[r] - v_hc[r];
        v_cb[r] = v_hc[r] - v_hs[r];
    }

    mint = median(v_mint, rounds);
    hit = median(v_hit, rounds);
    hc = median(v_hc, rounds);
    hf = median(v_hf, rounds);
    hs = median(v_hs, rounds);
    extra = median(v_extra, rounds);
    cb = median(v_cb, rounds);

    printf("mint-bench: %s leaf key, %d operations x %d rounds, "
           "medians, CPU us per operation\n", MCD_CERT_KEY_SPEC_DEFAULT, n,
           rounds);
    printf("  mint        %9.1f\n", mint);
    printf("  cache_hit   %9.2f\n", hit);
    printf("  hs_static   %9.1f   (server side of a TLS 1.3 handshake,"
           " static certificate)\n", hs);
    printf("  hs_cached   %9.1f   (the same, a cached minted certificate"
           " from the callback)\n", hc);
    printf("  hs_first    %9.1f   (the same, minting in the callback)\n",
           hf);
    printf("  hs_extra    %9.1f   (first / cached %.2fx)\n", extra,
           hc > 0 ? hf / hc : 0);
    printf("  cb_cost     %9.1f   (cached / static %.2fx)\n", cb,
           hs > 0 ? hc / hs : 0);

    printf("{\"mint_us\":%.2f,\"cache_hit_us\":%.3f,\"hs_static_us\":%.2f,"
           "\"hs_cached_us\":%.2f,\"hs_first_us\":%.2f,"
           "\"hs_extra_us\":%.2f,\"cb_cost_us\":%.2f,\"n\":%d,"
           "\"rounds\":%d}\n", mint, hit, hs, hc, hf, extra, cb, n, rounds);

    mcd_cert_cache_free(m.cache);
    mcd_cert_key_free(&m.key);
    mcd_cert_ca_free(&m.ca);
    SSL_CTX_free(m.sctx);
    SSL_CTX_free(m.sctx_static);
    SSL_CTX_free(m.cctx);

    return 0;
}
