
/*
 * ngx_mcd: parser for the head of an HTTP/1.x CONNECT request.
 *
 * The parser keeps no state between calls: the caller peeks at the
 * client's bytes and calls mcd_connect_parse() on everything received
 * so far, again each time more bytes arrive.  It never allocates
 * memory; every pointer it returns points into the caller's buffer.
 */


#ifndef MCD_CONNECT_H_INCLUDED_
#define MCD_CONNECT_H_INCLUDED_


#include <stddef.h>


#define MCD_CONNECT_OK          0   /* complete, valid CONNECT head */
#define MCD_CONNECT_AGAIN       1   /* need more bytes */
#define MCD_CONNECT_OTHER       2   /* a request with another method */
#define MCD_CONNECT_ERROR      -1   /* status, reason and detail are set */

/* the largest number of header fields accepted */
#define MCD_CONNECT_MAX_FIELDS  100


typedef struct {
    /* bytes of the head including the terminating empty line */
    size_t                head_len;

    const unsigned char  *method;
    size_t                method_len;

    /* the request target as sent, e.g. "[::1]:443" */
    const unsigned char  *authority;
    size_t                authority_len;

    /* the host, without brackets for IPv6 literals; not normalised */
    const unsigned char  *host;
    size_t                host_len;

    unsigned              port;         /* 1..65535 */
    unsigned              http_minor;   /* 0 or 1 */
    unsigned              ipv6:1;       /* host was a [bracketed] literal */

    /* on MCD_CONNECT_ERROR only */
    unsigned              status;       /* 400 or 431 */
    const char           *reason;       /* "bad_request" */
    const char           *detail;       /* short text for the response */

    /* the trimmed value of Proxy-Authorization, or NULL if absent */
    const unsigned char  *proxy_authorization;
    size_t                proxy_authorization_len;
} mcd_connect_t;


/* mcd_connect_scan_t.state values; zero (LINE) starts a scan */
#define MCD_CONNECT_SCAN_LINE   0   /* inside a line */
#define MCD_CONNECT_SCAN_LF     1   /* just after a LF */
#define MCD_CONNECT_SCAN_LFCR   2   /* after a LF and a CR */
#define MCD_CONNECT_SCAN_DONE   3   /* the head's end was found */


typedef struct {
    unsigned              state;        /* MCD_CONNECT_SCAN_* */
    size_t                total;        /* head bytes seen so far */
} mcd_connect_scan_t;                   /* zeroed to start */


/*
 * Parses the request head at the start of buf[0 .. len).  At most
 * max_head bytes are examined: a head that is not complete within
 * max_head bytes yields MCD_CONNECT_ERROR with status 431.  Returns
 * MCD_CONNECT_AGAIN only while len < max_head and nothing is wrong yet.
 * The result depends only on the first min(len, max_head) bytes and on
 * whether len >= max_head, so a call on more bytes never contradicts a
 * final answer given for fewer.
 */
int mcd_connect_parse(const unsigned char *buf, size_t len, size_t max_head,
    mcd_connect_t *r);


/*
 * The first token of a request in buf[0 .. len): MCD_CONNECT_OK when it
 * is "CONNECT" followed by SP, MCD_CONNECT_OTHER when it is another
 * method token (RFC 9110 tchars) followed by SP, MCD_CONNECT_AGAIN when
 * the len bytes are all tchars so far (the caller bounds how long it
 * waits: the method counts against its max_head), MCD_CONNECT_ERROR when
 * the bytes cannot start an HTTP request.  It agrees with
 * mcd_connect_parse() on the same bytes with a max_head above len:
 * OTHER exactly when that says OTHER, ERROR only when that says ERROR,
 * AGAIN only when that says AGAIN.  Leading empty lines are handled as
 * mcd_connect_parse() handles them: a CR or LF before the method is an
 * error (400 "malformed request line").
 */
int mcd_connect_method(const unsigned char *buf, size_t len);

/*
 * Finds the end of a request head in a stream fed in pieces of any
 * size: feed the next n bytes p[0 .. n) of the stream; returns how many
 * of them belong to the head, n while its end is not among them, fewer
 * when the empty line that ends the head ends inside them; st->state is
 * then MCD_CONNECT_SCAN_DONE and st->total the head's length, which
 * equals mcd_connect_parse()'s head_len for every head that
 * mcd_connect_parse() accepts (lines end with LF or CRLF; the head ends
 * at the first LF that follows a LF, or a LF and a CR).  Once done, it
 * returns 0.  It validates nothing: the caller parses the head it
 * delimits, and bounds st->total by its max_head.  Each byte is looked
 * at once, so the total work is linear in the bytes fed however they are
 * split.
 */
size_t mcd_connect_scan(mcd_connect_scan_t *st, const unsigned char *p,
    size_t n);

/* 1 when mcd_connect_scan() has found the end of the head, else 0 */
int mcd_connect_scan_done(const mcd_connect_scan_t *st);


#endif /* MCD_CONNECT_H_INCLUDED_ */
