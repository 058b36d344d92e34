
/*
 * Unit tests for src/mcd_addr.c.
 *
 * cc -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Isrc \
 *     src/mcd_addr.c t/unit/test_addr.c -o /tmp/test_addr
 *
 * inet_pton() and inet_ntop() serve as the reference for address text:
 * the parser's answer on random text is compared with theirs.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "mcd_addr.h"


#define ALLOW  MCD_ADDR_ALLOW
#define DENY   MCD_ADDR_DENY

#define C_LO   MCD_ADDR_CLASS_LOOPBACK
#define C_UN   MCD_ADDR_CLASS_UNSPECIFIED
#define C_LL   MCD_ADDR_CLASS_LINK_LOCAL
#define C_PR   MCD_ADDR_CLASS_PRIVATE
#define C_MC   MCD_ADDR_CLASS_MULTICAST
#define C_RS   MCD_ADDR_CLASS_RESERVED
#define C_ALL  MCD_ADDR_CLASS_ALL

#define T_MAX_RULES  16


static unsigned  checks;
static unsigned  failed;
static unsigned  accepted;


#define CHECK(cond, what, ctx)                                               \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failed++;                                                        \
            fprintf(stderr, "test_addr: %s:%d: %s [%s]: %s\n",               \
                    __FILE__, __LINE__, what, ctx, #cond);                   \
        }                                                                    \
    } while (0)


/* a small deterministic generator, so that failures reproduce */

static unsigned long  t_seed = 0x2545f491;

static unsigned
t_rand(void)
{
    t_seed = t_seed * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned) (t_seed >> 33);
}


/* an address text to (family, bytes), by the reference parser */

static int
t_addr(const char *s, unsigned char *out)
{
    if (inet_pton(AF_INET, s, out) == 1) {
        return AF_INET;
    }

    if (inet_pton(AF_INET6, s, out) == 1) {
        return AF_INET6;
    }

    fprintf(stderr, "test_addr: bad test address \"%s\"\n", s);
    abort();
}


static int
t_parse(unsigned action, const char *token, mcd_addr_rule_t *rule,
    const char **err)
{
    *err = NULL;

    return mcd_addr_rule_parse(action, (const unsigned char *) token,
                               strlen(token), rule, err);
}


static void
t_rules(mcd_addr_rule_t *rules, size_t *n, const char *const *spec)
{
    size_t       i;
    unsigned     action;
    const char  *err, *tok;

    for (i = 0; spec[i] != NULL; i++) {
        if (i == T_MAX_RULES) {
            abort();
        }

        if (strncmp(spec[i], "allow ", 6) == 0) {
            action = ALLOW;
            tok = spec[i] + 6;

        } else if (strncmp(spec[i], "deny ", 5) == 0) {
            action = DENY;
            tok = spec[i] + 5;

        } else {
            abort();
        }

        if (t_parse(action, tok, &rules[i], &err) != 0) {
            fprintf(stderr, "test_addr: bad test rule \"%s\": %s\n",
                    spec[i], err);
            abort();
        }
    }

    *n = i;
}


/* parsing: valid tokens */

typedef struct {
    const char  *token;
    unsigned     classes;
    const char  *addr;       /* the network, by the reference parser */
    unsigned     prefix;
} t_valid_t;


static const t_valid_t  valid[] = {
    { "loopback", C_LO, NULL, 0 },
    { "unspecified", C_UN, NULL, 0 },
    { "link-local", C_LL, NULL, 0 },
    { "private", C_PR, NULL, 0 },
    { "multicast", C_MC, NULL, 0 },
    { "reserved", C_RS, NULL, 0 },
    { "all", C_ALL, NULL, 0 },

    { "127.0.0.1", 0, "127.0.0.1", 32 },
    { "0.0.0.0", 0, "0.0.0.0", 32 },
    { "255.255.255.255", 0, "255.255.255.255", 32 },
    { "0.0.0.0/0", 0, "0.0.0.0", 0 },
    { "10.0.0.0/8", 0, "10.0.0.0", 8 },
    { "10.0.0.0/08", 0, "10.0.0.0", 8 },
    { "10.0.0.0/008", 0, "10.0.0.0", 8 },
    { "172.16.0.0/12", 0, "172.16.0.0", 12 },
    { "100.64.0.0/10", 0, "100.64.0.0", 10 },
    { "192.168.1.128/25", 0, "192.168.1.128", 25 },
    { "1.2.3.4/32", 0, "1.2.3.4", 32 },
    { "128.0.0.0/1", 0, "128.0.0.0", 1 },

    { "::", 0, "::", 128 },
    { "::1", 0, "::1", 128 },
    { "::/0", 0, "::", 0 },
    { "fe80::/10", 0, "fe80::", 10 },
    { "FC00::/7", 0, "fc00::", 7 },
    { "ff00::/8", 0, "ff00::", 8 },
    { "2001:db8::/32", 0, "2001:db8::", 32 },
    { "2001:DB8:0:0:0:0:0:1", 0, "2001:db8::1", 128 },
    { "2001:db8::1/128", 0, "2001:db8::1", 128 },
    { "::ffff:0:0/96", 0, "::ffff:0.0.0.0", 96 },
    { "::ffff:10.0.0.0/104", 0, "::ffff:10.0.0.0", 104 },
    { "64:ff9b::/96", 0, "64:ff9b::", 96 },
    { "64:ff9b::127.0.0.1", 0, "64:ff9b::7f00:1", 128 },
    { "1:2:3:4:5:6:7:8", 0, "1:2:3:4:5:6:7:8", 128 },
    { "1:2:3:4:5:6:7::", 0, "1:2:3:4:5:6:7:0", 128 },
    { "::2:3:4:5:6:7:8", 0, "0:2:3:4:5:6:7:8", 128 },
    { "1::8", 0, "1::8", 128 },
    { "1:2:3:4:5:6:1.2.3.4", 0, "1:2:3:4:5:6:102:304", 128 },
    { "::1.2.3.4", 0, "::102:304", 128 },
    { "0000:0000:0000:0000:0000:ffff:255.255.255.255/128", 0,
      "::ffff:255.255.255.255", 128 },
    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", 0,
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 127 },

    { NULL, 0, NULL, 0 }
};


