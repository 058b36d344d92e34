
/*
 * ngx_mcd: the destination guard's rule engine.
 *
 * Addresses are parsed here rather than with inet_pton() so that the
 * accepted forms are exactly the documented ones on every C library, and
 * every read is bounded by the token's length (the token need not be
 * NUL-terminated).
 */


#include <string.h>

#include "mcd_addr.h"


#define MCD_ADDR_V4_LEN  4
#define MCD_ADDR_V6_LEN  16


typedef struct {
    int             family;
    unsigned char   addr[16];
    unsigned        prefix;
    unsigned        classes;
} mcd_addr_range_t;


static int mcd_addr_parse_v4(const unsigned char *p, size_t n,
    unsigned char *out);
static int mcd_addr_parse_v6(const unsigned char *p, size_t n,
    unsigned char *out);
static int mcd_addr_hex(unsigned char c);
static int mcd_addr_in(const unsigned char *addr, const unsigned char *net,
    unsigned prefix);
static int mcd_addr_host_bits(const unsigned char *addr, size_t size,
    unsigned prefix);
static const unsigned char *mcd_addr_unwrap(int family,
    const unsigned char *addr);
static int mcd_addr_rule_match(const mcd_addr_rule_t *rule, int family,
    const unsigned char *addr, const unsigned char *v4, unsigned classes);


static const struct {
    const char  *name;
    size_t       len;
    unsigned     bit;
} mcd_addr_class_names[] = {
    { "loopback", 8, MCD_ADDR_CLASS_LOOPBACK },
    { "unspecified", 11, MCD_ADDR_CLASS_UNSPECIFIED },
    { "link-local", 10, MCD_ADDR_CLASS_LINK_LOCAL },
    { "private", 7, MCD_ADDR_CLASS_PRIVATE },
    { "multicast", 9, MCD_ADDR_CLASS_MULTICAST },
    { "reserved", 8, MCD_ADDR_CLASS_RESERVED },
    { "all", 3, MCD_ADDR_CLASS_ALL }
};


