
/*
 * ngx_mcd: host name normalisation and per-profile FQDN policy matching.
 * See mcd_fqdn.h for the rules.
 *
 * Layout of a filter:
 *
 *   rules     64-byte records, aligned on 64 bytes (a cache line), in
 *             chunks that never move: 16, 32, ..., 8192 records, then
 *             8192 records a chunk; a rule is named by its index (add
 *             order), tables store index + 1 (0 is "none").  A record is
 *             an mcd_rule_t followed by room for the pattern text, so a
 *             short pattern (up to 31 bytes on 64-bit systems) is in the
 *             same cache line as its rule: an exact hit costs two cache
 *             misses (slot, record) rather than three;
 *   text      longer pattern texts, NUL-terminated, bump-allocated from
 *             blocks of growing size; each text is stored once and the
 *             hash keys point into it;
 *   exact     open-addressing table (linear probing, power-of-two size,
 *             load <= 3/4) of slots { hash, rule }: host names, IP
 *             literals and regexes (keyed by "~..." text, which never
 *             equals a host or IP name: used only to find duplicates);
 *   wild      the same with slots { hash, "*." rule, "." rule }, keyed by
 *             the suffix ("example.com");
 *   regex     list of compiled regexes in the order added.
 *
 * The hash is FNV-1a over the key bytes taken from the LAST byte to the
 * first, followed by a 64-bit finaliser.  Hashing right to left lets a
 * lookup get the hashes of the whole name and of all its label suffixes
 * in one pass over the name.
 */


#define PCRE2_CODE_UNIT_WIDTH  8

#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pcre2.h>

#include "mcd_fqdn.h"


#define MCD_LABEL_MAX          63
#define MCD_IPV6_TEXT_MAX      45      /* ffff:...:ffff:255.255.255.255 */

#define MCD_RULES_FIRST_SHIFT  4       /* the first chunk holds 16 rules */
#define MCD_RULES_LAST_SHIFT   13      /* chunks stop growing at 8192 */
#define MCD_RULES_GEOM         (MCD_RULES_LAST_SHIFT                         \
                                - MCD_RULES_FIRST_SHIFT + 1)
#define MCD_RULES_GEOM_TOTAL   (((size_t) 2 << MCD_RULES_LAST_SHIFT)         \
                                - ((size_t) 1 << MCD_RULES_FIRST_SHIFT))
#define MCD_RULES_MAX          0x7fffffff

#define MCD_TEXT_FIRST         512
#define MCD_TEXT_LAST          65536

#define MCD_TABLE_FIRST        16
#define MCD_PREFETCH_MIN       4096    /* slots: smaller tables are cached */
#define MCD_PREFETCH_MAX       8       /* suffixes prefetched, longest first */

#define MCD_SUBJECT_ALIGN      16
#define MCD_SUBJECT_PAD        64      /* zeroed bytes after a regex subject */

#define MCD_ERR_QUOTE_MAX      96      /* characters of a pattern in msg */

#define MCD_FNV_BASIS          UINT64_C(0xcbf29ce484222325)
#define MCD_FNV_PRIME          UINT64_C(0x00000100000001b3)


#define MCD_RECORD_SIZE        64
#define MCD_RECORD_TEXT        (MCD_RECORD_SIZE - sizeof(mcd_rule_t))

typedef struct {
    mcd_rule_t             rule;      /* first: a rule is its record */
    unsigned char          text[MCD_RECORD_TEXT];
} mcd_record_t;

/* compile-time check: a record fills exactly one cache line */
typedef char  mcd_record_size_check_t
                  [sizeof(mcd_record_t) == MCD_RECORD_SIZE ? 1 : -1];


typedef struct mcd_regex_s  mcd_regex_t;

struct mcd_regex_s {
    mcd_regex_t           *next;
    pcre2_code            *code;
    const mcd_rule_t      *rule;
};


typedef struct {
    uint32_t              *slots;     /* (1 + width) words a slot */
    size_t                 size;      /* slots: 0 or a power of two */
    size_t                 used;
    unsigned               width;     /* 1: exact, 2: wildcard */
} mcd_table_t;


struct mcd_filter_s {
    mcd_allocator_t        alloc;
    size_t                 mem;

    mcd_record_t         **chunks;
    size_t                 nchunks;
    size_t                 chunks_size;
    size_t                 nrules;
    size_t                 rules_cap;

    unsigned char         *text;
    size_t                 text_left;
    size_t                 text_block;

    mcd_table_t            exact;
    mcd_table_t            wild;

    mcd_regex_t           *regex;
    mcd_regex_t          **regex_last;
    size_t                 nregex;

    pcre2_match_data      *match_data;
    pcre2_match_context   *match_ctx;
    mcd_rule_t            *failed;

    unsigned               finalized:1;
};


