
/*
 * libFuzzer target for src/mcd_addr.c.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *     src/mcd_addr.c fuzz/fuzz_addr.c -o /tmp/fuzz_addr
 *
 * Input: "TOKEN TOKEN ...\nADDRESSES".  Each space-separated token
 * before the first newline is parsed as a rule, the action alternating
 * between allow and deny (the first is allow); each token is handed
 * over as an exact-size heap copy, so that ASan sees any read past its
 * length.  The bytes after the newline are cut
 * into 17-byte addresses: a family selector and 16 address bytes.
 *
 * Besides memory safety the target checks that a parsed rule agrees with
 * inet_pton() on its address, is masked, and matches its own network;
 * that every verdict is that of its rule and equals a bit-by-bit
 * reference judge; and that IPv4-mapped and NAT64 addresses are judged
 * as the IPv4 address they carry.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "mcd_addr.h"


#define FZ_ASSERT(cond)                                                      \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_addr: %s:%d: %s\n",                        \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


#define FZ_MAX_RULES  32


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const unsigned char  fz_mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static const unsigned char  fz_nat64[12] = {
    0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0
};


static int
fz_in(const unsigned char *a, const unsigned char *net, unsigned prefix)
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
fz_check_rule(const unsigned char *tok, size_t len, unsigned action,
    const mcd_addr_rule_t *r)
{
    int             ref;
    size_t          alen, n;
    unsigned        bit, max;
    char            s[128];
    unsigned char   a[16];

    const char  *verb = (action == MCD_ADDR_ALLOW) ? "allow " : "deny ";

    FZ_ASSERT(r->action == action);
    FZ_ASSERT(strlen(r->text) == strlen(verb) + len);
    FZ_ASSERT(memcmp(r->text, verb, strlen(verb)) == 0);
    FZ_ASSERT(memcmp(r->text + strlen(verb), tok, len) == 0);

    if (r->classes) {
        FZ_ASSERT((r->classes & (r->classes - 1)) == 0);
        FZ_ASSERT(r->classes <= MCD_ADDR_CLASS_ALL);
        FZ_ASSERT(r->family == 0 && r->prefix == 0);
        return;
    }

    FZ_ASSERT(r->family == AF_INET || r->family == AF_INET6);

    n = (r->family == AF_INET) ? 4 : 16;
    max = (unsigned) n * 8;

    FZ_ASSERT(r->prefix <= max);

    for (bit = r->prefix; bit < max; bit++) {
        FZ_ASSERT(((r->addr[bit / 8] >> (7 - bit % 8)) & 1) == 0);
    }

    /* the address part agrees with inet_pton() */

    for (alen = 0; alen < len && tok[alen] != '/'; alen++) {
        /* void */
    }

    FZ_ASSERT(alen < sizeof(s));
    memcpy(s, tok, alen);
    s[alen] = '\0';

    ref = inet_pton(r->family, s, a);
    FZ_ASSERT(ref == 1);
    FZ_ASSERT(fz_in(a, r->addr, r->prefix));

    if (alen == len) {
        FZ_ASSERT(r->prefix == max);
        FZ_ASSERT(memcmp(a, r->addr, n) == 0);
    }
}


static int
fz_reference(const mcd_addr_rule_t *rules, size_t n, int family,
    const unsigned char *a, unsigned classes, const mcd_addr_rule_t **ref)
{
    size_t                j;
    const unsigned char  *v4;

    v4 = NULL;

    if (family == AF_INET) {
        v4 = a;

    } else if (family == AF_INET6
               && (memcmp(a, fz_mapped, 12) == 0
                   || memcmp(a, fz_nat64, 12) == 0))
    {
        v4 = a + 12;
    }

    for (j = 0; j < n; j++) {
        if (rules[j].classes) {
            if (rules[j].classes & classes) {
                break;
            }

        } else if (rules[j].family == AF_INET) {
            if (v4 != NULL && fz_in(v4, rules[j].addr, rules[j].prefix)) {
                break;
            }

        } else if (family == AF_INET6
                   && fz_in(a, rules[j].addr, rules[j].prefix))
        {
            break;
        }
    }

    if (j < n) {
        *ref = &rules[j];
        return (int) rules[j].action;
    }

    *ref = NULL;

    return (classes == MCD_ADDR_CLASS_ALL) ? MCD_ADDR_ALLOW : MCD_ADDR_DENY;
}


