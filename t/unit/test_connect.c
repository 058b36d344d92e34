
/*
 * Unit tests for src/mcd_connect.c.
 *
 * cc -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Isrc \
 *     src/mcd_connect.c t/unit/test_connect.c -o /tmp/test_connect
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcd_connect.h"


#define T_MAX_HEAD  8192

#define OK     MCD_CONNECT_OK
#define AGAIN  MCD_CONNECT_AGAIN
#define OTHER  MCD_CONNECT_OTHER
#define ERR    MCD_CONNECT_ERROR


typedef struct {
    const char  *in;
    size_t       len;        /* 0: strlen(in) */
    size_t       max_head;   /* 0: T_MAX_HEAD */
    int          rc;
    unsigned     status;     /* ERR */
    const char  *detail;     /* ERR */
    const char  *host;       /* OK: host; OTHER: method */
    unsigned     port;
    unsigned     ipv6;
    unsigned     minor;
    const char  *auth;       /* OK: Proxy-Authorization or NULL */
    size_t       head_len;   /* OK: 0 means the whole input */
} t_case_t;


static unsigned  checks;
static unsigned  failed;


#define CHECK(cond, what, idx)                                               \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failed++;                                                        \
            fprintf(stderr, "test_connect: %s:%d: case %d: %s: %s\n",        \
                    __FILE__, __LINE__, (int) (idx), what, #cond);           \
        }                                                                    \
    } while (0)


