
/*
 * Unit tests for src/mcd_tls.c.
 *
 * cc -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Isrc \
 *     src/mcd_tls.c t/unit/test_tls.c -o /tmp/test_tls
 *
 * The real hellos in data/client_hellos.h were captured from
 * "openssl s_client" by data/gen_client_hellos.py.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcd_tls.h"
#include "data/client_hellos.h"


#define OK       MCD_TLS_OK
#define AGAIN    MCD_TLS_AGAIN
#define NOT_TLS  MCD_TLS_NOT_TLS
#define ERR      MCD_TLS_ERROR
#define TOO_BIG  MCD_TLS_TOO_BIG

#define T_SCRATCH   16384
#define T_BUF_MAX   (1 << 17)
#define T_FIELDS    256


static unsigned  checks;
static unsigned  failed;


#define CHECK(cond, what)                                                    \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failed++;                                                        \
            fprintf(stderr, "test_tls: %s:%d: %s: %s\n",                     \
                    __FILE__, __LINE__, what, #cond);                        \
        }                                                                    \
    } while (0)


/* a growable-by-hand byte buffer for building hellos */

typedef struct {
    unsigned char  *b;
    size_t          n;
    size_t          cap;
} tb_t;


/* a ClientHello to build */

typedef struct {
    const char  *sni;        /* NULL: no server_name */
    const char  *alpn;       /* "h2,http/1.1"; NULL: no ALPN */
    int          pq;         /* large post-quantum key shares */
    size_t       ech;        /* bytes of an ECH extension; 0: none */
    int          tls13;      /* supported_versions with 0x0304 */
    int          no_ext;     /* no extensions block at all */
    size_t       pad;        /* bytes of a padding extension; 0: none */
} hs_spec_t;


/* what a parse is expected to find */

typedef struct {
    const char  *sni;        /* NULL: has_sni == 0 */
    const char  *alpn;       /* formatted; NULL: no ALPN */
    unsigned     tls13;
    unsigned     ech;
} hs_want_t;


/* the position of a length field in a single-record hello */

typedef struct {
    size_t       off;
    size_t       width;
    int          kind;
} t_field_t;

#define F_RECORD  0
#define F_HS      1
#define F_BODY    2


static unsigned char  *scratch_mem;
static unsigned char  *work;


static void
tb_init(tb_t *t, size_t cap)
{
    t->b = malloc(cap);
    if (t->b == NULL) {
        abort();
    }

    t->n = 0;
    t->cap = cap;
}


static void
tb_free(tb_t *t)
{
    free(t->b);
    t->b = NULL;
}


static void
put8(tb_t *t, unsigned v)
{
    if (t->n >= t->cap) {
        abort();
    }

    t->b[t->n++] = (unsigned char) v;
}


static void
put16(tb_t *t, unsigned v)
{
    put8(t, v >> 8);
    put8(t, v & 0xff);
}


static void
putmem(tb_t *t, const void *p, size_t n)
{
    if (t->cap - t->n < n) {
        abort();
    }

    memcpy(t->b + t->n, p, n);
    t->n += n;
}


static void
putfill(tb_t *t, unsigned v, size_t n)
{
    while (n--) {
        put8(t, v);
    }
}


static size_t
open_len(tb_t *t, size_t width)
{
    size_t  at;

    at = t->n;
    putfill(t, 0, width);

    return at;
}


static void
close_len(tb_t *t, size_t at, size_t width)
{
    size_t  l, i;

    l = t->n - at - width;

    for (i = 0; i < width; i++) {
        t->b[at + width - 1 - i] = (unsigned char) (l >> (8 * i));
    }
}


/* builds a handshake message: 4-byte header and ClientHello body */

static void
build_msg(tb_t *m, const hs_spec_t *s)
{
    size_t       hs, ext, e, l, nl;
    const char  *p, *c;

    m->n = 0;

    put8(m, 1);
    hs = open_len(m, 3);

    put16(m, 0x0303);
    putfill(m, 0xa5, 32);                       /* random */
    put8(m, 32);
    putfill(m, 0x5a, 32);                       /* legacy_session_id */
    put16(m, 6);
    put16(m, 0x1301);
    put16(m, 0x1302);
    put16(m, 0xc02f);
    put8(m, 1);
    put8(m, 0);

    if (s->no_ext) {
        close_len(m, hs, 3);
        return;
    }

    ext = open_len(m, 2);

    if (s->sni) {
        put16(m, 0x0000);
        e = open_len(m, 2);
        l = open_len(m, 2);
        put8(m, 0);
        nl = strlen(s->sni);
        put16(m, (unsigned) nl);
        putmem(m, s->sni, nl);
        close_len(m, l, 2);
        close_len(m, e, 2);
    }

    put16(m, 0x000a);                           /* supported_groups */
    put16(m, 8);
    put16(m, 6);
    put16(m, 0x11ec);
    put16(m, 0x001d);
    put16(m, 0x0017);

    if (s->alpn) {
        put16(m, 0x0010);
        e = open_len(m, 2);
        l = open_len(m, 2);

        for (p = s->alpn; *p; p = (*c == ',') ? c + 1 : c) {
            for (c = p; *c && *c != ','; c++) { /* void */ }
            put8(m, (unsigned) (c - p));
            putmem(m, p, (size_t) (c - p));
        }

        close_len(m, l, 2);
        close_len(m, e, 2);
    }

    if (s->tls13) {
        put16(m, 0x002b);
        put16(m, 5);
        put8(m, 4);
        put16(m, 0x0304);
        put16(m, 0x0303);

    } else {
        put16(m, 0x002b);
        put16(m, 3);
        put8(m, 2);
        put16(m, 0x0303);
    }

    put16(m, 0x0033);                           /* key_share */
    e = open_len(m, 2);
    l = open_len(m, 2);

    if (s->pq) {
        put16(m, 0x11ec);                       /* X25519MLKEM768 */
        put16(m, 1216);
        putfill(m, 0x11, 1216);
        put16(m, 0x11ed);                       /* SecP384r1MLKEM1024 */
        put16(m, 97 + 1568);
        putfill(m, 0x22, 97 + 1568);
    }

    put16(m, 0x001d);
    put16(m, 32);
    putfill(m, 0x33, 32);
    close_len(m, l, 2);
    close_len(m, e, 2);

    if (s->ech) {
        put16(m, MCD_TLS_EXT_ECH);
        put16(m, (unsigned) s->ech);
        put8(m, 0);                             /* outer */
        putfill(m, 0xec, s->ech - 1);
    }

    if (s->pad) {
        put16(m, 0x0015);
        put16(m, (unsigned) s->pad);
        putfill(m, 0, s->pad);
    }

    close_len(m, ext, 2);
    close_len(m, hs, 3);
}


/*
 * Frames msg into records whose fragments have the sizes in frags;
 * the last record takes the rest.  Returns the bytes written.
 */

