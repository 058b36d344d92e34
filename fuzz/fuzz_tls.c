
/*
 * libFuzzer target for src/mcd_tls.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     src/mcd_tls.c fuzz/fuzz_tls.c -o /tmp/fuzz_tls
 *
 * Input: byte 0 selects the scratch size (low 4 bits) and the mode
 * (high 4 bits).  In raw mode the rest is the peeked data.  In framed
 * mode byte 1 gives a fragment size and the rest is a ClientHello body
 * that gets a handshake header and is cut into records, so that the
 * fuzzer spends its time inside the hello rather than on the framing
 * (the fragment size is raised so that the hello fits in
 * MCD_TLS_MAX_RECORDS records, unless bit 0x08 of byte 0 is set).
 * An input that starts with 22 is taken whole with a 16 KiB scratch, so
 * captured hellos seed it as they are:
 *
 *     mkdir -p /tmp/corpus_tls
 *     /tmp/fuzz_tls -max_len=20000 /tmp/corpus_tls t/unit/data
 *
 * Besides memory safety (the input and scratch are exact-size heap
 * blocks) it checks that results stay inside scratch, that records_len
 * stays inside the input, that a prefix of the input either asks for
 * more bytes or gives exactly the answer that the whole input gives, and
 * that mcd_tls_hello_need() agrees with the parser.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcd_tls.h"


#define FZ_ASSERT(cond)                                                      \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_tls: %s:%d: %s\n",                         \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const size_t  fz_scratch_sizes[16] = {
    0, 3, 4, 5, 38, 39, 64, 300, 512, 1024, 1500, 2048, 4096, 8192,
    16384, 65536 + 4
};


static void
fz_check_alpn(const unsigned char *alpn, size_t alpn_len)
{
    size_t          p, l, n, k;
    unsigned char  *out;

    /* the list must be valid: names of 1..255 bytes filling it */

    FZ_ASSERT(alpn_len >= 2);

    for (p = 0; p < alpn_len; p += l) {
        l = alpn[p++];
        FZ_ASSERT(l >= 1 && l <= alpn_len - p);
    }

    out = malloc(4 * alpn_len + 1);
    FZ_ASSERT(out != NULL);

    n = mcd_tls_alpn_format(alpn, alpn_len, out, 4 * alpn_len + 1);
    FZ_ASSERT(n < 4 * alpn_len + 1 && out[n] == '\0');

    for (k = 0; k < n; k++) {
        FZ_ASSERT(out[k] >= 0x20 && out[k] < 0x7f);
    }

    free(out);

    /* every short output: NUL-terminated, no write past out_size */

    for (k = 1; k < 12; k++) {
        out = malloc(k);
        FZ_ASSERT(out != NULL);

        n = mcd_tls_alpn_format(alpn, alpn_len, out, k);
        FZ_ASSERT(n < k && out[n] == '\0');

        free(out);
    }
}


static int
fz_in_scratch(const unsigned char *p, size_t n, const unsigned char *s,
    size_t size)
{
    if (p == NULL) {
        return n == 0;
    }

    return s != NULL && p >= s && p <= s + size
           && n <= (size_t) (s + size - p);
}


static void
fz_check(const unsigned char *buf, size_t len, const unsigned char *scratch,
    size_t scratch_size, int rc, const mcd_tls_hello_t *h)
{
    switch (rc) {

    case MCD_TLS_OK:
        FZ_ASSERT(len >= 5 && buf[0] == 22 && buf[1] == 3);
        FZ_ASSERT(h->records_len >= 5 + 4 + 41 && h->records_len <= len);
        FZ_ASSERT(h->record_version >> 8 == 3);
        FZ_ASSERT(h->legacy_version >> 8 == 3);
        FZ_ASSERT(h->detail == NULL);
        FZ_ASSERT(scratch != NULL && scratch[0] == 1);
        FZ_ASSERT(fz_in_scratch(h->sni, h->sni_len, scratch, scratch_size));
        FZ_ASSERT(fz_in_scratch(h->alpn, h->alpn_len, scratch,
                                scratch_size));
        FZ_ASSERT(h->has_sni == (h->sni != NULL));

        if (h->sni != NULL) {
            FZ_ASSERT(h->sni_len > 0);
            FZ_ASSERT(memchr(h->sni, '\0', h->sni_len) == NULL);
        }

        if (h->alpn != NULL) {
            fz_check_alpn(h->alpn, h->alpn_len);
        }

        break;

    case MCD_TLS_ERROR:
    case MCD_TLS_TOO_BIG:
        FZ_ASSERT(len >= 2 && buf[0] == 22 && buf[1] == 3);
        FZ_ASSERT(h->detail != NULL && h->detail[0] != '\0');
        FZ_ASSERT(h->sni == NULL && h->alpn == NULL && !h->has_sni);
        FZ_ASSERT(h->records_len == 0);
        break;

    case MCD_TLS_NOT_TLS:
        FZ_ASSERT(len >= 1 && (buf[0] != 22 || (len >= 2 && buf[1] != 3)));
        FZ_ASSERT(h->detail == NULL && h->sni == NULL);
        break;

    case MCD_TLS_AGAIN:
        FZ_ASSERT(h->detail == NULL && h->sni == NULL && h->alpn == NULL);
        FZ_ASSERT(h->records_len == 0);
        break;

    default:
        FZ_ASSERT(0);
    }
}