static void
fz_judge(const mcd_addr_rule_t *rules, size_t n, int family,
    const unsigned char *addr)
{
    int                     rc, want, builtin;
    size_t                  size;
    unsigned                classes, other;
    unsigned char           w[16], *a;
    const mcd_addr_rule_t  *matched, *ref;

    /* an exact-size heap copy: 4 bytes, 16 bytes, or none at all */

    size = (family == AF_INET) ? 4 : (family == AF_INET6) ? 16 : 0;

    a = malloc(size ? size : 1);
    FZ_ASSERT(a != NULL);
    memcpy(a, addr, size);

    classes = mcd_addr_classes(family, a);

    FZ_ASSERT(classes & MCD_ADDR_CLASS_ALL);
    other = classes & ~MCD_ADDR_CLASS_ALL;
    FZ_ASSERT((other & (other - 1)) == 0);

    matched = NULL;
    builtin = -1;

    rc = mcd_addr_judge(n ? rules : NULL, n, family, a, &matched, &builtin);

    FZ_ASSERT(matched != NULL);
    FZ_ASSERT(rc == MCD_ADDR_ALLOW || rc == MCD_ADDR_DENY);
    FZ_ASSERT(rc == (int) matched->action);
    FZ_ASSERT(builtin == 0 || builtin == 1);
    if (n == 0) {
        FZ_ASSERT(builtin == 1);

    } else {
        FZ_ASSERT(builtin == !(matched >= rules && matched < rules + n));
    }

    want = fz_reference(rules, n, family, a, classes, &ref);

    FZ_ASSERT(rc == want);
    FZ_ASSERT(ref == NULL ? builtin == 1 : matched == ref);

    /* an IPv4 address and its mapped and NAT64 forms: same classes */

    if (family == AF_INET) {
        memcpy(w, fz_mapped, 12);
        memcpy(w + 12, a, 4);
        FZ_ASSERT(mcd_addr_classes(AF_INET6, w) == classes);

        memcpy(w, fz_nat64, 12);
        FZ_ASSERT(mcd_addr_classes(AF_INET6, w) == classes);
    }

    free(a);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     family, builtin;
    size_t                  i, start, end, n, k;
    unsigned                action;
    const char             *err;
    unsigned char          *tok;
    unsigned char           a[16];
    mcd_addr_rule_t        *rules, own;
    const mcd_addr_rule_t  *matched;

    rules = malloc(FZ_MAX_RULES * sizeof(mcd_addr_rule_t));
    FZ_ASSERT(rules != NULL);

    n = 0;
    action = MCD_ADDR_DENY;

    for (end = 0; end < size && data[end] != '\n'; end++) {
        /* void */
    }

    for (start = 0; start <= end; start = i + 1) {

        for (i = start; i < end && data[i] != ' '; i++) {
            /* void */
        }

        tok = malloc(i - start ? i - start : 1);
        FZ_ASSERT(tok != NULL);
        memcpy(tok, data + start, i - start);

        action ^= 1;
        err = NULL;

        if (mcd_addr_rule_parse(action, tok, i - start, &own, &err) == 0) {
            fz_check_rule(tok, i - start, action, &own);

            /* the rule matches its own network, and so decides it */

            if (own.family) {
                fz_judge(&own, 1, own.family, own.addr);

                mcd_addr_judge(&own, 1, own.family, own.addr, &matched,
                               &builtin);
                FZ_ASSERT(matched == &own && builtin == 0);
            }

            if (n < FZ_MAX_RULES) {
                rules[n++] = own;
            }

        } else {
            FZ_ASSERT(err != NULL && err[0] != '\0');
        }

        free(tok);
    }

    /* the addresses after the newline */

    for (k = end + 1; k < size; k += 17) {
        memset(a, 0, sizeof(a));
        memcpy(a, data + k + 1,
               size - k - 1 < 16 ? size - k - 1 : 16);

        switch (data[k] % 4) {
        case 0:
            family = AF_INET;
            break;
        case 1:
            family = AF_INET6;
            break;
        case 2:
            family = AF_INET6;
            memcpy(a, (data[k] & 4) ? fz_nat64 : fz_mapped, 12);
            break;
        default:
            family = data[k];
            break;
        }

        fz_judge(rules, n, family, a);
        fz_judge(NULL, 0, family, a);
    }

    /* and each rule's own network against the whole list */

    for (k = 0; k < n; k++) {
        if (rules[k].family) {
            fz_judge(rules, n, rules[k].family, rules[k].addr);
        }
    }

    free(rules);

    return 0;
}