static size_t
frame(unsigned char *out, const unsigned char *msg, size_t n,
    const size_t *frags, size_t nfrags)
{
    size_t  o, p, i, f;

    o = 0;
    p = 0;

    for (i = 0; p < n; i++) {
        f = (i < nfrags) ? frags[i] : n - p;
        if (f > n - p) {
            f = n - p;
        }

        out[o++] = 22;
        out[o++] = 3;
        out[o++] = (i == 0) ? 1 : 3;
        out[o++] = (unsigned char) (f >> 8);
        out[o++] = (unsigned char) f;
        memcpy(out + o, msg + p, f);
        o += f;
        p += f;
    }

    return o;
}


/* parses an exact-size heap copy with an exact-size heap scratch */

static int
parse(const unsigned char *buf, size_t len, size_t scratch_size,
    mcd_tls_hello_t *h)
{
    unsigned char  *copy, *scratch;
    int             rc;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    memcpy(copy, buf, len);

    free(scratch_mem);
    scratch_mem = malloc(scratch_size ? scratch_size : 1);
    if (scratch_mem == NULL) {
        abort();
    }

    scratch = scratch_mem;

    rc = mcd_tls_parse_client_hello(copy, len, scratch, scratch_size, h);

    checks++;

    if (rc == OK) {
        if (!(h->records_len > 0 && h->records_len <= len)
            || (h->sni != NULL
                && (h->sni < scratch
                    || h->sni_len > scratch_size
                    || (size_t) (h->sni - scratch)
                       > scratch_size - h->sni_len))
            || (h->alpn != NULL
                && (h->alpn < scratch
                    || h->alpn_len > scratch_size
                    || (size_t) (h->alpn - scratch)
                       > scratch_size - h->alpn_len))
            || (h->has_sni != (h->sni != NULL))
            || h->detail != NULL)
        {
            failed++;
            fprintf(stderr, "test_tls: result out of bounds\n");
        }

    } else if (rc == ERR || rc == TOO_BIG) {
        if (h->detail == NULL || h->sni != NULL || h->alpn != NULL
            || h->records_len != 0)
        {
            failed++;
            fprintf(stderr, "test_tls: error without detail\n");
        }

    } else if (rc == AGAIN || rc == NOT_TLS) {
        if (h->detail != NULL || h->sni != NULL || h->records_len != 0) {
            failed++;
            fprintf(stderr, "test_tls: AGAIN with results\n");
        }

    } else {
        failed++;
        fprintf(stderr, "test_tls: bad rc %d\n", rc);
    }

    free(copy);

    return rc;
}


static int
same_str(const unsigned char *p, size_t n, const char *s)
{
    return p != NULL && strlen(s) == n && memcmp(p, s, n) == 0;
}


static int
want_ok(const mcd_tls_hello_t *h, const hs_want_t *w)
{
    unsigned char  fmt[256];

    if (w->sni) {
        if (!h->has_sni || !same_str(h->sni, h->sni_len, w->sni)) {
            return 0;
        }

    } else if (h->has_sni || h->sni != NULL || h->sni_len != 0) {
        return 0;
    }

    if (w->alpn) {
        if (h->alpn == NULL) {
            return 0;
        }

        mcd_tls_alpn_format(h->alpn, h->alpn_len, fmt, sizeof(fmt));

        if (strcmp((char *) fmt, w->alpn) != 0) {
            return 0;
        }

    } else if (h->alpn != NULL || h->alpn_len != 0) {
        return 0;
    }

    return h->tls13 == w->tls13 && h->ech == w->ech;
}


/*
 * Checks a valid set of records: the whole gives OK with the wanted
 * fields, every prefix gives AGAIN (the caller feeding one byte at a
 * time), and extra bytes after the records change nothing.
 */

static void
check_valid(const char *name, const unsigned char *rec, size_t len,
    size_t records_len, size_t scratch_size, const hs_want_t *w,
    int bytewise)
{
    int               rc;
    size_t            k, bad;
    mcd_tls_hello_t   h;
    static const unsigned char  tail[] = {
        0x14, 0x03, 0x03, 0x00, 0x01, 0x01,     /* ChangeCipherSpec */
        0x17, 0x03, 0x03, 0x00, 0x02, 0xab, 0xcd
    };

    rc = parse(rec, len, scratch_size, &h);
    CHECK(rc == OK, name);

    if (rc != OK) {
        fprintf(stderr, "    %s: rc %d (%s)\n", name, rc,
                h.detail ? h.detail : "-");
        return;
    }

    CHECK(h.records_len == records_len, name);
    CHECK(want_ok(&h, w), name);
    CHECK(h.record_version >> 8 == 3, name);
    CHECK(h.legacy_version == 0x0303, name);

    if (bytewise) {
        bad = 0;

        for (k = 0; k < len; k++) {
            rc = parse(rec, k, scratch_size, &h);

            if (k < records_len ? rc != AGAIN : rc != OK) {
                bad++;

                if (bad == 1) {
                    fprintf(stderr, "    %s: prefix %zu: rc %d (%s)\n",
                            name, k, rc, h.detail ? h.detail : "-");
                }
            }
        }

        CHECK(bad == 0, name);
    }

    memcpy(work, rec, len);
    memcpy(work + len, tail, sizeof(tail));

    rc = parse(work, len + sizeof(tail), scratch_size, &h);
    CHECK(rc == OK && h.records_len == records_len && want_ok(&h, w), name);
}


/* the handshake message inside a single-record hello */

static size_t
msg_of(const unsigned char *rec, size_t len, const unsigned char **msg)
{
    size_t  rlen;

    rlen = (size_t) rec[3] << 8 | rec[4];

    if (len < 5 + rlen) {
        abort();
    }

    *msg = rec + 5;

    return rlen;
}


/*
 * Lists the length fields that the parser must check, in a hello made
 * of one record.  This walk trusts the hello: it is only used on ones
 * known to be valid.
 */

static size_t
collect_fields(const unsigned char *r, size_t len, t_field_t *f)
{
    size_t  n, p, end, ext_end, type, elen, q, qend;

    n = 0;

    f[n].off = 3; f[n].width = 2; f[n++].kind = F_RECORD;
    f[n].off = 6; f[n].width = 3; f[n++].kind = F_HS;

    end = len;
    p = 9 + 34;

    f[n].off = p; f[n].width = 1; f[n++].kind = F_BODY;
    p += 1 + r[p];

    f[n].off = p; f[n].width = 2; f[n++].kind = F_BODY;
    p += 2 + ((size_t) r[p] << 8 | r[p + 1]);

    f[n].off = p; f[n].width = 1; f[n++].kind = F_BODY;
    p += 1 + r[p];

    if (p == end) {
        return n;
    }

    f[n].off = p; f[n].width = 2; f[n++].kind = F_BODY;
    p += 2;
    ext_end = end;

    while (p < ext_end && n < T_FIELDS - 16) {
        type = (size_t) r[p] << 8 | r[p + 1];
        elen = (size_t) r[p + 2] << 8 | r[p + 3];

        f[n].off = p + 2; f[n].width = 2; f[n++].kind = F_BODY;

        q = p + 4;
        qend = q + elen;

        if (type == 0x0000) {
            f[n].off = q; f[n].width = 2; f[n++].kind = F_BODY;

            for (q += 2; q < qend; q += 3 + ((size_t) r[q + 1] << 8
                                             | r[q + 2]))
            {
                f[n].off = q + 1; f[n].width = 2; f[n++].kind = F_BODY;
            }

        } else if (type == 0x0010) {
            f[n].off = q; f[n].width = 2; f[n++].kind = F_BODY;

            for (q += 2; q < qend; q += 1 + r[q]) {
                f[n].off = q; f[n].width = 1; f[n++].kind = F_BODY;
            }

        } else if (type == 0x002b) {
            f[n].off = q; f[n].width = 1; f[n++].kind = F_BODY;
        }

        p = qend;
    }

    return n;
}


