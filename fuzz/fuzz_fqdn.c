
/*
 * libFuzzer target for src/mcd_fqdn.c.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *       src/mcd_fqdn.c fuzz/fuzz_fqdn.c -lpcre2-8 -o /tmp/fuzz_fqdn
 *   /tmp/fuzz_fqdn -max_total_time=60
 *
 * The input is a control byte followed by a list file.  Every pattern of
 * the list is added to a fresh filter (arena allocator, released after the
 * run) under an action chosen from the control byte; optionally one
 * allocation fails.  Then names derived from each line, and the raw input,
 * are normalised and matched, and the decision is checked against a brute
 * force scan of all the rules for the exact and wildcard tiers, and
 * against the regexes compiled again here (first match in the order
 * added) for the regex tier.
 * Any inconsistency aborts.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define PCRE2_CODE_UNIT_WIDTH  8
#include <pcre2.h>

#include "mcd_fqdn.h"


#define MCD_F_ASSERT(cond)                                                    \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define MCD_F_MAX_CHECK_RULES  256
#define MCD_F_MAX_REGEX        16


/* the regexes of the filter, compiled again, for the reference */

typedef struct {
    size_t                 n;
    const mcd_rule_t      *rule[MCD_F_MAX_REGEX];
    pcre2_code            *code[MCD_F_MAX_REGEX];
    pcre2_match_data      *md;
    pcre2_match_context   *mc;
} mcd_f_regex_t;


typedef struct mcd_f_block_s  mcd_f_block_t;

struct mcd_f_block_s {
    mcd_f_block_t  *next;
    size_t          pad;
};


