
/*
 * ngx_mcd: TLS ClientHello parser for the transparent gateway.
 *
 * Each call walks the records from the start of the buffer and copies
 * the handshake bytes they carry into scratch until the whole message
 * is there; only then is the ClientHello itself parsed.  Every length
 * read from the wire is compared with what remains of its enclosing
 * structure before it is used, and all sizes are kept in size_t, so no
 * sum can wrap.
 */


#include <string.h>

#include "mcd_tls.h"


#define MCD_TLS_RECORD_HANDSHAKE   22
#define MCD_TLS_RECORD_ALERT       21
#define MCD_TLS_CLIENT_HELLO       1

#define MCD_TLS_RECORD_HEADER_LEN  5
#define MCD_TLS_HS_HEADER_LEN      4
#define MCD_TLS_RANDOM_LEN         32
#define MCD_TLS_MAX_SESSION_ID     32

#define MCD_TLS_NAME_HOST          0

#define mcd_tls_get16(p)  ((size_t) (p)[0] << 8 | (size_t) (p)[1])
#define mcd_tls_get24(p)                                                     \
    ((size_t) (p)[0] << 16 | (size_t) (p)[1] << 8 | (size_t) (p)[2])


static int mcd_tls_parse_body(const unsigned char *b, size_t n,
    mcd_tls_hello_t *h);
static int mcd_tls_server_name(const unsigned char *e, size_t n,
    mcd_tls_hello_t *h);
static int mcd_tls_alpn(const unsigned char *e, size_t n,
    mcd_tls_hello_t *h);
static int mcd_tls_supported_versions(const unsigned char *e, size_t n,
    mcd_tls_hello_t *h);
static int mcd_tls_fail(mcd_tls_hello_t *h, int rc, const char *detail);
static size_t mcd_tls_alpn_char(unsigned char c, unsigned char *out);


int
mcd_tls_parse_client_hello(const unsigned char *buf, size_t len,
    unsigned char *scratch, size_t scratch_size, mcd_tls_hello_t *h)
{
    size_t  pos, frag, rlen, avail, off, n, have, need, mlen, records;
    int     known;

    memset(h, 0, sizeof(mcd_tls_hello_t));

    /* the first two bytes decide whether this is TLS at all */

    if (len < 1) {
        return MCD_TLS_AGAIN;
    }

    if (buf[0] != MCD_TLS_RECORD_HANDSHAKE) {
        return MCD_TLS_NOT_TLS;
    }

    if (len < 2) {
        return MCD_TLS_AGAIN;
    }

    if (buf[1] != 3) {
        return MCD_TLS_NOT_TLS;
    }

    if (scratch == NULL || scratch_size < MCD_TLS_HS_HEADER_LEN) {
        return mcd_tls_fail(h, MCD_TLS_TOO_BIG, "scratch buffer too small");
    }

    pos = 0;
    have = 0;
    need = MCD_TLS_HS_HEADER_LEN;
    known = 0;
    records = 0;

    for ( ;; ) {

        /* record header; each byte is checked as soon as it is there */

        if (pos == len) {
            return MCD_TLS_AGAIN;
        }

        if (buf[pos] != MCD_TLS_RECORD_HANDSHAKE) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "unexpected record type");
        }

        if (len - pos < 2) {
            return MCD_TLS_AGAIN;
        }

        if (buf[pos + 1] != 3) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "bad record version");
        }

        if (len - pos < MCD_TLS_RECORD_HEADER_LEN) {
            return MCD_TLS_AGAIN;
        }

        if (pos == 0) {
            h->record_version = (unsigned) mcd_tls_get16(buf + 1);
        }

        rlen = mcd_tls_get16(buf + pos + 3);

        if (rlen == 0) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "empty record");
        }

        if (rlen > MCD_TLS_MAX_RECORD) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "record too long");
        }

        frag = pos + MCD_TLS_RECORD_HEADER_LEN;

        avail = len - frag;
        if (avail > rlen) {
            avail = rlen;
        }

        /* append the fragment to the handshake message in scratch */

        off = 0;

        while (off < avail && have < need) {
            n = avail - off;
            if (n > need - have) {
                n = need - have;
            }

            memcpy(scratch + have, buf + frag + off, n);
            have += n;
            off += n;

            if (!known && have == MCD_TLS_HS_HEADER_LEN) {

                if (scratch[0] != MCD_TLS_CLIENT_HELLO) {
                    return mcd_tls_fail(h, MCD_TLS_ERROR,
                                        "not a ClientHello");
                }

                mlen = mcd_tls_get24(scratch + 1);

                if (mlen > scratch_size - MCD_TLS_HS_HEADER_LEN) {
                    return mcd_tls_fail(h, MCD_TLS_TOO_BIG,
                                        "ClientHello too large");
                }

                need = MCD_TLS_HS_HEADER_LEN + mlen;
                known = 1;
            }
        }

        if (have > 0 && scratch[0] != MCD_TLS_CLIENT_HELLO) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "not a ClientHello");
        }

        /* wait for the whole record, even past the end of the message */

        if (avail < rlen) {
            return MCD_TLS_AGAIN;
        }

        pos = frag + rlen;

        if (known && have == need) {
            break;
        }

        if (++records == MCD_TLS_MAX_RECORDS) {
            return mcd_tls_fail(h, MCD_TLS_ERROR,
                                "ClientHello in too many records");
        }
    }

    h->records_len = pos;

    return mcd_tls_parse_body(scratch + MCD_TLS_HS_HEADER_LEN,
                              need - MCD_TLS_HS_HEADER_LEN, h);
}