static void
add_to_field(unsigned char *p, size_t width, int delta)
{
    size_t  v, i, mask;

    v = 0;

    for (i = 0; i < width; i++) {
        v = v << 8 | p[i];
    }

    mask = ((size_t) 1 << (8 * width)) - 1;
    v = (v + (size_t) (long) delta) & mask;

    for (i = 0; i < width; i++) {
        p[width - 1 - i] = (unsigned char) (v >> (8 * i));
    }
}


/*
 * Every length field of a valid hello, off by one in both directions:
 * never OK, never a crash; and the answers for prefixes agree.
 */

static void
check_length_fields(const char *name, const unsigned char *rec, size_t len)
{
    int              rc, prc, delta;
    size_t           nf, i, k, step;
    t_field_t        fields[T_FIELDS];
    mcd_tls_hello_t  h;

    nf = collect_fields(rec, len, fields);

    CHECK(nf >= 6, name);

    step = len > 600 ? 7 : 1;

    for (i = 0; i < nf; i++) {
        for (delta = -1; delta <= 1; delta += 2) {
            memcpy(work, rec, len);
            add_to_field(work + fields[i].off, fields[i].width, delta);

            rc = parse(work, len, T_SCRATCH, &h);

            switch (fields[i].kind) {

            case F_RECORD:
                /* the record now ends early or late: never accepted */
                CHECK(rc == AGAIN || rc == ERR, name);
                break;

            case F_HS:
                CHECK(delta > 0 ? rc == AGAIN : rc == ERR, name);
                break;

            default:
                CHECK(rc == ERR, name);
                break;
            }

            if (fields[i].kind != F_RECORD
                && !(fields[i].kind == F_HS && delta > 0) && rc != ERR)
            {
                fprintf(stderr, "    %s: field at %zu %+d: rc %d\n",
                        name, fields[i].off, delta, rc);
            }

            for (k = 0; k < len; k += step) {
                prc = parse(work, k, T_SCRATCH, &h);
                CHECK(prc == AGAIN || prc == rc, name);
            }
        }
    }
}


/*
 * The body cut at every offset, with the record and handshake lengths
 * made to match: an error, except where the cut leaves a valid hello
 * (right after the compression methods: a hello without extensions).
 */

static void
check_cut_bodies(const char *name, const unsigned char *rec, size_t len)
{
    int              rc;
    size_t           blen, k, no_ext, p, bad;
    mcd_tls_hello_t  h;

    blen = len - 9;

    p = 9 + 34;
    p += 1 + rec[p];
    p += 2 + ((size_t) rec[p] << 8 | rec[p + 1]);
    p += 1 + rec[p];
    no_ext = p - 9;

    bad = 0;

    for (k = 0; k < blen; k++) {
        memcpy(work, rec, 9 + k);
        work[3] = (unsigned char) ((k + 4) >> 8);
        work[4] = (unsigned char) (k + 4);
        work[6] = 0;
        work[7] = (unsigned char) (k >> 8);
        work[8] = (unsigned char) k;

        /* a scratch of the exact size lets ASan and valgrind see overreads */

        rc = parse(work, 9 + k, 4 + k, &h);

        if (k == no_ext ? (rc != OK || h.has_sni) : rc != ERR) {
            if (bad++ == 0) {
                fprintf(stderr, "    %s: body cut at %zu: rc %d\n",
                        name, k, rc);
            }
        }
    }

    CHECK(bad == 0, name);
}


/* the hello re-framed into 2 and 3 records, split at many places */

static void
check_reframed(const char *name, const unsigned char *rec, size_t len,
    const hs_want_t *w)
{
    size_t                i, j, n, mlen, frags[3];
    unsigned char        *out;
    const unsigned char  *msg;

    mlen = msg_of(rec, len, &msg);

    out = malloc(mlen + 5 * 4);
    if (out == NULL) {
        abort();
    }

    /* two records, every split point; fed byte by byte at a few */

    for (i = 1; i < mlen; i++) {
        frags[0] = i;
        n = frame(out, msg, mlen, frags, 1);

        CHECK(n == len + 5, name);

        check_valid(name, out, n, n, T_SCRATCH, w,
                    i <= 5 || i == mlen / 2 || i == mlen - 1);
    }

    /* three records */

    for (i = 1; i < mlen - 1; i += (i < 6) ? 1 : 37) {
        for (j = 1; i + j < mlen; j += (j < 6) ? 1 : 41) {
            frags[0] = i;
            frags[1] = j;
            n = frame(out, msg, mlen, frags, 2);

            CHECK(n == len + 10, name);

            check_valid(name, out, n, n, T_SCRATCH, w,
                        (i == 1 && j == 2) || (i == 3 && j == mlen / 2)
                        || (i == mlen / 2 && i + j == mlen - 1));
        }
    }

    free(out);
}


static void
check_scratch_limit(const char *name, const unsigned char *rec, size_t len)
{
    int              rc;
    size_t           mlen, k;
    mcd_tls_hello_t  h;

    mlen = ((size_t) rec[6] << 16 | (size_t) rec[7] << 8 | rec[8]) + 4;

    rc = parse(rec, len, mlen, &h);
    CHECK(rc == OK, name);

    rc = parse(rec, len, mlen - 1, &h);
    CHECK(rc == TOO_BIG && h.detail != NULL, name);

    /* known as soon as the handshake header is there */

    for (k = 0; k < 9; k++) {
        rc = parse(rec, k, mlen - 1, &h);
        CHECK(rc == AGAIN, name);
    }

    rc = parse(rec, 9, mlen - 1, &h);
    CHECK(rc == TOO_BIG, name);

    rc = parse(rec, len, 3, &h);
    CHECK(rc == TOO_BIG, name);

    rc = mcd_tls_parse_client_hello(rec, len, NULL, 0, &h);
    CHECK(rc == TOO_BIG, name);
}