static int mcd_fqdn_parse(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len, const char **reason);
static int mcd_ipv6_parse(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len, const char **reason);
static int mcd_label_numeric(const unsigned char *p, size_t len);
static int mcd_ipv4_strict(const unsigned char *p, size_t len);
static uint32_t mcd_hash_mix(uint64_t h);
static uint32_t mcd_hash(const unsigned char *p, size_t len);
static void *mcd_alloc(mcd_filter_t *f, size_t size);
static unsigned char *mcd_text_alloc(mcd_filter_t *f, size_t size);
static int mcd_rules_reserve(mcd_filter_t *f);
static mcd_rule_t *mcd_rule_at(const mcd_filter_t *f, size_t i);
static size_t mcd_rule_prefix(unsigned kind);
static uint32_t *mcd_table_find(const mcd_filter_t *f, const mcd_table_t *t,
    const unsigned char *key, size_t len, uint32_t hash);
static void mcd_table_prefetch(const mcd_table_t *t, uint32_t hash);
static int mcd_table_reserve(mcd_filter_t *f, mcd_table_t *t);
static uint32_t *mcd_table_new_slot(mcd_table_t *t, uint32_t hash);
static int mcd_pattern_parse(const unsigned char *p, size_t len,
    unsigned char *buf, size_t *blen, unsigned *kind,
    mcd_filter_err_t *err);
static int mcd_add_check(mcd_filter_t *f, mcd_table_t *t, uint32_t *s,
    unsigned kind, unsigned action, const unsigned char *text, size_t len,
    mcd_filter_err_t *err);
static const mcd_rule_t *mcd_match_host(const mcd_filter_t *f,
    const unsigned char *name, size_t len);
static const mcd_rule_t *mcd_match_mapped(const mcd_filter_t *f,
    const unsigned char *name, size_t len);
static const mcd_rule_t *mcd_match_regex(const mcd_filter_t *f,
    const unsigned char *name, size_t len);
static const mcd_rule_t *mcd_match_fail(const mcd_filter_t *f,
    const mcd_rule_t *r);
static int mcd_list_space(unsigned char c);
static void mcd_err_reset(mcd_filter_err_t *err);
static void mcd_err_cat(mcd_filter_err_t *err, const char *s);
static void mcd_err_quote(mcd_filter_err_t *err, const char *pre,
    const unsigned char *p, size_t len);
static void mcd_err_rule(mcd_filter_err_t *err, unsigned action,
    const unsigned char *p, size_t len);
static void mcd_err_esc(mcd_filter_err_t *err, const unsigned char *p,
    size_t len);
static void mcd_err_num(mcd_filter_err_t *err, size_t n);


/* names */


int
mcd_fqdn_normalize(const unsigned char *in, size_t len, unsigned char *out,
    size_t *out_len)
{
    return mcd_fqdn_parse(in, len, out, out_len, NULL);
}


int
mcd_fqdn_normalize_reason(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len, const char **reason)
{
    return mcd_fqdn_parse(in, len, out, out_len, reason);
}


static int
mcd_fqdn_parse(const unsigned char *in, size_t len, unsigned char *out,
    size_t *out_len, const char **reason)
{
    size_t         i, label, last;
    unsigned char  c;
    const char    *why;

    if (in == NULL || len == 0) {
        why = "empty name";
        goto bad;
    }

    if (in[0] == '[') {
        if (len < 3 || in[len - 1] != ']') {
            why = "invalid bracketed address";
            goto bad;
        }

        return mcd_ipv6_parse(in + 1, len - 2, out, out_len, reason);
    }

    if (memchr(in, ':', len) != NULL) {
        return mcd_ipv6_parse(in, len, out, out_len, reason);
    }

    if (in[len - 1] == '.') {
        len--;
    }

    if (len == 0) {
        why = "empty name";
        goto bad;
    }

    if (len > MCD_FQDN_MAX) {
        why = "name longer than 253 bytes";
        goto bad;
    }

    label = 0;
    last = 0;

    for (i = 0; i < len; i++) {
        c = in[i];

        if (c == '.') {
            if (label == 0) {
                why = "empty label";
                goto bad;
            }

            label = 0;
            last = i + 1;
            out[i] = c;
            continue;
        }

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;

        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '-' || c == '_'))
        {
            why = "invalid character";
            goto bad;
        }

        if (++label > MCD_LABEL_MAX) {
            why = "label longer than 63 bytes";
            goto bad;
        }

        out[i] = c;
    }

    if (label == 0) {
        why = "empty label";
        goto bad;
    }

    out[len] = '\0';
    *out_len = len;

    if (mcd_label_numeric(out + last, len - last)) {

        if (mcd_ipv4_strict(out, len)) {
            return MCD_NAME_IPV4;
        }

        why = "invalid IPv4 address";
        goto bad;
    }

    return MCD_NAME_HOST;

bad:

    if (reason) {
        *reason = why;
    }

    out[0] = '\0';
    *out_len = 0;

    return MCD_NAME_BAD;
}