static const t_case_t  cases[] = {

    /* valid heads */

    { "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
      0, 0, OK, 0, NULL, "example.com", 443, 0, 1, NULL, 0 },
    { "CONNECT example.com:443 HTTP/1.0\r\n\r\n",
      0, 0, OK, 0, NULL, "example.com", 443, 0, 0, NULL, 0 },
    { "CONNECT example.com:443 HTTP/1.1\nHost: x\n\n",
      0, 0, OK, 0, NULL, "example.com", 443, 0, 1, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nA: b\n\r\n",
      0, 0, OK, 0, NULL, "a", 1, 0, 1, NULL, 0 },
    { "CONNECT a.b:65535 HTTP/1.1\n\r\n",
      0, 0, OK, 0, NULL, "a.b", 65535, 0, 1, NULL, 0 },
    { "CONNECT my_host-1.internal.:00443 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "my_host-1.internal.", 443, 0, 1, NULL, 0 },
    { "CONNECT 192.0.2.1:8080 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "192.0.2.1", 8080, 0, 1, NULL, 0 },
    { "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
      0, 0, OK, 0, NULL, "::1", 443, 1, 1, NULL, 0 },
    { "CONNECT [2001:DB8::a:1]:8443 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "2001:DB8::a:1", 8443, 1, 1, NULL, 0 },
    { "CONNECT [::ffff:192.0.2.1]:443 HTTP/1.0\r\n\r\n",
      0, 0, OK, 0, NULL, "::ffff:192.0.2.1", 443, 1, 0, NULL, 0 },
    { "CONNECT h:443 HTTP/1.1\r\n"
      "Proxy-Authorization:   Basic dXNlcjpwYXNz \t \r\n\r\n",
      0, 0, OK, 0, NULL, "h", 443, 0, 1, "Basic dXNlcjpwYXNz", 0 },
    { "CONNECT h:443 HTTP/1.1\r\nproxy-AUTHORIZATION:Bearer t\r\n\r\n",
      0, 0, OK, 0, NULL, "h", 443, 0, 1, "Bearer t", 0 },
    { "CONNECT h:443 HTTP/1.1\r\nProxy-Authorization:  \r\n\r\n",
      0, 0, OK, 0, NULL, "h", 443, 0, 1, "", 0 },
    { "CONNECT h:443 HTTP/1.1\r\nProxy-Authorization-X: a\r\n"
      "Proxy-Authorizatio: b\r\n\r\n",
      0, 0, OK, 0, NULL, "h", 443, 0, 1, NULL, 0 },
    { "CONNECT h:443 HTTP/1.1\r\nUser-Agent: \xc3\xa9t\xe9\t x\r\n"
      "X-Empty:\r\n!#$%&'*+-.^_`|~09az: v\r\n\r\n",
      0, 0, OK, 0, NULL, "h", 443, 0, 1, NULL, 0 },

    /*
     * a host that is not a valid name is delimited, not judged: the FQDN
     * validator refuses it downstream as bad_name
     */
    { "CONNECT bad!name.test:443 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "bad!name.test", 443, 0, 1, NULL, 0 },
    { "CONNECT exa*mple.com:443 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "exa*mple.com", 443, 0, 1, NULL, 0 },
    { "CONNECT !$&'()*+,;=\"<>^`{|}~:443 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "!$&'()*+,;=\"<>^`{|}~", 443, 0, 1, NULL, 0 },
    { "CONNECT a\x80:1 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "a\x80", 1, 0, 1, NULL, 0 },
    { "CONNECT b\xc3\xbc" "cher.example:443 HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "b\xc3\xbc" "cher.example", 443, 0, 1, NULL, 0 },

    /* pipelined bytes after the head are not part of it */
    { "CONNECT example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x02\x00\x01",
      0, 0, OK, 0, NULL, "example.com", 443, 0, 1, NULL, 36 },
    { "CONNECT example.com:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
      0, 0, OK, 0, NULL, "example.com", 443, 0, 1, NULL, 36 },

    /* exactly max_head bytes */
    { "CONNECT a:1 HTTP/1.1\r\n\r\n",
      0, 24, OK, 0, NULL, "a", 1, 0, 1, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\n\r\nXYZ",
      0, 24, OK, 0, NULL, "a", 1, 0, 1, NULL, 24 },

    /* other methods */

    { "GET http://example.com/ HTTP/1.1\r\n\r\n",
      0, 0, OTHER, 0, NULL, "GET", 0, 0, 0, NULL, 0 },
    { "GET ", 0, 0, OTHER, 0, NULL, "GET", 0, 0, 0, NULL, 0 },
    { "connect a:1 HTTP/1.1\r\n\r\n",
      0, 0, OTHER, 0, NULL, "connect", 0, 0, 0, NULL, 0 },
    { "CONNECTX a:1 HTTP/1.1\r\n\r\n",
      0, 0, OTHER, 0, NULL, "CONNECTX", 0, 0, 0, NULL, 0 },
    { "CONNEC a:1", 0, 0, OTHER, 0, NULL, "CONNEC", 0, 0, 0, NULL, 0 },
    { "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      0, 0, OTHER, 0, NULL, "PRI", 0, 0, 0, NULL, 0 },
    { "X ", 0, 0, OTHER, 0, NULL, "X", 0, 0, 0, NULL, 0 },
    { "GET \x01\x02", 0, 0, OTHER, 0, NULL, "GET", 0, 0, 0, NULL, 0 },

    /* incomplete */

    { "", 0, 0, AGAIN, 0, NULL, NULL, 0, 0, 0, NULL, 0 },
    { "C", 0, 0, AGAIN, 0, NULL, NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT", 0, 0, AGAIN, 0, NULL, NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n",
      0, 0, AGAIN, 0, NULL, NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r",
      0, 0, AGAIN, 0, NULL, NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\n\r", 0, 25, AGAIN, 0, NULL, NULL,
      0, 0, 0, NULL, 0 },

    /* not HTTP at all, detected from the first byte */

    { "\x16", 0, 0, ERR, 400, "not an HTTP request",
      NULL, 0, 0, 0, NULL, 0 },
    { "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, 0, ERR, 400,
      "not an HTTP request", NULL, 0, 0, 0, NULL, 0 },
    { "\x00", 1, 0, ERR, 400, "not an HTTP request",
      NULL, 0, 0, 0, NULL, 0 },
    { "\x80GET", 0, 0, ERR, 400, "not an HTTP request",
      NULL, 0, 0, 0, NULL, 0 },

    /* malformed request lines */

    { " CONNECT a:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "\r\nCONNECT a:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "\nCONNECT a:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT  a:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1  HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1 \r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT\ta:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1\tHTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONN\0ECT a:1 HTTP/1.1\r\n\r\n", 26, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1\0 HTTP/1.1\r\n\r\n", 26, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a\x7f:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a\x01b:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1\x80 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1\x80]:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\rX\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 http/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.10\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/11\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/x.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:4 43 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },

    /* unsupported versions */

    { "CONNECT a:1 HTTP/2.0\r\n\r\n", 0, 0, ERR, 400,
      "unsupported HTTP version", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.2\r\n\r\n", 0, 0, ERR, 400,
      "unsupported HTTP version", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/0.9\n", 0, 0, ERR, 400,
      "unsupported HTTP version", NULL, 0, 0, 0, NULL, 0 },

    /* authorities */

    { "CONNECT user@a:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT user:pass@example.com:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1@b:2 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT user@", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a\x01@", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT @:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:443@ HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1]@h:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a%2e:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "percent-encoding not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:%31 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "percent-encoding not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [fe80::1%25eth0]:1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "percent-encoding not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT example.com HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT example.com: HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1] HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1]: HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT :443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT : HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:0 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:00000 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:65536 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:99999 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:000443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:4294967297 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:-1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:+443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:44x HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:443/ HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1]:0x1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1]:1:2 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1]443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT []:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [1]:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [g::1]:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [v1.x]:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [::1]]:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT [[::1]]:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad IPv6 address", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT ::1:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "IPv6 address without brackets", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "IPv6 address without brackets", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT http://a:1/ HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT host:1:2 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a?b:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a#b:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a[b:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad!name.test HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad!name.test: HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad!name.test:44x HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad!name.test:1:2 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT u@bad!name.test:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "userinfo not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad%21name.test:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "percent-encoding not allowed", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad name.test:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "missing port", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT bad\tname.test:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "malformed request line", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a/b:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a\\b:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT x]:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT /:443 HTTP/1.1\r\n\r\n", 0, 0, ERR, 400,
      "bad host", NULL, 0, 0, 0, NULL, 0 },

    /* header fields */

    { "CONNECT a:1 HTTP/1.1\r\nHost : a\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\n Host: a\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHo st: a\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\n: a\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost\n\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nH(ost: a\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\0b\r\n\r\n", 32, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\x01\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\rb\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\rX", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nH\xc3\xa9: a\r\n\r\n", 0, 0, ERR, 400,
      "malformed header", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic a\r\n"
      "proxy-authorization: Basic b\r\n\r\n", 0, 0, ERR, 400,
      "duplicate Proxy-Authorization", NULL, 0, 0, 0, NULL, 0 },

    /* size limits */

    { "CONNECT a:1 HTTP/1.1\r\n\r\n", 0, 23, ERR, 431,
      "request header too large", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\n\r", 0, 23, ERR, 431,
      "request header too large", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a-very-long-host-name.example.com:443 HTTP/1.1\r\n\r\n",
      0, 32, ERR, 431, "request header too large", NULL, 0, 0, 0, NULL, 0 },
    { "CONNECT a:1 HTTP/1.1\r\nX: 0123456789012345678901234567890\r\n\r\n",
      0, 40, ERR, 431, "request header too large", NULL, 0, 0, 0, NULL, 0 },
    { "GETTING", 0, 7, ERR, 431, "request header too large",
      NULL, 0, 0, 0, NULL, 0 },
    { "", 0, 1, AGAIN, 0, NULL, NULL, 0, 0, 0, NULL, 0 },

    /* an error inside the limit wins over the limit */
    { "CONNECT a:0 HTTP/1.1\r\n\r\n", 0, 22, ERR, 400,
      "bad port", NULL, 0, 0, 0, NULL, 0 },

    { NULL, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, NULL, 0 }
};


static int
same_str(const unsigned char *p, size_t n, const char *s)
{
    if (s == NULL) {
        return p == NULL && n == 0;
    }

    return p != NULL && strlen(s) == n && memcmp(p, s, n) == 0;
}


/* pointers returned must lie inside buf[0 .. len) */

static int
inside(const unsigned char *p, size_t n, const unsigned char *buf,
    size_t len)
{
    if (p == NULL) {
        return n == 0;
    }

    return p >= buf && p <= buf + len && n <= (size_t) (buf + len - p);
}


static void
check_result_sane(int idx, const unsigned char *buf, size_t len,
    size_t max_head, int rc, const mcd_connect_t *r)
{
    CHECK(rc == OK || rc == AGAIN || rc == OTHER || rc == ERR,
          "rc range", idx);

    CHECK(inside(r->method, r->method_len, buf, len), "method inside", idx);
    CHECK(inside(r->authority, r->authority_len, buf, len),
          "authority inside", idx);
    CHECK(inside(r->host, r->host_len, buf, len), "host inside", idx);
    CHECK(inside(r->proxy_authorization, r->proxy_authorization_len,
                 buf, len), "proxy_authorization inside", idx);

    if (rc == OK) {
        CHECK(r->head_len > 0 && r->head_len <= len
              && r->head_len <= max_head, "head_len", idx);
        CHECK(r->port >= 1 && r->port <= 65535, "port range", idx);
        CHECK(r->http_minor <= 1, "minor", idx);
        CHECK(r->host != NULL && r->host_len > 0, "host set", idx);
        CHECK(r->host >= r->authority
              && r->host + r->host_len <= r->authority + r->authority_len,
              "host in authority", idx);
    }

    if (rc == ERR) {
        CHECK(r->status == 400 || r->status == 431, "status", idx);
        CHECK(r->reason != NULL && strcmp(r->reason, "bad_request") == 0,
              "reason", idx);
        CHECK(r->detail != NULL && r->detail[0] != '\0', "detail", idx);
        CHECK(r->head_len == 0, "no head_len on error", idx);

    } else {
        CHECK(r->status == 0 && r->detail == NULL, "no status", idx);
    }

    if (rc == AGAIN) {
        CHECK(len < max_head, "AGAIN only below max_head", idx);
    }
}


static void
run_case(int idx, const t_case_t *c)
{
    int             rc, prc;
    size_t          len, max_head, k;
    unsigned char  *buf;
    mcd_connect_t   r, pr;

    len = c->len ? c->len : strlen(c->in);
    max_head = c->max_head ? c->max_head : T_MAX_HEAD;

    /* an exact-size heap copy lets valgrind and ASan see overreads */

    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, c->in, len);

    rc = mcd_connect_parse(buf, len, max_head, &r);

    CHECK(rc == c->rc, "rc", idx);
    if (rc != c->rc) {
        fprintf(stderr, "    got rc %d (%s), want %d\n", rc,
                r.detail ? r.detail : "-", c->rc);
    }

    check_result_sane(idx, buf, len, max_head, rc, &r);

    if (rc == ERR && c->rc == ERR) {
        CHECK(r.status == c->status, "status", idx);
        CHECK(strcmp(r.detail, c->detail) == 0, "detail", idx);
        if (strcmp(r.detail, c->detail) != 0) {
            fprintf(stderr, "    got detail \"%s\", want \"%s\"\n",
                    r.detail, c->detail);
        }
    }

    if (rc == OK && c->rc == OK) {
        CHECK(same_str(r.method, r.method_len, "CONNECT"), "method", idx);
        CHECK(same_str(r.host, r.host_len, c->host), "host", idx);
        CHECK(r.port == c->port, "port", idx);
        CHECK(r.ipv6 == c->ipv6, "ipv6", idx);
        CHECK(r.http_minor == c->minor, "http_minor", idx);
        CHECK(same_str(r.proxy_authorization, r.proxy_authorization_len,
                       c->auth), "proxy_authorization", idx);
        CHECK(r.head_len == (c->head_len ? c->head_len : len),
              "head_len", idx);
        CHECK(r.authority == buf + 8
              && r.authority + r.authority_len < buf + len
              && r.authority[r.authority_len] == ' ',
              "authority", idx);
        CHECK(r.ipv6 ? (r.host == r.authority + 1) : (r.host == r.authority),
              "host position", idx);
    }

    if (rc == OTHER && c->rc == OTHER) {
        CHECK(same_str(r.method, r.method_len, c->host), "method", idx);
        CHECK(r.head_len == 0 && r.host == NULL, "other fields", idx);
    }

    /*
     * Every prefix gives AGAIN or the very same answer: that is what
     * the caller sees while bytes arrive one at a time.
     */

    for (k = 0; k < len; k++) {
        prc = mcd_connect_parse(buf, k, max_head, &pr);

        check_result_sane(idx, buf, k, max_head, prc, &pr);

        if (prc == AGAIN) {
            continue;
        }

        CHECK(prc == rc, "prefix answer differs", idx);

        if (prc == ERR && rc == ERR) {
            CHECK(pr.status == r.status
                  && strcmp(pr.detail, r.detail) == 0,
                  "prefix error differs", idx);
        }

        if (prc == OK && rc == OK) {
            CHECK(pr.head_len == r.head_len, "prefix head_len", idx);
        }

        if (prc != rc) {
            fprintf(stderr, "    prefix %zu: rc %d, whole: %d\n",
                    k, prc, rc);
            break;
        }
    }

    /* a valid head: no prefix of it may be refused */

    if (c->rc == OK || c->rc == OTHER) {
        for (k = 0; k < len && k < max_head; k++) {
            prc = mcd_connect_parse(buf, k, max_head, &pr);

            if (k < (c->rc == OK ? r.head_len : r.method_len + 1)) {
                CHECK(prc == AGAIN, "prefix of valid head is AGAIN", idx);

            } else {
                CHECK(prc == rc, "prefix past the head", idx);
            }
        }
    }

    free(buf);
}


static void
test_field_count(void)
{
    int             rc, n;
    char           *buf;
    size_t          len;
    mcd_connect_t   r;

    buf = malloc(8192);
    if (buf == NULL) {
        abort();
    }

    for (n = 98; n <= 102; n++) {
        int  i;

        len = (size_t) sprintf(buf, "CONNECT h:443 HTTP/1.1\r\n");

        for (i = 0; i < n; i++) {
            len += (size_t) sprintf(buf + len, "X-%d: v\r\n", i);
        }

        len += (size_t) sprintf(buf + len, "\r\n");

        rc = mcd_connect_parse((unsigned char *) buf, len, 8192, &r);

        if (n <= MCD_CONNECT_MAX_FIELDS) {
            CHECK(rc == OK && r.head_len == len, "fields within limit", n);

        } else {
            CHECK(rc == ERR && r.status == 431
                  && strcmp(r.detail, "too many header fields") == 0,
                  "too many fields", n);
        }
    }

    free(buf);
}


static void
test_max_head_edges(void)
{
    int             rc;
    size_t          len, max;
    mcd_connect_t   r;

    static const char  head[] =
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n";

    len = sizeof(head) - 1;

    for (max = 0; max <= len + 2; max++) {
        rc = mcd_connect_parse((const unsigned char *) head, len, max, &r);

        if (max >= len) {
            CHECK(rc == OK && r.head_len == len, "fits max_head", (int) max);

        } else if (max <= 8) {
            /* "CONNECT " is not complete: nothing decided yet */
            CHECK(rc == ERR && r.status == 431, "tiny max_head", (int) max);

        } else {
            CHECK(rc == ERR && r.status == 431
                  && strcmp(r.detail, "request header too large") == 0,
                  "over max_head", (int) max);
        }
    }

    /* a NULL buffer with no bytes is fine */

    rc = mcd_connect_parse(NULL, 0, 100, &r);
    CHECK(rc == AGAIN, "NULL buffer", 0);

    rc = mcd_connect_parse(NULL, 0, 0, &r);
    CHECK(rc == ERR && r.status == 431, "NULL buffer, zero max_head", 0);
}


/* every single-byte value at every position of a valid head */

static void
test_byte_flips(void)
{
    int             rc, v;
    size_t          len, i;
    unsigned char   buf[128];
    mcd_connect_t   r;

    static const char  head[] =
        "CONNECT [::1]:443 HTTP/1.1\r\nProxy-Authorization: B x\r\n\r\n";

    len = sizeof(head) - 1;

    for (i = 0; i < len; i++) {
        for (v = 0; v < 256; v++) {
            memcpy(buf, head, len);
            buf[i] = (unsigned char) v;

            rc = mcd_connect_parse(buf, len, sizeof(buf), &r);

            check_result_sane((int) i, buf, len, sizeof(buf), rc, &r);

            if (v == 0 || v == 0x7f || (v < 0x20 && v != '\t'
                                        && v != '\r' && v != '\n'))
            {
                /* control bytes are never accepted anywhere */
                CHECK(rc == ERR || rc == OTHER, "control byte", (int) i);
            }
        }
    }
}


/* a small deterministic generator, so that failures reproduce */

static unsigned long  t_seed = 0x5eed1234;

static unsigned
t_rand(void)
{
    t_seed = t_seed * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned) (t_seed >> 33);
}


typedef struct {
    const char  *in;
    size_t       len;        /* 0: strlen(in) */
    int          rc;
} t_method_t;


static const t_method_t  methods[] = {
    { "", 0, AGAIN },
    { "C", 0, AGAIN },
    { "CONNECT", 0, AGAIN },
    { "CONNECTCONNECT", 0, AGAIN },
    { "CONNECT ", 0, OK },
    { "CONNECT x", 0, OK },
    { "CONNECT \x01", 0, OK },
    { "GET ", 0, OTHER },
    { "GET /", 0, OTHER },
    { "connect ", 0, OTHER },
    { "CONNECTX ", 0, OTHER },
    { "CONNEC ", 0, OTHER },
    { "X ", 0, OTHER },
    { "!#$%&'*+-.^_`|~ ", 0, OTHER },
    { " ", 0, ERR },
    { " CONNECT ", 0, ERR },
    { "\r\nCONNECT ", 0, ERR },
    { "\nCONNECT ", 0, ERR },
    { "\r", 0, ERR },
    { "\x16\x03\x01", 0, ERR },
    { "\x00", 1, ERR },
    { "\x80", 0, ERR },
    { "GE\x01", 0, ERR },
    { "GET\t", 0, ERR },
    { "CONNECT\t", 0, ERR },
    { "CONNECT\r\n", 0, ERR },
    { "CON(NECT ", 0, ERR },
    { NULL, 0, 0 }
};


/* method() agrees with parse() on buf[0 .. len), max_head above len */

static void
check_method_agrees(int idx, const unsigned char *buf, size_t len)
{
    int            m, p;
    mcd_connect_t  r;

    m = mcd_connect_method(buf, len);
    p = mcd_connect_parse(buf, len, len + 1, &r);

    CHECK(m == OK || m == AGAIN || m == OTHER || m == ERR, "method rc", idx);
    CHECK((m == OTHER) == (p == OTHER), "OTHER agrees", idx);
    CHECK(m != ERR || p == ERR, "ERROR agrees", idx);
    CHECK(m != AGAIN || p == AGAIN, "AGAIN agrees", idx);
    CHECK((m == OK) == (len >= 8 && memcmp(buf, "CONNECT ", 8) == 0),
          "OK is \"CONNECT \"", idx);

    if (m == OTHER) {
        CHECK(r.method == buf && buf[r.method_len] == ' ', "method", idx);
    }
}


static void
test_method(void)
{
    int            i, rc;
    size_t         len, k;
    unsigned       v, w;
    unsigned char  buf[16];

    static const char  alpha[] = "CONECT \r\n\t\x01\x80:xG";

    for (i = 0; methods[i].in != NULL; i++) {
        len = methods[i].len ? methods[i].len : strlen(methods[i].in);

        rc = mcd_connect_method((const unsigned char *) methods[i].in, len);
        CHECK(rc == methods[i].rc, "method table", i);

        for (k = 0; k <= len; k++) {
            check_method_agrees(i, (const unsigned char *) methods[i].in, k);
        }
    }

    /* every prefix of every parser case */

    for (i = 0; cases[i].in != NULL; i++) {
        len = cases[i].len ? cases[i].len : strlen(cases[i].in);

        for (k = 0; k <= len; k++) {
            check_method_agrees(i, (const unsigned char *) cases[i].in, k);
        }
    }

    /* every one- and two-byte input */

    for (v = 0; v < 256; v++) {
        buf[0] = (unsigned char) v;
        check_method_agrees((int) v, buf, 1);

        for (w = 0; w < 256; w++) {
            buf[1] = (unsigned char) w;
            check_method_agrees((int) v, buf, 2);
        }
    }

    /* random short strings around "CONNECT " */

    for (i = 0; i < 200000; i++) {
        len = t_rand() % 11;

        for (k = 0; k < len; k++) {
            buf[k] = (unsigned char) alpha[t_rand() % (sizeof(alpha) - 1)];
        }

        if (i % 3 == 0 && len >= 8) {
            memcpy(buf, "CONNECT ", 8);
            buf[t_rand() % 8] = (unsigned char)
                                alpha[t_rand() % (sizeof(alpha) - 1)];
        }

        check_method_agrees(i, buf, len);
    }

    CHECK(mcd_connect_method(NULL, 0) == AGAIN, "NULL buffer", 0);
}


/* feeds buf[0 .. len) to a fresh scan in the pieces cut[0 .. ncut) */

static size_t
scan_pieces(const unsigned char *buf, size_t len, const size_t *cut,
    size_t ncut, int idx)
{
    size_t              i, from, to, ret, sum;
    int                 done;
    mcd_connect_scan_t  st;

    memset(&st, 0, sizeof(st));

    sum = 0;
    from = 0;

    for (i = 0; i <= ncut; i++) {
        to = (i < ncut) ? cut[i] : len;

        done = mcd_connect_scan_done(&st);

        ret = mcd_connect_scan(&st, buf + from, to - from);

        CHECK(ret <= to - from, "scan within its piece", idx);

        if (done) {
            CHECK(ret == 0, "nothing after done", idx);

        } else if (!mcd_connect_scan_done(&st)) {
            CHECK(ret == to - from, "all of a piece before the end", idx);

        } else {
            CHECK(ret > 0 && buf[from + ret - 1] == '\n',
                  "the head ends with a LF", idx);
        }

        sum += ret;
        from = to;
    }

    CHECK(sum == st.total, "total is the sum", idx);

    return mcd_connect_scan_done(&st) ? sum : 0;
}


/* the scan finds head_len (0: no end) however buf is cut */

static void
check_scan(int idx, const unsigned char *buf, size_t len, size_t head_len)
{
    size_t  k, cut[8], n, i, j, t;

    CHECK(scan_pieces(buf, len, NULL, 0, idx) == head_len, "whole", idx);

    for (k = 0; k <= len; k++) {
        cut[0] = k;
        CHECK(scan_pieces(buf, len, cut, 1, idx) == head_len,
              "two pieces", idx);
        if (scan_pieces(buf, len, cut, 1, idx) != head_len) {
            fprintf(stderr, "    cut at %zu of %zu: want %zu\n",
                    k, len, head_len);
            break;
        }
    }

    for (i = 0; i < 8; i++) {
        n = 1 + t_rand() % 8;

        for (j = 0; j < n; j++) {
            cut[j] = len ? t_rand() % (len + 1) : 0;
        }

        /* sorted, duplicates make empty pieces */

        for (j = 1; j < n; j++) {
            for (k = j; k > 0 && cut[k - 1] > cut[k]; k--) {
                t = cut[k];
                cut[k] = cut[k - 1];
                cut[k - 1] = t;
            }
        }

        CHECK(scan_pieces(buf, len, cut, n, idx) == head_len,
              "random pieces", idx);
    }

    /* a byte at a time */

    {
        mcd_connect_scan_t  st;
        size_t              sum;

        memset(&st, 0, sizeof(st));
        sum = 0;

        for (k = 0; k < len; k++) {
            sum += mcd_connect_scan(&st, buf + k, 1);
        }

        CHECK((mcd_connect_scan_done(&st) ? sum : 0) == head_len,
              "byte by byte", idx);
    }
}


static size_t
gen_put(unsigned char *b, size_t n, const char *s)
{
    size_t  l;

    l = strlen(s);
    memcpy(b + n, s, l);

    return n + l;
}


static const char *
gen_eol(void)
{
    return (t_rand() % 2) ? "\r\n" : "\n";
}


/* a random head, valid unless mutated, with random bytes after it */

static size_t
gen_head(unsigned char *b)
{
    size_t  n, i, k, l;

    static const char  *targets[] = {
        "example.com:443", "[::1]:443", "a:1", "bad!name.test:443",
        "10.0.0.1:8443", "x"
    };

    static const char  tchar[] = "abcXYZ019-_!#~";
    static const char  vchar[] = "ab Z:\t\x80\xff;=,\"";
    static const char  any[] = "\r\n \t\0a:\x80";

    n = gen_put(b, 0, (t_rand() % 8) ? "CONNECT " : "GET ");
    n = gen_put(b, n, targets[t_rand() % 6]);
    n = gen_put(b, n, (t_rand() % 2) ? " HTTP/1.1" : " HTTP/1.0");
    n = gen_put(b, n, gen_eol());

    k = t_rand() % 7;

    for (i = 0; i < k; i++) {
        for (l = 1 + t_rand() % 8; l; l--) {
            b[n++] = (unsigned char) tchar[t_rand() % (sizeof(tchar) - 1)];
        }

        b[n++] = ':';

        for (l = t_rand() % 20; l; l--) {
            b[n++] = (unsigned char) vchar[t_rand() % (sizeof(vchar) - 1)];
        }

        n = gen_put(b, n, gen_eol());
    }

    n = gen_put(b, n, gen_eol());

    for (l = t_rand() % 24; l; l--) {
        b[n++] = (unsigned char) any[t_rand() % (sizeof(any) - 1)];
    }

    /* mutations: replace, insert or delete a byte */

    for (k = t_rand() % 4; k && n > 1; k--) {
        i = t_rand() % n;

        switch (t_rand() % 3) {
        case 0:
            b[i] = (unsigned char) any[t_rand() % (sizeof(any) - 1)];
            break;
        case 1:
            memmove(b + i + 1, b + i, n - i);
            b[i] = (unsigned char) any[t_rand() % (sizeof(any) - 1)];
            n++;
            break;
        default:
            memmove(b + i, b + i + 1, n - i - 1);
            n--;
            break;
        }
    }

    return n;
}


static void
test_scan(void)
{
    int                  i, rc;
    size_t               len, ok, other;
    unsigned char        buf[1024];
    mcd_connect_t        r;
    mcd_connect_scan_t   st;

    /* the parser's own cases */

    for (i = 0; cases[i].in != NULL; i++) {
        len = cases[i].len ? cases[i].len : strlen(cases[i].in);

        rc = mcd_connect_parse((const unsigned char *) cases[i].in, len,
                               T_MAX_HEAD, &r);

        if (rc == OK) {
            check_scan(i, (const unsigned char *) cases[i].in, len,
                       r.head_len);
        }
    }

    /* fixed ones */

    check_scan(0, (const unsigned char *) "CONNECT a:1 HTTP/1.1\n\n", 22, 22);
    check_scan(0, (const unsigned char *) "C\n\r\n", 4, 4);
    check_scan(0, (const unsigned char *) "C\r\n\r\nX\n\n", 9, 5);
    check_scan(0, (const unsigned char *) "C\nA: b\r\n\r\r\n\n", 12, 12);
    check_scan(0, (const unsigned char *) "C\r\nA: b\r\n", 9, 0);
    check_scan(0, (const unsigned char *) "", 0, 0);

    /* random heads, cut everywhere */

    ok = 0;
    other = 0;

    for (i = 0; i < 4000; i++) {
        len = gen_head(buf);

        rc = mcd_connect_parse(buf, len, sizeof(buf), &r);

        if (rc == OK) {
            ok++;
            check_scan(i, buf, len, r.head_len);

        } else {
            other++;

            /* no check of the result, but it must stay in bounds */

            memset(&st, 0, sizeof(st));
            CHECK(mcd_connect_scan(&st, buf, len) <= len, "in bounds", i);
        }
    }

    CHECK(ok > 1000 && other > 1000, "both kinds generated", (int) ok);

    /* done is sticky, and a NULL piece of no bytes is fine */

    memset(&st, 0, sizeof(st));
    CHECK(mcd_connect_scan(&st, NULL, 0) == 0 && !mcd_connect_scan_done(&st),
          "empty piece", 0);
    CHECK(mcd_connect_scan(&st, (const unsigned char *) "C\n\nX", 4) == 3
          && mcd_connect_scan_done(&st) && st.total == 3, "done", 0);
    CHECK(mcd_connect_scan(&st, (const unsigned char *) "\n\n", 2) == 0
          && st.total == 3, "sticky", 0);
}


/*
 * The scan is linear: a 4 MB head without its end, fed a byte at a time
 * and then in one piece, is scanned in about the same time as it takes
 * to touch it.  Not timed (that would be flaky); the point is that the
 * byte-at-a-time feed finishes at all within the test's run.
 */

static void
test_scan_large(void)
{
    size_t               len, k, sum;
    unsigned char       *buf;
    mcd_connect_scan_t   st;

    len = 4u << 20;

    buf = malloc(len);
    if (buf == NULL) {
        abort();
    }

    for (k = 0; k < len; k++) {
        buf[k] = (k % 64 == 63) ? '\n' : 'x';
    }

    memset(&st, 0, sizeof(st));
    sum = 0;

    for (k = 0; k < len; k++) {
        sum += mcd_connect_scan(&st, buf + k, 1);
    }

    CHECK(sum == len && !mcd_connect_scan_done(&st) && st.total == len,
          "large, byte by byte", 0);

    CHECK(mcd_connect_scan(&st, (const unsigned char *) "\r\nrest", 6) == 2
          && mcd_connect_scan_done(&st) && st.total == len + 2,
          "large, then the end", 0);

    free(buf);
}


int
main(void)
{
    int  i;

    for (i = 0; cases[i].in != NULL; i++) {
        run_case(i, &cases[i]);
    }

    test_field_count();
    test_max_head_edges();
    test_byte_flips();
    test_method();
    test_scan();
    test_scan_large();

    printf("test_connect: %u checks, %u failed\n", checks, failed);

    return failed ? 1 : 0;
}