static void
test_real_hellos(void)
{
    size_t  i;

    static const struct {
        const char           *name;
        const unsigned char  *rec;
        size_t                len;
        hs_want_t             want;
    } real[] = {
        { "openssl sni", hello_sni, sizeof(hello_sni),
          { "example.com", NULL, 1, 0 } },
        { "openssl sni+alpn", hello_sni_alpn, sizeof(hello_sni_alpn),
          { "example.com", "h2,http/1.1", 1, 0 } },
        { "openssl no sni", hello_nosni, sizeof(hello_nosni),
          { NULL, NULL, 1, 0 } },
        { "openssl tls1.2", hello_tls12, sizeof(hello_tls12),
          { "example.com", NULL, 0, 0 } },
        { "openssl ffdhe8192", hello_ffdhe8192, sizeof(hello_ffdhe8192),
          { "big.example.com", "h2,http/1.1", 1, 0 } },
    };

    for (i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
        check_valid(real[i].name, real[i].rec, real[i].len, real[i].len,
                    T_SCRATCH, &real[i].want, 1);
        check_reframed(real[i].name, real[i].rec, real[i].len,
                       &real[i].want);
        check_length_fields(real[i].name, real[i].rec, real[i].len);
        check_cut_bodies(real[i].name, real[i].rec, real[i].len);
        check_scratch_limit(real[i].name, real[i].rec, real[i].len);
    }
}


static void
test_synthetic(void)
{
    int              rc;
    size_t           n, k, frags[4];
    tb_t             m;
    hs_spec_t        s;
    hs_want_t        w;
    mcd_tls_hello_t  h;
    unsigned char   *out;

    tb_init(&m, 70000);

    out = malloc(T_BUF_MAX);
    if (out == NULL) {
        abort();
    }

    /* a 3 KiB post-quantum hello, one record, then 1 KiB records */

    memset(&s, 0, sizeof(s));
    s.sni = "pq.example.net";
    s.alpn = "h2,http/1.1";
    s.pq = 1;
    s.tls13 = 1;
    build_msg(&m, &s);

    CHECK(m.n > 3000 && m.n < 3300, "pq size");

    w.sni = "pq.example.net";
    w.alpn = "h2,http/1.1";
    w.tls13 = 1;
    w.ech = 0;

    n = frame(out, m.b, m.n, NULL, 0);
    check_valid("pq one record", out, n, n, T_SCRATCH, &w, 1);
    check_length_fields("pq one record", out, n);
    check_scratch_limit("pq one record", out, n);

    frags[0] = 1024;
    frags[1] = 1024;
    n = frame(out, m.b, m.n, frags, 2);
    check_valid("pq three records", out, n, n, T_SCRATCH, &w, 1);

    rc = parse(out, n, 2048, &h);
    CHECK(rc == TOO_BIG, "pq with a 2 KiB scratch");

    /* the handshake header itself split over 1-byte records */

    frags[0] = 1;
    frags[1] = 1;
    frags[2] = 1;
    frags[3] = 1;
    n = frame(out, m.b, m.n, frags, 4);
    check_valid("pq header in 1-byte records", out, n, n, T_SCRATCH, &w, 1);

    /* ECH: the outer SNI is the public name */

    memset(&s, 0, sizeof(s));
    s.sni = "public.example.org";
    s.ech = 200;
    s.tls13 = 1;
    build_msg(&m, &s);

    w.sni = "public.example.org";
    w.alpn = NULL;
    w.tls13 = 1;
    w.ech = 1;

    n = frame(out, m.b, m.n, NULL, 0);
    check_valid("ech", out, n, n, T_SCRATCH, &w, 1);
    check_length_fields("ech", out, n);

    /* no extensions at all */

    memset(&s, 0, sizeof(s));
    s.no_ext = 1;
    build_msg(&m, &s);

    w.sni = NULL;
    w.alpn = NULL;
    w.tls13 = 0;
    w.ech = 0;

    n = frame(out, m.b, m.n, NULL, 0);
    check_valid("no extensions", out, n, n, T_SCRATCH, &w, 1);

    /* a hello over 16 KiB in two records, larger scratch */

    memset(&s, 0, sizeof(s));
    s.sni = "a.example";
    s.tls13 = 1;
    s.pad = 16400;
    build_msg(&m, &s);

    w.sni = "a.example";
    w.alpn = NULL;
    w.tls13 = 1;
    w.ech = 0;

    frags[0] = 16384;
    n = frame(out, m.b, m.n, frags, 1);
    check_valid("16 KiB", out, n, n, 32768, &w, 0);

    rc = parse(out, n, T_SCRATCH, &h);
    CHECK(rc == TOO_BIG, "over 16 KiB with 16 KiB scratch");

    for (k = 0; k < n; k += 97) {
        rc = parse(out, k, 32768, &h);
        CHECK(rc == AGAIN, "16 KiB prefix");
    }

    /* a 60 KiB hello (just below the 16-bit extensions limit) */

    s.pad = 61000;
    build_msg(&m, &s);

    n = 0;
    for (k = 0; k < m.n; k += 16384) {
        frags[0] = m.n - k < 16384 ? m.n - k : 16384;
        n += frame(out + n, m.b + k, frags[0], NULL, 0);
    }

    check_valid("60 KiB", out, n, n, 65536, &w, 0);

    rc = parse(out, n, 60000, &h);
    CHECK(rc == TOO_BIG, "60 KiB with 60000 scratch");

    free(out);
    tb_free(&m);
}


/* small hand-made hellos for the individual rules */

static size_t
mini_hello(unsigned char *out, const unsigned char *ext, size_t ext_len)
{
    tb_t    m;
    size_t  hs, e, n;

    tb_init(&m, 70000);

    put8(&m, 1);
    hs = open_len(&m, 3);
    put16(&m, 0x0303);
    putfill(&m, 0, 32);
    put8(&m, 0);
    put16(&m, 2);
    put16(&m, 0x1301);
    put8(&m, 1);
    put8(&m, 0);
    e = open_len(&m, 2);
    putmem(&m, ext, ext_len);
    close_len(&m, e, 2);
    close_len(&m, hs, 3);

    n = frame(out, m.b, m.n, NULL, 0);

    tb_free(&m);

    return n;
}


typedef struct {
    const char  *name;
    const char  *ext;        /* extensions, as raw bytes */
    size_t       ext_len;
    int          rc;
    const char  *sni;
    const char  *alpn;       /* formatted */
    unsigned     tls13;
} ext_case_t;


#define E(s)  s, sizeof(s) - 1