static int
mcd_ipv6_parse(const unsigned char *in, size_t len, unsigned char *out,
    size_t *out_len, const char **reason)
{
    char           buf[MCD_IPV6_TEXT_MAX + 1];
    size_t         i;
    unsigned char  c, addr[16];
    const char    *why;

    why = "invalid IPv6 address";

    if (len == 0 || len > MCD_IPV6_TEXT_MAX) {
        goto bad;
    }

    for (i = 0; i < len; i++) {
        c = in[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
              || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        {
            if (c == '%') {
                why = "IPv6 zone id not allowed";
            }

            goto bad;
        }

        buf[i] = (char) c;
    }

    buf[len] = '\0';

    if (inet_pton(AF_INET6, buf, addr) != 1) {
        goto bad;
    }

    if (inet_ntop(AF_INET6, addr, (char *) out, MCD_FQDN_MAX + 1) == NULL) {
        goto bad;
    }

    *out_len = strlen((char *) out);

    return MCD_NAME_IPV6;

bad:

    if (reason) {
        *reason = why;
    }

    out[0] = '\0';
    *out_len = 0;

    return MCD_NAME_BAD;
}


/*
 * A label that a URL parser or inet_aton() would read as a number:
 * decimal digits, or "0x" and hex digits (the input is lower case here).
 */

static int
mcd_label_numeric(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len >= 2 && p[0] == '0' && p[1] == 'x') {
        for (i = 2; i < len; i++) {
            if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            {
                return 0;
            }
        }

        return 1;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }

    return len != 0;
}


static int
mcd_ipv4_strict(const unsigned char *p, size_t len)
{
    size_t    i, digits, parts;
    unsigned  octet;

    parts = 0;
    digits = 0;
    octet = 0;

    for (i = 0; i <= len; i++) {

        if (i == len || p[i] == '.') {
            if (digits == 0 || octet > 255 || ++parts > 4) {
                return 0;
            }

            digits = 0;
            octet = 0;
            continue;
        }

        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }

        if (digits == 1 && octet == 0) {
            /* a leading zero */
            return 0;
        }

        if (++digits > 3) {
            return 0;
        }

        octet = octet * 10 + (unsigned) (p[i] - '0');
    }

    return parts == 4;
}


/* hashing */


static uint32_t
mcd_hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;

    return (uint32_t) h;
}


static uint32_t
mcd_hash(const unsigned char *p, size_t len)
{
    uint64_t  h;

    h = MCD_FNV_BASIS;

    while (len) {
        len--;
        h = (h ^ p[len]) * MCD_FNV_PRIME;
    }

    return mcd_hash_mix(h);
}


/* memory */


static void *
mcd_alloc(mcd_filter_t *f, size_t size)
{
    void  *p;

    p = f->alloc.alloc(f->alloc.data, size);

    if (p != NULL) {
        f->mem += size;
    }

    return p;
}


static unsigned char *
mcd_text_alloc(mcd_filter_t *f, size_t size)
{
    unsigned char  *p;

    if (size > f->text_left) {

        if (size > f->text_block / 4) {
            return mcd_alloc(f, size);
        }

        p = mcd_alloc(f, f->text_block);
        if (p == NULL) {
            return NULL;
        }

        f->text = p;
        f->text_left = f->text_block;

        if (f->text_block < MCD_TEXT_LAST) {
            f->text_block *= 2;
        }
    }

    p = f->text;
    f->text += size;
    f->text_left -= size;

    return p;
}


static int
mcd_rules_reserve(mcd_filter_t *f)
{
    size_t          n, size;
    uintptr_t       a;
    mcd_record_t   *chunk, **chunks;

    if (f->nrules < f->rules_cap) {
        return MCD_FILTER_OK;
    }

    if (f->nchunks == f->chunks_size) {
        size = f->chunks_size ? f->chunks_size * 2 : 16;

        chunks = mcd_alloc(f, size * sizeof(mcd_record_t *));
        if (chunks == NULL) {
            return MCD_FILTER_ERROR;
        }

        if (f->nchunks) {
            memcpy(chunks, f->chunks, f->nchunks * sizeof(mcd_record_t *));
        }

        f->chunks = chunks;
        f->chunks_size = size;
    }

    if (f->nchunks < MCD_RULES_GEOM) {
        n = (size_t) 1 << (MCD_RULES_FIRST_SHIFT + f->nchunks);

    } else {
        n = (size_t) 1 << MCD_RULES_LAST_SHIFT;
    }

    chunk = mcd_alloc(f, n * sizeof(mcd_record_t) + MCD_RECORD_SIZE - 1);
    if (chunk == NULL) {
        return MCD_FILTER_ERROR;
    }

    a = (uintptr_t) chunk;
    chunk = (mcd_record_t *) (void *)
                ((unsigned char *) chunk
                 + ((MCD_RECORD_SIZE - a % MCD_RECORD_SIZE) % MCD_RECORD_SIZE));

    f->chunks[f->nchunks++] = chunk;
    f->rules_cap += n;

    return MCD_FILTER_OK;
}


static mcd_rule_t *
mcd_rule_at(const mcd_filter_t *f, size_t i)
{
    size_t  k, v;

    if (i < MCD_RULES_GEOM_TOTAL) {
        v = i + ((size_t) 1 << MCD_RULES_FIRST_SHIFT);

        for (k = 0; v >= ((size_t) 2 << (MCD_RULES_FIRST_SHIFT + k)); k++) {
            /* void */
        }

        return &f->chunks[k][v - ((size_t) 1 << (MCD_RULES_FIRST_SHIFT + k))]
                    .rule;
    }

    i -= MCD_RULES_GEOM_TOTAL;

    return &f->chunks[MCD_RULES_GEOM + (i >> MCD_RULES_LAST_SHIFT)]
                     [i & (((size_t) 1 << MCD_RULES_LAST_SHIFT) - 1)].rule;
}