/*
 * Walks the record headers as mcd_tls_parse_client_hello() does, without
 * copying anything: only the handshake header (4 bytes) is looked at,
 * for the message length; the other handshake bytes are only counted.
 */

size_t
mcd_tls_hello_need(const unsigned char *buf, size_t len)
{
    size_t         pos, rlen, end, have, mlen, k, records;
    unsigned char  hs[MCD_TLS_HS_HEADER_LEN];

    pos = 0;
    have = 0;
    mlen = 0;

    for (records = 0; records < MCD_TLS_MAX_RECORDS; records++) {

        /* the bytes present of the record header are checked at once */

        if (len - pos >= 1 && buf[pos] != MCD_TLS_RECORD_HANDSHAKE) {
            return 0;
        }

        if (len - pos >= 2 && buf[pos + 1] != 3) {
            return 0;
        }

        if (len - pos < MCD_TLS_RECORD_HEADER_LEN) {
            return pos + MCD_TLS_RECORD_HEADER_LEN;
        }

        rlen = mcd_tls_get16(buf + pos + 3);

        if (rlen == 0 || rlen > MCD_TLS_MAX_RECORD) {
            return 0;
        }

        end = pos + MCD_TLS_RECORD_HEADER_LEN + rlen;

        if (end > len) {
            return end;
        }

        /* a whole record: the handshake header, then a byte count */

        for (k = 0; k < rlen && have < MCD_TLS_HS_HEADER_LEN; k++) {
            hs[have++] = buf[pos + MCD_TLS_RECORD_HEADER_LEN + k];
        }

        if (have > 0 && hs[0] != MCD_TLS_CLIENT_HELLO) {
            return 0;
        }

        if (have == MCD_TLS_HS_HEADER_LEN && mlen == 0) {
            mlen = MCD_TLS_HS_HEADER_LEN + mcd_tls_get24(hs + 1);
        }

        have += rlen - k;

        if (mlen && have >= mlen) {
            return end;
        }

        pos = end;
    }

    return 0;
}


/*
 * Parses the ClientHello body b[0 .. n), RFC 8446, section 4.1.2:
 *
 *     ProtocolVersion legacy_version;
 *     Random random;
 *     opaque legacy_session_id<0..32>;
 *     CipherSuite cipher_suites<2..2^16-2>;
 *     opaque legacy_compression_methods<1..2^8-1>;
 *     Extension extensions<0..2^16-1>;      (absent in old hellos)
 */

