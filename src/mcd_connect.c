
/*
 * ngx_mcd: parser for the head of an HTTP/1.x CONNECT request.
 *
 * The whole head is scanned again on each call.  Positions are kept as
 * indexes into the buffer and are compared with the scan limit before
 * every read, so no byte at or past min(len, max_head) is ever touched.
 */


#include <string.h>

#include "mcd_connect.h"


#define MCD_CR  '\r'
#define MCD_LF  '\n'

#define MCD_CONNECT_MAX_PORT_DIGITS  5


static int mcd_connect_is_tchar(unsigned char c);
static int mcd_connect_is_hex(unsigned char c);
static int mcd_connect_authority(const unsigned char *a, size_t n,
    mcd_connect_t *r);
static int mcd_connect_fail(mcd_connect_t *r, unsigned status,
    const char *detail);
static int mcd_connect_name_is(const unsigned char *name, size_t len,
    const char *lower);


static const char  mcd_connect_reason[] = "bad_request";


int
mcd_connect_parse(const unsigned char *buf, size_t len, size_t max_head,
    mcd_connect_t *r)
{
    size_t          limit, i, k, start, vstart, vend, nfields;
    unsigned char   c;
    unsigned        major, minor;

    static const char  http[] = "HTTP/";

    memset(r, 0, sizeof(mcd_connect_t));

    limit = (len < max_head) ? len : max_head;

    /* method */

    for (i = 0; i < limit; i++) {
        c = buf[i];

        if (c == ' ') {
            break;
        }

        if (!mcd_connect_is_tchar(c)) {
            if (i == 0 && c != MCD_CR && c != MCD_LF && c != '\t') {
                return mcd_connect_fail(r, 400, "not an HTTP request");
            }

            return mcd_connect_fail(r, 400, "malformed request line");
        }
    }

    if (i == limit) {
        goto incomplete;
    }

    if (i == 0) {
        return mcd_connect_fail(r, 400, "malformed request line");
    }

    r->method = buf;
    r->method_len = i;

    if (i != 7 || memcmp(buf, "CONNECT", 7) != 0) {
        return MCD_CONNECT_OTHER;
    }

    /* request target in authority-form */

    start = ++i;

    for ( /* void */ ; i < limit; i++) {
        c = buf[i];

        if (c == ' ') {
            break;
        }

        if (c < 0x21 || c == 0x7f) {
            return mcd_connect_fail(r, 400, "malformed request line");
        }

        if (c == '@') {
            /* userinfo is refused whatever the rest of the target is */
            return mcd_connect_fail(r, 400, "userinfo not allowed");
        }
    }

    if (i == limit) {
        goto incomplete;
    }

    if (mcd_connect_authority(buf + start, i - start, r) != MCD_CONNECT_OK) {
        return MCD_CONNECT_ERROR;
    }

    /* HTTP-version: "HTTP/" DIGIT "." DIGIT, then CRLF or a bare LF */

    i++;

    for (k = 0; k < sizeof(http) - 1; k++, i++) {
        if (i == limit) {
            goto incomplete;
        }

        if (buf[i] != (unsigned char) http[k]) {
            return mcd_connect_fail(r, 400, "malformed request line");
        }
    }

    if (i == limit) {
        goto incomplete;
    }

    if (buf[i] < '0' || buf[i] > '9') {
        return mcd_connect_fail(r, 400, "malformed request line");
    }

    major = buf[i++] - '0';

    if (i == limit) {
        goto incomplete;
    }

    if (buf[i++] != '.') {
        return mcd_connect_fail(r, 400, "malformed request line");
    }

    if (i == limit) {
        goto incomplete;
    }

    if (buf[i] < '0' || buf[i] > '9') {
        return mcd_connect_fail(r, 400, "malformed request line");
    }

    minor = buf[i++] - '0';

    if (i == limit) {
        goto incomplete;
    }

    if (buf[i] == MCD_CR) {
        if (++i == limit) {
            goto incomplete;
        }

        if (buf[i] != MCD_LF) {
            return mcd_connect_fail(r, 400, "malformed request line");
        }

    } else if (buf[i] != MCD_LF) {
        return mcd_connect_fail(r, 400, "malformed request line");
    }

    i++;

    if (major != 1 || minor > 1) {
        return mcd_connect_fail(r, 400, "unsupported HTTP version");
    }

    r->http_minor = minor;

    /* header fields */

    nfields = 0;

    for ( ;; ) {

        if (i == limit) {
            goto incomplete;
        }

        c = buf[i];

        if (c == MCD_CR) {
            if (++i == limit) {
                goto incomplete;
            }

            if (buf[i] != MCD_LF) {
                return mcd_connect_fail(r, 400, "malformed header");
            }

            i++;
            break;
        }

        if (c == MCD_LF) {
            i++;
            break;
        }

        if (c == ' ' || c == '\t') {
            /* obs-fold, or whitespace before the first field */
            return mcd_connect_fail(r, 400, "malformed header");
        }

        if (++nfields > MCD_CONNECT_MAX_FIELDS) {
            return mcd_connect_fail(r, 431, "too many header fields");
        }

        /* field-name */

        start = i;

        for ( /* void */ ; i < limit; i++) {
            c = buf[i];

            if (c == ':') {
                break;
            }

            if (!mcd_connect_is_tchar(c)) {
                return mcd_connect_fail(r, 400, "malformed header");
            }
        }

        if (i == limit) {
            goto incomplete;
        }

        if (i == start) {
            return mcd_connect_fail(r, 400, "malformed header");
        }

        /* field-value: HTAB, SP, VCHAR and obs-text */

        vstart = ++i;

        for ( /* void */ ; i < limit; i++) {
            c = buf[i];

            if (c == MCD_CR || c == MCD_LF) {
                break;
            }

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return mcd_connect_fail(r, 400, "malformed header");
            }
        }

        if (i == limit) {
            goto incomplete;
        }

        vend = i;

        if (c == MCD_CR) {
            if (++i == limit) {
                goto incomplete;
            }

            if (buf[i] != MCD_LF) {
                return mcd_connect_fail(r, 400, "malformed header");
            }
        }

        i++;

        if (mcd_connect_name_is(buf + start, vstart - 1 - start,
                                "proxy-authorization"))
        {
            if (r->proxy_authorization != NULL) {
                return mcd_connect_fail(r, 400,
                                        "duplicate Proxy-Authorization");
            }

            while (vstart < vend
                   && (buf[vstart] == ' ' || buf[vstart] == '\t'))
            {
                vstart++;
            }

            while (vend > vstart
                   && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t'))
            {
                vend--;
            }

            r->proxy_authorization = buf + vstart;
            r->proxy_authorization_len = vend - vstart;
        }
    }

    r->head_len = i;

    return MCD_CONNECT_OK;

incomplete:

    if (len >= max_head) {
        return mcd_connect_fail(r, 431, "request header too large");
    }

    return MCD_CONNECT_AGAIN;
}