static size_t
mcd_rule_prefix(unsigned kind)
{
    switch (kind) {
    case MCD_RULE_STAR:
        return 2;
    case MCD_RULE_DOT:
        return 1;
    default:
        return 0;
    }
}


/* hash tables */


static uint32_t *
mcd_table_find(const mcd_filter_t *f, const mcd_table_t *t,
    const unsigned char *key, size_t len, uint32_t hash)
{
    size_t             i, mask, stride, pre;
    uint32_t          *s, idx;
    const mcd_rule_t  *r;

    if (t->used == 0) {
        return NULL;
    }

    stride = 1 + t->width;
    mask = t->size - 1;
    i = hash & mask;

    for ( ;; ) {
        s = t->slots + i * stride;

        idx = s[1];

        if (idx == 0 && t->width == 2) {
            idx = s[2];
        }

        if (idx == 0) {
            return NULL;
        }

        if (s[0] == hash) {
            r = mcd_rule_at(f, idx - 1);
            pre = mcd_rule_prefix(r->kind);

            if (r->len - pre == len
                && memcmp(r->pattern + pre, key, len) == 0)
            {
                return s;
            }
        }

        i = (i + 1) & mask;
    }
}


static void
mcd_table_prefetch(const mcd_table_t *t, uint32_t hash)
{
#if defined(__GNUC__) || defined(__clang__)

    if (t->size >= MCD_PREFETCH_MIN) {
        __builtin_prefetch(t->slots + (hash & (t->size - 1)) * (1 + t->width));
    }

#else
    (void) t;
    (void) hash;
#endif
}


static int
mcd_table_reserve(mcd_filter_t *f, mcd_table_t *t)
{
    size_t     size, stride, i, j, mask;
    uint32_t  *slots, *s, *d;

    if (t->used + 1 <= t->size / 4 * 3) {
        return MCD_FILTER_OK;
    }

    stride = 1 + t->width;
    size = t->size ? t->size * 2 : MCD_TABLE_FIRST;

    if (size < t->size || size > SIZE_MAX / (stride * sizeof(uint32_t))) {
        return MCD_FILTER_ERROR;
    }

    slots = mcd_alloc(f, size * stride * sizeof(uint32_t));
    if (slots == NULL) {
        return MCD_FILTER_ERROR;
    }

    memset(slots, 0, size * stride * sizeof(uint32_t));

    mask = size - 1;

    for (i = 0; i < t->size; i++) {
        s = t->slots + i * stride;

        if (s[1] == 0 && (t->width == 1 || s[2] == 0)) {
            continue;
        }

        j = s[0] & mask;

        for ( ;; ) {
            d = slots + j * stride;

            if (d[1] == 0 && (t->width == 1 || d[2] == 0)) {
                break;
            }

            j = (j + 1) & mask;
        }

        memcpy(d, s, stride * sizeof(uint32_t));
    }

    t->slots = slots;
    t->size = size;

    return MCD_FILTER_OK;
}


/* the key must be absent and room reserved */

static uint32_t *
mcd_table_new_slot(mcd_table_t *t, uint32_t hash)
{
    size_t     i, mask, stride;
    uint32_t  *s;

    stride = 1 + t->width;
    mask = t->size - 1;
    i = hash & mask;

    for ( ;; ) {
        s = t->slots + i * stride;

        if (s[1] == 0 && (t->width == 1 || s[2] == 0)) {
            break;
        }

        i = (i + 1) & mask;
    }

    s[0] = hash;
    t->used++;

    return s;
}


/* filters */


mcd_filter_t *
mcd_filter_create(const mcd_allocator_t *a)
{
    mcd_filter_t  *f;

    if (a == NULL || a->alloc == NULL) {
        return NULL;
    }

    f = a->alloc(a->data, sizeof(mcd_filter_t));
    if (f == NULL) {
        return NULL;
    }

    memset(f, 0, sizeof(mcd_filter_t));

    f->alloc = *a;
    f->mem = sizeof(mcd_filter_t);
    f->text_block = MCD_TEXT_FIRST;
    f->exact.width = 1;
    f->wild.width = 2;
    f->regex_last = &f->regex;

    f->failed = mcd_alloc(f, sizeof(mcd_rule_t));
    if (f->failed == NULL) {
        return NULL;
    }

    memset(f->failed, 0, sizeof(mcd_rule_t));

    return f;
}


