
/*
 * libFuzzer target for src/mcd_connect.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     src/mcd_connect.c fuzz/fuzz_connect.c -o /tmp/fuzz_connect
 *
 * The first input byte selects max_head, the rest is the peeked data
 * (so a seed is one selector byte, e.g. 0x08 for 4096, and a head).
 * Besides memory safety the target checks that results stay inside the
 * input, that a prefix of the input either asks for more bytes or gives
 * exactly the answer that the whole input gives, that
 * mcd_connect_method() agrees with the parser, and that
 * mcd_connect_scan() finds the parser's head_len however the input is
 * cut.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcd_connect.h"


#define FZ_ASSERT(cond)                                                      \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_connect: %s:%d: %s\n",                     \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const size_t  fz_max_heads[] = {
    0, 1, 8, 24, 37, 64, 256, 1024, 4096, 8192, 16384, (size_t) -1
};


static int
fz_inside(const unsigned char *p, size_t n, const unsigned char *buf,
    size_t len)
{
    if (p == NULL) {
        return n == 0;
    }

    return p >= buf && p <= buf + len && n <= (size_t) (buf + len - p);
}


static void
fz_check(const unsigned char *buf, size_t len, size_t max_head, int rc,
    const mcd_connect_t *r)
{
    size_t  i;

    FZ_ASSERT(rc == MCD_CONNECT_OK || rc == MCD_CONNECT_AGAIN
              || rc == MCD_CONNECT_OTHER || rc == MCD_CONNECT_ERROR);

    FZ_ASSERT(fz_inside(r->method, r->method_len, buf, len));
    FZ_ASSERT(fz_inside(r->authority, r->authority_len, buf, len));
    FZ_ASSERT(fz_inside(r->host, r->host_len, buf, len));
    FZ_ASSERT(fz_inside(r->proxy_authorization, r->proxy_authorization_len,
                        buf, len));

    switch (rc) {

    case MCD_CONNECT_OK:
        FZ_ASSERT(r->head_len > 0 && r->head_len <= len);
        FZ_ASSERT(r->head_len <= max_head);
        FZ_ASSERT(buf[r->head_len - 1] == '\n');
        FZ_ASSERT(r->method == buf && r->method_len == 7);
        FZ_ASSERT(memcmp(buf, "CONNECT ", 8) == 0);
        FZ_ASSERT(r->authority == buf + 8 && r->authority_len > 0);
        FZ_ASSERT(r->host != NULL && r->host_len > 0);
        FZ_ASSERT(r->host >= r->authority);
        FZ_ASSERT(r->host + r->host_len
                  < r->authority + r->authority_len);
        FZ_ASSERT(r->port >= 1 && r->port <= 65535);
        FZ_ASSERT(r->http_minor <= 1);
        FZ_ASSERT(r->status == 0 && r->detail == NULL);

        for (i = 0; i < r->authority_len; i++) {
            FZ_ASSERT(r->authority[i] > 0x20 && r->authority[i] != 0x7f);
            FZ_ASSERT(r->authority[i] != '@' && r->authority[i] != '%');
        }

        for (i = 0; i < r->host_len; i++) {
            FZ_ASSERT(r->host[i] != ':' || r->ipv6);
            FZ_ASSERT(r->host[i] != '[' && r->host[i] != ']');
        }

        if (r->proxy_authorization != NULL) {
            FZ_ASSERT(r->proxy_authorization + r->proxy_authorization_len
                      <= buf + r->head_len);

            for (i = 0; i < r->proxy_authorization_len; i++) {
                FZ_ASSERT(r->proxy_authorization[i] != '\r'
                          && r->proxy_authorization[i] != '\n'
                          && r->proxy_authorization[i] != '\0');
            }

            if (r->proxy_authorization_len) {
                FZ_ASSERT(r->proxy_authorization[0] != ' '
                          && r->proxy_authorization[0] != '\t');
                FZ_ASSERT(r->proxy_authorization[
                              r->proxy_authorization_len - 1] != ' ');
            }
        }

        break;

    case MCD_CONNECT_AGAIN:
        FZ_ASSERT(len < max_head);
        FZ_ASSERT(r->status == 0 && r->detail == NULL);
        break;

    case MCD_CONNECT_OTHER:
        FZ_ASSERT(r->method == buf && r->method_len > 0);
        FZ_ASSERT(r->method_len < len && buf[r->method_len] == ' ');
        FZ_ASSERT(r->method_len != 7 || memcmp(buf, "CONNECT", 7) != 0);
        FZ_ASSERT(r->status == 0 && r->detail == NULL);
        break;

    default: /* MCD_CONNECT_ERROR */
        FZ_ASSERT(r->status == 400 || r->status == 431);
        FZ_ASSERT(r->reason != NULL && strcmp(r->reason, "bad_request") == 0);
        FZ_ASSERT(r->detail != NULL && r->detail[0] != '\0');
        FZ_ASSERT(r->head_len == 0);
        break;
    }
}