static void
test_parse_valid(void)
{
    int              rc, family;
    size_t           i;
    unsigned         a;
    const char      *err;
    char             text[80];
    unsigned char    want[16];
    mcd_addr_rule_t  rule;

    for (i = 0; valid[i].token != NULL; i++) {
        for (a = ALLOW; a <= DENY; a++) {
            memset(&rule, 0xa5, sizeof(rule));

            rc = t_parse(a, valid[i].token, &rule, &err);

            CHECK(rc == 0, "valid token parses", valid[i].token);
            if (rc != 0) {
                fprintf(stderr, "    error: %s\n", err);
                continue;
            }

            snprintf(text, sizeof(text), "%s %s",
                     a == ALLOW ? "allow" : "deny", valid[i].token);

            CHECK(rule.action == a, "action", valid[i].token);
            CHECK(strcmp(rule.text, text) == 0, "text", valid[i].token);
            CHECK(rule.classes == valid[i].classes, "classes",
                  valid[i].token);

            if (valid[i].addr == NULL) {
                CHECK(rule.family == 0 && rule.prefix == 0,
                      "class rule has no network", valid[i].token);
                continue;
            }

            memset(want, 0, sizeof(want));
            family = t_addr(valid[i].addr, want);

            CHECK(rule.family == family, "family", valid[i].token);
            CHECK(rule.prefix == valid[i].prefix, "prefix", valid[i].token);
            CHECK(memcmp(rule.addr, want,
                         family == AF_INET ? 4 : 16) == 0,
                  "network bytes", valid[i].token);
        }
    }
}


/* parsing: errors */

typedef struct {
    const char  *token;
    size_t       len;        /* 0: strlen */
} t_invalid_t;


static const t_invalid_t  invalid[] = {
    { "", 0 },
    { "bogus", 0 },
    { "Loopback", 0 },
    { "ALL", 0 },
    { "all ", 0 },
    { " all", 0 },
    { "alll", 0 },
    { "link_local", 0 },
    { "linklocal", 0 },
    { "private/8", 0 },
    { "all/0", 0 },
    { "localhost", 0 },
    { "example.com", 0 },

    /* IPv4 */
    { "10.0.0.0/33", 0 },
    { "0.0.0.0/99", 0 },
    { "10.0.0.0/", 0 },
    { "10.0.0.0/-1", 0 },
    { "10.0.0.0/+8", 0 },
    { "10.0.0.0/8/8", 0 },
    { "10.0.0.0/0008", 0 },
    { "10.0.0.0/8 ", 0 },
    { "10.0.0.0/ 8", 0 },
    { "10.0.0.0/0x8", 0 },
    { "10.0.0.0//8", 0 },
    { "/8", 0 },
    { "10.1.2.3/8", 0 },          /* host bits set: refused */
    { "11.0.0.0/7", 0 },
    { "192.168.1.1/24", 0 },
    { "0.0.0.1/0", 0 },
    { "128.0.0.0/0", 0 },
    { "010.0.0.1", 0 },
    { "10.00.0.1", 0 },
    { "10.0.0.01", 0 },
    { "00.0.0.0", 0 },
    { "10.1", 0 },
    { "10", 0 },
    { "10.0.0", 0 },
    { "1.2.3.4.5", 0 },
    { "1.2.3.", 0 },
    { ".1.2.3", 0 },
    { "1..2.3", 0 },
    { "256.0.0.1", 0 },
    { "1.2.3.256", 0 },
    { "1.2.3.1000", 0 },
    { "0x7f.0.0.1", 0 },
    { "127.0.0.1 ", 0 },
    { "127.0.0.1:80", 0 },
    { "1.2.3.4a", 0 },
    { "4294967295", 0 },

    /* IPv6 */
    { "::/129", 0 },
    { "::1/1280", 0 },
    { "::1/", 0 },
    { "fe80::1/10", 0 },          /* host bits set */
    { "fd00::/7", 0 },
    { "::1/127", 0 },
    { ":::", 0 },
    { ":", 0 },
    { ":1::", 0 },
    { "1:", 0 },
    { "1::2::3", 0 },
    { "::1::", 0 },
    { "1:2:3:4:5:6:7", 0 },
    { "1:2:3:4:5:6:7:8:9", 0 },
    { "1:2:3:4:5:6:7:8::", 0 },
    { "::1:2:3:4:5:6:7:8", 0 },
    { "1:2:3:4::5:6:7:8", 0 },
    { "12345::", 0 },
    { "::12345", 0 },
    { "g::1", 0 },
    { "fe80::1%eth0", 0 },
    { "fe80::1%25eth0", 0 },
    { "[::1]", 0 },
    { "[::1]:443", 0 },
    { "::ffff:1.2.3", 0 },
    { "::ffff:1.2.3.4.5", 0 },
    { "::ffff:01.2.3.4", 0 },
    { "::1.2.3.4:5", 0 },
    { "1.2.3.4::", 0 },
    { "1:2:3:4:5:6:7:1.2.3.4", 0 },
    { "1:2:3:4:5:6:7:8:1.2.3.4", 0 },
    { "::ffff:1a.2.3.4", 0 },
    { "::1 ", 0 },
    { "\0::1", 4 },
    { "::1\0", 4 },
    { "127.0.0.1\0", 10 },

    { NULL, 0 }
};