static int
mcd_pattern_parse(const unsigned char *p, size_t len, unsigned char *buf,
    size_t *blen, unsigned *kind, mcd_filter_err_t *err)
{
    int          type;
    size_t       pre, n;
    unsigned     k;
    const char  *why;

    if (len == 0) {
        mcd_err_cat(err, "empty pattern");
        return MCD_FILTER_INVALID;
    }

    pre = 0;
    k = MCD_RULE_EXACT;

    if (p[0] == '*') {
        if (len < 2 || p[1] != '.') {
            goto wildcard;
        }

        pre = 2;
        k = MCD_RULE_STAR;

    } else if (p[0] == '.') {
        pre = 1;
        k = MCD_RULE_DOT;
    }

    if (memchr(p + pre, '*', len - pre) != NULL) {
        goto wildcard;
    }

    why = "invalid name";
    type = mcd_fqdn_parse(p + pre, len - pre, buf + pre, &n, &why);

    if (type == MCD_NAME_BAD) {
        mcd_err_quote(err, pre ? "invalid wildcard " : "invalid pattern ",
                     p, len);
        mcd_err_cat(err, ": ");
        mcd_err_cat(err, why);
        return MCD_FILTER_INVALID;
    }

    if (pre) {
        if (type != MCD_NAME_HOST) {
            mcd_err_quote(err, "invalid wildcard ", p, len);
            mcd_err_cat(err, ": wildcard of an IP address");
            return MCD_FILTER_INVALID;
        }

        memcpy(buf, p, pre);

    } else if (type != MCD_NAME_HOST) {
        k = MCD_RULE_IP;
    }

    *blen = pre + n;
    buf[*blen] = '\0';
    *kind = k;

    return MCD_FILTER_OK;

wildcard:

    mcd_err_quote(err, "invalid wildcard ", p, len);

    return MCD_FILTER_INVALID;
}


int
mcd_filter_add(mcd_filter_t *f, unsigned action,
    const unsigned char *pattern, size_t len, const void *source,
    unsigned line, mcd_filter_err_t *err)
{
    int                   rc, errcode;
    size_t                tlen, pre, klen;
    uint32_t             *s, idx, hash;
    unsigned              kind;
    mcd_rule_t           *r;
    mcd_table_t          *t;
    mcd_regex_t          *re;
    pcre2_code           *code;
    unsigned char        *copy, buf[MCD_FQDN_MAX + 3];
    PCRE2_SIZE            erroff;
    PCRE2_UCHAR           pmsg[160];
    const unsigned char  *text, *key;

    mcd_err_reset(err);

    if (f == NULL) {
        mcd_err_cat(err, "no filter");
        return MCD_FILTER_ERROR;
    }

    if (f->finalized) {
        mcd_err_cat(err, "pattern added to a finalized filter");
        return MCD_FILTER_ERROR;
    }

    if (action > MCD_ACTION_DECRYPT) {
        mcd_err_cat(err, "invalid action ");
        mcd_err_num(err, action);
        return MCD_FILTER_INVALID;
    }

    if (pattern == NULL) {
        len = 0;
    }

    if (len > 0 && pattern[0] == '~') {
        if (len == 1) {
            mcd_err_quote(err, "empty regex ", pattern, len);
            return MCD_FILTER_INVALID;
        }

        if (len > SIZE_MAX / 2) {
            mcd_err_cat(err, "regex too long");
            return MCD_FILTER_INVALID;
        }

        kind = MCD_RULE_REGEX;
        text = pattern;
        tlen = len;

    } else {
        rc = mcd_pattern_parse(pattern, len, buf, &tlen, &kind, err);
        if (rc != MCD_FILTER_OK) {
            return rc;
        }

        text = buf;
    }

    pre = mcd_rule_prefix(kind);
    key = text + pre;
    klen = tlen - pre;
    hash = mcd_hash(key, klen);

    if (kind == MCD_RULE_STAR || kind == MCD_RULE_DOT) {
        t = &f->wild;

    } else {
        t = &f->exact;
    }

    s = mcd_table_find(f, t, key, klen, hash);

    if (s != NULL) {
        rc = mcd_add_check(f, t, s, kind, action, text, tlen, err);
        if (rc != MCD_FILTER_OK) {
            return rc;
        }
    }

    if (f->nrules >= MCD_RULES_MAX) {
        mcd_err_cat(err, "too many patterns");
        return MCD_FILTER_ERROR;
    }

    code = NULL;
    re = NULL;

    if (kind == MCD_RULE_REGEX) {
        code = pcre2_compile(pattern + 1, len - 1, PCRE2_CASELESS, &errcode,
                             &erroff, NULL);

        if (code == NULL) {
            if (pcre2_get_error_message(errcode, pmsg, sizeof(pmsg)) < 0) {
                /* the message may be truncated; it is still terminated */
                pmsg[sizeof(pmsg) - 1] = '\0';
            }

            if (errcode == PCRE2_ERROR_HEAP_FAILED) {
                mcd_err_cat(err, "not enough memory to compile a regex");
                return MCD_FILTER_ERROR;
            }

            mcd_err_quote(err, "invalid regex ", pattern, len);
            mcd_err_cat(err, ": ");
            mcd_err_cat(err, (char *) pmsg);
            mcd_err_cat(err, " at offset ");
            mcd_err_num(err, erroff);
            return MCD_FILTER_INVALID;
        }

        /* JIT is optional: without it PCRE2 interprets the pattern */
        (void) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    }

    /*
     * allocate everything first, so that a failure leaves the filter
     * unchanged (what was allocated stays unused in the arena)
     */

    if (s == NULL && mcd_table_reserve(f, t) != MCD_FILTER_OK) {
        goto nomem;
    }

    if (mcd_rules_reserve(f) != MCD_FILTER_OK) {
        goto nomem;
    }

    r = mcd_rule_at(f, f->nrules);

    if (tlen < MCD_RECORD_TEXT) {
        copy = ((mcd_record_t *) (void *) r)->text;

    } else {
        copy = mcd_text_alloc(f, tlen + 1);
        if (copy == NULL) {
            goto nomem;
        }
    }

    if (code != NULL) {
        re = mcd_alloc(f, sizeof(mcd_regex_t));
        if (re == NULL) {
            goto nomem;
        }
    }

    memcpy(copy, text, tlen);
    copy[tlen] = '\0';

    r->pattern = copy;
    r->len = tlen;
    r->source = source;
    r->line = line;
    r->action = action & 0x3;
    r->kind = kind & 0x7;
    r->failed = 0;

    idx = (uint32_t) (f->nrules + 1);

    if (s == NULL) {
        s = mcd_table_new_slot(t, hash);
    }

    s[kind == MCD_RULE_DOT ? 2 : 1] = idx;

    f->nrules++;

    if (re != NULL) {
        re->next = NULL;
        re->code = code;
        re->rule = r;
        *f->regex_last = re;
        f->regex_last = &re->next;
        f->nregex++;
    }

    return MCD_FILTER_OK;

nomem:

    if (code != NULL) {
        pcre2_code_free(code);
    }

    mcd_err_cat(err, "not enough memory");

    return MCD_FILTER_ERROR;
}