static const ext_case_t  ext_cases[] = {

    { "empty block", E(""), OK, NULL, NULL, 0 },
    { "sni", E("\0\0\0\x0a\0\x08\0\0\x05hello"), OK, "hello", NULL, 0 },
    { "sni one byte", E("\0\0\0\x06\0\x04\0\0\x01x"), OK, "x", NULL, 0 },
    { "sni utf-8 raw", E("\0\0\0\x07\0\x05\0\0\x02\xc3\xa9"),
      OK, "\xc3\xa9", NULL, 0 },
    { "sni then other type",
      E("\0\0\0\x0c\0\x0a\0\0\x01x\x01\0\x03" "abc"), OK, "x", NULL, 0 },
    { "other type only", E("\0\0\0\x08\0\x06\x01\0\x03" "abc"),
      OK, NULL, NULL, 0 },
    { "sni empty ext", E("\0\0\0\0"), ERR, NULL, NULL, 0 },
    { "sni one byte ext", E("\0\0\0\x01\0"), ERR, NULL, NULL, 0 },
    { "sni empty list", E("\0\0\0\x02\0\0"), ERR, NULL, NULL, 0 },
    { "sni list short", E("\0\0\0\x06\0\x03\0\0\x01x"), ERR, NULL, NULL, 0 },
    { "sni list long", E("\0\0\0\x06\0\x05\0\0\x01x"), ERR, NULL, NULL, 0 },
    { "sni entry cut", E("\0\0\0\x04\0\x02\0\0"), ERR, NULL, NULL, 0 },
    { "sni name long", E("\0\0\0\x06\0\x04\0\0\x02x"), ERR, NULL, NULL, 0 },
    { "sni name short", E("\0\0\0\x07\0\x05\0\0\x01xy"),
      ERR, NULL, NULL, 0 },
    { "sni name empty", E("\0\0\0\x05\0\x03\0\0\0"), ERR, NULL, NULL, 0 },
    { "sni two names", E("\0\0\0\x0a\0\x08\0\0\x01x\0\0\x01y"),
      ERR, NULL, NULL, 0 },
    { "sni NUL", E("\0\0\0\x08\0\x06\0\0\x03" "a\0b"), ERR, NULL, NULL, 0 },
    { "sni trailing NUL", E("\0\0\0\x07\0\x05\0\0\x02" "a\0"),
      ERR, NULL, NULL, 0 },
    { "sni twice",
      E("\0\0\0\x06\0\x04\0\0\x01x\0\0\0\x06\0\x04\0\0\x01y"),
      ERR, NULL, NULL, 0 },

    { "alpn", E("\0\x10\0\x0e\0\x0c\x02h2\x08http/1.1"),
      OK, NULL, "h2,http/1.1", 0 },
    { "alpn one", E("\0\x10\0\x04\0\x02\x01x"), OK, NULL, "x", 0 },
    { "alpn odd bytes", E("\0\x10\0\x08\0\x06\x02\x01,\x02\\a"),
      OK, NULL, "\\x01\\x2c,\\x5ca", 0 },
    { "alpn empty ext", E("\0\x10\0\0"), ERR, NULL, NULL, 0 },
    { "alpn empty list", E("\0\x10\0\x02\0\0"), ERR, NULL, NULL, 0 },
    { "alpn list of 1", E("\0\x10\0\x03\0\x01\x01"), ERR, NULL, NULL, 0 },
    { "alpn empty name", E("\0\x10\0\x04\0\x02\0x"), ERR, NULL, NULL, 0 },
    { "alpn empty second", E("\0\x10\0\x05\0\x03\x01x\0"),
      ERR, NULL, NULL, 0 },
    { "alpn name long", E("\0\x10\0\x04\0\x02\x02x"), ERR, NULL, NULL, 0 },
    { "alpn list short", E("\0\x10\0\x05\0\x02\x02xy"),
      ERR, NULL, NULL, 0 },
    { "alpn list long", E("\0\x10\0\x05\0\x04\x02xy"), ERR, NULL, NULL, 0 },
    { "alpn twice", E("\0\x10\0\x04\0\x02\x01x\0\x10\0\x04\0\x02\x01y"),
      ERR, NULL, NULL, 0 },

    { "versions 1.3", E("\0\x2b\0\x03\x02\x03\x04"), OK, NULL, NULL, 1 },
    { "versions 1.2", E("\0\x2b\0\x05\x04\x03\x03\x03\x02"),
      OK, NULL, NULL, 0 },
    { "versions grease", E("\0\x2b\0\x05\x04\x7a\x7a\x03\x04"),
      OK, NULL, NULL, 1 },
    { "versions empty ext", E("\0\x2b\0\0"), ERR, NULL, NULL, 0 },
    { "versions empty list", E("\0\x2b\0\x01\0"), ERR, NULL, NULL, 0 },
    { "versions odd", E("\0\x2b\0\x04\x03\x03\x04\x03"),
      ERR, NULL, NULL, 0 },
    { "versions short", E("\0\x2b\0\x03\x01\x03\x04"), ERR, NULL, NULL, 0 },
    { "versions long", E("\0\x2b\0\x03\x04\x03\x04"), ERR, NULL, NULL, 0 },

    { "ech empty", E("\xfe\x0d\0\0"), OK, NULL, NULL, 0 },
    { "unknown", E("\x12\x34\0\x02" "ab"), OK, NULL, NULL, 0 },
    { "unknown twice", E("\x12\x34\0\0\x12\x34\0\0"), ERR, NULL, NULL, 0 },
    { "0xffff twice", E("\xff\xff\0\0\xff\xff\0\0"), ERR, NULL, NULL, 0 },
    { "ext header cut", E("\x12\x34\0"), ERR, NULL, NULL, 0 },
    { "ext header cut 1", E("\x12"), ERR, NULL, NULL, 0 },
    { "ext data long", E("\x12\x34\0\x03" "ab"), ERR, NULL, NULL, 0 },
    { "ext data short", E("\x12\x34\0\x01" "ab"), ERR, NULL, NULL, 0 },

    { NULL, NULL, 0, 0, NULL, NULL, 0 }
};


static void
test_extensions(void)
{
    int              rc;
    size_t           i, n;
    unsigned char    rec[512];
    hs_want_t        w;
    mcd_tls_hello_t  h;

    for (i = 0; ext_cases[i].name != NULL; i++) {
        n = mini_hello(rec, (const unsigned char *) ext_cases[i].ext,
                       ext_cases[i].ext_len);

        rc = parse(rec, n, T_SCRATCH, &h);

        CHECK(rc == ext_cases[i].rc, ext_cases[i].name);

        if (rc != ext_cases[i].rc) {
            fprintf(stderr, "    %s: rc %d (%s)\n", ext_cases[i].name, rc,
                    h.detail ? h.detail : "-");
            continue;
        }

        if (rc == OK) {
            w.sni = ext_cases[i].sni;
            w.alpn = ext_cases[i].alpn;
            w.tls13 = ext_cases[i].tls13;
            w.ech = (ext_cases[i].ext[0] == '\xfe');

            CHECK(want_ok(&h, &w), ext_cases[i].name);
            check_valid(ext_cases[i].name, rec, n, n, T_SCRATCH, &w, 1);
        }
    }
}


/* record layer and fixed fields */