static int
mcd_tls_parse_body(const unsigned char *b, size_t n, mcd_tls_hello_t *h)
{
    int            rc;
    size_t         p, l, type, elen;
    unsigned char  seen[65536 / 8];

    if (n < 2 + MCD_TLS_RANDOM_LEN + 1) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "truncated ClientHello");
    }

    h->legacy_version = (unsigned) mcd_tls_get16(b);

    if (b[0] != 3) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad legacy_version");
    }

    p = 2 + MCD_TLS_RANDOM_LEN;

    /* legacy_session_id */

    l = b[p++];

    if (l > MCD_TLS_MAX_SESSION_ID || l > n - p) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad session_id length");
    }

    p += l;

    /* cipher_suites */

    if (n - p < 2) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "truncated ClientHello");
    }

    l = mcd_tls_get16(b + p);
    p += 2;

    if (l < 2 || (l & 1) || l > n - p) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad cipher_suites length");
    }

    p += l;

    /* legacy_compression_methods */

    if (n - p < 1) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "truncated ClientHello");
    }

    l = b[p++];

    if (l < 1 || l > n - p) {
        return mcd_tls_fail(h, MCD_TLS_ERROR,
                            "bad compression_methods length");
    }

    p += l;

    /* extensions: absent, or a block that ends the message exactly */

    if (p == n) {
        return MCD_TLS_OK;
    }

    if (n - p < 2) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad extensions length");
    }

    l = mcd_tls_get16(b + p);
    p += 2;

    if (l != n - p) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad extensions length");
    }

    memset(seen, 0, sizeof(seen));

    while (p < n) {

        if (n - p < 4) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "bad extension length");
        }

        type = mcd_tls_get16(b + p);
        elen = mcd_tls_get16(b + p + 2);
        p += 4;

        if (elen > n - p) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "bad extension length");
        }

        if (seen[type >> 3] & (1u << (type & 7))) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "duplicate extension");
        }

        seen[type >> 3] |= (unsigned char) (1u << (type & 7));

        switch (type) {

        case MCD_TLS_EXT_SERVER_NAME:
            rc = mcd_tls_server_name(b + p, elen, h);
            break;

        case MCD_TLS_EXT_ALPN:
            rc = mcd_tls_alpn(b + p, elen, h);
            break;

        case MCD_TLS_EXT_SUPPORTED_VERSIONS:
            rc = mcd_tls_supported_versions(b + p, elen, h);
            break;

        case MCD_TLS_EXT_ECH:
            h->ech = 1;
            rc = MCD_TLS_OK;
            break;

        default:
            rc = MCD_TLS_OK;
            break;
        }

        if (rc != MCD_TLS_OK) {
            return rc;
        }

        p += elen;
    }

    return MCD_TLS_OK;
}


/*
 * RFC 6066, section 3:
 *
 *     ServerName server_name_list<1..2^16-1>;
 *     struct { NameType name_type; HostName host_name; } ServerName;
 *     opaque HostName<1..2^16-1>;
 *
 * Entries of other name types are assumed to carry a 2-byte length too
 * and are skipped.
 */

static int
mcd_tls_server_name(const unsigned char *e, size_t n, mcd_tls_hello_t *h)
{
    size_t  p, l;

    if (n < 2 || mcd_tls_get16(e) != n - 2 || n == 2) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad server_name extension");
    }

    p = 2;

    while (p < n) {

        if (n - p < 3) {
            return mcd_tls_fail(h, MCD_TLS_ERROR,
                                "bad server_name extension");
        }

        l = mcd_tls_get16(e + p + 1);

        if (l > n - p - 3) {
            return mcd_tls_fail(h, MCD_TLS_ERROR,
                                "bad server_name extension");
        }

        if (e[p] == MCD_TLS_NAME_HOST) {

            if (l == 0) {
                return mcd_tls_fail(h, MCD_TLS_ERROR, "empty server name");
            }

            if (h->has_sni) {
                return mcd_tls_fail(h, MCD_TLS_ERROR,
                                    "more than one server name");
            }

            if (memchr(e + p + 3, '\0', l) != NULL) {
                return mcd_tls_fail(h, MCD_TLS_ERROR, "NUL in server name");
            }

            h->sni = e + p + 3;
            h->sni_len = l;
            h->has_sni = 1;
        }

        p += 3 + l;
    }

    return MCD_TLS_OK;
}