/*
 * The key of a new pattern is already in table t, at slot s: decide
 * between a duplicate, a conflict and a legal companion ("*.x" with ".x").
 */

static int
mcd_add_check(mcd_filter_t *f, mcd_table_t *t, uint32_t *s, unsigned kind,
    unsigned action, const unsigned char *text, size_t len,
    mcd_filter_err_t *err)
{
    uint32_t           same, other;
    const mcd_rule_t  *r;

    if (t->width == 1) {
        same = s[1];
        other = 0;

    } else if (kind == MCD_RULE_STAR) {
        same = s[1];
        other = s[2];

    } else {
        same = s[2];
        other = s[1];
    }

    if (same) {
        r = mcd_rule_at(f, same - 1);

        if (err) {
            err->conflict = r;
        }

        if (r->action == action) {
            mcd_err_cat(err, "duplicate pattern ");
            mcd_err_rule(err, action, text, len);
            return MCD_FILTER_DUP;
        }

        mcd_err_rule(err, action, text, len);
        mcd_err_cat(err, " conflicts with ");
        mcd_err_rule(err, r->action, r->pattern, r->len);

        return MCD_FILTER_CONFLICT;
    }

    if (other) {
        r = mcd_rule_at(f, other - 1);

        if (r->action != action) {
            if (err) {
                err->conflict = r;
            }

            mcd_err_rule(err, action, text, len);
            mcd_err_cat(err, " conflicts with ");
            mcd_err_rule(err, r->action, r->pattern, r->len);
            mcd_err_quote(err, ": both cover the subdomains of ",
                          text + mcd_rule_prefix(kind),
                          len - mcd_rule_prefix(kind));

            return MCD_FILTER_CONFLICT;
        }
    }

    return MCD_FILTER_OK;
}


int
mcd_filter_finalize(mcd_filter_t *f, mcd_filter_err_t *err)
{
    mcd_err_reset(err);

    if (f == NULL) {
        mcd_err_cat(err, "no filter");
        return MCD_FILTER_ERROR;
    }

    if (f->nregex && f->match_data == NULL) {

        if (f->match_ctx == NULL) {
            f->match_ctx = pcre2_match_context_create(NULL);
            if (f->match_ctx == NULL) {
                goto nomem;
            }

            (void) pcre2_set_match_limit(f->match_ctx, MCD_REGEX_MATCH_LIMIT);
        }

        f->match_data = pcre2_match_data_create(1, NULL);
        if (f->match_data == NULL) {
            goto nomem;
        }
    }

    f->finalized = 1;

    return MCD_FILTER_OK;

nomem:

    mcd_err_cat(err, "not enough memory for PCRE2 match data");

    return MCD_FILTER_ERROR;
}


const mcd_rule_t *
mcd_filter_match(const mcd_filter_t *f, const unsigned char *name,
    size_t len, int type)
{
    uint32_t          *s;
    const mcd_rule_t  *r;

    if (f == NULL || name == NULL || len == 0 || len > MCD_FQDN_MAX) {
        return NULL;
    }

    switch (type) {

    case MCD_NAME_HOST:
        r = mcd_match_host(f, name, len);
        if (r != NULL) {
            return r;
        }

        break;

    case MCD_NAME_IPV4:
    case MCD_NAME_IPV6:
        s = mcd_table_find(f, &f->exact, name, len, mcd_hash(name, len));

        if (s != NULL) {
            r = mcd_rule_at(f, s[1] - 1);
            if (r->kind == MCD_RULE_IP) {
                return r;
            }
        }

        if (type == MCD_NAME_IPV6) {
            r = mcd_match_mapped(f, name, len);
            if (r != NULL) {
                return r;
            }
        }

        break;

    default:
        return NULL;
    }

    return mcd_match_regex(f, name, len);
}