/* the same answer: pointers compared as offsets into each scratch */

static void
fz_same(int rc1, const mcd_tls_hello_t *h1, const unsigned char *s1,
    int rc2, const mcd_tls_hello_t *h2, const unsigned char *s2)
{
    FZ_ASSERT(rc1 == rc2);
    FZ_ASSERT(h1->detail == h2->detail);
    FZ_ASSERT(h1->records_len == h2->records_len);

    if (rc1 != MCD_TLS_OK) {
        return;
    }

    FZ_ASSERT(h1->legacy_version == h2->legacy_version);
    FZ_ASSERT(h1->record_version == h2->record_version);
    FZ_ASSERT(h1->has_sni == h2->has_sni && h1->ech == h2->ech);
    FZ_ASSERT(h1->tls13 == h2->tls13);
    FZ_ASSERT(h1->sni_len == h2->sni_len && h1->alpn_len == h2->alpn_len);
    FZ_ASSERT((h1->sni == NULL) == (h2->sni == NULL));
    FZ_ASSERT((h1->alpn == NULL) == (h2->alpn == NULL));

    if (h1->sni) {
        FZ_ASSERT(h1->sni - s1 == h2->sni - s2);
        FZ_ASSERT(memcmp(h1->sni, h2->sni, h1->sni_len) == 0);
    }

    if (h1->alpn) {
        FZ_ASSERT(h1->alpn - s1 == h2->alpn - s2);
        FZ_ASSERT(memcmp(h1->alpn, h2->alpn, h1->alpn_len) == 0);
    }
}


/* a ClientHello body wrapped in a handshake header and records */