static void
fz_same(int rc1, const mcd_connect_t *r1, int rc2, const mcd_connect_t *r2)
{
    FZ_ASSERT(rc1 == rc2);
    FZ_ASSERT(r1->head_len == r2->head_len);
    FZ_ASSERT(r1->method == r2->method && r1->method_len == r2->method_len);
    FZ_ASSERT(r1->authority == r2->authority);
    FZ_ASSERT(r1->authority_len == r2->authority_len);
    FZ_ASSERT(r1->host == r2->host && r1->host_len == r2->host_len);
    FZ_ASSERT(r1->port == r2->port && r1->ipv6 == r2->ipv6);
    FZ_ASSERT(r1->http_minor == r2->http_minor);
    FZ_ASSERT(r1->status == r2->status && r1->detail == r2->detail);
    FZ_ASSERT(r1->proxy_authorization == r2->proxy_authorization);
    FZ_ASSERT(r1->proxy_authorization_len == r2->proxy_authorization_len);
}


static void
fz_method(const unsigned char *buf, size_t len)
{
    int            m, p;
    mcd_connect_t  r;

    m = mcd_connect_method(buf, len);
    p = mcd_connect_parse(buf, len, len + 1, &r);

    FZ_ASSERT((m == MCD_CONNECT_OTHER) == (p == MCD_CONNECT_OTHER));
    FZ_ASSERT(m != MCD_CONNECT_ERROR || p == MCD_CONNECT_ERROR);
    FZ_ASSERT(m != MCD_CONNECT_AGAIN || p == MCD_CONNECT_AGAIN);
    FZ_ASSERT((m == MCD_CONNECT_OK)
              == (len >= 8 && memcmp(buf, "CONNECT ", 8) == 0));
}


/* the head end found by a scan of buf cut at a and b (a <= b), or 0 */

static size_t
fz_scan(const unsigned char *buf, size_t len, size_t a, size_t b)
{
    size_t              sum, r;
    mcd_connect_scan_t  st;

    memset(&st, 0, sizeof(st));

    r = mcd_connect_scan(&st, buf, a);
    FZ_ASSERT(r <= a);
    FZ_ASSERT(r == a || mcd_connect_scan_done(&st));
    sum = r;

    r = mcd_connect_scan(&st, buf + a, b - a);
    FZ_ASSERT(r <= b - a);
    FZ_ASSERT(r == b - a || mcd_connect_scan_done(&st));
    sum += r;

    r = mcd_connect_scan(&st, buf + b, len - b);
    FZ_ASSERT(r <= len - b);
    sum += r;

    FZ_ASSERT(sum == st.total);

    return mcd_connect_scan_done(&st) ? sum : 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc, prc;
    size_t                len, max_head, split[3], i;
    mcd_connect_t         r, pr;
    const unsigned char  *buf;

    if (size < 1) {
        return 0;
    }

    max_head = fz_max_heads[data[0] % (sizeof(fz_max_heads)
                                       / sizeof(fz_max_heads[0]))];

    buf = data + 1;
    len = size - 1;

    if (data[0] >= 0xf0) {
        /* a limit right around the input size */
        max_head = len + (data[0] & 0x07) - 4;
        if (max_head > len + 4) {
            max_head = 0;
        }
    }

    rc = mcd_connect_parse(buf, len, max_head, &r);
    fz_check(buf, len, max_head, rc, &r);

    /* the same call again gives the same answer */

    prc = mcd_connect_parse(buf, len, max_head, &pr);
    fz_same(rc, &r, prc, &pr);

    /* prefixes: AGAIN, or the same answer as the whole */

    split[0] = len / 2;
    split[1] = len ? (size_t) buf[0] % len : 0;
    split[2] = len ? len - 1 : 0;

    for (i = 0; i < 3; i++) {
        prc = mcd_connect_parse(buf, split[i], max_head, &pr);
        fz_check(buf, split[i], max_head, prc, &pr);

        if (prc != MCD_CONNECT_AGAIN) {
            fz_same(rc, &r, prc, &pr);
        }
    }

    /* the method and scan helpers */

    fz_method(buf, len);
    fz_method(buf, split[1]);

    if (len > 0) {
        size_t  a, b, end;

        a = split[1];
        b = a + (len - a) / 3;
        end = fz_scan(buf, len, a, b);

        FZ_ASSERT(end <= len);
        FZ_ASSERT(end == fz_scan(buf, len, 0, len));
        FZ_ASSERT(end == fz_scan(buf, len, len / 2, len / 2));

        if (rc == MCD_CONNECT_OK) {
            FZ_ASSERT(end == r.head_len);
        }
    }

    if (rc == MCD_CONNECT_OK) {
        /* the head alone is complete, and one byte less is not */

        prc = mcd_connect_parse(buf, r.head_len, max_head, &pr);
        fz_same(rc, &r, prc, &pr);

        prc = mcd_connect_parse(buf, r.head_len - 1, max_head, &pr);
        FZ_ASSERT(prc == MCD_CONNECT_AGAIN);
    }

    if (rc == MCD_CONNECT_OTHER) {
        prc = mcd_connect_parse(buf, r.method_len + 1, max_head, &pr);
        fz_same(rc, &r, prc, &pr);

        prc = mcd_connect_parse(buf, r.method_len, max_head, &pr);
        FZ_ASSERT(prc == MCD_CONNECT_AGAIN);
    }

    return 0;
}