typedef struct {
    mcd_f_block_t  *blocks;
    unsigned long   nallocs;
    unsigned long   fail_at;
} mcd_f_arena_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void *
mcd_f_alloc(void *ctx, size_t size)
{
    mcd_f_arena_t  *a;
    mcd_f_block_t  *b;

    a = ctx;

    if (++a->nallocs == a->fail_at) {
        return NULL;
    }

    /* one block per allocation, so that ASan sees every overrun */

    b = malloc(sizeof(mcd_f_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = a->blocks;
    a->blocks = b;

    return (unsigned char *) b + sizeof(mcd_f_block_t);
}


static void
mcd_f_arena_free(mcd_f_arena_t *a)
{
    mcd_f_block_t  *b, *next;

    for (b = a->blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    a->blocks = NULL;
}


static size_t
mcd_f_prefix(unsigned kind)
{
    return kind == MCD_RULE_STAR ? 2 : kind == MCD_RULE_DOT ? 1 : 0;
}


/* the exact and wildcard tiers, by brute force */

static const mcd_rule_t *
mcd_f_reference(const mcd_filter_t *f, const unsigned char *name, size_t len,
    int type)
{
    char               buf[64], v4[INET_ADDRSTRLEN];
    size_t             i, n, klen, best_len, v4len;
    unsigned char      addr[16];
    const mcd_rule_t  *r, *best, *mapped;
    const unsigned char  *key;

    n = mcd_filter_count(f);
    best = NULL;
    best_len = 0;
    mapped = NULL;
    v4len = 0;

    if (type == MCD_NAME_IPV6 && len < sizeof(buf)) {
        memcpy(buf, name, len);
        buf[len] = '\0';

        if (inet_pton(AF_INET6, buf, addr) == 1
            && memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0
            && inet_ntop(AF_INET, addr + 12, v4, sizeof(v4)) != NULL)
        {
            v4len = strlen(v4);
        }
    }

    for (i = 0; i < n; i++) {
        r = mcd_filter_rule(f, i);
        MCD_F_ASSERT(r != NULL);
        MCD_F_ASSERT(r->pattern[r->len] == '\0');

        if (type != MCD_NAME_HOST) {
            if (r->kind != MCD_RULE_IP) {
                continue;
            }

            if (r->len == len && memcmp(r->pattern, name, len) == 0) {
                return r;
            }

            if (v4len && r->len == v4len
                && memcmp(r->pattern, v4, v4len) == 0)
            {
                mapped = r;
            }

            continue;
        }

        switch (r->kind) {

        case MCD_RULE_EXACT:
            if (r->len == len && memcmp(r->pattern, name, len) == 0) {
                return r;
            }

            break;

        case MCD_RULE_STAR:
        case MCD_RULE_DOT:
            key = r->pattern + mcd_f_prefix(r->kind);
            klen = r->len - mcd_f_prefix(r->kind);

            if (klen == len) {
                if (r->kind != MCD_RULE_DOT
                    || memcmp(key, name, len) != 0)
                {
                    break;
                }

            } else if (klen > len
                       || name[len - klen - 1] != '.'
                       || memcmp(key, name + len - klen, klen) != 0)
            {
                break;
            }

            /* longest suffix; "*." before "." for the same suffix */

            if (best == NULL || klen > best_len
                || (klen == best_len && r->kind == MCD_RULE_STAR))
            {
                best = r;
                best_len = klen;
            }

            break;

        default:
            break;
        }
    }

    return type == MCD_NAME_HOST ? best : mapped;
}


static void
mcd_f_regex_init(mcd_f_regex_t *rx, const mcd_filter_t *f)
{
    int                errcode;
    size_t             i, n;
    PCRE2_SIZE         erroff;
    const mcd_rule_t  *r;

    memset(rx, 0, sizeof(mcd_f_regex_t));

    n = mcd_filter_count(f);

    for (i = 0; i < n; i++) {
        r = mcd_filter_rule(f, i);

        if (r->kind != MCD_RULE_REGEX) {
            continue;
        }

        if (rx->n == MCD_F_MAX_REGEX) {
            /* too many to check */
            rx->n = 0;
            break;
        }

        rx->rule[rx->n] = r;
        rx->code[rx->n] = pcre2_compile(r->pattern + 1, r->len - 1,
                                        PCRE2_CASELESS, &errcode, &erroff,
                                        NULL);

        /* the library compiled it, so must we */
        MCD_F_ASSERT(rx->code[rx->n] != NULL);

        rx->n++;
    }

    rx->md = pcre2_match_data_create(1, NULL);
    rx->mc = pcre2_match_context_create(NULL);
    MCD_F_ASSERT(rx->md != NULL && rx->mc != NULL);

    (void) pcre2_set_match_limit(rx->mc, MCD_REGEX_MATCH_LIMIT);
}


static void
mcd_f_regex_free(mcd_f_regex_t *rx)
{
    size_t  i;

    for (i = 0; i < MCD_F_MAX_REGEX; i++) {
        pcre2_code_free(rx->code[i]);
    }

    pcre2_match_data_free(rx->md);
    pcre2_match_context_free(rx->mc);
}


/*
 * the first regex matching the name; *unsure is set if a match failed
 * (limits differ between JIT and the interpreter) or there are too many
 * regexes to check
 */

static const mcd_rule_t *
mcd_f_regex_reference(const mcd_f_regex_t *rx, const mcd_filter_t *f,
    const unsigned char *name, size_t len, int *unsure)
{
    int                rc;
    size_t             i, n, nregex;
    const mcd_rule_t  *r;

    n = mcd_filter_count(f);
    nregex = 0;

    for (i = 0; i < n; i++) {
        r = mcd_filter_rule(f, i);
        nregex += (r->kind == MCD_RULE_REGEX);
    }

    if (nregex != rx->n) {
        *unsure = 1;
        return NULL;
    }

    for (i = 0; i < rx->n; i++) {
        rc = pcre2_match(rx->code[i], name, len, 0, 0, rx->md, rx->mc);

        if (rc >= 0) {
            return rx->rule[i];
        }

        if (rc != PCRE2_ERROR_NOMATCH) {
            *unsure = 1;
            return NULL;
        }
    }

    return NULL;
}


static void
mcd_f_check_name(const mcd_filter_t *f, const mcd_f_regex_t *rx,
    const unsigned char *in, size_t len)
{
    int                unsure;
    int                type, type2;
    size_t             n, n2;
    unsigned char      name[MCD_FQDN_MAX + 1], name2[MCD_FQDN_MAX + 1];
    const mcd_rule_t  *r, *ref;

    type = mcd_fqdn_normalize(in, len, name, &n);

    MCD_F_ASSERT(type >= MCD_NAME_BAD && type <= MCD_NAME_IPV6);
    MCD_F_ASSERT(n <= MCD_FQDN_MAX && name[n] == '\0');

    if (type == MCD_NAME_BAD) {
        MCD_F_ASSERT(n == 0);
        return;
    }

    MCD_F_ASSERT(n > 0 && strlen((char *) name) == n);

    /* idempotent */

    type2 = mcd_fqdn_normalize(name, n, name2, &n2);
    MCD_F_ASSERT(type2 == type && n2 == n && memcmp(name, name2, n) == 0);

    r = mcd_filter_match(f, name, n, type);
    ref = mcd_f_reference(f, name, n, type);

    if (ref != NULL) {
        MCD_F_ASSERT(r == ref);
        return;
    }

    if (r != NULL) {
        MCD_F_ASSERT(r->kind == MCD_RULE_REGEX);
        MCD_F_ASSERT(!r->failed || r->action == MCD_ACTION_DENY);

        if (r->failed) {
            return;
        }
    }

    if (rx == NULL) {
        MCD_F_ASSERT(r == NULL);
        return;
    }

    unsure = 0;
    ref = mcd_f_regex_reference(rx, f, name, n, &unsure);

    if (!unsure) {
        MCD_F_ASSERT(r == ref);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    size_t                i, j, len, count, n;
    unsigned              line, action, ctl;
    mcd_filter_t         *f;
    mcd_f_arena_t         arena;
    mcd_allocator_t       al;
    mcd_f_regex_t         rx;
    mcd_filter_err_t      err;
    const mcd_rule_t     *r, *q;
    const unsigned char  *pos, *end, *pat;
    unsigned char         tmp[300];

    if (size == 0) {
        return 0;
    }

    ctl = data[0];

    memset(&arena, 0, sizeof(arena));

    /* one run in eight makes one of the first allocations fail */
    if ((ctl & 0x38) == 0x38) {
        arena.fail_at = 1 + (ctl & 0x7) * 3 + (size & 0x7);
    }

    al.alloc = mcd_f_alloc;
    al.data = &arena;

    f = mcd_filter_create(&al);

    if (f == NULL) {
        MCD_F_ASSERT(arena.fail_at != 0);
        arena.fail_at = 0;
        f = mcd_filter_create(&al);
        MCD_F_ASSERT(f != NULL);
    }

    /* the raw input as a name, against the empty filter */

    mcd_f_check_name(f, NULL, data + 1, size - 1);

    /* load the list */

    pos = data + 1;
    end = data + size;
    line = 0;

    for ( ;; ) {
        rc = mcd_list_next(&pos, end, &pat, &len, &line);

        if (rc == 0) {
            break;
        }

        MCD_F_ASSERT(pos <= end && pos >= data + 1);

        if (rc < 0) {
            continue;
        }

        MCD_F_ASSERT(len > 0 && pat >= data + 1 && pat + len <= end);

        action = ((ctl >> 6) + line + (len > 1 ? pat[len - 1] : 0)) % 3;
        count = mcd_filter_count(f);

        rc = mcd_filter_add(f, action, pat, len, data, line, &err);

        MCD_F_ASSERT(strlen(err.msg) < sizeof(err.msg));

        switch (rc) {

        case MCD_FILTER_OK:
            MCD_F_ASSERT(mcd_filter_count(f) == count + 1);
            r = mcd_filter_rule(f, count);
            MCD_F_ASSERT(r != NULL && r->line == line && r->source == data
                         && r->action == action && !r->failed);
            MCD_F_ASSERT(r->kind <= MCD_RULE_IP);
            break;

        case MCD_FILTER_DUP:
        case MCD_FILTER_CONFLICT:
            MCD_F_ASSERT(mcd_filter_count(f) == count);
            MCD_F_ASSERT(err.conflict != NULL && err.msg[0] != '\0');
            MCD_F_ASSERT((rc == MCD_FILTER_DUP)
                         == (err.conflict->action == action));
            break;

        case MCD_FILTER_INVALID:
            MCD_F_ASSERT(mcd_filter_count(f) == count);
            MCD_F_ASSERT(err.conflict == NULL && err.msg[0] != '\0');
            break;

        case MCD_FILTER_ERROR:
            MCD_F_ASSERT(arena.fail_at != 0);
            MCD_F_ASSERT(mcd_filter_count(f) == count);
            break;

        default:
            MCD_F_ASSERT(0);
        }
    }

    rc = mcd_filter_finalize(f, &err);
    MCD_F_ASSERT(rc == MCD_FILTER_OK);

    /* no two rules share a key, except "*.x" and ".x" with one action */

    n = mcd_filter_count(f);

    if (n <= MCD_F_MAX_CHECK_RULES) {
        for (i = 0; i < n; i++) {
            r = mcd_filter_rule(f, i);

            for (j = i + 1; j < n; j++) {
                q = mcd_filter_rule(f, j);

                if (r->len - mcd_f_prefix(r->kind)
                        != q->len - mcd_f_prefix(q->kind)
                    || memcmp(r->pattern + mcd_f_prefix(r->kind),
                              q->pattern + mcd_f_prefix(q->kind),
                              r->len - mcd_f_prefix(r->kind)) != 0)
                {
                    continue;
                }

                MCD_F_ASSERT(r->kind != q->kind);

                if ((r->kind == MCD_RULE_STAR && q->kind == MCD_RULE_DOT)
                    || (r->kind == MCD_RULE_DOT && q->kind == MCD_RULE_STAR))
                {
                    MCD_F_ASSERT(r->action == q->action);
                }
            }
        }
    }

    /* match names derived from every line */

    mcd_f_regex_init(&rx, f);

    pos = data + 1;
    line = 0;

    while ((rc = mcd_list_next(&pos, end, &pat, &len, &line)) != 0) {
        if (rc < 0) {
            continue;
        }

        mcd_f_check_name(f, &rx, pat, len);

        if (len > 2 && pat[0] == '*' && pat[1] == '.') {
            pat += 2;
            len -= 2;

        } else if (len > 1 && (pat[0] == '.' || pat[0] == '~')) {
            pat += 1;
            len -= 1;
        }

        mcd_f_check_name(f, &rx, pat, len);

        if (len + 2 <= sizeof(tmp)) {
            tmp[0] = 'x';
            tmp[1] = '.';
            memcpy(tmp + 2, pat, len);
            mcd_f_check_name(f, &rx, tmp, len + 2);
        }

        /* drop the first label */

        for (i = 0; i < len; i++) {
            if (pat[i] == '.') {
                mcd_f_check_name(f, &rx, pat + i + 1, len - i - 1);
                break;
            }
        }
    }

    mcd_f_check_name(f, &rx, data + 1, size - 1);

    mcd_f_regex_free(&rx);

    /* raw, unnormalised bytes straight into the matcher must be safe */

    len = size - 1 < MCD_FQDN_MAX ? size - 1 : MCD_FQDN_MAX;
    (void) mcd_filter_match(f, data + 1, len, (int) (ctl & 0x3));

    mcd_filter_cleanup(f);
    mcd_filter_cleanup(f);
    mcd_f_arena_free(&arena);

    return 0;
}