static const mcd_rule_t *
mcd_match_host(const mcd_filter_t *f, const unsigned char *name, size_t len)
{
    size_t             i, n;
    uint32_t          *s, hash[MCD_FQDN_MAX];
    uint64_t           h;
    unsigned char      off[MCD_FQDN_MAX];
    const mcd_rule_t  *r;

    if (f->exact.used == 0 && f->wild.used == 0) {
        return NULL;
    }

    /*
     * one pass from the right: the hash of every suffix that starts a
     * label, hash[n - 1] being the whole name; len <= 253 so offsets fit
     * in a byte and there are at most 253 suffixes
     */

    h = MCD_FNV_BASIS;
    n = 0;
    i = len;

    while (i) {
        i--;
        h = (h ^ name[i]) * MCD_FNV_PRIME;

        if (i == 0 || name[i - 1] == '.') {
            off[n] = (unsigned char) i;
            hash[n] = mcd_hash_mix(h);
            n++;
        }
    }

    /*
     * the probes do not depend on each other: start loading their slots
     * now so that the cache misses of big tables overlap
     */

    mcd_table_prefetch(&f->exact, hash[n - 1]);

    for (i = n; i > 0 && i + MCD_PREFETCH_MAX > n; i--) {
        mcd_table_prefetch(&f->wild, hash[i - 1]);
    }

    s = mcd_table_find(f, &f->exact, name, len, hash[n - 1]);

    if (s != NULL) {
        r = mcd_rule_at(f, s[1] - 1);
        if (r->kind == MCD_RULE_EXACT) {
            return r;
        }
    }

    if (f->wild.used == 0) {
        return NULL;
    }

    /* the apex: only ".example.com" covers "example.com" itself */

    s = mcd_table_find(f, &f->wild, name, len, hash[n - 1]);

    if (s != NULL && s[2] != 0) {
        return mcd_rule_at(f, s[2] - 1);
    }

    /* proper suffixes, longest first */

    n--;

    while (n) {
        n--;

        s = mcd_table_find(f, &f->wild, name + off[n], len - off[n], hash[n]);

        if (s != NULL) {
            return mcd_rule_at(f, (s[1] ? s[1] : s[2]) - 1);
        }
    }

    return NULL;
}


/*
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) reaches the IPv4 host, so
 * an IPv4 literal pattern applies to it too.
 */

static const mcd_rule_t *
mcd_match_mapped(const mcd_filter_t *f, const unsigned char *name,
    size_t len)
{
    char               buf[MCD_IPV6_TEXT_MAX + 1], v4[INET_ADDRSTRLEN];
    size_t             n;
    uint32_t          *s;
    unsigned char      addr[16];
    const mcd_rule_t  *r;

    static const unsigned char  mapped[12] =
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (f->exact.used == 0 || len < 7 || len > MCD_IPV6_TEXT_MAX
        || memcmp(name, "::ffff:", 7) != 0)
    {
        return NULL;
    }

    memcpy(buf, name, len);
    buf[len] = '\0';

    if (inet_pton(AF_INET6, buf, addr) != 1
        || memcmp(addr, mapped, sizeof(mapped)) != 0
        || inet_ntop(AF_INET, addr + 12, v4, sizeof(v4)) == NULL)
    {
        return NULL;
    }

    n = strlen(v4);

    s = mcd_table_find(f, &f->exact, (unsigned char *) v4, n,
                       mcd_hash((unsigned char *) v4, n));

    if (s != NULL) {
        r = mcd_rule_at(f, s[1] - 1);
        if (r->kind == MCD_RULE_IP) {
            return r;
        }
    }

    return NULL;
}


/*
 * The JIT compiled matchers load the subject in aligned 16-byte blocks and
 * so read a little past its end.  That is harmless, but the bytes there
 * belong to the caller and may be uninitialised (valgrind reports every
 * branch on them), so the name is matched in an aligned local copy with
 * zeroed bytes after it.
 */

static const mcd_rule_t *
mcd_match_regex(const mcd_filter_t *f, const unsigned char *name, size_t len)
{
    int             rc;
    mcd_regex_t    *re;
    unsigned char  *subject, buf[MCD_SUBJECT_ALIGN + MCD_FQDN_MAX
                                 + MCD_SUBJECT_PAD];

    if (f->regex == NULL) {
        return NULL;
    }

    subject = buf + ((MCD_SUBJECT_ALIGN
                      - ((uintptr_t) buf & (MCD_SUBJECT_ALIGN - 1)))
                     & (MCD_SUBJECT_ALIGN - 1));

    memcpy(subject, name, len);
    memset(subject + len, 0, MCD_SUBJECT_PAD);

    for (re = f->regex; re; re = re->next) {

        if (re->code == NULL || f->match_data == NULL) {
            return mcd_match_fail(f, re->rule);
        }

        rc = pcre2_match(re->code, subject, len, 0, 0, f->match_data,
                         f->match_ctx);

        if (rc >= 0) {
            return re->rule;
        }

        if (rc != PCRE2_ERROR_NOMATCH) {
            return mcd_match_fail(f, re->rule);
        }
    }

    return NULL;
}


static const mcd_rule_t *
mcd_match_fail(const mcd_filter_t *f, const mcd_rule_t *r)
{
    mcd_rule_t  *fr;

    fr = f->failed;

    *fr = *r;
    fr->action = MCD_ACTION_DENY;
    fr->failed = 1;

    return fr;
}