static void
test_records(void)
{
    int              rc;
    size_t           n, base, k, frags[2];
    tb_t             m;
    hs_spec_t        s;
    hs_want_t        w;
    mcd_tls_hello_t  h;
    unsigned char    rec[600], *big;

    static const unsigned char  http[] = "GET / HTTP/1.1\r\n";
    static const unsigned char  sslv2[] = { 0x80, 0x2e, 0x01, 0x03, 0x01 };

    /* the first bytes */

    rc = parse(http, 0, T_SCRATCH, &h);
    CHECK(rc == AGAIN, "empty");

    rc = mcd_tls_parse_client_hello(NULL, 0, NULL, 0, &h);
    CHECK(rc == AGAIN, "NULL and empty");

    rc = parse(http, 1, T_SCRATCH, &h);
    CHECK(rc == NOT_TLS, "http, one byte");

    rc = parse(sslv2, sizeof(sslv2), T_SCRATCH, &h);
    CHECK(rc == NOT_TLS, "sslv2");

    rc = parse((const unsigned char *) "\x15\x03\x03", 3, T_SCRATCH, &h);
    CHECK(rc == NOT_TLS, "alert record");

    rc = parse((const unsigned char *) "\x17", 1, T_SCRATCH, &h);
    CHECK(rc == NOT_TLS, "application data");

    rc = parse((const unsigned char *) "\x16", 1, T_SCRATCH, &h);
    CHECK(rc == AGAIN, "0x16 alone");

    rc = parse((const unsigned char *) "\x16\x02", 2, T_SCRATCH, &h);
    CHECK(rc == NOT_TLS, "version 2");

    rc = parse((const unsigned char *) "\x16\x03", 2, T_SCRATCH, &h);
    CHECK(rc == AGAIN, "0x16 0x03");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00", 4, T_SCRATCH, &h);
    CHECK(rc == AGAIN, "four bytes");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x00", 5,
               T_SCRATCH, &h);
    CHECK(rc == ERR, "empty record");

    rc = parse((const unsigned char *) "\x16\x03\x01\x48\x01", 5,
               T_SCRATCH, &h);
    CHECK(rc == ERR, "record too long");

    rc = parse((const unsigned char *) "\x16\x03\x01\x48\x00", 5,
               T_SCRATCH, &h);
    CHECK(rc == AGAIN, "record of 18432");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x04\x02", 6,
               T_SCRATCH, &h);
    CHECK(rc == ERR, "ServerHello, seen from its first byte");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x01\x01\x16\x03", 8,
               T_SCRATCH, &h);
    CHECK(rc == AGAIN, "1-byte record");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x01\x01\x17", 7,
               T_SCRATCH, &h);
    CHECK(rc == ERR, "application data in the middle");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x01\x01\x16\x02", 8,
               T_SCRATCH, &h);
    CHECK(rc == ERR, "bad version in the second record");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x01\x01\x16\x03\x01"
               "\x00\x00", 11, T_SCRATCH, &h);
    CHECK(rc == ERR, "empty second record");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x04\x01\x00\x00\x00",
               9, T_SCRATCH, &h);
    CHECK(rc == ERR, "empty ClientHello");

    rc = parse((const unsigned char *) "\x16\x03\x01\x00\x04\x01\xff\xff\xff",
               9, T_SCRATCH, &h);
    CHECK(rc == TOO_BIG, "16 MiB ClientHello");

    /* a base hello to vary */

    tb_init(&m, 70000);
    memset(&s, 0, sizeof(s));
    s.sni = "example.com";
    s.alpn = "h2";
    s.tls13 = 1;
    build_msg(&m, &s);

    w.sni = "example.com";
    w.alpn = "h2";
    w.tls13 = 1;
    w.ech = 0;

    base = frame(rec, m.b, m.n, NULL, 0);
    check_valid("base", rec, base, base, T_SCRATCH, &w, 1);

    /* record versions 3.0 to 3.4 and odd minors are all accepted */

    for (k = 0; k < 256; k += 51) {
        rec[2] = (unsigned char) k;
        rc = parse(rec, base, T_SCRATCH, &h);
        CHECK(rc == OK && h.record_version == (0x0300 | k), "record minor");
    }

    rec[2] = 1;

    /* application data after the first record of two */

    frags[0] = 10;
    n = frame(rec, m.b, m.n, frags, 1);
    rec[15] = 23;
    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "application data record before the end");

    rec[15] = 20;
    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "ChangeCipherSpec before the end");

    rec[15] = 21;
    rc = parse(rec, 16, T_SCRATCH, &h);
    CHECK(rc == ERR, "alert before the end, seen at once");

    /* a second handshake message in the last record is ignored */

    memcpy(rec + 5, m.b, m.n);
    memcpy(rec + 5 + m.n, "\x0f\x00\x00\x02\xaa\xbb", 6);
    rec[0] = 22;
    rec[1] = 3;
    rec[2] = 1;
    rec[3] = (unsigned char) ((m.n + 6) >> 8);
    rec[4] = (unsigned char) (m.n + 6);
    n = m.n + 11;
    check_valid("trailing handshake bytes", rec, n, n, T_SCRATCH, &w, 1);

    rc = parse(rec, n, m.n, &h);
    CHECK(rc == OK && h.records_len == n, "trailing bytes not in scratch");

    /* a whole record of 18432 bytes carrying a small hello */

    big = malloc(18432 + 5 + 16);
    if (big == NULL) {
        abort();
    }

    memset(big, 0xee, 18432 + 5 + 16);
    big[0] = 22;
    big[1] = 3;
    big[2] = 3;
    big[3] = 0x48;
    big[4] = 0x00;
    memcpy(big + 5, m.b, m.n);
    check_valid("max record", big, 18437, 18437, T_SCRATCH, &w, 0);

    rc = parse(big, 18436, T_SCRATCH, &h);
    CHECK(rc == AGAIN, "max record, one byte short");

    free(big);

    /* fixed fields of the body */

    n = frame(rec, m.b, m.n, NULL, 0);

    rec[9] = 2;
    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "legacy_version 2.3");
    rec[9] = 3;

    rec[10] = 0;
    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == OK && h.legacy_version == 0x0300, "legacy_version 3.0");
    rec[10] = 3;

    /* a session_id of 33 bytes with all lengths made to match */

    m.n = 0;
    put8(&m, 1);
    k = open_len(&m, 3);
    put16(&m, 0x0303);
    putfill(&m, 0, 32);
    put8(&m, 33);
    putfill(&m, 0, 33);
    put16(&m, 2);
    put16(&m, 0x1301);
    put8(&m, 1);
    put8(&m, 0);
    close_len(&m, k, 3);
    n = frame(rec, m.b, m.n, NULL, 0);

    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "session_id of 33");

    /* empty and odd cipher_suites, no compression methods */

    m.n = 0;
    put8(&m, 1);
    k = open_len(&m, 3);
    put16(&m, 0x0303);
    putfill(&m, 0, 32);
    put8(&m, 0);
    put16(&m, 0);
    put8(&m, 1);
    put8(&m, 0);
    close_len(&m, k, 3);
    n = frame(rec, m.b, m.n, NULL, 0);

    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "no cipher suites");

    m.n = 0;
    put8(&m, 1);
    k = open_len(&m, 3);
    put16(&m, 0x0303);
    putfill(&m, 0, 32);
    put8(&m, 0);
    put16(&m, 3);
    putfill(&m, 0x13, 3);
    put8(&m, 1);
    put8(&m, 0);
    close_len(&m, k, 3);
    n = frame(rec, m.b, m.n, NULL, 0);

    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "odd cipher suites");

    m.n = 0;
    put8(&m, 1);
    k = open_len(&m, 3);
    put16(&m, 0x0303);
    putfill(&m, 0, 32);
    put8(&m, 32);
    putfill(&m, 0, 32);
    put16(&m, 2);
    put16(&m, 0x1301);
    put8(&m, 0);
    close_len(&m, k, 3);
    n = frame(rec, m.b, m.n, NULL, 0);

    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "no compression methods");

    /* one stray byte where the extensions length would be */

    m.n = 0;
    put8(&m, 1);
    k = open_len(&m, 3);
    put16(&m, 0x0303);
    putfill(&m, 0, 32);
    put8(&m, 0);
    put16(&m, 2);
    put16(&m, 0x1301);
    put8(&m, 2);
    put16(&m, 0x0100);
    put8(&m, 0);
    close_len(&m, k, 3);
    n = frame(rec, m.b, m.n, NULL, 0);

    rc = parse(rec, n, T_SCRATCH, &h);
    CHECK(rc == ERR, "one byte for the extensions length");

    tb_free(&m);
}


