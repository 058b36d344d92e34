
/*
 * Unit tests for src/mcd_fqdn.c: name normalisation, pattern parsing,
 * precedence, conflicts, regexes, IP literals, list files, a large build
 * and allocation failures.
 *
 *   cc -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Isrc \
 *      src/mcd_fqdn.c t/unit/test_fqdn.c -lpcre2-8 -o /tmp/test_fqdn
 *
 * Prints one line per failed check to stderr and a summary to stdout;
 * exits with 1 if any check failed.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#include "mcd_fqdn.h"


#define MCD_T_STR(s)  (const unsigned char *) (s), (sizeof(s) - 1)

#define MCD_CHECK(cond, ...)                                                  \
    do {                                                                      \
        mcd_t_checks++;                                                       \
        if (!(cond)) {                                                        \
            mcd_t_failed++;                                                   \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)


static unsigned long  mcd_t_checks;
static unsigned long  mcd_t_failed;


/* a test arena: blocks on a list, all freed by mcd_t_arena_free() */

typedef struct mcd_t_block_s  mcd_t_block_t;

struct mcd_t_block_s {
    mcd_t_block_t  *next;
    size_t          pad;        /* keeps the payload 16-byte aligned */
};


typedef struct {
    mcd_t_block_t  *blocks;
    unsigned char  *pos;
    size_t          left;
    unsigned long   nallocs;
    unsigned long   fail_at;    /* the allocation number that fails, 0 none */
    size_t          bytes;
} mcd_t_arena_t;