static unsigned char *
fz_frame(const unsigned char *body, size_t blen, size_t frag, size_t *len)
{
    size_t          mlen, n, p, f, o;
    unsigned char  *msg, *out;

    mlen = blen + 4;

    msg = malloc(mlen);
    FZ_ASSERT(msg != NULL);

    msg[0] = 1;
    msg[1] = (unsigned char) (blen >> 16);
    msg[2] = (unsigned char) (blen >> 8);
    msg[3] = (unsigned char) blen;
    memcpy(msg + 4, body, blen);

    if (frag == 0 || frag > 16384) {
        frag = 16384;
    }

    n = mlen + 5 * ((mlen + frag - 1) / frag);

    out = malloc(n);
    FZ_ASSERT(out != NULL);

    o = 0;

    for (p = 0; p < mlen; p += f) {
        f = (mlen - p < frag) ? mlen - p : frag;

        out[o++] = 22;
        out[o++] = 3;
        out[o++] = 1;
        out[o++] = (unsigned char) (f >> 8);
        out[o++] = (unsigned char) f;
        memcpy(out + o, msg + p, f);
        o += f;
    }

    FZ_ASSERT(o == n);

    free(msg);

    *len = n;

    return out;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc, prc;
    size_t            len, scratch_size, split[4], i, n, out_size, frag,
                      mrec, nd, pnd, k;
    unsigned char    *buf, *scratch, *scratch2, *out;
    unsigned char     alert[MCD_TLS_ALERT_LEN];
    mcd_tls_hello_t   h, ph;

    if (size < 2) {
        return 0;
    }

    scratch_size = fz_scratch_sizes[data[0] & 0x0f];

    if (data[0] == 22) {
        /* a capture as is, e.g. t/unit/data/hello_*.bin */
        scratch_size = 16384;
        len = size;
        buf = malloc(len);
        FZ_ASSERT(buf != NULL);
        memcpy(buf, data, len);

    } else if (data[0] & 0x80) {
        /* framed mode; at most 16 records unless 0x08 asks for more */
        frag = (size_t) data[1] * (data[0] & 0x70) / 16 + data[1];
        mrec = (size - 2 + 4 + MCD_TLS_MAX_RECORDS - 1) / MCD_TLS_MAX_RECORDS;

        if (!(data[0] & 0x08) && frag < mrec) {
            frag = mrec;
        }

        buf = fz_frame(data + 2, size - 2, frag, &len);

    } else {
        len = size - 1;
        buf = malloc(len);
        FZ_ASSERT(buf != NULL);
        memcpy(buf, data + 1, len);
    }

    scratch = scratch_size ? malloc(scratch_size) : NULL;
    scratch2 = scratch_size ? malloc(scratch_size) : NULL;
    FZ_ASSERT(scratch_size == 0 || (scratch != NULL && scratch2 != NULL));

    rc = mcd_tls_parse_client_hello(buf, len, scratch, scratch_size, &h);
    fz_check(buf, len, scratch, scratch_size, rc, &h);

    /* the same call again, into another scratch */

    prc = mcd_tls_parse_client_hello(buf, len, scratch2, scratch_size, &ph);
    fz_same(rc, &h, scratch, prc, &ph, scratch2);

    /* prefixes: AGAIN, or the same answer as the whole */

    split[0] = len / 2;
    split[1] = len - 1;
    split[2] = (size_t) data[size - 1] * 7 % (len + 1);
    split[3] = (rc == MCD_TLS_OK) ? h.records_len : len / 3;

    for (i = 0; i < 4; i++) {
        prc = mcd_tls_parse_client_hello(buf, split[i], scratch2,
                                         scratch_size, &ph);
        fz_check(buf, split[i], scratch2, scratch_size, prc, &ph);

        if (prc != MCD_TLS_AGAIN) {
            fz_same(rc, &h, scratch, prc, &ph, scratch2);
        }
    }

    if (rc == MCD_TLS_OK) {
        prc = mcd_tls_parse_client_hello(buf, h.records_len - 1, scratch2,
                                         scratch_size, &ph);
        FZ_ASSERT(prc == MCD_TLS_AGAIN);
    }

    /*
     * mcd_tls_hello_need(): past the end while AGAIN, the records' end
     * on OK, 0 for what is not TLS; never less for more bytes, and the
     * same for every length up to it (or 0 where a header byte is bad)
     */

    nd = mcd_tls_hello_need(buf, len);

    if (rc == MCD_TLS_AGAIN) {
        FZ_ASSERT(nd > len);
    }

    if (rc == MCD_TLS_OK) {
        FZ_ASSERT(nd == h.records_len);
    }

    if (rc == MCD_TLS_NOT_TLS) {
        FZ_ASSERT(nd == 0);
    }

    if (rc == MCD_TLS_ERROR && h.detail != NULL
        && strcmp(h.detail, "ClientHello in too many records") == 0)
    {
        FZ_ASSERT(nd == 0);
    }

    for (i = 0; i < 4; i++) {
        if (split[i] > len) {
            continue;
        }

        prc = mcd_tls_parse_client_hello(buf, split[i], scratch2,
                                         scratch_size, &ph);
        pnd = mcd_tls_hello_need(buf, split[i]);

        if (prc != MCD_TLS_AGAIN) {
            continue;
        }

        FZ_ASSERT(pnd > split[i]);

        if (rc == MCD_TLS_AGAIN) {
            FZ_ASSERT(pnd <= nd);
        }

        for (k = split[i] + 1; k < pnd && k <= len && k < split[i] + 8;
             k++)
        {
            n = mcd_tls_hello_need(buf, k);
            FZ_ASSERT(n == pnd || n == 0);
        }

        if (pnd - 1 <= len) {
            n = mcd_tls_hello_need(buf, pnd - 1);
            FZ_ASSERT(n == pnd || n == 0);
        }
    }

    /* the formatter on arbitrary bytes, into an exact-size buffer */

    out_size = data[1] % 40;
    out = malloc(out_size ? out_size : 1);
    FZ_ASSERT(out != NULL);

    n = mcd_tls_alpn_format(data + 2, size - 2, out_size ? out : NULL,
                            out_size);
    FZ_ASSERT(out_size == 0 ? n == 0 : (n < out_size && out[n] == '\0'));

    free(out);

    FZ_ASSERT(mcd_tls_alert(alert, data[1]) == MCD_TLS_ALERT_LEN);
    FZ_ASSERT(alert[0] == 21 && alert[5] == 2 && alert[6] == data[1]);

    free(scratch2);
    free(scratch);
    free(buf);

    return 0;
}