int
mcd_connect_method(const unsigned char *buf, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (buf[i] == ' ') {
            break;
        }

        if (!mcd_connect_is_tchar(buf[i])) {
            return MCD_CONNECT_ERROR;
        }
    }

    if (i == len) {
        return MCD_CONNECT_AGAIN;
    }

    if (i == 0) {
        return MCD_CONNECT_ERROR;
    }

    if (i == 7 && memcmp(buf, "CONNECT", 7) == 0) {
        return MCD_CONNECT_OK;
    }

    return MCD_CONNECT_OTHER;
}


/*
 * In an accepted head every CR is followed by a LF, no line before the
 * last is empty, and the request line is not empty: so the head ends at
 * the first LF that follows a LF, or a LF and a CR.  The state carries
 * over the last one or two bytes of the previous piece.
 */

size_t
mcd_connect_scan(mcd_connect_scan_t *st, const unsigned char *p, size_t n)
{
    size_t                i;
    const unsigned char  *lf;

    if (st->state == MCD_CONNECT_SCAN_DONE) {
        return 0;
    }

    i = 0;

    while (i < n) {

        switch (st->state) {

        case MCD_CONNECT_SCAN_LF:
        case MCD_CONNECT_SCAN_LFCR:

            if (p[i] == MCD_LF) {
                i++;
                st->state = MCD_CONNECT_SCAN_DONE;
                st->total += i;
                return i;
            }

            if (p[i] == MCD_CR && st->state == MCD_CONNECT_SCAN_LF) {
                st->state = MCD_CONNECT_SCAN_LFCR;

            } else {
                st->state = MCD_CONNECT_SCAN_LINE;
            }

            i++;
            break;

        default: /* MCD_CONNECT_SCAN_LINE */

            lf = memchr(p + i, MCD_LF, n - i);

            if (lf == NULL) {
                i = n;
                break;
            }

            i = (size_t) (lf - p) + 1;
            st->state = MCD_CONNECT_SCAN_LF;
            break;
        }
    }

    st->total += n;

    return n;
}


int
mcd_connect_scan_done(const mcd_connect_scan_t *st)
{
    return st->state == MCD_CONNECT_SCAN_DONE;
}