static void *
mcd_t_arena_raw(mcd_t_arena_t *a, size_t size)
{
    mcd_t_block_t  *b;

    b = malloc(sizeof(mcd_t_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = a->blocks;
    a->blocks = b;

    return (unsigned char *) b + sizeof(mcd_t_block_t);
}


static void *
mcd_t_arena_alloc(void *data, size_t size)
{
    void           *p;
    mcd_t_arena_t  *a;

    a = data;

    a->nallocs++;

    if (a->fail_at && a->nallocs == a->fail_at) {
        return NULL;
    }

    size = (size + 15) & ~(size_t) 15;
    a->bytes += size;

    if (size > 1024) {
        return mcd_t_arena_raw(a, size);
    }

    if (size > a->left) {
        a->pos = mcd_t_arena_raw(a, 16384);
        if (a->pos == NULL) {
            return NULL;
        }

        a->left = 16384;
    }

    p = a->pos;
    a->pos += size;
    a->left -= size;

    return p;
}


static void
mcd_t_arena_init(mcd_t_arena_t *a, mcd_allocator_t *al)
{
    memset(a, 0, sizeof(mcd_t_arena_t));
    al->alloc = mcd_t_arena_alloc;
    al->data = a;
}


static void
mcd_t_arena_free(mcd_t_arena_t *a)
{
    mcd_t_block_t  *b, *next;

    for (b = a->blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    a->blocks = NULL;
    a->left = 0;
}


/* helpers */


static int
mcd_t_action(const char *s, size_t n)
{
    if (n == 4 && memcmp(s, "deny", 4) == 0) {
        return MCD_ACTION_DENY;
    }

    if (n == 5 && memcmp(s, "allow", 5) == 0) {
        return MCD_ACTION_ALLOW;
    }

    if (n == 7 && memcmp(s, "decrypt", 7) == 0) {
        return MCD_ACTION_DECRYPT;
    }

    return -1;
}


/* adds "action pattern" (one space between), returns the add result */

static int
mcd_t_add(mcd_filter_t *f, const char *rule, unsigned line,
    mcd_filter_err_t *err)
{
    int          action;
    const char  *sp;

    sp = strchr(rule, ' ');
    if (sp == NULL) {
        fprintf(stderr, "bad test rule \"%s\"\n", rule);
        exit(2);
    }

    action = mcd_t_action(rule, (size_t) (sp - rule));
    if (action < 0) {
        fprintf(stderr, "bad test action \"%s\"\n", rule);
        exit(2);
    }

    return mcd_filter_add(f, (unsigned) action,
                          (const unsigned char *) sp + 1, strlen(sp + 1),
                          rule, line, err);
}


/* builds a filter from rules[order[i]]; every add must succeed */

static mcd_filter_t *
mcd_t_build(mcd_allocator_t *al, const char **rules, const size_t *order,
    size_t n)
{
    int                rc;
    size_t             i, k;
    mcd_filter_t      *f;
    mcd_filter_err_t   err;

    f = mcd_filter_create(al);
    MCD_CHECK(f != NULL, "mcd_filter_create() failed");
    if (f == NULL) {
        exit(2);
    }

    for (i = 0; i < n; i++) {
        k = order ? order[i] : i;
        rc = mcd_t_add(f, rules[k], (unsigned) k + 1, &err);
        MCD_CHECK(rc == MCD_FILTER_OK, "add \"%s\": %d %s", rules[k], rc,
                  err.msg);
    }

    rc = mcd_filter_finalize(f, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "finalize: %d %s", rc, err.msg);

    return f;
}


/*
 * The decision for a raw name as "action pattern", "none" (no rule
 * matched), "bad" (not a valid name) or "failed action pattern".
 */

static const char *
mcd_t_decide(const mcd_filter_t *f, const char *raw, size_t rawlen)
{
    int                type;
    size_t             len;
    unsigned char      name[MCD_FQDN_MAX + 1];
    const mcd_rule_t  *r;

    static char        buf[512];

    type = mcd_fqdn_normalize((const unsigned char *) raw, rawlen, name,
                              &len);

    if (type == MCD_NAME_BAD) {
        return "bad";
    }

    r = mcd_filter_match(f, name, len, type);

    if (r == NULL) {
        return "none";
    }

    snprintf(buf, sizeof(buf), "%s%s %.*s", r->failed ? "failed " : "",
             mcd_action_name(r->action), (int) r->len,
             (const char *) r->pattern);

    return buf;
}


#define mcd_t_expect(f, name, want)                                           \
    do {                                                                      \
        const char  *got_ = mcd_t_decide(f, name, strlen(name));              \
        MCD_CHECK(strcmp(got_, want) == 0,                                    \
                  "name \"%s\": got \"%s\", want \"%s\"", name, got_, want);  \
    } while (0)


static unsigned long  mcd_t_rand_state = 12345;

static unsigned long
mcd_t_rand(void)
{
    mcd_t_rand_state = mcd_t_rand_state * 6364136223846793005UL
                       + 1442695040888963407UL;

    return (unsigned long) (mcd_t_rand_state >> 33);
}


/* normalisation */


typedef struct {
    const unsigned char  *in;
    size_t                len;
    int                   type;
    const char           *out;
} mcd_t_norm_t;


static const mcd_t_norm_t  mcd_t_norms[] = {

    /* host names */
    { MCD_T_STR("example.com"), MCD_NAME_HOST, "example.com" },
    { MCD_T_STR("Example.COM"), MCD_NAME_HOST, "example.com" },
    { MCD_T_STR("WWW.EXAMPLE.COM."), MCD_NAME_HOST, "www.example.com" },
    { MCD_T_STR("localhost"), MCD_NAME_HOST, "localhost" },
    { MCD_T_STR("a"), MCD_NAME_HOST, "a" },
    { MCD_T_STR("A."), MCD_NAME_HOST, "a" },
    { MCD_T_STR("_dmarc.Example.com"), MCD_NAME_HOST, "_dmarc.example.com" },
    { MCD_T_STR("-a-.b-"), MCD_NAME_HOST, "-a-.b-" },
    { MCD_T_STR("xn--bcher-kva.Example"), MCD_NAME_HOST,
      "xn--bcher-kva.example" },
    { MCD_T_STR("1.2.3.4a"), MCD_NAME_HOST, "1.2.3.4a" },
    { MCD_T_STR("123.example"), MCD_NAME_HOST, "123.example" },
    { MCD_T_STR("0x.example"), MCD_NAME_HOST, "0x.example" },
    { MCD_T_STR("example.0xg"), MCD_NAME_HOST, "example.0xg" },
    { MCD_T_STR("0XZ"), MCD_NAME_HOST, "0xz" },
    { MCD_T_STR("1a"), MCD_NAME_HOST, "1a" },
    { MCD_T_STR("ABCDEFGHIJKLMNOPQRSTUVWXYZ.abcdefghijklmnopqrstuvwxyz"),
      MCD_NAME_HOST, "abcdefghijklmnopqrstuvwxyz.abcdefghijklmnopqrstuvwxyz" },

    /* bad host names */
    { MCD_T_STR(""), MCD_NAME_BAD, "" },
    { MCD_T_STR("."), MCD_NAME_BAD, "" },
    { MCD_T_STR(".."), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.com.."), MCD_NAME_BAD, "" },
    { MCD_T_STR(".example.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("a..b"), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.com. "), MCD_NAME_BAD, "" },
    { MCD_T_STR(" example.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("exa mple.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("exa\0mple.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.com\0"), MCD_NAME_BAD, "" },
    { MCD_T_STR("\0"), MCD_NAME_BAD, "" },
    { MCD_T_STR("*.example.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex*ample.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex%ample.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex\xc3\xa9.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("\xff"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex/ample.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("user@example.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex\tample.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.com\r\n"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex\\ample.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex\x7f.com"), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.com:443"), MCD_NAME_BAD, "" },
    { MCD_T_STR("ex]ample.com"), MCD_NAME_BAD, "" },

    /* IPv4 */
    { MCD_T_STR("10.1.2.3"), MCD_NAME_IPV4, "10.1.2.3" },
    { MCD_T_STR("10.1.2.3."), MCD_NAME_IPV4, "10.1.2.3" },
    { MCD_T_STR("0.0.0.0"), MCD_NAME_IPV4, "0.0.0.0" },
    { MCD_T_STR("255.255.255.255"), MCD_NAME_IPV4, "255.255.255.255" },
    { MCD_T_STR("192.0.2.100"), MCD_NAME_IPV4, "192.0.2.100" },
    { MCD_T_STR("192.168.001.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("010.1.1.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("01.1.1.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("00.1.2.3"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3.04"), MCD_NAME_BAD, "" },
    { MCD_T_STR("256.1.1.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3.256"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1000.1.1.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3.4.5"), MCD_NAME_BAD, "" },
    { MCD_T_STR("127.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("2130706433"), MCD_NAME_BAD, "" },
    { MCD_T_STR("0x7f.0.0.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("0x7f000001"), MCD_NAME_BAD, "" },
    { MCD_T_STR("0X7F.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3.0x4"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3.4.."), MCD_NAME_BAD, "" },
    { MCD_T_STR("1..2.3"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1.2.3.4 "), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.123"), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.0x1f"), MCD_NAME_BAD, "" },
    { MCD_T_STR("example.0x"), MCD_NAME_BAD, "" },
    { MCD_T_STR("a.2.3.4"), MCD_NAME_BAD, "" },

    /* IPv6 */
    { MCD_T_STR("::1"), MCD_NAME_IPV6, "::1" },
    { MCD_T_STR("[::1]"), MCD_NAME_IPV6, "::1" },
    { MCD_T_STR("::"), MCD_NAME_IPV6, "::" },
    { MCD_T_STR("[::]"), MCD_NAME_IPV6, "::" },
    { MCD_T_STR("2001:DB8:0::1"), MCD_NAME_IPV6, "2001:db8::1" },
    { MCD_T_STR("[2001:db8::1]"), MCD_NAME_IPV6, "2001:db8::1" },
    { MCD_T_STR("2001:0db8:0000:0000:0000:0000:0000:0001"), MCD_NAME_IPV6,
      "2001:db8::1" },
    { MCD_T_STR("1:2:3:4:5:6:7:8"), MCD_NAME_IPV6, "1:2:3:4:5:6:7:8" },
    { MCD_T_STR("1:0:0:0:0:0:0:8"), MCD_NAME_IPV6, "1::8" },
    { MCD_T_STR("2001:db8:0:1:0:0:0:1"), MCD_NAME_IPV6, "2001:db8:0:1::1" },
    { MCD_T_STR("2001:db8:0:0:1:0:0:1"), MCD_NAME_IPV6, "2001:db8::1:0:0:1" },
    { MCD_T_STR("1:2:3:4:5:6:7::"), MCD_NAME_IPV6, "1:2:3:4:5:6:7:0" },
    { MCD_T_STR("::ffff:1.2.3.4"), MCD_NAME_IPV6, "::ffff:1.2.3.4" },
    { MCD_T_STR("::FFFF:C000:0280"), MCD_NAME_IPV6, "::ffff:192.0.2.128" },
    { MCD_T_STR("[::ffff:10.1.2.3]"), MCD_NAME_IPV6, "::ffff:10.1.2.3" },
    { MCD_T_STR("64:ff9b::192.0.2.33"), MCD_NAME_IPV6, "64:ff9b::c000:221" },
    { MCD_T_STR("1:2:3:4:5:6:1.2.3.4"), MCD_NAME_IPV6,
      "1:2:3:4:5:6:102:304" },
    { MCD_T_STR("fe80::1%eth0"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[fe80::1%25eth0]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("fe80::1%1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[::1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("::1]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("["), MCD_NAME_BAD, "" },
    { MCD_T_STR("]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[::1]."), MCD_NAME_BAD, "" },
    { MCD_T_STR("::1."), MCD_NAME_BAD, "" },
    { MCD_T_STR("[::1]:443"), MCD_NAME_BAD, "" },
    { MCD_T_STR(":::"), MCD_NAME_BAD, "" },
    { MCD_T_STR(":"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1:2:3:4:5:6:7:8:9"), MCD_NAME_BAD, "" },
    { MCD_T_STR("1:2:3:4:5:6:7"), MCD_NAME_BAD, "" },
    { MCD_T_STR("2001:db8::1::1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("12345::1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("::1.2.3"), MCD_NAME_BAD, "" },
    { MCD_T_STR("::1.2.3.04"), MCD_NAME_BAD, "" },
    { MCD_T_STR("::256.1.1.1"), MCD_NAME_BAD, "" },
    { MCD_T_STR("::g"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[10.1.2.3]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[example.com]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("::1\0"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[::1\0]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[ ::1]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("[[::1]]"), MCD_NAME_BAD, "" },
    { MCD_T_STR("0000:0000:0000:0000:0000:0000:0000:0000:0000"),
      MCD_NAME_BAD, "" },
    { MCD_T_STR("0000:0000:0000:0000:0000:ffff:255.255.255.255"),
      MCD_NAME_IPV6, "::ffff:255.255.255.255" },
    { MCD_T_STR("0000:0000:0000:0000:0000:ffff:255.255.255.2555"),
      MCD_NAME_BAD, "" },
};


static void
mcd_t_norm_one(const unsigned char *in, size_t inlen, int want_type,
    const char *want, const char *what)
{
    int            type, type2;
    size_t         len, len2;
    unsigned char  out[MCD_FQDN_MAX + 1], out2[MCD_FQDN_MAX + 1];

    memset(out, 0x5a, sizeof(out));

    type = mcd_fqdn_normalize(in, inlen, out, &len);

    MCD_CHECK(type == want_type, "normalize %s: type %d, want %d", what, type,
              want_type);
    MCD_CHECK(len == strlen(want) && memcmp(out, want, len) == 0
              && out[len] == '\0',
              "normalize %s: \"%.*s\", want \"%s\"", what, (int) len,
              (const char *) out, want);

    if (type == MCD_NAME_BAD) {
        return;
    }

    /* normalising a normalised name changes nothing */

    type2 = mcd_fqdn_normalize(out, len, out2, &len2);

    MCD_CHECK(type2 == type && len2 == len && memcmp(out, out2, len) == 0,
              "normalize %s: not idempotent", what);
}


static void
mcd_t_normalize(void)
{
    int            type;
    size_t         i, len;
    char           what[64];
    const char    *why;
    unsigned char  in[600], out[MCD_FQDN_MAX + 1];

    for (i = 0; i < sizeof(mcd_t_norms) / sizeof(mcd_t_norms[0]); i++) {
        snprintf(what, sizeof(what), "table[%zu]", i);
        mcd_t_norm_one(mcd_t_norms[i].in, mcd_t_norms[i].len,
                       mcd_t_norms[i].type, mcd_t_norms[i].out, what);
    }

    /* NULL input */

    type = mcd_fqdn_normalize(NULL, 0, out, &len);
    MCD_CHECK(type == MCD_NAME_BAD && len == 0, "normalize NULL");

    /* label of 63 bytes is fine, 64 is not */

    memset(in, 'a', 64);
    memcpy(in + 63, ".com", 4);
    memcpy(out, in, 67);
    out[67] = '\0';
    mcd_t_norm_one(in, 67, MCD_NAME_HOST, (char *) out, "label 63");

    memset(in, 'A', 64);
    memcpy(in + 64, ".com", 4);
    mcd_t_norm_one(in, 68, MCD_NAME_BAD, "", "label 64");

    memset(in, 'a', 64);
    mcd_t_norm_one(in, 64, MCD_NAME_BAD, "", "single label 64");
    memcpy(out, in, 63);
    out[63] = '\0';
    mcd_t_norm_one(in, 63, MCD_NAME_HOST, (char *) out, "single label 63");

    /* names of 253 and 254 bytes: labels of 63 * 3 + 1 + 63 = 253 */

    for (i = 0; i < 260; i++) {
        in[i] = (i % 64 == 63) ? '.' : 'b';
    }

    memcpy(out, in, 253);
    out[253] = '\0';
    mcd_t_norm_one(in, 253, MCD_NAME_HOST, (char *) out, "name 253");

    in[253] = '.';
    mcd_t_norm_one(in, 254, MCD_NAME_HOST, (char *) out, "name 253 + dot");

    in[253] = 'c';
    mcd_t_norm_one(in, 254, MCD_NAME_BAD, "", "name 254");

    in[254] = '.';
    mcd_t_norm_one(in, 255, MCD_NAME_BAD, "", "name 254 + dot");

    in[253] = '.';
    in[254] = '.';
    mcd_t_norm_one(in, 255, MCD_NAME_BAD, "", "name 253 + 2 dots");

    /* a very long input is bounded */

    memset(in, 'a', sizeof(in));
    mcd_t_norm_one(in, sizeof(in), MCD_NAME_BAD, "", "600 bytes");

    /* every byte in the middle of a label */

    for (i = 0; i < 256; i++) {
        unsigned char  c = (unsigned char) i;
        int            ok;

        in[0] = 'a';
        in[1] = c;
        in[2] = 'b';
        memcpy(in + 3, ".com", 4);

        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
             || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';

        type = mcd_fqdn_normalize(in, 7, out, &len);

        MCD_CHECK(type == (ok ? MCD_NAME_HOST : MCD_NAME_BAD),
                  "byte 0x%02zx: type %d", i, type);

        if (ok) {
            MCD_CHECK(out[1] == ((c >= 'A' && c <= 'Z') ? c + 32 : c),
                      "byte 0x%02zx: not lowered", i);
        }
    }

    /* in place */

    memcpy(in, "WWW.Example.ORG.", 16);
    type = mcd_fqdn_normalize(in, 16, in, &len);
    MCD_CHECK(type == MCD_NAME_HOST && len == 15
              && memcmp(in, "www.example.org", 16) == 0, "in place host");

    memcpy(in, "[2001:DB8::0:1]", 15);
    type = mcd_fqdn_normalize(in, 15, in, &len);
    MCD_CHECK(type == MCD_NAME_IPV6 && len == 11
              && memcmp(in, "2001:db8::1", 12) == 0, "in place IPv6");

    /* reasons */

    why = NULL;
    type = mcd_fqdn_normalize_reason(MCD_T_STR("a..b"), out, &len, &why);
    MCD_CHECK(type == MCD_NAME_BAD && why && strcmp(why, "empty label") == 0,
              "reason empty label: %s", why ? why : "(null)");

    why = NULL;
    type = mcd_fqdn_normalize_reason(MCD_T_STR("fe80::1%eth0"), out, &len,
                                     &why);
    MCD_CHECK(type == MCD_NAME_BAD && why && strstr(why, "zone") != NULL,
              "reason zone id: %s", why ? why : "(null)");

    why = NULL;
    type = mcd_fqdn_normalize_reason(MCD_T_STR("010.1.1.1"), out, &len,
                                     &why);
    MCD_CHECK(type == MCD_NAME_BAD && why && strstr(why, "IPv4") != NULL,
              "reason IPv4: %s", why ? why : "(null)");

    why = NULL;
    type = mcd_fqdn_normalize_reason(MCD_T_STR("a b"), out, &len, &why);
    MCD_CHECK(type == MCD_NAME_BAD && why
              && strcmp(why, "invalid character") == 0,
              "reason character: %s", why ? why : "(null)");

    why = "untouched";
    type = mcd_fqdn_normalize_reason(MCD_T_STR("ok.example"), out, &len,
                                     &why);
    MCD_CHECK(type == MCD_NAME_HOST && strcmp(why, "untouched") == 0,
              "reason untouched on success");
}


/* patterns */


typedef struct {
    const unsigned char  *in;
    size_t                len;
    unsigned              kind;
    const char           *text;
} mcd_t_pat_t;


static const mcd_t_pat_t  mcd_t_valid[] = {
    { MCD_T_STR("example.com"), MCD_RULE_EXACT, "example.com" },
    { MCD_T_STR("Example.COM."), MCD_RULE_EXACT, "example.com" },
    { MCD_T_STR("localhost"), MCD_RULE_EXACT, "localhost" },
    { MCD_T_STR("_srv._tcp.Example.com"), MCD_RULE_EXACT,
      "_srv._tcp.example.com" },
    { MCD_T_STR("*.example.com"), MCD_RULE_STAR, "*.example.com" },
    { MCD_T_STR("*.Example.COM."), MCD_RULE_STAR, "*.example.com" },
    { MCD_T_STR("*.com"), MCD_RULE_STAR, "*.com" },
    { MCD_T_STR(".example.com"), MCD_RULE_DOT, ".example.com" },
    { MCD_T_STR(".EXAMPLE.com."), MCD_RULE_DOT, ".example.com" },
    { MCD_T_STR(".com"), MCD_RULE_DOT, ".com" },
    { MCD_T_STR("~^foo\\.Example\\.com$"), MCD_RULE_REGEX,
      "~^foo\\.Example\\.com$" },
    { MCD_T_STR("~."), MCD_RULE_REGEX, "~." },
    { MCD_T_STR("~a#b c"), MCD_RULE_REGEX, "~a#b c" },
    { MCD_T_STR("10.1.2.3"), MCD_RULE_IP, "10.1.2.3" },
    { MCD_T_STR("10.1.2.3."), MCD_RULE_IP, "10.1.2.3" },
    { MCD_T_STR("::1"), MCD_RULE_IP, "::1" },
    { MCD_T_STR("[::1]"), MCD_RULE_IP, "::1" },
    { MCD_T_STR("[2001:DB8:0::1]"), MCD_RULE_IP, "2001:db8::1" },
    { MCD_T_STR("::FFFF:10.1.2.3"), MCD_RULE_IP, "::ffff:10.1.2.3" },
};


static const mcd_t_pat_t  mcd_t_invalid[] = {
    { MCD_T_STR(""), 0, "empty pattern" },
    { MCD_T_STR("."), 0, "invalid wildcard \".\": empty name" },
    { MCD_T_STR("*."), 0, "invalid wildcard \"*.\": empty name" },
    { MCD_T_STR("*"), 0, "invalid wildcard \"*\"" },
    { MCD_T_STR("**"), 0, "invalid wildcard \"**\"" },
    { MCD_T_STR("**.com"), 0, "invalid wildcard \"**.com\"" },
    { MCD_T_STR("*.*.com"), 0, "invalid wildcard \"*.*.com\"" },
    { MCD_T_STR("*foo.com"), 0, "invalid wildcard \"*foo.com\"" },
    { MCD_T_STR("foo.*"), 0, "invalid wildcard \"foo.*\"" },
    { MCD_T_STR("foo*.com"), 0, "invalid wildcard \"foo*.com\"" },
    { MCD_T_STR("foo.*.com"), 0, "invalid wildcard \"foo.*.com\"" },
    { MCD_T_STR("*.example.com*"), 0, "invalid wildcard \"*.example.com*\"" },
    { MCD_T_STR(".*.com"), 0, "invalid wildcard \".*.com\"" },
    { MCD_T_STR("*..com"), 0, "invalid wildcard \"*..com\": empty label" },
    { MCD_T_STR("..com"), 0, "invalid wildcard \"..com\": empty label" },
    { MCD_T_STR("*.10.1.2.3"), 0,
      "invalid wildcard \"*.10.1.2.3\": wildcard of an IP address" },
    { MCD_T_STR(".10.1.2.3"), 0,
      "invalid wildcard \".10.1.2.3\": wildcard of an IP address" },
    { MCD_T_STR("*.[::1]"), 0,
      "invalid wildcard \"*.[::1]\": wildcard of an IP address" },
    { MCD_T_STR(".::1"), 0,
      "invalid wildcard \".::1\": wildcard of an IP address" },
    { MCD_T_STR("*.1.2.3"), 0,
      "invalid wildcard \"*.1.2.3\": invalid IPv4 address" },
    { MCD_T_STR("ex ample.com"), 0,
      "invalid pattern \"ex ample.com\": invalid character" },
    { MCD_T_STR("example..com"), 0,
      "invalid pattern \"example..com\": empty label" },
    { MCD_T_STR("example.com.."), 0,
      "invalid pattern \"example.com..\": empty label" },
    { MCD_T_STR("exa\0mple.com"), 0,
      "invalid pattern \"exa\\x00mple.com\": invalid character" },
    { MCD_T_STR("\xff.com"), 0,
      "invalid pattern \"\\xff.com\": invalid character" },
    { MCD_T_STR("010.1.1.1"), 0,
      "invalid pattern \"010.1.1.1\": invalid IPv4 address" },
    { MCD_T_STR("fe80::1%eth0"), 0,
      "invalid pattern \"fe80::1%eth0\": IPv6 zone id not allowed" },
    { MCD_T_STR("[::1"), 0,
      "invalid pattern \"[::1\": invalid bracketed address" },
    { MCD_T_STR("example.com:443"), 0,
      "invalid pattern \"example.com:443\": invalid IPv6 address" },
    { MCD_T_STR("~"), 0, "empty regex \"~\"" },
    { MCD_T_STR("~(abc"), 0,
      "invalid regex \"~(abc\": missing closing parenthesis at offset 4" },
    { MCD_T_STR("~a["), 0, "invalid regex \"~a[\": " },
    { MCD_T_STR("~*"), 0, "invalid regex \"~*\": " },
    { MCD_T_STR("~a{2,1}"), 0, "invalid regex \"~a{2,1}\": " },
};


static void
mcd_t_patterns(void)
{
    int                rc;
    size_t             i;
    mcd_filter_t      *f;
    mcd_t_arena_t      arena;
    mcd_allocator_t    al;
    mcd_filter_err_t   err;
    const mcd_rule_t  *r;
    unsigned char      big[300];

    static int         cookie;

    for (i = 0; i < sizeof(mcd_t_valid) / sizeof(mcd_t_valid[0]); i++) {
        mcd_t_arena_init(&arena, &al);

        f = mcd_filter_create(&al);
        MCD_CHECK(f != NULL, "create");
        if (f == NULL) {
            return;
        }

        rc = mcd_filter_add(f, MCD_ACTION_DECRYPT, mcd_t_valid[i].in,
                            mcd_t_valid[i].len, &cookie, 77, &err);
        MCD_CHECK(rc == MCD_FILTER_OK, "valid[%zu] \"%s\": rc %d %s", i,
                  mcd_t_valid[i].text, rc, err.msg);
        MCD_CHECK(err.msg[0] == '\0' && err.conflict == NULL,
                  "valid[%zu]: err not reset", i);
        MCD_CHECK(mcd_filter_count(f) == 1, "valid[%zu]: count", i);

        r = mcd_filter_rule(f, 0);
        MCD_CHECK(r != NULL, "valid[%zu]: no rule", i);

        if (r != NULL) {
            MCD_CHECK(r->kind == mcd_t_valid[i].kind, "valid[%zu]: kind %u",
                      i, (unsigned) r->kind);
            MCD_CHECK(r->len == strlen(mcd_t_valid[i].text)
                      && memcmp(r->pattern, mcd_t_valid[i].text, r->len) == 0
                      && r->pattern[r->len] == '\0',
                      "valid[%zu]: text \"%s\"", i,
                      (const char *) r->pattern);
            MCD_CHECK(r->action == MCD_ACTION_DECRYPT && r->line == 77
                      && r->source == &cookie && r->failed == 0,
                      "valid[%zu]: fields", i);
        }

        MCD_CHECK(mcd_filter_rule(f, 1) == NULL, "valid[%zu]: rule 1", i);

        mcd_filter_cleanup(f);
        mcd_t_arena_free(&arena);
    }

    mcd_t_arena_init(&arena, &al);

    f = mcd_filter_create(&al);
    MCD_CHECK(f != NULL, "create");
    if (f == NULL) {
        return;
    }

    for (i = 0; i < sizeof(mcd_t_invalid) / sizeof(mcd_t_invalid[0]); i++) {
        rc = mcd_filter_add(f, MCD_ACTION_ALLOW, mcd_t_invalid[i].in,
                            mcd_t_invalid[i].len, NULL, 1, &err);
        MCD_CHECK(rc == MCD_FILTER_INVALID, "invalid[%zu] \"%s\": rc %d", i,
                  mcd_t_invalid[i].text, rc);
        MCD_CHECK(strncmp(err.msg, mcd_t_invalid[i].text,
                          strlen(mcd_t_invalid[i].text)) == 0,
                  "invalid[%zu]: msg \"%s\", want \"%s\"", i, err.msg,
                  mcd_t_invalid[i].text);
        MCD_CHECK(err.conflict == NULL, "invalid[%zu]: conflict set", i);
    }

    MCD_CHECK(mcd_filter_count(f) == 0, "invalid patterns were added");

    /* too long: label 64, name 254, in wildcards too */

    memset(big, 'a', sizeof(big));
    memcpy(big, "*.", 2);
    big[66] = '.';
    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, 70, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID && strstr(err.msg, "63") != NULL,
              "wildcard label 64: %d %s", rc, err.msg);

    for (i = 0; i < sizeof(big); i++) {
        big[i] = (i % 50 == 49) ? '.' : 'x';
    }

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, 254, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID && strstr(err.msg, "253") != NULL,
              "name 254: %d %s", rc, err.msg);

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, 253, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "name 253: %d %s", rc, err.msg);

    big[0] = '.';
    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, 254, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, ".name 253: %d %s", rc, err.msg);

    big[0] = '*';
    big[1] = '.';
    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, 255, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "*.name 253: %d %s", rc, err.msg);

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, 256, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID, "*.name 254: %d %s", rc, err.msg);

    /* the message is bounded and escapes quotes */

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, MCD_T_STR("a\"b"), NULL, 1,
                        &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID
              && strstr(err.msg, "\"a\\x22b\"") != NULL,
              "quote escaping: %s", err.msg);

    memset(big, '"', sizeof(big));
    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, big, sizeof(big), NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID && strlen(err.msg) < sizeof(err.msg)
              && strstr(err.msg, "...\": name longer") != NULL,
              "long msg: %s", err.msg);

    /* a bad action */

    rc = mcd_filter_add(f, 3, MCD_T_STR("example.net"), NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID
              && strcmp(err.msg, "invalid action 3") == 0,
              "action 3: %d %s", rc, err.msg);

    /* NULL pattern, NULL err */

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, NULL, 5, NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_INVALID, "NULL pattern: %d", rc);

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, MCD_T_STR("*x"), NULL, 1, NULL);
    MCD_CHECK(rc == MCD_FILTER_INVALID, "NULL err: %d", rc);

    rc = mcd_filter_add(NULL, MCD_ACTION_ALLOW, MCD_T_STR("x"), NULL, 1,
                        &err);
    MCD_CHECK(rc == MCD_FILTER_ERROR, "NULL filter: %d", rc);

    MCD_CHECK(mcd_filter_count(f) == 3, "count %zu", mcd_filter_count(f));

    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);
}


/* precedence */


static void
mcd_t_precedence(void)
{
    mcd_filter_t     *f;
    mcd_t_arena_t     arena;
    mcd_allocator_t   al;

    static const char  *exc[] = {
        "decrypt .example.com",
        "allow bank.example.com",
    };

    static const char  *apex[] = {
        "decrypt .example.com",
        "allow example.com",
    };

    static const char  *longest[] = {
        "deny .com",
        "allow *.example.com",
        "decrypt .a.example.com",
        "allow ~^foo",
        "deny ~^bar",
    };

    static const char  *star_dot[] = {
        "allow .example.com",
        "allow *.example.com",
        "deny *.x.example.com",
    };

    mcd_t_arena_init(&arena, &al);

    /* a decryption exception: more specific allow under a broad decrypt */

    f = mcd_t_build(&al, exc, NULL, 2);
    mcd_t_expect(f, "bank.example.com", "allow bank.example.com");
    mcd_t_expect(f, "BANK.Example.COM.", "allow bank.example.com");
    mcd_t_expect(f, "x.example.com", "decrypt .example.com");
    mcd_t_expect(f, "example.com", "decrypt .example.com");
    mcd_t_expect(f, "a.bank.example.com", "decrypt .example.com");
    mcd_t_expect(f, "a.b.c.d.example.com", "decrypt .example.com");
    mcd_t_expect(f, "notexample.com", "none");
    mcd_t_expect(f, "example.com.evil", "none");
    mcd_t_expect(f, "com", "none");
    mcd_t_expect(f, "example..com", "bad");
    mcd_filter_cleanup(f);

    f = mcd_t_build(&al, apex, NULL, 2);
    mcd_t_expect(f, "example.com", "allow example.com");
    mcd_t_expect(f, "www.example.com", "decrypt .example.com");
    mcd_filter_cleanup(f);

    /* the longest wildcard wins; regexes come after wildcards */

    f = mcd_t_build(&al, longest, NULL, 5);
    mcd_t_expect(f, "x.a.example.com", "decrypt .a.example.com");
    mcd_t_expect(f, "y.x.a.example.com", "decrypt .a.example.com");
    mcd_t_expect(f, "a.example.com", "decrypt .a.example.com");
    mcd_t_expect(f, "b.example.com", "allow *.example.com");
    mcd_t_expect(f, "ba.example.com", "allow *.example.com");
    mcd_t_expect(f, "example.com", "deny .com");
    mcd_t_expect(f, "com", "deny .com");
    mcd_t_expect(f, "xcom", "none");
    mcd_t_expect(f, "foo.example.com", "allow *.example.com");
    mcd_t_expect(f, "foo.com", "deny .com");
    mcd_t_expect(f, "foo.org", "allow ~^foo");
    mcd_t_expect(f, "bar.org", "deny ~^bar");
    mcd_t_expect(f, "baz.org", "none");
    mcd_filter_cleanup(f);

    /* "*.x" and ".x" with the same action; the deeper wildcard wins */

    f = mcd_t_build(&al, star_dot, NULL, 3);
    mcd_t_expect(f, "example.com", "allow .example.com");
    mcd_t_expect(f, "a.example.com", "allow *.example.com");
    mcd_t_expect(f, "x.example.com", "allow *.example.com");
    mcd_t_expect(f, "y.x.example.com", "deny *.x.example.com");
    mcd_filter_cleanup(f);

    mcd_t_arena_free(&arena);
}


/* the same rules in any order give the same decisions */

static const char  *mcd_t_perm_rules[] = {
    "deny .com",
    "allow *.example.com",
    "decrypt .a.example.com",
    "allow b.a.example.com",
    "deny x.example.com",
    "decrypt *.b.a.example.com",
    "allow .example.org",
    "deny ~^ads\\.",
    "decrypt ~\\.net$",
    "allow 10.1.2.3",
    "deny ::1",
    "decrypt ~^192\\.168\\.",
    "deny ~\\.example$",
    "allow .example.com",
    "decrypt [2001:db8::7]",
};


static const char  *mcd_t_perm_names[][2] = {
    { "example.com", "allow .example.com" },
    { "www.example.com", "allow *.example.com" },
    { "a.example.com", "decrypt .a.example.com" },
    { "z.a.example.com", "decrypt .a.example.com" },
    { "b.a.example.com", "allow b.a.example.com" },
    { "c.b.a.example.com", "decrypt *.b.a.example.com" },
    { "d.c.b.a.example.com", "decrypt *.b.a.example.com" },
    { "x.example.com", "deny x.example.com" },
    { "y.x.example.com", "allow *.example.com" },
    { "com", "deny .com" },
    { "other.com", "deny .com" },
    { "example.org", "allow .example.org" },
    { "ads.example.org", "allow .example.org" },
    { "ads.tracker.io", "deny ~^ads\\." },
    { "foo.net", "decrypt ~\\.net$" },
    { "foo.example", "deny ~\\.example$" },
    { "10.1.2.3", "allow 10.1.2.3" },
    { "10.1.2.4", "none" },
    { "192.168.1.1", "decrypt ~^192\\.168\\." },
    { "::1", "deny ::1" },
    { "[0::1]", "deny ::1" },
    { "::2", "none" },
    { "::ffff:10.1.2.3", "allow 10.1.2.3" },
    { "2001:DB8::7", "decrypt 2001:db8::7" },
    { "unknown.org", "none" },
    { "01.1.1.1", "bad" },
};


static void
mcd_t_order(void)
{
    size_t            i, j, k, n, tmp, order[32], perm;
    mcd_filter_t     *f;
    mcd_t_arena_t     arena;
    mcd_allocator_t   al;

    n = sizeof(mcd_t_perm_rules) / sizeof(mcd_t_perm_rules[0]);

    for (perm = 0; perm < 300; perm++) {

        for (i = 0; i < n; i++) {
            order[i] = i;
        }

        if (perm == 1) {
            for (i = 0; i < n; i++) {
                order[i] = n - 1 - i;
            }

        } else if (perm > 1) {
            for (i = n - 1; i > 0; i--) {
                j = mcd_t_rand() % (i + 1);
                tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
        }

        mcd_t_arena_init(&arena, &al);

        f = mcd_t_build(&al, mcd_t_perm_rules, order, n);

        for (k = 0;
             k < sizeof(mcd_t_perm_names) / sizeof(mcd_t_perm_names[0]);
             k++)
        {
            const char  *got = mcd_t_decide(f, mcd_t_perm_names[k][0],
                                            strlen(mcd_t_perm_names[k][0]));

            MCD_CHECK(strcmp(got, mcd_t_perm_names[k][1]) == 0,
                      "permutation %zu: \"%s\" got \"%s\" want \"%s\"",
                      perm, mcd_t_perm_names[k][0], got,
                      mcd_t_perm_names[k][1]);
        }

        mcd_filter_cleanup(f);
        mcd_t_arena_free(&arena);
    }
}


/* conflicts and duplicates */


typedef struct {
    const char  *first;
    const char  *second;
    int          rc;
    const char  *msg;
} mcd_t_conflict_t;


static const mcd_t_conflict_t  mcd_t_conflicts[] = {
    { "allow Example.com.", "deny example.com", MCD_FILTER_CONFLICT,
      "\"deny example.com\" conflicts with \"allow example.com\"" },
    { "allow example.com", "allow EXAMPLE.COM.", MCD_FILTER_DUP,
      "duplicate pattern \"allow example.com\"" },
    { "allow .example.com", "deny *.example.com", MCD_FILTER_CONFLICT,
      "\"deny *.example.com\" conflicts with \"allow .example.com\": "
      "both cover the subdomains of \"example.com\"" },
    { "deny *.example.com", "decrypt .Example.com", MCD_FILTER_CONFLICT,
      "\"decrypt .example.com\" conflicts with \"deny *.example.com\": "
      "both cover the subdomains of \"example.com\"" },
    { "allow .example.com", "allow *.example.com", MCD_FILTER_OK, "" },
    { "allow *.example.com", "allow .example.com", MCD_FILTER_OK, "" },
    { "allow *.example.com", "deny *.example.com.", MCD_FILTER_CONFLICT,
      "\"deny *.example.com\" conflicts with \"allow *.example.com\"" },
    { "allow *.example.com", "allow *.EXAMPLE.com", MCD_FILTER_DUP,
      "duplicate pattern \"allow *.example.com\"" },
    { "decrypt .example.com", "decrypt .example.com.", MCD_FILTER_DUP,
      "duplicate pattern \"decrypt .example.com\"" },
    { "decrypt .example.com", "allow .example.com", MCD_FILTER_CONFLICT,
      "\"allow .example.com\" conflicts with \"decrypt .example.com\"" },
    { "allow ~abc", "deny ~abc", MCD_FILTER_CONFLICT,
      "\"deny ~abc\" conflicts with \"allow ~abc\"" },
    { "allow ~abc", "allow ~abc", MCD_FILTER_DUP,
      "duplicate pattern \"allow ~abc\"" },
    { "allow ~abc", "deny ~ABC", MCD_FILTER_OK, "" },
    { "allow ~abc", "deny ~abc$", MCD_FILTER_OK, "" },
    { "allow 2001:DB8:0::1", "deny [2001:db8::1]", MCD_FILTER_CONFLICT,
      "\"deny 2001:db8::1\" conflicts with \"allow 2001:db8::1\"" },
    { "allow 10.1.2.3", "allow 10.1.2.3.", MCD_FILTER_DUP,
      "duplicate pattern \"allow 10.1.2.3\"" },
    { "allow 10.1.2.3", "deny ::ffff:10.1.2.3", MCD_FILTER_OK, "" },
    { "allow example.com", "deny .example.com", MCD_FILTER_OK, "" },
    { "allow example.com", "deny *.example.com", MCD_FILTER_OK, "" },
    { "allow example.com", "deny ~example.com", MCD_FILTER_OK, "" },
    { "allow ~example.com", "deny example.com", MCD_FILTER_OK, "" },
    { "allow .example.com", "deny .www.example.com", MCD_FILTER_OK, "" },
    { "allow .example.com", "deny .com", MCD_FILTER_OK, "" },
};


static void
mcd_t_conflict(void)
{
    int                rc;
    size_t             i;
    mcd_filter_t      *f;
    mcd_t_arena_t      arena;
    mcd_allocator_t    al;
    mcd_filter_err_t   err;
    const mcd_rule_t  *r;

    for (i = 0; i < sizeof(mcd_t_conflicts) / sizeof(mcd_t_conflicts[0]);
         i++)
    {
        const mcd_t_conflict_t  *c = &mcd_t_conflicts[i];

        mcd_t_arena_init(&arena, &al);

        f = mcd_filter_create(&al);
        if (f == NULL) {
            MCD_CHECK(0, "create");
            return;
        }

        rc = mcd_t_add(f, c->first, 10, &err);
        MCD_CHECK(rc == MCD_FILTER_OK, "conflict[%zu] first: %d %s", i, rc,
                  err.msg);

        rc = mcd_t_add(f, c->second, 20, &err);
        MCD_CHECK(rc == c->rc, "conflict[%zu] \"%s\" / \"%s\": rc %d want %d",
                  i, c->first, c->second, rc, c->rc);
        MCD_CHECK(strcmp(err.msg, c->msg) == 0,
                  "conflict[%zu]: msg \"%s\" want \"%s\"", i, err.msg, c->msg);

        if (c->rc == MCD_FILTER_OK) {
            MCD_CHECK(err.conflict == NULL, "conflict[%zu]: conflict set", i);
            MCD_CHECK(mcd_filter_count(f) == 2, "conflict[%zu]: count", i);

        } else {
            /* err->conflict identifies the first rule and where it was */
            MCD_CHECK(err.conflict != NULL
                      && err.conflict->source == c->first
                      && err.conflict->line == 10
                      && err.conflict == mcd_filter_rule(f, 0),
                      "conflict[%zu]: wrong conflict rule", i);
            MCD_CHECK(mcd_filter_count(f) == 1, "conflict[%zu]: count %zu",
                      i, mcd_filter_count(f));
        }

        mcd_filter_cleanup(f);
        mcd_t_arena_free(&arena);
    }

    /* a duplicate keeps the first rule; a conflict keeps it too */

    mcd_t_arena_init(&arena, &al);

    f = mcd_filter_create(&al);
    if (f == NULL) {
        MCD_CHECK(0, "create");
        return;
    }

    rc = mcd_t_add(f, "allow a.com", 1, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "dup first");
    rc = mcd_t_add(f, "allow A.com", 2, &err);
    MCD_CHECK(rc == MCD_FILTER_DUP, "dup second");
    rc = mcd_t_add(f, "deny a.com.", 3, &err);
    MCD_CHECK(rc == MCD_FILTER_CONFLICT, "dup third");
    rc = mcd_t_add(f, "deny ~^a\\.com$", 4, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "regex for a.com");
    rc = mcd_t_add(f, "decrypt ~^a\\.com$", 5, &err);
    MCD_CHECK(rc == MCD_FILTER_CONFLICT && err.conflict
              && err.conflict->line == 4, "regex conflict");

    MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize");

    r = mcd_filter_match(f, (const unsigned char *) "a.com", 5,
                         MCD_NAME_HOST);
    MCD_CHECK(r != NULL && r->line == 1 && r->action == MCD_ACTION_ALLOW,
              "dup keeps first");
    MCD_CHECK(mcd_filter_count(f) == 2, "dup count %zu", mcd_filter_count(f));

    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);
}


/* regexes */


static void
mcd_t_regex(void)
{
    int                rc;
    size_t             i;
    char               name[128];
    mcd_filter_t      *f;
    mcd_t_arena_t      arena;
    mcd_allocator_t    al;
    mcd_filter_err_t   err;
    const mcd_rule_t  *r;

    static const char  *order1[] = {
        "allow ~foo",
        "deny ~bar",
        "decrypt ~^FOO\\.Example$",
        "deny ~^10\\.",
        "allow ~^2001:db8:",
        "decrypt ~\\.$",
        "allow ~^[a-z]+\\.(?:org|net)$",
    };

    static const char  *order2[] = {
        "deny ~bar",
        "allow ~foo",
    };

    static const char  *redos[] = {
        "allow ~^(a|aa)+$",
        "allow ~never",
    };

    mcd_t_arena_init(&arena, &al);

    f = mcd_t_build(&al, order1, NULL, 7);
    mcd_t_expect(f, "foobar.com", "allow ~foo");
    mcd_t_expect(f, "xbarfoo.com", "allow ~foo");
    mcd_t_expect(f, "bar.com", "deny ~bar");
    mcd_t_expect(f, "FOO.EXAMPLE", "allow ~foo");
    mcd_t_expect(f, "BAR.EXAMPLE", "deny ~bar");
    mcd_t_expect(f, "www.FOO.example", "allow ~foo");
    mcd_t_expect(f, "10.0.0.1", "deny ~^10\\.");
    mcd_t_expect(f, "10.example", "deny ~^10\\.");
    mcd_t_expect(f, "[2001:DB8::5]", "allow ~^2001:db8:");
    mcd_t_expect(f, "a.com.", "none");
    mcd_t_expect(f, "abc.org", "allow ~^[a-z]+\\.(?:org|net)$");
    mcd_t_expect(f, "ABC.NET.", "allow ~^[a-z]+\\.(?:org|net)$");
    mcd_t_expect(f, "a1.org", "none");
    mcd_filter_cleanup(f);

    f = mcd_t_build(&al, order2, NULL, 2);
    mcd_t_expect(f, "foobar.com", "deny ~bar");
    mcd_t_expect(f, "foo.com", "allow ~foo");
    mcd_filter_cleanup(f);

    /* case-insensitive: the pattern upper case, the name lowered */

    f = mcd_filter_create(&al);
    rc = mcd_filter_add(f, MCD_ACTION_DECRYPT,
                        MCD_T_STR("~^WWW\\.[A-Z]+\\.COM$"), NULL, 1, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "caseless add: %s", err.msg);
    MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize");
    mcd_t_expect(f, "www.example.com", "decrypt ~^WWW\\.[A-Z]+\\.COM$");
    mcd_t_expect(f, "Www.Example.Com", "decrypt ~^WWW\\.[A-Z]+\\.COM$");
    mcd_t_expect(f, "www.ex-ample.com", "none");
    mcd_filter_cleanup(f);

    /* a pathological regex hits the match limit and fails closed */

    f = mcd_t_build(&al, redos, NULL, 2);

    memset(name, 'a', 60);
    memcpy(name + 60, ".b", 3);
    mcd_t_expect(f, name, "failed deny ~^(a|aa)+$");

    r = mcd_filter_match(f, (const unsigned char *) name, 62, MCD_NAME_HOST);
    MCD_CHECK(r != NULL && r->failed && r->action == MCD_ACTION_DENY
              && r->line == 1 && r->source == redos[0],
              "redos: failed rule fields");

    mcd_t_expect(f, "aaaa", "allow ~^(a|aa)+$");
    mcd_t_expect(f, "b.com", "none");

    /* the failed rule does not leak into later decisions */

    r = mcd_filter_match(f, (const unsigned char *) "aaaa", 4, MCD_NAME_HOST);
    MCD_CHECK(r != NULL && !r->failed && r->action == MCD_ACTION_ALLOW,
              "redos: later match");

    /* after cleanup a regex match fails closed */

    mcd_filter_cleanup(f);
    mcd_filter_cleanup(f);
    mcd_t_expect(f, "aaaa", "failed deny ~^(a|aa)+$");

    /* regexes are not run before finalize: fail closed */

    f = mcd_filter_create(&al);
    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, MCD_T_STR("~x"), NULL, 9, &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "add ~x");
    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, MCD_T_STR("y.com"), NULL, 9,
                        &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "add y.com");
    mcd_t_expect(f, "x.com", "failed deny ~x");
    mcd_t_expect(f, "y.com", "allow y.com");
    MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize");
    MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize 2");
    mcd_t_expect(f, "x.com", "allow ~x");

    rc = mcd_filter_add(f, MCD_ACTION_ALLOW, MCD_T_STR("z.com"), NULL, 9,
                        &err);
    MCD_CHECK(rc == MCD_FILTER_ERROR && err.msg[0] != '\0',
              "add after finalize: %d", rc);
    mcd_filter_cleanup(f);

    /* many regexes, first match in order */

    f = mcd_filter_create(&al);

    for (i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "~^r%zu[.]", i);
        rc = mcd_filter_add(f, (unsigned) (i % 3),
                            (const unsigned char *) name, strlen(name), NULL,
                            (unsigned) i, &err);
        MCD_CHECK(rc == MCD_FILTER_OK, "add %s: %s", name, err.msg);
    }

    rc = mcd_filter_add(f, MCD_ACTION_DECRYPT, MCD_T_STR("~^r1"), NULL, 99,
                        &err);
    MCD_CHECK(rc == MCD_FILTER_OK, "add ~^r1");
    MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize");

    for (i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "r%zu.example", i);
        r = mcd_filter_match(f, (const unsigned char *) name, strlen(name),
                             MCD_NAME_HOST);
        MCD_CHECK(r != NULL && r->line == i && r->action == i % 3,
                  "regex %zu", i);
    }

    r = mcd_filter_match(f, (const unsigned char *) "r1x.example", 11,
                         MCD_NAME_HOST);
    MCD_CHECK(r != NULL && r->line == 99, "regex ~^r1");

    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);
}


/* IP literals */


static void
mcd_t_ip(void)
{
    mcd_filter_t     *f;
    mcd_t_arena_t     arena;
    mcd_allocator_t   al;

    static const char  *rules[] = {
        "deny 10.1.2.3",
        "allow ::1",
        "decrypt [2001:DB8:0::1]",
        "allow .example.com",
        "allow ::ffff:192.0.2.1",
        "deny 192.0.2.1",
        "decrypt 0.0.0.0",
        "deny ::",
        "allow www.example.org",
    };

    mcd_t_arena_init(&arena, &al);

    f = mcd_t_build(&al, rules, NULL, 9);
    mcd_t_expect(f, "10.1.2.3", "deny 10.1.2.3");
    mcd_t_expect(f, "10.1.2.3.", "deny 10.1.2.3");
    mcd_t_expect(f, "10.1.2.4", "none");
    mcd_t_expect(f, "010.1.2.3", "bad");
    mcd_t_expect(f, "::1", "allow ::1");
    mcd_t_expect(f, "[::1]", "allow ::1");
    mcd_t_expect(f, "0:0:0:0:0:0:0:1", "allow ::1");
    mcd_t_expect(f, "2001:db8::1", "decrypt 2001:db8::1");
    mcd_t_expect(f, "[2001:0DB8::0:1]", "decrypt 2001:db8::1");
    mcd_t_expect(f, "2001:db8::2", "none");
    mcd_t_expect(f, "::ffff:10.1.2.3", "deny 10.1.2.3");
    mcd_t_expect(f, "[::FFFF:A01:203]", "deny 10.1.2.3");
    mcd_t_expect(f, "::10.1.2.3", "none");
    mcd_t_expect(f, "::ffff:192.0.2.1", "allow ::ffff:192.0.2.1");
    mcd_t_expect(f, "192.0.2.1", "deny 192.0.2.1");
    mcd_t_expect(f, "0.0.0.0", "decrypt 0.0.0.0");
    mcd_t_expect(f, "::", "deny ::");
    mcd_t_expect(f, "::ffff:0.0.0.0", "decrypt 0.0.0.0");
    mcd_t_expect(f, "fe80::1%eth0", "bad");
    mcd_t_expect(f, "www.example.com", "allow .example.com");

    /* names are not matched as IPs and the other way round */

    {
        const mcd_rule_t  *r;

        r = mcd_filter_match(f, (const unsigned char *) "10.1.2.3", 8,
                             MCD_NAME_HOST);
        MCD_CHECK(r == NULL, "IP rule matched a host type name");

        r = mcd_filter_match(f, (const unsigned char *) "www.example.org",
                             15, MCD_NAME_IPV4);
        MCD_CHECK(r == NULL, "host rule matched an IPv4 type name");

        r = mcd_filter_match(f, (const unsigned char *) "www.example.org",
                             15, MCD_NAME_HOST);
        MCD_CHECK(r != NULL, "host rule did not match");

        r = mcd_filter_match(f, (const unsigned char *) "10.1.2.3", 8,
                             MCD_NAME_BAD);
        MCD_CHECK(r == NULL, "BAD type matched");

        r = mcd_filter_match(f, (const unsigned char *) "10.1.2.3", 0,
                             MCD_NAME_IPV4);
        MCD_CHECK(r == NULL, "empty name matched");

        r = mcd_filter_match(f, NULL, 8, MCD_NAME_IPV4);
        MCD_CHECK(r == NULL, "NULL name matched");

        r = mcd_filter_match(NULL, (const unsigned char *) "10.1.2.3", 8,
                             MCD_NAME_IPV4);
        MCD_CHECK(r == NULL, "NULL filter matched");

        r = mcd_filter_match(f, (const unsigned char *) "10.1.2.3", 254,
                             MCD_NAME_IPV4);
        MCD_CHECK(r == NULL, "over-long name matched");

        r = mcd_filter_match(f, (const unsigned char *) "10.1.2.3", 8, 9);
        MCD_CHECK(r == NULL, "bad type matched");
    }

    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);
}


/* list files */


typedef struct {
    const unsigned char  *buf;
    size_t                len;
    const char           *want;   /* "line:pattern|..." or "line:!" */
} mcd_t_list_t;


static const mcd_t_list_t  mcd_t_lists[] = {
    { MCD_T_STR(""), "" },
    { MCD_T_STR("\n"), "" },
    { MCD_T_STR("\r\n"), "" },
    { MCD_T_STR("#only a comment"), "" },
    { MCD_T_STR("   \t  \n\n\t\n"), "" },
    { MCD_T_STR("a.com"), "1:a.com|" },
    { MCD_T_STR("a.com\n"), "1:a.com|" },
    { MCD_T_STR("a.com\nb.com\n"), "1:a.com|2:b.com|" },
    { MCD_T_STR("a.com\r\nb.com\r\n"), "1:a.com|2:b.com|" },
    { MCD_T_STR("a.com\r\nb.com"), "1:a.com|2:b.com|" },
    { MCD_T_STR("  a.com  # comment\n"), "1:a.com|" },
    { MCD_T_STR("a.com#comment"), "1:a.com|" },
    { MCD_T_STR("# full comment\n\n   \n\t*.b.com\t\r\n"), "4:*.b.com|" },
    { MCD_T_STR("a.com\nfoo bar\nc.com"), "1:a.com|2:!|3:c.com|" },
    { MCD_T_STR("a.com b.com # x"), "1:!|" },
    { MCD_T_STR("a\tb"), "1:!|" },
    { MCD_T_STR("a\rb\n"), "1:!|" },
    { MCD_T_STR("~^a#b"), "1:~^a|" },
    { MCD_T_STR("\xef\xbb\xbf.a.com\n"), "1:.a.com|" },
    { MCD_T_STR("x\n\xef\xbb\xbf.a.com\n"), "1:x|2:\xef\xbb\xbf.a.com|" },
    { MCD_T_STR("\n\n\n\nfive\n"), "5:five|" },
    { MCD_T_STR("a\0b\n"), "1:a\0b|" },
};


static void
mcd_t_list(void)
{
    int                   rc;
    char                  got[256];
    size_t                i, n, len, wantlen;
    unsigned              line;
    const char           *want;
    const unsigned char  *pos, *end, *pat;

    for (i = 0; i < sizeof(mcd_t_lists) / sizeof(mcd_t_lists[0]); i++) {
        pos = mcd_t_lists[i].buf;
        end = pos + mcd_t_lists[i].len;
        line = 0;
        n = 0;
        got[0] = '\0';

        for ( ;; ) {
            pat = NULL;
            len = 0;
            rc = mcd_list_next(&pos, end, &pat, &len, &line);

            if (rc == 0) {
                break;
            }

            if (rc == 1) {
                n += (size_t) snprintf(got + n, sizeof(got) - n, "%u:", line);
                memcpy(got + n, pat, len);
                n += len;
                got[n++] = '|';

            } else {
                n += (size_t) snprintf(got + n, sizeof(got) - n, "%u:!|",
                                       line);
            }

            MCD_CHECK(pos <= end, "list[%zu]: cursor past the end", i);

            if (n > sizeof(got) - 64) {
                break;
            }
        }

        want = mcd_t_lists[i].want;

        /* "a\0b" wants an embedded NUL: compare through "|" count */
        wantlen = strlen(want);
        if (i == sizeof(mcd_t_lists) / sizeof(mcd_t_lists[0]) - 1) {
            wantlen = 6;
        }

        MCD_CHECK(n == wantlen && memcmp(got, want, n) == 0,
                  "list[%zu]: got \"%.*s\", want \"%s\"", i, (int) n, got,
                  want);

        MCD_CHECK(pos == end, "list[%zu]: cursor not at end", i);

        /* at the end, it stays at the end */
        rc = mcd_list_next(&pos, end, &pat, &len, &line);
        MCD_CHECK(rc == 0, "list[%zu]: not 0 after the end", i);
    }

    /* the patterns of a list go into a filter */

    {
        mcd_filter_t      *f;
        mcd_t_arena_t      arena;
        mcd_allocator_t    al;
        mcd_filter_err_t   err;

        static const unsigned char  file[] =
            "# allow list\r\n"
            "Example.COM.\r\n"
            "*.example.org   # all subdomains\r\n"
            "\r\n"
            ".example.net\r\n"
            "~^api[0-9]+\\.example\\.io$\r\n"
            "10.9.8.7\r\n"
            "[2001:db8::42]";

        mcd_t_arena_init(&arena, &al);
        f = mcd_filter_create(&al);

        pos = file;
        end = file + sizeof(file) - 1;
        line = 0;
        n = 0;

        while ((rc = mcd_list_next(&pos, end, &pat, &len, &line)) == 1) {
            rc = mcd_filter_add(f, MCD_ACTION_ALLOW, pat, len, "list", line,
                                &err);
            MCD_CHECK(rc == MCD_FILTER_OK, "list add line %u: %s", line,
                      err.msg);
            n++;
        }

        MCD_CHECK(rc == 0 && n == 6 && line == 8, "list: %d %zu %u", rc, n,
                  line);
        MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize");

        mcd_t_expect(f, "example.com", "allow example.com");
        mcd_t_expect(f, "a.example.org", "allow *.example.org");
        mcd_t_expect(f, "example.org", "none");
        mcd_t_expect(f, "example.net", "allow .example.net");
        mcd_t_expect(f, "API12.example.io",
                     "allow ~^api[0-9]+\\.example\\.io$");
        mcd_t_expect(f, "10.9.8.7", "allow 10.9.8.7");
        mcd_t_expect(f, "2001:db8::42", "allow 2001:db8::42");

        MCD_CHECK(mcd_filter_rule(f, 5) != NULL
                  && mcd_filter_rule(f, 5)->line == 8,
                  "list: line of the last rule");

        mcd_filter_cleanup(f);
        mcd_t_arena_free(&arena);
    }
}


/* a large filter */


static void
mcd_t_big(void)
{
    int                rc;
    char               buf[128];
    size_t             i, k, n, len;
    double             ms;
    mcd_filter_t      *f;
    mcd_t_arena_t      arena;
    mcd_allocator_t    al;
    mcd_filter_err_t   err;
    struct timespec    t0, t1;
    const mcd_rule_t  *r;

    n = 100000;

    mcd_t_arena_init(&arena, &al);
    f = mcd_filter_create(&al);
    if (f == NULL) {
        MCD_CHECK(0, "create");
        return;
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (i = 0; i < n; i++) {
        len = (size_t) snprintf(buf, sizeof(buf), "H%zu.d%zu.Example.com", i,
                                i % 977);
        rc = mcd_filter_add(f, (unsigned) (i % 3),
                            (unsigned char *) buf, len, NULL, (unsigned) i,
                            &err);
        if (rc != MCD_FILTER_OK) {
            MCD_CHECK(0, "big exact %zu: %d %s", i, rc, err.msg);
            break;
        }

        len = (size_t) snprintf(buf, sizeof(buf), "%sw%zu.test",
                                (i & 1) ? "." : "*.", i);
        rc = mcd_filter_add(f, (unsigned) ((i + 1) % 3),
                            (unsigned char *) buf, len, NULL,
                            (unsigned) (n + i), &err);
        if (rc != MCD_FILTER_OK) {
            MCD_CHECK(0, "big wildcard %zu: %d %s", i, rc, err.msg);
            break;
        }
    }

    /* duplicates are still found in a big table */

    rc = mcd_filter_add(f, 1, MCD_T_STR("h4.d4.example.com"), NULL, 0, &err);
    MCD_CHECK(rc == MCD_FILTER_DUP, "big dup: %d", rc);
    rc = mcd_filter_add(f, 0, MCD_T_STR("h4.d4.example.com"), NULL, 0, &err);
    MCD_CHECK(rc == MCD_FILTER_CONFLICT && err.conflict
              && err.conflict->line == 4, "big conflict: %d", rc);

    MCD_CHECK(mcd_filter_finalize(f, &err) == MCD_FILTER_OK, "finalize");

    clock_gettime(CLOCK_MONOTONIC, &t1);

    ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3
         + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;

    MCD_CHECK(mcd_filter_count(f) == 2 * n, "big count %zu",
              mcd_filter_count(f));

    for (k = 0; k < 3000; k++) {
        i = (k < 100) ? k : (size_t) mcd_t_rand() % n;

        len = (size_t) snprintf(buf, sizeof(buf), "h%zu.d%zu.example.com", i,
                                i % 977);
        r = mcd_filter_match(f, (unsigned char *) buf, len, MCD_NAME_HOST);
        MCD_CHECK(r != NULL && r->kind == MCD_RULE_EXACT && r->line == i
                  && r->action == i % 3, "big exact hit %s", buf);

        len = (size_t) snprintf(buf, sizeof(buf), "x.y.w%zu.test", i);
        r = mcd_filter_match(f, (unsigned char *) buf, len, MCD_NAME_HOST);
        MCD_CHECK(r != NULL && r->line == n + i
                  && r->action == (i + 1) % 3
                  && r->kind == ((i & 1) ? MCD_RULE_DOT : MCD_RULE_STAR),
                  "big wildcard hit %s", buf);

        len = (size_t) snprintf(buf, sizeof(buf), "w%zu.test", i);
        r = mcd_filter_match(f, (unsigned char *) buf, len, MCD_NAME_HOST);
        MCD_CHECK((i & 1) ? (r != NULL && r->line == n + i) : r == NULL,
                  "big apex %s", buf);

        len = (size_t) snprintf(buf, sizeof(buf), "h%zu.d%zu.example.com",
                                i, (i + 1) % 977);
        r = mcd_filter_match(f, (unsigned char *) buf, len, MCD_NAME_HOST);
        MCD_CHECK(r == NULL, "big miss %s", buf);

        len = (size_t) snprintf(buf, sizeof(buf), "x.w%zu.test.org", i);
        r = mcd_filter_match(f, (unsigned char *) buf, len, MCD_NAME_HOST);
        MCD_CHECK(r == NULL, "big miss %s", buf);

        len = (size_t) snprintf(buf, sizeof(buf), "w%zu.tes", i);
        r = mcd_filter_match(f, (unsigned char *) buf, len, MCD_NAME_HOST);
        MCD_CHECK(r == NULL, "big miss %s", buf);
    }

    /* every rule is reachable by index, in the order added */

    for (i = 0; i < 2 * n; i += 997) {
        r = mcd_filter_rule(f, i);
        MCD_CHECK(r != NULL && r->line == ((i & 1) ? n + i / 2 : i / 2),
                  "big rule %zu", i);
    }

    printf("test_fqdn: built %zu patterns in %.1f ms, %zu bytes allocated"
           " (%.1f bytes/pattern)\n", 2 * n, ms, mcd_filter_memory(f),
           (double) mcd_filter_memory(f) / (double) (2 * n));

    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);
}


/* allocation failures leave the filter unchanged */


static const char  *mcd_t_oom_rules[] = {
    "allow a0.example.com", "deny a1.example.com", "decrypt a2.example.com",
    "allow a3.example.com", "deny a4.example.com", "decrypt a5.example.com",
    "allow a6.example.com", "deny a7.example.com", "decrypt a8.example.com",
    "allow a9.example.com", "deny b0.example.com", "decrypt b1.example.com",
    "allow b2.example.com", "deny b3.example.com", "decrypt b4.example.com",
    "allow *.w0.test", "deny .w1.test", "decrypt *.w2.test",
    "allow .w3.test", "deny *.w4.test", "decrypt .w5.test",
    "allow *.w6.test", "deny .w7.test", "decrypt *.w8.test",
    "allow .w9.test", "deny *.v0.test", "decrypt .v1.test",
    "allow *.v2.test", "deny .v3.test", "decrypt *.v4.test",
    "allow .v5.test", "deny *.v6.test", "decrypt .v7.test",
    "allow ~^r1\\.", "deny ~^r2\\.", "decrypt ~^r3\\.",
    "allow 10.0.0.1", "deny ::1",
    "allow .w0.test",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.com",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.net",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.org",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.edu",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.gov",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.mil",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.int",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.biz",
    "allow a-very-long-name-to-use-up-text-space-0123456789.example.xyz",
};


static const char  *mcd_t_oom_names[] = {
    "a0.example.com", "a5.example.com", "b4.example.com", "c.example.com",
    "x.w0.test", "w0.test", "w1.test", "x.w1.test", "w8.test", "x.w8.test",
    "y.v7.test", "r1.x", "r2.x", "r3.x", "r4.x", "10.0.0.1", "::1", "::2",
    "a-very-long-name-to-use-up-text-space-0123456789.example.xyz",
};


static void
mcd_t_oom(void)
{
    int                rc;
    char               want[sizeof(mcd_t_oom_names)
                            / sizeof(mcd_t_oom_names[0])][128];
    size_t             i, k, nrules, nnames, failures;
    unsigned long      total, fail_at;
    mcd_filter_t      *f;
    mcd_t_arena_t      arena;
    mcd_allocator_t    al;
    mcd_filter_err_t   err;

    nrules = sizeof(mcd_t_oom_rules) / sizeof(mcd_t_oom_rules[0]);
    nnames = sizeof(mcd_t_oom_names) / sizeof(mcd_t_oom_names[0]);

    /* the reference run */

    mcd_t_arena_init(&arena, &al);
    f = mcd_t_build(&al, mcd_t_oom_rules, NULL, nrules);

    for (k = 0; k < nnames; k++) {
        snprintf(want[k], sizeof(want[k]), "%s",
                 mcd_t_decide(f, mcd_t_oom_names[k],
                              strlen(mcd_t_oom_names[k])));
    }

    total = arena.nallocs;

    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);

    MCD_CHECK(total > 10, "oom: only %lu allocations", total);

    for (fail_at = 1; fail_at <= total; fail_at++) {
        mcd_t_arena_init(&arena, &al);
        arena.fail_at = fail_at;
        failures = 0;

        f = mcd_filter_create(&al);

        while (f == NULL) {
            failures++;
            f = mcd_filter_create(&al);
        }

        for (i = 0; i < nrules; i++) {
            rc = mcd_t_add(f, mcd_t_oom_rules[i], (unsigned) i + 1, &err);

            if (rc == MCD_FILTER_ERROR) {
                failures++;
                MCD_CHECK(mcd_filter_count(f) == i,
                          "oom %lu: count changed by a failed add", fail_at);
                MCD_CHECK(strcmp(err.msg, "not enough memory") == 0,
                          "oom %lu: msg %s", fail_at, err.msg);
                rc = mcd_t_add(f, mcd_t_oom_rules[i], (unsigned) i + 1, &err);
            }

            MCD_CHECK(rc == MCD_FILTER_OK, "oom %lu: add %zu: %d %s", fail_at,
                      i, rc, err.msg);
        }

        rc = mcd_filter_finalize(f, &err);
        MCD_CHECK(rc == MCD_FILTER_OK, "oom %lu: finalize", fail_at);

        MCD_CHECK(failures == 1, "oom %lu: %zu failures", fail_at, failures);

        for (k = 0; k < nnames; k++) {
            const char  *got = mcd_t_decide(f, mcd_t_oom_names[k],
                                            strlen(mcd_t_oom_names[k]));

            MCD_CHECK(strcmp(got, want[k]) == 0,
                      "oom %lu: \"%s\" got \"%s\" want \"%s\"", fail_at,
                      mcd_t_oom_names[k], got, want[k]);
        }

        mcd_filter_cleanup(f);
        mcd_t_arena_free(&arena);
    }

    /* a filter that cannot even be created */

    mcd_t_arena_init(&arena, &al);
    arena.fail_at = 1;
    MCD_CHECK(mcd_filter_create(&al) == NULL, "create with no memory");
    mcd_t_arena_free(&arena);

    MCD_CHECK(mcd_filter_create(NULL) == NULL, "create NULL allocator");
}


/* small things */


static void
mcd_t_misc(void)
{
    mcd_filter_t      *f;
    mcd_t_arena_t      arena;
    mcd_allocator_t    al;
    mcd_filter_err_t   err;

    MCD_CHECK(strcmp(mcd_action_name(MCD_ACTION_DENY), "deny") == 0, "deny");
    MCD_CHECK(strcmp(mcd_action_name(MCD_ACTION_ALLOW), "allow") == 0,
              "allow");
    MCD_CHECK(strcmp(mcd_action_name(MCD_ACTION_DECRYPT), "decrypt") == 0,
              "decrypt");
    MCD_CHECK(strcmp(mcd_action_name(7), "unknown") == 0, "unknown");

    MCD_CHECK(mcd_filter_count(NULL) == 0, "count NULL");
    MCD_CHECK(mcd_filter_rule(NULL, 0) == NULL, "rule NULL");
    MCD_CHECK(mcd_filter_memory(NULL) == 0, "memory NULL");
    MCD_CHECK(mcd_filter_finalize(NULL, &err) == MCD_FILTER_ERROR,
              "finalize NULL");
    mcd_filter_cleanup(NULL);

    /* an empty filter matches nothing */

    mcd_t_arena_init(&arena, &al);
    f = mcd_filter_create(&al);
    MCD_CHECK(f != NULL && mcd_filter_count(f) == 0, "empty filter");
    MCD_CHECK(mcd_filter_finalize(f, NULL) == MCD_FILTER_OK, "finalize");
    mcd_t_expect(f, "example.com", "none");
    mcd_t_expect(f, "10.0.0.1", "none");
    mcd_t_expect(f, "::1", "none");
    MCD_CHECK(mcd_filter_memory(f) > 0 && mcd_filter_memory(f) < 4096,
              "empty filter memory %zu", mcd_filter_memory(f));
    mcd_filter_cleanup(f);
    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);

    /* a half-built filter can be cleaned up */

    mcd_t_arena_init(&arena, &al);
    f = mcd_filter_create(&al);
    MCD_CHECK(mcd_t_add(f, "allow ~abc", 1, &err) == MCD_FILTER_OK, "~abc");
    MCD_CHECK(mcd_t_add(f, "allow ~(", 2, &err) == MCD_FILTER_INVALID, "~(");
    mcd_filter_cleanup(f);
    mcd_filter_cleanup(f);
    mcd_t_arena_free(&arena);
}


int
main(void)
{
    mcd_t_normalize();
    mcd_t_patterns();
    mcd_t_precedence();
    mcd_t_order();
    mcd_t_conflict();
    mcd_t_regex();
    mcd_t_ip();
    mcd_t_list();
    mcd_t_big();
    mcd_t_oom();
    mcd_t_misc();

    printf("test_fqdn: %lu checks, %lu failed\n", mcd_t_checks,
           mcd_t_failed);

    return mcd_t_failed ? 1 : 0;
}