static const mcd_addr_range_t  mcd_addr_ranges[] = {

    /* IPv4 */

    { AF_INET, { 127 }, 8, MCD_ADDR_CLASS_LOOPBACK },
    { AF_INET, { 0 }, 8, MCD_ADDR_CLASS_UNSPECIFIED },
    { AF_INET, { 169, 254 }, 16, MCD_ADDR_CLASS_LINK_LOCAL },
    { AF_INET, { 10 }, 8, MCD_ADDR_CLASS_PRIVATE },
    { AF_INET, { 172, 16 }, 12, MCD_ADDR_CLASS_PRIVATE },
    { AF_INET, { 192, 168 }, 16, MCD_ADDR_CLASS_PRIVATE },
    { AF_INET, { 100, 64 }, 10, MCD_ADDR_CLASS_PRIVATE },
    { AF_INET, { 224 }, 4, MCD_ADDR_CLASS_MULTICAST },
    { AF_INET, { 240 }, 4, MCD_ADDR_CLASS_RESERVED },
    { AF_INET, { 255, 255, 255, 255 }, 32, MCD_ADDR_CLASS_RESERVED },
    { AF_INET, { 192, 0, 0 }, 24, MCD_ADDR_CLASS_RESERVED },
    { AF_INET, { 198, 18 }, 15, MCD_ADDR_CLASS_RESERVED },
    { AF_INET, { 192, 0, 2 }, 24, MCD_ADDR_CLASS_RESERVED },
    { AF_INET, { 198, 51, 100 }, 24, MCD_ADDR_CLASS_RESERVED },
    { AF_INET, { 203, 0, 113 }, 24, MCD_ADDR_CLASS_RESERVED },

    /* IPv6 */

    { AF_INET6, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128,
      MCD_ADDR_CLASS_LOOPBACK },
    { AF_INET6, { 0 }, 128, MCD_ADDR_CLASS_UNSPECIFIED },
    { AF_INET6, { 0xfe, 0x80 }, 10, MCD_ADDR_CLASS_LINK_LOCAL },
    { AF_INET6, { 0xfc }, 7, MCD_ADDR_CLASS_PRIVATE },
    { AF_INET6, { 0xff }, 8, MCD_ADDR_CLASS_MULTICAST },
    { AF_INET6, { 0x20, 0x01, 0x0d, 0xb8 }, 32, MCD_ADDR_CLASS_RESERVED },

    /*
     * beyond SPEC 4's list, the IPv6 forms that carry or reach an IPv4
     * address the mapped/NAT64 unwrapping does not cover: IPv4-compatible
     * ::a.b.c.d (deprecated), local-use NAT64 64:ff9b:1::/48, Teredo
     * 2001::/32, 6to4 2002::/16, and the discard prefix 100::/64
     */

    { AF_INET6, { 0 }, 96, MCD_ADDR_CLASS_RESERVED },
    { AF_INET6, { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48,
      MCD_ADDR_CLASS_RESERVED },
    { AF_INET6, { 0x20, 0x01, 0x00, 0x00 }, 32, MCD_ADDR_CLASS_RESERVED },
    { AF_INET6, { 0x20, 0x02 }, 16, MCD_ADDR_CLASS_RESERVED },
    { AF_INET6, { 0x01, 0x00, 0, 0, 0, 0, 0, 0 }, 64, MCD_ADDR_CLASS_RESERVED }
};


#define mcd_addr_builtin_rule(action, bit, text)                             \
    { action, bit, 0, { 0 }, 0, text }

static const mcd_addr_rule_t  mcd_addr_builtin[] = {
    mcd_addr_builtin_rule(MCD_ADDR_DENY, MCD_ADDR_CLASS_LOOPBACK,
                          "deny loopback"),
    mcd_addr_builtin_rule(MCD_ADDR_DENY, MCD_ADDR_CLASS_UNSPECIFIED,
                          "deny unspecified"),
    mcd_addr_builtin_rule(MCD_ADDR_DENY, MCD_ADDR_CLASS_LINK_LOCAL,
                          "deny link-local"),
    mcd_addr_builtin_rule(MCD_ADDR_DENY, MCD_ADDR_CLASS_PRIVATE,
                          "deny private"),
    mcd_addr_builtin_rule(MCD_ADDR_DENY, MCD_ADDR_CLASS_MULTICAST,
                          "deny multicast"),
    mcd_addr_builtin_rule(MCD_ADDR_DENY, MCD_ADDR_CLASS_RESERVED,
                          "deny reserved"),
    mcd_addr_builtin_rule(MCD_ADDR_ALLOW, MCD_ADDR_CLASS_ALL,
                          "allow all")
};


/* ::ffff:0:0/96 and 64:ff9b::/96 */

static const unsigned char  mcd_addr_mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static const unsigned char  mcd_addr_nat64[12] = {
    0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0
};


int
mcd_addr_rule_parse(unsigned action, const unsigned char *token, size_t len,
    mcd_addr_rule_t *rule, const char **err)
{
    size_t          i, slash, alen, word;
    unsigned        prefix, max;
    const char     *verb;

    memset(rule, 0, sizeof(mcd_addr_rule_t));

    if (action != MCD_ADDR_ALLOW && action != MCD_ADDR_DENY) {
        *err = "invalid action";
        return -1;
    }

    rule->action = action;

    if (token == NULL || len == 0) {
        *err = "empty value";
        return -1;
    }

    verb = (action == MCD_ADDR_ALLOW) ? "allow " : "deny ";
    word = strlen(verb);

    if (len > sizeof(rule->text) - 1 - word) {
        *err = "value too long";
        return -1;
    }

    memcpy(rule->text, verb, word);
    memcpy(rule->text + word, token, len);
    rule->text[word + len] = '\0';

    /* a class name */

    for (i = 0; i < sizeof(mcd_addr_class_names)
                    / sizeof(mcd_addr_class_names[0]); i++)
    {
        if (len == mcd_addr_class_names[i].len
            && memcmp(token, mcd_addr_class_names[i].name, len) == 0)
        {
            rule->classes = mcd_addr_class_names[i].bit;
            return 0;
        }
    }

    /* an address, optionally with a prefix */

    for (slash = 0; slash < len && token[slash] != '/'; slash++) {
        /* void */
    }

    alen = slash;

    if (memchr(token, ':', alen) != NULL) {
        if (mcd_addr_parse_v6(token, alen, rule->addr) != 0) {
            *err = "invalid IPv6 address";
            return -1;
        }

        rule->family = AF_INET6;
        max = 128;

    } else if (alen > 0 && token[0] >= '0' && token[0] <= '9') {
        if (mcd_addr_parse_v4(token, alen, rule->addr) != 0) {
            *err = "invalid IPv4 address";
            return -1;
        }

        rule->family = AF_INET;
        max = 32;

    } else {
        *err = "not an address, a CIDR or a class name";
        return -1;
    }

    if (slash == len) {
        rule->prefix = max;
        return 0;
    }

    /* "/PREFIX" */

    if (len - slash - 1 == 0 || len - slash - 1 > 3) {
        *err = "invalid prefix length";
        return -1;
    }

    prefix = 0;

    for (i = slash + 1; i < len; i++) {
        if (token[i] < '0' || token[i] > '9') {
            *err = "invalid prefix length";
            return -1;
        }

        prefix = prefix * 10 + (token[i] - '0');
    }

    if (prefix > max) {
        *err = "prefix length out of range";
        return -1;
    }

    if (mcd_addr_host_bits(rule->addr, max / 8, prefix)) {
        *err = "address has bits set past the prefix length";
        return -1;
    }

    rule->prefix = prefix;

    return 0;
}


int
mcd_addr_judge(const mcd_addr_rule_t *rules, size_t nrules, int family,
    const unsigned char *addr, const mcd_addr_rule_t **matched,
    int *builtin)
{
    size_t                  i;
    unsigned                classes;
    const unsigned char    *v4;
    const mcd_addr_rule_t  *rule;

    classes = mcd_addr_classes(family, addr);
    v4 = mcd_addr_unwrap(family, addr);

    for (i = 0; i < nrules; i++) {
        if (mcd_addr_rule_match(&rules[i], family, addr, v4, classes)) {
            *matched = &rules[i];
            *builtin = 0;
            return rules[i].action;
        }
    }

    /* the last built-in rule, "allow all", matches everything */

    for (i = 0; /* void */ ; i++) {
        rule = &mcd_addr_builtin[i];

        if (rule->classes & classes) {
            *matched = rule;
            *builtin = 1;
            return rule->action;
        }
    }
}


unsigned
mcd_addr_classes(int family, const unsigned char *addr)
{
    size_t                   i;
    const unsigned char     *v4;
    const mcd_addr_range_t  *r;

    v4 = mcd_addr_unwrap(family, addr);

    if (v4 != NULL) {
        family = AF_INET;
        addr = v4;

    } else if (family != AF_INET6) {
        return MCD_ADDR_CLASS_RESERVED | MCD_ADDR_CLASS_ALL;
    }

    for (i = 0; i < sizeof(mcd_addr_ranges) / sizeof(mcd_addr_ranges[0]);
         i++)
    {
        r = &mcd_addr_ranges[i];

        if (r->family == family && mcd_addr_in(addr, r->addr, r->prefix)) {
            return r->classes | MCD_ADDR_CLASS_ALL;
        }
    }

    return MCD_ADDR_CLASS_ALL;
}


static int
mcd_addr_rule_match(const mcd_addr_rule_t *rule, int family,
    const unsigned char *addr, const unsigned char *v4, unsigned classes)
{
    if (rule->classes) {
        return (rule->classes & classes) != 0;
    }

    if (rule->family == AF_INET) {
        return v4 != NULL && mcd_addr_in(v4, rule->addr, rule->prefix);
    }

    if (rule->family == AF_INET6) {
        return family == AF_INET6
               && mcd_addr_in(addr, rule->addr, rule->prefix);
    }

    return 0;
}


/*
 * The 4 bytes of the IPv4 address an address stands for: itself, or the
 * one carried by an IPv4-mapped or NAT64 IPv6 address; NULL otherwise.
 */

static const unsigned char *
mcd_addr_unwrap(int family, const unsigned char *addr)
{
    if (family == AF_INET) {
        return addr;
    }

    if (family == AF_INET6
        && (memcmp(addr, mcd_addr_mapped, 12) == 0
            || memcmp(addr, mcd_addr_nat64, 12) == 0))
    {
        return addr + 12;
    }

    return NULL;
}


/* whether the first prefix bits of addr and net are equal */

static int
mcd_addr_in(const unsigned char *addr, const unsigned char *net,
    unsigned prefix)
{
    unsigned       bytes, bits;
    unsigned char  mask;

    bytes = prefix / 8;
    bits = prefix % 8;

    if (bytes && memcmp(addr, net, bytes) != 0) {
        return 0;
    }

    if (bits == 0) {
        return 1;
    }

    mask = (unsigned char) (0xff << (8 - bits));

    return (addr[bytes] & mask) == (net[bytes] & mask);
}


/* whether addr[0 .. size) has a bit set past the first prefix bits */

static int
mcd_addr_host_bits(const unsigned char *addr, size_t size, unsigned prefix)
{
    size_t         i;
    unsigned char  mask;

    i = prefix / 8;

    if (prefix % 8) {
        mask = (unsigned char) (0xff >> (prefix % 8));

        if (addr[i] & mask) {
            return 1;
        }

        i++;
    }

    for ( /* void */ ; i < size; i++) {
        if (addr[i]) {
            return 1;
        }
    }

    return 0;
}


/* a strict dotted quad filling p[0 .. n) exactly */

static int
mcd_addr_parse_v4(const unsigned char *p, size_t n, unsigned char *out)
{
    size_t    i, part, digits;
    unsigned  v;

    i = 0;

    for (part = 0; part < 4; part++) {

        if (part > 0) {
            if (i == n || p[i] != '.') {
                return -1;
            }

            i++;
        }

        v = 0;
        digits = 0;

        while (i < n && p[i] >= '0' && p[i] <= '9' && digits < 4) {
            v = v * 10 + (p[i] - '0');
            digits++;
            i++;
        }

        if (digits == 0 || digits > 3 || v > 255) {
            return -1;
        }

        if (digits > 1 && p[i - digits] == '0') {
            /* a leading zero: octal to some resolvers */
            return -1;
        }

        out[part] = (unsigned char) v;
    }

    return (i == n) ? 0 : -1;
}


/*
 * RFC 4291, section 2.2: up to eight groups of 1-4 hex digits, one "::"
 * standing for one or more zero groups, and a dotted quad in place of
 * the last two groups.
 */

static int
mcd_addr_parse_v6(const unsigned char *p, size_t n, unsigned char *out)
{
    int            d;
    size_t         i, j, groups, gap, have_gap, k;
    unsigned       v;
    unsigned char  w[16];

    i = 0;
    groups = 0;
    gap = 0;
    have_gap = 0;

    if (n >= 2 && p[0] == ':' && p[1] == ':') {
        have_gap = 1;
        i = 2;

    } else if (n > 0 && p[0] == ':') {
        return -1;
    }

    while (i < n) {

        if (groups == 8) {
            return -1;
        }

        v = 0;

        for (j = i; j < n && j - i < 5; j++) {
            d = mcd_addr_hex(p[j]);

            if (d < 0) {
                break;
            }

            v = (v << 4) | (unsigned) d;
        }

        if (j < n && p[j] == '.') {

            /* the dotted quad tail takes two groups and ends the address */

            if (groups > 6 || mcd_addr_parse_v4(p + i, n - i, w + 2 * groups)
                              != 0)
            {
                return -1;
            }

            groups += 2;
            i = n;
            break;
        }

        if (j == i || j - i > 4) {
            return -1;
        }

        w[2 * groups] = (unsigned char) (v >> 8);
        w[2 * groups + 1] = (unsigned char) (v & 0xff);
        groups++;

        i = j;

        if (i == n) {
            break;
        }

        if (p[i] != ':') {
            return -1;
        }

        i++;

        if (i < n && p[i] == ':') {
            if (have_gap) {
                return -1;
            }

            have_gap = 1;
            gap = groups;
            i++;

        } else if (i == n) {
            /* a trailing single colon */
            return -1;
        }
    }

    if (have_gap ? groups > 7 : groups != 8) {
        return -1;
    }

    memset(out, 0, MCD_ADDR_V6_LEN);

    /* groups before the gap, then the ones after it at the end */

    memcpy(out, w, 2 * gap);

    k = groups - gap;
    memcpy(out + MCD_ADDR_V6_LEN - 2 * k, w + 2 * gap, 2 * k);

    return 0;
}


static int
mcd_addr_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