/*
 * Validates a complete authority-form target a[0 .. n) and fills in
 * authority, host, port and ipv6.  The caller has seen the whole target
 * up to its SP: no control byte, SP or DEL, and no '@'.
 *
 * A host name is only delimited here, not validated: any byte that is
 * not a delimiter (RFC 3986 gen-delims ":/?#[]@", and '\', which URL
 * parsers take for '/') is left for the FQDN validator, which refuses a
 * name like "bad!name.test" or a UTF-8 one as bad_name.  '%' is refused
 * here, since percent-encoding would need decoding before validation.
 */

static int
mcd_connect_authority(const unsigned char *a, size_t n, mcd_connect_t *r)
{
    size_t          k, colons;
    unsigned        port;
    unsigned char   c;

    if (n == 0) {
        /* two spaces after the method */
        return mcd_connect_fail(r, 400, "malformed request line");
    }

    if (memchr(a, '%', n) != NULL) {
        return mcd_connect_fail(r, 400, "percent-encoding not allowed");
    }

    if (a[0] == '[') {

        colons = 0;

        for (k = 1; k < n && a[k] != ']'; k++) {
            c = a[k];

            if (c == ':') {
                colons++;

            } else if (c != '.' && !mcd_connect_is_hex(c)) {
                return mcd_connect_fail(r, 400, "bad IPv6 address");
            }
        }

        if (k == n || colons < 2) {
            return mcd_connect_fail(r, 400, "bad IPv6 address");
        }

        r->host = a + 1;
        r->host_len = k - 1;
        r->ipv6 = 1;

        k++;

        if (k == n) {
            return mcd_connect_fail(r, 400, "missing port");
        }

        if (a[k] != ':') {
            return mcd_connect_fail(r, 400, "bad IPv6 address");
        }

    } else {

        for (k = 0; k < n && a[k] != ':'; k++) {
            switch (a[k]) {
            case '/': case '?': case '#': case '[': case ']': case '\\':
                return mcd_connect_fail(r, 400, "bad host");
            }
        }

        if (k < n && memchr(a + k + 1, ':', n - k - 1) != NULL) {

            /* more than one colon: an IPv6 literal without brackets? */

            for (k = 0; k < n; k++) {
                if (a[k] != ':' && a[k] != '.' && !mcd_connect_is_hex(a[k])) {
                    return mcd_connect_fail(r, 400, "bad host");
                }
            }

            return mcd_connect_fail(r, 400, "IPv6 address without brackets");
        }

        if (k == 0) {
            return mcd_connect_fail(r, 400, "missing host");
        }

        if (k == n) {
            return mcd_connect_fail(r, 400, "missing port");
        }

        r->host = a;
        r->host_len = k;
    }

    /* a[k] is the ':' before the port */

    k++;

    if (k == n) {
        return mcd_connect_fail(r, 400, "missing port");
    }

    if (n - k > MCD_CONNECT_MAX_PORT_DIGITS) {
        return mcd_connect_fail(r, 400, "bad port");
    }

    port = 0;

    for ( /* void */ ; k < n; k++) {
        c = a[k];

        if (c < '0' || c > '9') {
            return mcd_connect_fail(r, 400, "bad port");
        }

        port = port * 10 + (c - '0');
    }

    if (port == 0 || port > 65535) {
        return mcd_connect_fail(r, 400, "bad port");
    }

    r->authority = a;
    r->authority_len = n;
    r->port = port;

    return MCD_CONNECT_OK;
}


static int
mcd_connect_fail(mcd_connect_t *r, unsigned status, const char *detail)
{
    r->head_len = 0;
    r->authority = NULL;
    r->authority_len = 0;
    r->host = NULL;
    r->host_len = 0;
    r->port = 0;
    r->ipv6 = 0;
    r->proxy_authorization = NULL;
    r->proxy_authorization_len = 0;

    r->status = status;
    r->reason = mcd_connect_reason;
    r->detail = detail;

    return MCD_CONNECT_ERROR;
}


/* RFC 9110, section 5.6.2 */

static int
mcd_connect_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'':
    case '*': case '+': case '-': case '.': case '^': case '_':
    case '`': case '|': case '~':
        return 1;
    }

    return 0;
}


static int
mcd_connect_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


/* compares a field name with a lowercase string, ignoring ASCII case */

static int
mcd_connect_name_is(const unsigned char *name, size_t len, const char *lower)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        if (lower[i] == '\0') {
            return 0;
        }

        c = name[i];

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c != (unsigned char) lower[i]) {
            return 0;
        }
    }

    return lower[len] == '\0';
}