static void
test_parse_invalid(void)
{
    int              rc;
    size_t           i, len;
    const char      *err;
    mcd_addr_rule_t  rule;

    for (i = 0; invalid[i].token != NULL; i++) {
        len = invalid[i].len ? invalid[i].len : strlen(invalid[i].token);
        err = NULL;

        rc = mcd_addr_rule_parse(DENY, (const unsigned char *) invalid[i].token,
                                 len, &rule, &err);

        CHECK(rc == -1, "invalid token refused", invalid[i].token);
        CHECK(err != NULL && err[0] != '\0', "reason given",
              invalid[i].token);
    }

    /* specific reasons where the lead's messages depend on them */

    rc = t_parse(DENY, "10.1.2.3/8", &rule, &err);
    CHECK(rc == -1 && strstr(err, "past the prefix") != NULL,
          "host bits reason", "10.1.2.3/8");

    rc = t_parse(DENY, "10.0.0.0/33", &rule, &err);
    CHECK(rc == -1 && strcmp(err, "prefix length out of range") == 0,
          "range reason", "10.0.0.0/33");

    rc = t_parse(DENY, "bogus", &rule, &err);
    CHECK(rc == -1 && strcmp(err, "not an address, a CIDR or a class name")
                      == 0, "garbage reason", "bogus");

    /* an empty or NULL token, a bad action */

    rc = mcd_addr_rule_parse(DENY, NULL, 0, &rule, &err);
    CHECK(rc == -1, "NULL token", "");

    rc = mcd_addr_rule_parse(2, (const unsigned char *) "all", 3, &rule,
                             &err);
    CHECK(rc == -1, "bad action", "2");

    /* the token is read only up to len: "::1" out of "::1/64" */

    rc = mcd_addr_rule_parse(DENY, (const unsigned char *) "::1/64", 3,
                             &rule, &err);
    CHECK(rc == 0 && rule.prefix == 128 && strcmp(rule.text, "deny ::1") == 0,
          "len bounds the token", "::1/64");
}


/*
 * Random text made of address characters: the parser accepts exactly
 * what inet_pton() accepts (glibc refuses leading zeros in dotted quads
 * too), with the same bytes.  Plus random addresses printed by
 * inet_ntop(), with and without host bits past random prefixes.
 */

static void
test_parse_reference(void)
{
    int              rc, ref4, ref6, family;
    size_t           i, k, len, n;
    unsigned         prefix, max, bit;
    const char      *err;
    char             s[64], tok[80];
    unsigned char    r4[4], r6[16], a[16], m[16];
    mcd_addr_rule_t  rule;

    static const char  alphabet[] = "0123456789abcdefABCDEF::::....%/x ";

    for (i = 0; i < 400000; i++) {
        len = t_rand() % 24;

        if (i % 4 == 0) {
            /* mostly colons and hex, to reach the gap handling */
            for (k = 0; k < len; k++) {
                s[k] = "0f1:"[t_rand() % 4];
            }

        } else {
            for (k = 0; k < len; k++) {
                s[k] = alphabet[t_rand() % (sizeof(alphabet) - 1)];
            }
        }

        s[len] = '\0';

        if (strchr(s, '/') != NULL) {
            continue;
        }

        ref4 = inet_pton(AF_INET, s, r4) == 1;
        ref6 = inet_pton(AF_INET6, s, r6) == 1;

        rc = mcd_addr_rule_parse(ALLOW, (const unsigned char *) s, len,
                                 &rule, &err);

        if (len > 0 && (s[0] < '0' || s[0] > '9') && strchr(s, ':') == NULL
            && rc == 0)
        {
            /* a class name: cannot be made of these characters */
            CHECK(0, "class name from address characters", s);
            continue;
        }

        CHECK((rc == 0) == (ref4 || ref6), "same verdict as inet_pton", s);

        accepted += (rc == 0);

        if (rc == 0 && ref4) {
            CHECK(rule.family == AF_INET && memcmp(rule.addr, r4, 4) == 0
                  && rule.prefix == 32, "same IPv4 bytes", s);
        }

        if (rc == 0 && ref6) {
            CHECK(rule.family == AF_INET6 && memcmp(rule.addr, r6, 16) == 0
                  && rule.prefix == 128, "same IPv6 bytes", s);
        }
    }

    for (i = 0; i < 20000; i++) {
        family = (i & 1) ? AF_INET6 : AF_INET;
        n = (family == AF_INET) ? 4 : 16;
        max = (unsigned) n * 8;

        for (k = 0; k < n; k++) {
            a[k] = (unsigned char) t_rand();
        }

        /* sometimes a mapped or NAT64 address, printed with a quad */

        if (family == AF_INET6 && i % 6 == 1) {
            memset(a, 0, 10);
            a[10] = 0xff;
            a[11] = 0xff;
        }

        prefix = t_rand() % (max + 1);

        memcpy(m, a, n);

        for (bit = prefix; bit < max; bit++) {
            m[bit / 8] &= (unsigned char) ~(0x80 >> (bit % 8));
        }

        inet_ntop(family, m, s, sizeof(s));
        snprintf(tok, sizeof(tok), "%s/%u", s, prefix);

        rc = t_parse(DENY, tok, &rule, &err);
        CHECK(rc == 0 && rule.family == family && rule.prefix == prefix
              && memcmp(rule.addr, m, n) == 0, "masked network", tok);

        inet_ntop(family, a, s, sizeof(s));
        snprintf(tok, sizeof(tok), "%s/%u", s, prefix);

        rc = t_parse(DENY, tok, &rule, &err);
        CHECK((rc == 0) == (memcmp(a, m, n) == 0),
              "host bits refused exactly when set", tok);

        rc = t_parse(DENY, s, &rule, &err);
        CHECK(rc == 0 && rule.prefix == max && memcmp(rule.addr, a, n) == 0,
              "host address", s);
    }
}