static void
test_alpn_format(void)
{
    size_t          n, k, i;
    unsigned char   out[64];

    static const unsigned char  list[] = "\x02h2\x08http/1.1";
    static const unsigned char  odd[] = "\x03\x00,\\\x01\xff";
    static const char          *h2_cut[] = {
        "", "", "h", "h2", "h2", "h2,h", "h2,ht", "h2,htt", "h2,http",
        "h2,http/", "h2,http/1", "h2,http/1.", "h2,http/1.1", "h2,http/1.1"
    };

    n = mcd_tls_alpn_format(list, sizeof(list) - 1, out, sizeof(out));
    CHECK(n == 11 && strcmp((char *) out, "h2,http/1.1") == 0, "alpn h2");

    n = mcd_tls_alpn_format(odd, sizeof(odd) - 1, out, sizeof(out));
    CHECK(n == 17 && strcmp((char *) out, "\\x00\\x2c\\x5c,\\xff") == 0,
          "alpn escapes");

    n = mcd_tls_alpn_format(NULL, 0, out, sizeof(out));
    CHECK(n == 0 && out[0] == '\0', "alpn none");

    out[0] = 'x';
    n = mcd_tls_alpn_format(list, sizeof(list) - 1, out, 0);
    CHECK(n == 0 && out[0] == 'x', "alpn no room at all");

    n = mcd_tls_alpn_format(list, sizeof(list) - 1, NULL, 10);
    CHECK(n == 0, "alpn NULL out");

    /* truncation keeps whole characters and escapes */

    for (k = 0; k < sizeof(h2_cut) / sizeof(h2_cut[0]); k++) {
        memset(out, 0x7e, sizeof(out));
        n = mcd_tls_alpn_format(list, sizeof(list) - 1, out, k);

        if (k == 0) {
            CHECK(n == 0 && out[0] == 0x7e, "alpn cut 0");
            continue;
        }

        CHECK(n == strlen(h2_cut[k]) && strcmp((char *) out, h2_cut[k]) == 0
              && n < k && out[k] == 0x7e, "alpn cut");
    }

    for (k = 1; k < 20; k++) {
        memset(out, 0x7e, sizeof(out));
        n = mcd_tls_alpn_format(odd, sizeof(odd) - 1, out, k);

        CHECK(n < k && out[n] == '\0' && out[k] == 0x7e, "alpn odd cut");

        /* never a broken escape */
        for (i = 0; i < n; i++) {
            if (out[i] == '\\') {
                CHECK(i + 3 < n, "alpn whole escapes");
            }
        }
    }

    /* a malformed list stops at the bad name */

    n = mcd_tls_alpn_format((const unsigned char *) "\x02h2\x09http", 8,
                            out, sizeof(out));
    CHECK(n == 2 && strcmp((char *) out, "h2") == 0, "alpn malformed");

    /* the largest list: 255-byte names, escaped, into a small buffer */
    {
        unsigned char  big[2 + 2 * 256], wide[4 * 512 + 8];

        big[0] = 255;
        memset(big + 1, 0xff, 255);
        big[256] = 255;
        memset(big + 257, 'a', 255);

        n = mcd_tls_alpn_format(big, 512, wide, sizeof(wide));
        CHECK(n == 4 * 255 + 1 + 255 && wide[n] == '\0', "alpn wide");

        n = mcd_tls_alpn_format(big, 512, out, sizeof(out));
        CHECK(n == 60 && out[60] == '\0', "alpn wide cut");
    }
}


static void
test_alert(void)
{
    size_t         n;
    unsigned char  out[8];

    static const unsigned char  want[] = { 21, 3, 3, 0, 2, 2, 50 };

    memset(out, 0xaa, sizeof(out));
    n = mcd_tls_alert(out, MCD_TLS_ALERT_DECODE_ERROR);

    CHECK(n == 7 && memcmp(out, want, 7) == 0 && out[7] == 0xaa, "alert");

    n = mcd_tls_alert(out, MCD_TLS_ALERT_UNRECOGNIZED_NAME);
    CHECK(n == MCD_TLS_ALERT_LEN && out[6] == 112, "alert 112");

    n = mcd_tls_alert(out, MCD_TLS_ALERT_ACCESS_DENIED);
    CHECK(out[6] == 49 && out[5] == 2, "alert 49");
}


/*
 * mcd_tls_hello_need() and the record limit on a framing of a valid
 * hello whose records end at ends[0 .. nrec), the stream being n bytes
 * (perhaps more than the records): every prefix is parsed, and need()
 * must be > the prefix while the parser says AGAIN, never decrease,
 * stay the same until that many bytes are there, and be exactly the
 * next record header's end or record's end.
 */

static void
check_need(const char *name, const unsigned char *rec, size_t n,
    const size_t *ends, size_t nrec)
{
    int              rc;
    size_t           k, nd, prev, want, r, bad, done_at;
    mcd_tls_hello_t  h;

    bad = 0;
    prev = 0;

    /* where the parser's answer is final: the hello's end, or record 16 */

    done_at = (nrec <= MCD_TLS_MAX_RECORDS) ? ends[nrec - 1]
                                            : ends[MCD_TLS_MAX_RECORDS - 1];

    for (k = 0; k <= n; k++) {
        rc = parse(rec, k, T_SCRATCH, &h);
        nd = mcd_tls_hello_need(rec, k);

        /* the expected value, from the framing */

        want = 5;

        for (r = 0; r < nrec; r++) {
            if (k < ends[r]) {
                want = (k < (r ? ends[r - 1] : 0) + 5)
                       ? (r ? ends[r - 1] : 0) + 5 : ends[r];
                break;
            }

            want = ends[r] + 5;
        }

        if (k >= done_at) {
            want = (nrec <= MCD_TLS_MAX_RECORDS) ? ends[nrec - 1] : 0;
        }

        if (k < done_at) {
            if (rc != AGAIN || nd <= k || nd < prev || nd != want
                || (k < prev && nd != prev))
            {
                if (bad++ == 0) {
                    fprintf(stderr, "    %s: prefix %zu: rc %d, need %zu, "
                            "want %zu, before %zu\n", name, k, rc, nd, want,
                            prev);
                }
            }

        } else if (nrec <= MCD_TLS_MAX_RECORDS) {
            if (rc != OK || h.records_len != ends[nrec - 1] || nd != want) {
                if (bad++ == 0) {
                    fprintf(stderr, "    %s: prefix %zu: rc %d, need %zu\n",
                            name, k, rc, nd);
                }
            }

        } else {
            if (rc != ERR || nd != 0
                || strcmp(h.detail, "ClientHello in too many records") != 0)
            {
                if (bad++ == 0) {
                    fprintf(stderr, "    %s: prefix %zu: rc %d, need %zu\n",
                            name, k, rc, nd);
                }
            }
        }

        prev = nd;
    }

    CHECK(bad == 0, name);
}