void
mcd_filter_cleanup(mcd_filter_t *f)
{
    mcd_regex_t  *re;

    if (f == NULL) {
        return;
    }

    for (re = f->regex; re; re = re->next) {
        if (re->code != NULL) {
            pcre2_code_free(re->code);
            re->code = NULL;
        }
    }

    if (f->match_data != NULL) {
        pcre2_match_data_free(f->match_data);
        f->match_data = NULL;
    }

    if (f->match_ctx != NULL) {
        pcre2_match_context_free(f->match_ctx);
        f->match_ctx = NULL;
    }
}


size_t
mcd_filter_count(const mcd_filter_t *f)
{
    return f ? f->nrules : 0;
}


const mcd_rule_t *
mcd_filter_rule(const mcd_filter_t *f, size_t i)
{
    if (f == NULL || i >= f->nrules) {
        return NULL;
    }

    return mcd_rule_at(f, i);
}


size_t
mcd_filter_memory(const mcd_filter_t *f)
{
    return f ? f->mem : 0;
}


const char *
mcd_action_name(unsigned action)
{
    switch (action) {
    case MCD_ACTION_DENY:
        return "deny";
    case MCD_ACTION_ALLOW:
        return "allow";
    case MCD_ACTION_DECRYPT:
        return "decrypt";
    default:
        return "unknown";
    }
}


/* list files */


int
mcd_list_next(const unsigned char **pos, const unsigned char *end,
    const unsigned char **pat, size_t *len, unsigned *line_no)
{
    const unsigned char  *p, *eol, *s, *e, *t;

    p = *pos;

    if (p == NULL || end == NULL || p >= end) {
        return 0;
    }

    if (*line_no == 0 && end - p >= 3
        && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
    {
        p += 3;
    }

    while (p < end) {
        eol = memchr(p, '\n', (size_t) (end - p));

        if (eol == NULL) {
            eol = end;
            *pos = end;

        } else {
            *pos = eol + 1;
        }

        (*line_no)++;

        e = memchr(p, '#', (size_t) (eol - p));
        if (e == NULL) {
            e = eol;
        }

        s = p;

        while (s < e && mcd_list_space(*s)) {
            s++;
        }

        while (e > s && mcd_list_space(e[-1])) {
            e--;
        }

        p = *pos;

        if (s == e) {
            continue;
        }

        for (t = s; t < e; t++) {
            if (mcd_list_space(*t)) {
                return -1;
            }
        }

        *pat = s;
        *len = (size_t) (e - s);

        return 1;
    }

    *pos = end;

    return 0;
}


static int
mcd_list_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}


/* error messages, always truncated to fit and NUL-terminated */


static void
mcd_err_reset(mcd_filter_err_t *err)
{
    if (err != NULL) {
        err->conflict = NULL;
        err->msg[0] = '\0';
    }
}


static void
mcd_err_cat(mcd_filter_err_t *err, const char *s)
{
    size_t  n;

    if (err == NULL) {
        return;
    }

    n = strlen(err->msg);

    while (*s != '\0' && n < sizeof(err->msg) - 1) {
        err->msg[n++] = *s++;
    }

    err->msg[n] = '\0';
}


/* appends "pre" then the text p quoted */

static void
mcd_err_quote(mcd_filter_err_t *err, const char *pre, const unsigned char *p,
    size_t len)
{
    mcd_err_cat(err, pre);
    mcd_err_cat(err, "\"");
    mcd_err_esc(err, p, len);
    mcd_err_cat(err, "\"");
}


/* appends a rule as in the configuration, quoted: "allow example.com" */

static void
mcd_err_rule(mcd_filter_err_t *err, unsigned action, const unsigned char *p,
    size_t len)
{
    mcd_err_cat(err, "\"");
    mcd_err_cat(err, mcd_action_name(action));
    mcd_err_cat(err, " ");
    mcd_err_esc(err, p, len);
    mcd_err_cat(err, "\"");
}


/*
 * appends the text p with bytes other than printable ASCII, '"' and '\\'
 * escaped as \xHH; at most MCD_ERR_QUOTE_MAX characters, then "..."
 */

static void
mcd_err_esc(mcd_filter_err_t *err, const unsigned char *p, size_t len)
{
    char           buf[MCD_ERR_QUOTE_MAX + 4];
    size_t         i, n;
    unsigned char  c;

    static const char  hex[] = "0123456789abcdef";

    if (err == NULL) {
        return;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (n + 1 > MCD_ERR_QUOTE_MAX) {
                break;
            }

            buf[n++] = (char) c;

        } else {
            if (n + 4 > MCD_ERR_QUOTE_MAX) {
                break;
            }

            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 0xf];
        }
    }

    if (i < len) {
        buf[n++] = '.';
        buf[n++] = '.';
        buf[n++] = '.';
    }

    buf[n] = '\0';

    mcd_err_cat(err, buf);
}


static void
mcd_err_num(mcd_filter_err_t *err, size_t v)
{
    char  buf[32], *p;

    p = buf + sizeof(buf) - 1;
    *p = '\0';

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    mcd_err_cat(err, p);
}