/* classes: both sides of every boundary */

typedef struct {
    const char  *addr;
    unsigned     cls;        /* without C_ALL; 0: none */
} t_class_t;


static const t_class_t  v4_classes[] = {
    { "0.0.0.0", C_UN },
    { "0.0.0.1", C_UN },
    { "0.255.255.255", C_UN },
    { "1.0.0.0", 0 },

    { "9.255.255.255", 0 },
    { "10.0.0.0", C_PR },
    { "10.255.255.255", C_PR },
    { "11.0.0.0", 0 },

    { "100.63.255.255", 0 },
    { "100.64.0.0", C_PR },
    { "100.127.255.255", C_PR },
    { "100.128.0.0", 0 },

    { "126.255.255.255", 0 },
    { "127.0.0.0", C_LO },
    { "127.0.0.1", C_LO },
    { "127.255.255.255", C_LO },
    { "128.0.0.0", 0 },

    { "169.253.255.255", 0 },
    { "169.254.0.0", C_LL },
    { "169.254.169.254", C_LL },
    { "169.254.255.255", C_LL },
    { "169.255.0.0", 0 },

    { "172.15.255.255", 0 },
    { "172.16.0.0", C_PR },
    { "172.31.255.255", C_PR },
    { "172.32.0.0", 0 },

    { "191.255.255.255", 0 },
    { "192.0.0.0", C_RS },
    { "192.0.0.255", C_RS },
    { "192.0.1.0", 0 },
    { "192.0.1.255", 0 },
    { "192.0.2.0", C_RS },
    { "192.0.2.255", C_RS },
    { "192.0.3.0", 0 },

    { "192.167.255.255", 0 },
    { "192.168.0.0", C_PR },
    { "192.168.255.255", C_PR },
    { "192.169.0.0", 0 },

    { "198.17.255.255", 0 },
    { "198.18.0.0", C_RS },
    { "198.19.255.255", C_RS },
    { "198.20.0.0", 0 },

    { "198.51.99.255", 0 },
    { "198.51.100.0", C_RS },
    { "198.51.100.255", C_RS },
    { "198.51.101.0", 0 },

    { "203.0.112.255", 0 },
    { "203.0.113.0", C_RS },
    { "203.0.113.255", C_RS },
    { "203.0.114.0", 0 },

    { "223.255.255.255", 0 },
    { "224.0.0.0", C_MC },
    { "239.255.255.255", C_MC },
    { "240.0.0.0", C_RS },
    { "255.255.255.254", C_RS },
    { "255.255.255.255", C_RS },

    { "1.1.1.1", 0 },
    { "8.8.8.8", 0 },
    { "93.184.216.34", 0 },

    { NULL, 0 }
};