/*
 * RFC 7301, section 3.1:
 *
 *     ProtocolName protocol_name_list<2..2^16-1>;
 *     opaque ProtocolName<1..2^8-1>;
 */

static int
mcd_tls_alpn(const unsigned char *e, size_t n, mcd_tls_hello_t *h)
{
    size_t  p, l;

    if (n < 2 || mcd_tls_get16(e) != n - 2 || n - 2 < 2) {
        return mcd_tls_fail(h, MCD_TLS_ERROR, "bad ALPN extension");
    }

    for (p = 2; p < n; p += l) {
        l = e[p++];

        if (l == 0 || l > n - p) {
            return mcd_tls_fail(h, MCD_TLS_ERROR, "bad ALPN extension");
        }
    }

    h->alpn = e + 2;
    h->alpn_len = n - 2;

    return MCD_TLS_OK;
}


/*
 * RFC 8446, section 4.2.1, in a ClientHello:
 *
 *     ProtocolVersion versions<2..254>;
 */

static int
mcd_tls_supported_versions(const unsigned char *e, size_t n,
    mcd_tls_hello_t *h)
{
    size_t  p;

    if (n < 1 || (size_t) e[0] != n - 1 || e[0] < 2 || (e[0] & 1)) {
        return mcd_tls_fail(h, MCD_TLS_ERROR,
                            "bad supported_versions extension");
    }

    for (p = 1; p < n; p += 2) {
        if (e[p] == 0x03 && e[p + 1] == 0x04) {
            h->tls13 = 1;
        }
    }

    return MCD_TLS_OK;
}


static int
mcd_tls_fail(mcd_tls_hello_t *h, int rc, const char *detail)
{
    h->records_len = 0;
    h->sni = NULL;
    h->sni_len = 0;
    h->alpn = NULL;
    h->alpn_len = 0;
    h->has_sni = 0;
    h->ech = 0;
    h->tls13 = 0;
    h->detail = detail;

    return rc;
}


size_t
mcd_tls_alpn_format(const unsigned char *alpn, size_t alpn_len,
    unsigned char *out, size_t out_size)
{
    size_t         p, l, o, i, k, sep;
    unsigned char  unit[4];

    if (out == NULL || out_size == 0) {
        return 0;
    }

    o = 0;

    for (p = 0; alpn != NULL && p < alpn_len; p += l) {
        l = alpn[p++];

        if (l > alpn_len - p) {
            /* not a valid list: stop at the bad name */
            break;
        }

        sep = (p > 1) ? 1 : 0;

        for (i = 0; i < l; i++) {
            k = mcd_tls_alpn_char(alpn[p + i], unit);

            /* room for the separator, this unit and the NUL */

            if (out_size - o <= sep + k) {
                goto done;
            }

            if (sep) {
                out[o++] = ',';
                sep = 0;
            }

            memcpy(out + o, unit, k);
            o += k;
        }
    }

done:

    out[o] = '\0';

    return o;
}


static size_t
mcd_tls_alpn_char(unsigned char c, unsigned char *out)
{
    static const char  hex[] = "0123456789abcdef";

    if (c >= 0x20 && c < 0x7f && c != ',' && c != '\\') {
        out[0] = c;
        return 1;
    }

    out[0] = '\\';
    out[1] = 'x';
    out[2] = (unsigned char) hex[c >> 4];
    out[3] = (unsigned char) hex[c & 0x0f];

    return 4;
}


size_t
mcd_tls_alert(unsigned char *out, unsigned description)
{
    out[0] = MCD_TLS_RECORD_ALERT;
    out[1] = 0x03;
    out[2] = 0x03;
    out[3] = 0x00;
    out[4] = 0x02;
    out[5] = 0x02;                                  /* fatal */
    out[6] = (unsigned char) description;

    return MCD_TLS_ALERT_LEN;
}