/* msg cut into records of the sizes frags[0 .. nfrags), then checked */

static void
check_need_framing(const char *name, const unsigned char *msg, size_t mlen,
    const size_t *frags, size_t nfrags, const unsigned char *tail,
    size_t tail_len)
{
    size_t          n, i, p, f, nrec, ends[4096];
    unsigned char  *out;

    out = malloc(mlen + 5 * (mlen + nfrags + 1) + tail_len);
    if (out == NULL) {
        abort();
    }

    n = frame(out, msg, mlen, frags, nfrags);

    /* the record ends, as frame() cut them */

    nrec = 0;

    for (i = 0, p = 0, f = 0; p < mlen; i++) {
        f = (i < nfrags) ? frags[i] : mlen - p;
        if (f > mlen - p) {
            f = mlen - p;
        }

        p += f;
        ends[nrec] = (nrec ? ends[nrec - 1] : 0) + 5 + f;
        nrec++;
    }

    CHECK(ends[nrec - 1] == n, name);

    memcpy(out + n, tail, tail_len);

    check_need(name, out, n + tail_len, ends, nrec);

    free(out);
}


static void
test_need(void)
{
    size_t                i, k, mlen, q, frags[40];
    char                  name[64];
    const unsigned char  *msg;

    static const unsigned char  ccs[] = {
        0x14, 0x03, 0x03, 0x00, 0x01, 0x01
    };

    static const struct {
        const char  *in;
        size_t       len;
        size_t       need;
    } fixed[] = {
        { "", 0, 5 },
        { "\x16", 1, 5 },
        { "\x16\x03", 2, 5 },
        { "\x16\x03\x01\x00", 4, 5 },
        { "\x16\x03\x01\x00\x05", 5, 10 },
        { "\x16\x03\x01\x00\x05\x01\x00", 7, 10 },
        { "\x16\x03\x01\x48\x00", 5, 18437 },
        { "\x16\x03\x01\x00\x01\x01", 6, 11 },
        { "\x16\x03\x01\x00\x01\x01\x16\x03\x03\x00", 10, 11 },
        { "\x16\x03\x01\x00\x01\x01\x16\x03\x03\x00\x02\x00", 12, 13 },
        { "\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9, 9 },
        { "\x16\x03\x01\x00\x04\x01\x00\x00\x01", 9, 14 },
        { "\x16\x03\x01\x00\x04\x01\xff\xff\xff", 9, 14 },
        { "\x17", 1, 0 },
        { "\x15\x03\x03", 3, 0 },
        { "\x80\x2e\x01\x03\x01", 5, 0 },
        { "\x16\x02", 2, 0 },
        { "\x16\x03\x01\x00\x00", 5, 0 },
        { "\x16\x03\x01\x48\x01", 5, 0 },
        { "\x16\x03\x01\x00\x01\x02", 6, 0 },
        { "\x16\x03\x01\x00\x01\x01\x17", 7, 0 },
        { "\x16\x03\x01\x00\x01\x01\x16\x02", 8, 0 },
        { "\x16\x03\x01\x00\x01\x01\x16\x03\x01\x00\x00", 11, 0 },
    };

    static const struct {
        const char           *name;
        const unsigned char  *rec;
        size_t                len;
    } real[] = {
        { "sni", hello_sni, sizeof(hello_sni) },
        { "tls12", hello_tls12, sizeof(hello_tls12) },
        { "ffdhe8192", hello_ffdhe8192, sizeof(hello_ffdhe8192) },
    };

    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        CHECK(mcd_tls_hello_need((const unsigned char *) fixed[i].in,
                                 fixed[i].len) == fixed[i].need,
              fixed[i].in[0] ? "need, fixed" : "need, empty");
    }

    CHECK(mcd_tls_hello_need(NULL, 0) == 5, "need, NULL");

    for (i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
        mlen = msg_of(real[i].rec, real[i].len, &msg);

        /* one record, and the records after the hello ignored */

        snprintf(name, sizeof(name), "need %s whole", real[i].name);
        check_need_framing(name, msg, mlen, NULL, 0, NULL, 0);
        check_need_framing(name, msg, mlen, NULL, 0, ccs, sizeof(ccs));

        /* two records, split everywhere near the start and end */

        for (k = 1; k < mlen; k += (k < 12 || k > mlen - 12) ? 1 : 53) {
            snprintf(name, sizeof(name), "need %s 2 at %zu", real[i].name,
                     k);
            frags[0] = k;
            check_need_framing(name, msg, mlen, frags, 1, ccs, sizeof(ccs));
        }

        /* 3 .. 17 records of (nearly) equal size; 17 is too many */

        for (q = 3; q <= MCD_TLS_MAX_RECORDS + 1; q++) {
            for (k = 0; k < q; k++) {
                frags[k] = mlen / q + (k < mlen % q);
            }

            snprintf(name, sizeof(name), "need %s %zu records",
                     real[i].name, q);
            check_need_framing(name, msg, mlen, frags, q, ccs, sizeof(ccs));
        }

        /* 16 records of 1 byte and the rest, 17 with 16 tiny ones */

        for (k = 0; k < 40; k++) {
            frags[k] = 1 + k % 3;
        }

        snprintf(name, sizeof(name), "need %s 15 tiny", real[i].name);
        check_need_framing(name, msg, mlen, frags, 15, NULL, 0);

        snprintf(name, sizeof(name), "need %s 16 tiny", real[i].name);
        check_need_framing(name, msg, mlen, frags, 16, NULL, 0);

        snprintf(name, sizeof(name), "need %s 39 tiny", real[i].name);
        check_need_framing(name, msg, mlen, frags, 39, NULL, 0);
    }
}


int
main(void)
{
    work = malloc(T_BUF_MAX);
    if (work == NULL) {
        abort();
    }

    test_records();
    test_extensions();
    test_alpn_format();
    test_alert();
    test_synthetic();
    test_real_hellos();
    test_need();

    free(work);
    free(scratch_mem);

    printf("test_tls: %u checks, %u failed\n", checks, failed);

    return failed ? 1 : 0;
}