static const t_class_t  v6_classes[] = {
    { "::", C_UN },
    { "::1", C_LO },
    { "::2", C_RS },                /* in ::/96 */
    { "0:0:0:0:0:0:1:0", C_RS },
    { "1::", 0 },
    { "::1:0:0:1", 0 },

    { "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
    { "fe80::", C_LL },
    { "fe80::1", C_LL },
    { "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C_LL },
    { "fec0::", 0 },

    { "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
    { "fc00::", C_PR },
    { "fd12:3456::1", C_PR },
    { "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C_PR },
    { "fe00::", 0 },
    { "fe7f::", 0 },

    { "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
    { "ff00::", C_MC },
    { "ff02::1", C_MC },
    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C_MC },

    { "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
    { "2001:db8::", C_RS },
    { "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", C_RS },
    { "2001:db9::", 0 },

    { "2606:4700:4700::1111", 0 },
    { "2a00:1450:4001::200e", 0 },

    /* near the mapped and NAT64 prefixes, but outside them */
    { "::fffe:7f00:1", 0 },
    { "::1:ffff:7f00:1", 0 },
    { "1::ffff:7f00:1", 0 },
    { "64:ff9a::7f00:1", 0 },
    { "64:ff9b:1::7f00:1", C_RS },   /* local-use NAT64: reserved */
    { "64:ff9b:0:0:0:1:7f00:1", 0 },
    { "65:ff9b::7f00:1", 0 },
    { "::7f00:1", C_RS },         /* IPv4-compatible: reserved */
    { "::a00:1", C_RS },
    { "::1:0:0", 0 },
    { "2001::1", C_RS },          /* Teredo */
    { "2001:1::1", 0 },
    { "2002:7f00:1::1", C_RS },   /* 6to4 */
    { "2003::1", 0 },
    { "100::1", C_RS },           /* discard */
    { "100:0:0:1::1", 0 },

    { NULL, 0 }
};


static void
test_classes(void)
{
    int            family;
    size_t         i, k;
    unsigned       got;
    char           ctx[80];
    unsigned char  a[16], m[16];

    static const char  *wrap[] = { "::ffff:", "64:ff9b::",
                                   "0:0:0:0:0:ffff:", "64:ff9b:0:0:0:0:" };

    for (i = 0; v4_classes[i].addr != NULL; i++) {
        family = t_addr(v4_classes[i].addr, a);
        CHECK(family == AF_INET, "v4 test address", v4_classes[i].addr);

        got = mcd_addr_classes(AF_INET, a);
        CHECK(got == (v4_classes[i].cls | C_ALL), "v4 class",
              v4_classes[i].addr);
        if (got != (v4_classes[i].cls | C_ALL)) {
            fprintf(stderr, "    got 0x%02x, want 0x%02x\n", got,
                    v4_classes[i].cls | C_ALL);
        }

        /* the mapped and NAT64 forms of each, in both notations */

        for (k = 0; k < sizeof(wrap) / sizeof(wrap[0]); k++) {
            snprintf(ctx, sizeof(ctx), "%s%s", wrap[k], v4_classes[i].addr);

            family = t_addr(ctx, m);
            CHECK(family == AF_INET6 && memcmp(m + 12, a, 4) == 0,
                  "wrapped test address", ctx);

            got = mcd_addr_classes(AF_INET6, m);
            CHECK(got == (v4_classes[i].cls | C_ALL), "wrapped class", ctx);
        }
    }

    for (i = 0; v6_classes[i].addr != NULL; i++) {
        family = t_addr(v6_classes[i].addr, a);
        CHECK(family == AF_INET6, "v6 test address", v6_classes[i].addr);

        got = mcd_addr_classes(AF_INET6, a);
        CHECK(got == (v6_classes[i].cls | C_ALL), "v6 class",
              v6_classes[i].addr);
        if (got != (v6_classes[i].cls | C_ALL)) {
            fprintf(stderr, "    got 0x%02x, want 0x%02x\n", got,
                    v6_classes[i].cls | C_ALL);
        }
    }

    /* an unknown family is reserved, so denied by the built-in rules */

    memset(a, 0, sizeof(a));
    CHECK(mcd_addr_classes(AF_UNIX, a) == (C_RS | C_ALL), "AF_UNIX", "");
    CHECK(mcd_addr_classes(0, a) == (C_RS | C_ALL), "family 0", "");

    /* random addresses: ALL plus at most one class */

    for (i = 0; i < 100000; i++) {
        for (k = 0; k < 16; k++) {
            a[k] = (unsigned char) t_rand();
        }

        if (i % 3 == 0) {
            memcpy(a, (i % 2) ? "\0\0\0\0\0\0\0\0\0\0\xff\xff"
                              : "\0\x64\xff\x9b\0\0\0\0\0\0\0\0", 12);
        }

        got = mcd_addr_classes((i & 1) ? AF_INET : AF_INET6, a);
        CHECK((got & C_ALL) && ((got & ~C_ALL) & ((got & ~C_ALL) - 1)) == 0,
              "one class at most", "random");

        if (i % 3 == 0 && !(i & 1)) {
            CHECK(got == mcd_addr_classes(AF_INET, a + 12),
                  "wrapped is judged as IPv4", "random");
        }
    }
}


/* judging */

typedef struct {
    const char  *addr;
    int          verdict;
    int          rule;       /* index of the deciding rule; -1: built-in */
    const char  *text;       /* of the deciding rule */
} t_judge_t;


static void
t_judge(const char *name, const char *const *spec, const t_judge_t *cases)
{
    int                     rc, family, builtin;
    size_t                  i, n;
    char                    ctx[128];
    unsigned char           a[16];
    mcd_addr_rule_t         rules[T_MAX_RULES];
    const mcd_addr_rule_t  *matched;

    t_rules(rules, &n, spec);

    for (i = 0; cases[i].addr != NULL; i++) {
        snprintf(ctx, sizeof(ctx), "%s: %s", name, cases[i].addr);

        family = t_addr(cases[i].addr, a);

        matched = NULL;
        builtin = -1;

        rc = mcd_addr_judge(n ? rules : NULL, n, family, a, &matched,
                            &builtin);

        CHECK(matched != NULL, "matched set", ctx);
        if (matched == NULL) {
            continue;
        }

        CHECK(rc == cases[i].verdict, "verdict", ctx);
        CHECK(rc == (int) matched->action, "verdict is the rule's", ctx);
        CHECK(strcmp(matched->text, cases[i].text) == 0, "rule text", ctx);
        if (strcmp(matched->text, cases[i].text) != 0) {
            fprintf(stderr, "    got \"%s\", want \"%s\"\n", matched->text,
                    cases[i].text);
        }

        if (cases[i].rule < 0) {
            CHECK(builtin == 1, "built-in", ctx);
            CHECK(matched < rules || matched >= rules + n,
                  "built-in rule is not a configured one", ctx);

        } else {
            CHECK(builtin == 0, "configured", ctx);
            CHECK(matched == &rules[cases[i].rule], "deciding rule", ctx);
        }
    }
}


static void
test_judge(void)
{
    mcd_addr_rule_t         rule;
    const mcd_addr_rule_t  *matched;
    int                     rc, builtin;
    const char             *err;
    unsigned char           a[16];

    static const char *const  none[] = { NULL };

    static const t_judge_t  builtin_cases[] = {
        { "127.0.0.1", DENY, -1, "deny loopback" },
        { "::1", DENY, -1, "deny loopback" },
        { "::ffff:127.0.0.1", DENY, -1, "deny loopback" },
        { "64:ff9b::127.0.0.1", DENY, -1, "deny loopback" },
        { "0.0.0.0", DENY, -1, "deny unspecified" },
        { "::", DENY, -1, "deny unspecified" },
        { "::ffff:0.0.0.0", DENY, -1, "deny unspecified" },
        { "64:ff9b::", DENY, -1, "deny unspecified" },
        { "169.254.169.254", DENY, -1, "deny link-local" },
        { "::ffff:169.254.169.254", DENY, -1, "deny link-local" },
        { "64:ff9b::a9fe:a9fe", DENY, -1, "deny link-local" },
        { "fe80::1", DENY, -1, "deny link-local" },
        { "10.1.2.3", DENY, -1, "deny private" },
        { "172.20.0.1", DENY, -1, "deny private" },
        { "192.168.0.1", DENY, -1, "deny private" },
        { "100.100.100.100", DENY, -1, "deny private" },
        { "fd00::1", DENY, -1, "deny private" },
        { "::ffff:10.1.2.3", DENY, -1, "deny private" },
        { "224.0.0.1", DENY, -1, "deny multicast" },
        { "ff02::1", DENY, -1, "deny multicast" },
        { "240.0.0.1", DENY, -1, "deny reserved" },
        { "255.255.255.255", DENY, -1, "deny reserved" },
        { "192.0.2.1", DENY, -1, "deny reserved" },
        { "2001:db8::1", DENY, -1, "deny reserved" },
        { "64:ff9b::192.0.2.1", DENY, -1, "deny reserved" },
        { "8.8.8.8", ALLOW, -1, "allow all" },
        { "::ffff:8.8.8.8", ALLOW, -1, "allow all" },
        { "64:ff9b::8.8.8.8", ALLOW, -1, "allow all" },
        { "2606:4700:4700::1111", ALLOW, -1, "allow all" },
        { "::7f00:1", DENY, -1, "deny reserved" },
        { "2002:a01:203::1", DENY, -1, "deny reserved" },
        { NULL, 0, 0, NULL }
    };

    /* first match wins */

    static const char *const  host_first[] = {
        "allow 127.0.0.2", "deny 127.0.0.0/8", "allow loopback", NULL
    };

    static const t_judge_t  host_first_cases[] = {
        { "127.0.0.2", ALLOW, 0, "allow 127.0.0.2" },
        { "::ffff:127.0.0.2", ALLOW, 0, "allow 127.0.0.2" },
        { "64:ff9b::7f00:2", ALLOW, 0, "allow 127.0.0.2" },
        { "127.0.0.1", DENY, 1, "deny 127.0.0.0/8" },
        { "::ffff:127.0.0.1", DENY, 1, "deny 127.0.0.0/8" },
        { "::1", ALLOW, 2, "allow loopback" },
        { "10.0.0.1", DENY, -1, "deny private" },
        { "8.8.8.8", ALLOW, -1, "allow all" },
        { NULL, 0, 0, NULL }
    };

    static const char *const  net_first[] = {
        "deny 127.0.0.0/8", "allow 127.0.0.2", NULL
    };

    static const t_judge_t  net_first_cases[] = {
        { "127.0.0.2", DENY, 0, "deny 127.0.0.0/8" },
        { "127.0.0.1", DENY, 0, "deny 127.0.0.0/8" },
        { "::1", DENY, -1, "deny loopback" },
        { NULL, 0, 0, NULL }
    };

    /* the test suite's own rule */

    static const char *const  loopback_ok[] = {
        "allow 127.0.0.0/8", "allow ::1", NULL
    };

    static const t_judge_t  loopback_ok_cases[] = {
        { "127.0.0.1", ALLOW, 0, "allow 127.0.0.0/8" },
        { "127.255.255.255", ALLOW, 0, "allow 127.0.0.0/8" },
        { "::ffff:127.0.0.1", ALLOW, 0, "allow 127.0.0.0/8" },
        { "64:ff9b::127.0.0.1", ALLOW, 0, "allow 127.0.0.0/8" },
        { "::1", ALLOW, 1, "allow ::1" },
        { "128.0.0.0", ALLOW, -1, "allow all" },
        { "126.255.255.255", ALLOW, -1, "allow all" },
        { "169.254.169.254", DENY, -1, "deny link-local" },
        { "0.0.0.0", DENY, -1, "deny unspecified" },
        { "::", DENY, -1, "deny unspecified" },
        { "::2", DENY, -1, "deny reserved" },
        { NULL, 0, 0, NULL }
    };

    /* IPv4 rules and wrapped addresses; IPv6 rules and IPv4 addresses */

    static const char *const  families[] = {
        "deny 8.8.8.0/24", "allow ::ffff:0:0/96", "allow 0.0.0.0/0",
        "deny ::/0", NULL
    };

    static const t_judge_t  families_cases[] = {
        { "8.8.8.8", DENY, 0, "deny 8.8.8.0/24" },
        { "::ffff:8.8.8.8", DENY, 0, "deny 8.8.8.0/24" },
        { "64:ff9b::808:808", DENY, 0, "deny 8.8.8.0/24" },
        { "::ffff:127.0.0.1", ALLOW, 1, "allow ::ffff:0:0/96" },
        { "127.0.0.1", ALLOW, 2, "allow 0.0.0.0/0" },
        { "64:ff9b::127.0.0.1", ALLOW, 2, "allow 0.0.0.0/0" },
        { "::1", DENY, 3, "deny ::/0" },
        { "64:ff9b:1::1", DENY, 3, "deny ::/0" },
        { "::7f00:1", DENY, 3, "deny ::/0" },
        { NULL, 0, 0, NULL }
    };

    static const char *const  v6_only[] = {
        "allow ::ffff:0:0/96", "allow 64:ff9b::/96", NULL
    };

    static const t_judge_t  v6_only_cases[] = {
        { "127.0.0.1", DENY, -1, "deny loopback" },
        { "10.0.0.1", DENY, -1, "deny private" },
        { "::ffff:127.0.0.1", ALLOW, 0, "allow ::ffff:0:0/96" },
        { "64:ff9b::a00:1", ALLOW, 1, "allow 64:ff9b::/96" },
        { NULL, 0, 0, NULL }
    };

    static const char *const  classes[] = {
        "allow private", "deny all", NULL
    };

    static const t_judge_t  classes_cases[] = {
        { "10.0.0.1", ALLOW, 0, "allow private" },
        { "::ffff:10.0.0.1", ALLOW, 0, "allow private" },
        { "64:ff9b::10.0.0.1", ALLOW, 0, "allow private" },
        { "fc00::1", ALLOW, 0, "allow private" },
        { "8.8.8.8", DENY, 1, "deny all" },
        { "127.0.0.1", DENY, 1, "deny all" },
        { "2606:4700::1", DENY, 1, "deny all" },
        { NULL, 0, 0, NULL }
    };

    static const char *const  allow_all[] = {
        "deny 169.254.169.254", "allow all", NULL
    };

    static const t_judge_t  allow_all_cases[] = {
        { "169.254.169.254", DENY, 0, "deny 169.254.169.254" },
        { "::ffff:169.254.169.254", DENY, 0, "deny 169.254.169.254" },
        { "169.254.169.253", ALLOW, 1, "allow all" },
        { "127.0.0.1", ALLOW, 1, "allow all" },
        { "::", ALLOW, 1, "allow all" },
        { NULL, 0, 0, NULL }
    };

    static const char *const  public_denied[] = {
        "deny 2606:4700::/32", "deny 1.1.1.1", "allow multicast", NULL
    };

    static const t_judge_t  public_denied_cases[] = {
        { "2606:4700:4700::1111", DENY, 0, "deny 2606:4700::/32" },
        { "2606:4701::1", ALLOW, -1, "allow all" },
        { "1.1.1.1", DENY, 1, "deny 1.1.1.1" },
        { "64:ff9b::1.1.1.1", DENY, 1, "deny 1.1.1.1" },
        { "1.1.1.2", ALLOW, -1, "allow all" },
        { "ff02::1", ALLOW, 2, "allow multicast" },
        { "::ffff:224.0.0.1", ALLOW, 2, "allow multicast" },
        { NULL, 0, 0, NULL }
    };

    t_judge("no rules", none, builtin_cases);
    t_judge("host first", host_first, host_first_cases);
    t_judge("net first", net_first, net_first_cases);
    t_judge("loopback", loopback_ok, loopback_ok_cases);
    t_judge("families", families, families_cases);
    t_judge("v6 only", v6_only, v6_only_cases);
    t_judge("classes", classes, classes_cases);
    t_judge("allow all", allow_all, allow_all_cases);
    t_judge("public denied", public_denied, public_denied_cases);

    /* an unknown family: denied by the built-in rules, not by networks */

    memset(a, 0, sizeof(a));

    rc = mcd_addr_judge(NULL, 0, AF_UNIX, a, &matched, &builtin);
    CHECK(rc == DENY && builtin == 1
          && strcmp(matched->text, "deny reserved") == 0, "AF_UNIX", "");

    t_parse(ALLOW, "0.0.0.0/0", &rule, &err);
    rc = mcd_addr_judge(&rule, 1, AF_UNIX, a, &matched, &builtin);
    CHECK(rc == DENY && builtin == 1, "AF_UNIX vs 0.0.0.0/0", "");

    t_parse(ALLOW, "all", &rule, &err);
    rc = mcd_addr_judge(&rule, 1, AF_UNIX, a, &matched, &builtin);
    CHECK(rc == ALLOW && builtin == 0 && matched == &rule,
          "AF_UNIX vs allow all", "");
}


/*
 * Random rules and addresses against a reference written differently:
 * bit by bit, on the address unwrapped by hand.
 */

static int
t_ref_in(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
    unsigned  bit;

    for (bit = 0; bit < prefix; bit++) {
        if (((a[bit / 8] ^ net[bit / 8]) >> (7 - bit % 8)) & 1) {
            return 0;
        }
    }

    return 1;
}


static void
test_judge_random(void)
{
    int                     rc, family, builtin, want, v4, mapped;
    size_t                  i, k, j, n, nb;
    unsigned                prefix, bit, classes;
    const char             *err;
    char                    s[64], tok[80];
    unsigned char           a[16], net[16];
    mcd_addr_rule_t         rules[8];
    const mcd_addr_rule_t  *matched, *ref;

    static const char  *class_tokens[] = {
        "loopback", "unspecified", "link-local", "private", "multicast",
        "reserved", "all"
    };

    static const unsigned char  prefixes[][12] = {
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff },
        { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 },
        { 0xfe, 0x80 }, { 0xfc }, { 0xff }, { 0x20, 0x01, 0x0d, 0xb8 },
        { 0 }
    };

    for (i = 0; i < 100000; i++) {

        /* the address: often near a rule's network, so rules match */

        family = (t_rand() % 2) ? AF_INET : AF_INET6;
        nb = (family == AF_INET) ? 4 : 16;

        for (k = 0; k < 16; k++) {
            a[k] = (unsigned char) t_rand();
        }

        if (family == AF_INET6 && t_rand() % 2) {
            memcpy(a, prefixes[t_rand() % 7], 12);
        }

        if (t_rand() % 4 == 0) {
            a[0] = (unsigned char) "\x7f\x0a\xa9\xac\xc0\x64\xe0\xf0"
                                   [t_rand() % 8];
        }

        n = t_rand() % 6;

        for (j = 0; j < n; j++) {
            if (t_rand() % 3 == 0) {
                snprintf(tok, sizeof(tok), "%s",
                         class_tokens[t_rand() % 7]);

            } else {
                int  rf = (t_rand() % 2) ? AF_INET : AF_INET6;
                unsigned  max = (rf == AF_INET) ? 32 : 128;

                /* a network around the address, or a random one */

                if (rf == family) {
                    memcpy(net, a, 16);
                } else if (rf == AF_INET) {
                    memcpy(net, a + 12, 4);
                } else {
                    memset(net, 0, 10);
                    net[10] = 0xff;
                    net[11] = 0xff;
                    memcpy(net + 12, a, 4);
                }

                if (t_rand() % 4 == 0) {
                    net[t_rand() % (max / 8)] ^= (unsigned char) t_rand();
                }

                prefix = t_rand() % (max + 1);

                for (bit = prefix; bit < max; bit++) {
                    net[bit / 8] &= (unsigned char) ~(0x80 >> (bit % 8));
                }

                inet_ntop(rf, net, s, sizeof(s));
                snprintf(tok, sizeof(tok), "%s/%u", s, prefix);
            }

            if (t_parse(t_rand() % 2, tok, &rules[j], &err) != 0) {
                CHECK(0, "generated rule parses", tok);
                n = j;
                break;
            }
        }

        rc = mcd_addr_judge(rules, n, family, a, &matched, &builtin);

        /* the reference */

        mapped = family == AF_INET6
                 && (memcmp(a, prefixes[0], 12) == 0
                     || memcmp(a, prefixes[1], 12) == 0);
        v4 = family == AF_INET || mapped;
        classes = mcd_addr_classes(family, a);

        ref = NULL;

        for (j = 0; j < n && ref == NULL; j++) {
            if (rules[j].classes) {
                if (rules[j].classes & classes) {
                    ref = &rules[j];
                }

            } else if (rules[j].family == AF_INET) {
                if (v4 && t_ref_in(family == AF_INET ? a : a + 12,
                                   rules[j].addr, rules[j].prefix))
                {
                    ref = &rules[j];
                }

            } else if (family == AF_INET6
                       && t_ref_in(a, rules[j].addr, rules[j].prefix))
            {
                ref = &rules[j];
            }
        }

        if (ref != NULL) {
            CHECK(matched == ref && builtin == 0, "reference rule", "random");
            want = (int) ref->action;

        } else {
            CHECK(builtin == 1, "reference: built-in", "random");
            want = (classes == C_ALL) ? ALLOW : DENY;
        }

        CHECK(rc == want && rc == (int) matched->action, "reference verdict",
              "random");

        (void) nb;
    }
}


int
main(void)
{
    test_parse_valid();
    test_parse_invalid();
    test_parse_reference();
    test_classes();
    test_judge();
    test_judge_random();

    printf("test_addr: %u random address texts accepted\n", accepted);
    printf("test_addr: %u checks, %u failed\n", checks, failed);

    return failed ? 1 : 0;
}
