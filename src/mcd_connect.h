
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


#endif /* MCD_CONNECT_H_INCLUDED_ */
