
/*
 * Micro benchmark for src/mcd_fqdn.c (not a test).
 *
 *   cc -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Isrc \
 *      src/mcd_fqdn.c t/unit/bench_fqdn.c -lpcre2-8 -o /tmp/bench_fqdn
 *   /tmp/bench_fqdn [lookups [largest size]]
 *
 * For each size N (10, 10000, 1000000 by default) builds a filter with N
 * exact patterns and N wildcard patterns (half "*.", half "."), then times
 * lookups of exact hits, wildcard hits (on a name two labels below the
 * wildcard) and misses, each over names spread across the whole set.  It
 * prints the build time, the memory taken from the allocator (per pattern,
 * and per pattern without the pattern text), the latency of one random
 * memory access in a buffer as big as the filter (miss_lat), and the cost
 * in ns of a lookup (exact hit, wildcard hit, miss) and of normalising a
 * name.  The lookup cost stays a small, constant number of memory
 * accesses as N grows; it grows in ns only as far as the machine's cache
 * miss latency does.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcd_fqdn.h"


#define MCD_B_POOL        65536    /* distinct names looked up per kind */
#define MCD_B_NAME        64       /* bytes a name in the pool */
#define MCD_B_BLOCK       (1024 * 1024)


typedef struct mcd_b_block_s  mcd_b_block_t;

struct mcd_b_block_s {
    mcd_b_block_t  *next;
    size_t          pad;
};


typedef struct {
    mcd_b_block_t  *blocks;
    unsigned char  *pos;
    size_t          left;
} mcd_b_arena_t;


static volatile unsigned long  mcd_b_sink;
static unsigned long           mcd_b_state = 88172645463325252UL;


static unsigned long
mcd_b_rand(void)
{
    mcd_b_state ^= mcd_b_state << 13;
    mcd_b_state ^= mcd_b_state >> 7;
    mcd_b_state ^= mcd_b_state << 17;

    return mcd_b_state;
}


static void *
mcd_b_raw(mcd_b_arena_t *a, size_t size)
{
    mcd_b_block_t  *b;

    b = malloc(sizeof(mcd_b_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = a->blocks;
    a->blocks = b;

    return (unsigned char *) b + sizeof(mcd_b_block_t);
}


static void *
mcd_b_alloc(void *data, size_t size)
{
    void           *p;
    mcd_b_arena_t  *a;

    a = data;
    size = (size + 15) & ~(size_t) 15;

    if (size > MCD_B_BLOCK / 16) {
        return mcd_b_raw(a, size);
    }

    if (size > a->left) {
        a->pos = mcd_b_raw(a, MCD_B_BLOCK);
        if (a->pos == NULL) {
            return NULL;
        }

        a->left = MCD_B_BLOCK;
    }

    p = a->pos;
    a->pos += size;
    a->left -= size;

    return p;
}


static void
mcd_b_arena_free(mcd_b_arena_t *a)
{
    mcd_b_block_t  *b, *next;

    for (b = a->blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    memset(a, 0, sizeof(mcd_b_arena_t));
}


static double
mcd_b_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


static int
mcd_b_exact(char *buf, size_t size, size_t i)
{
    return snprintf(buf, size, "host%zu.s%zu.bench-exact.com", i, i % 1000);
}


static int
mcd_b_wild(char *buf, size_t size, size_t i)
{
    return snprintf(buf, size, "%sw%zu.bench-wild.net", (i & 1) ? "." : "*.",
                    i);
}


/* times "lookups" matches over the names of a pool; ns a lookup */

static double
mcd_b_time(const mcd_filter_t *f, const unsigned char *pool,
    const size_t *lens, size_t npool, size_t lookups, int want_hit)
{
    size_t             i, k, hits;
    double             t0, t1;
    const mcd_rule_t  *r;

    hits = 0;
    k = 0;

    t0 = mcd_b_now();

    for (i = 0; i < lookups; i++) {
        r = mcd_filter_match(f, pool + k * MCD_B_NAME, lens[k],
                             MCD_NAME_HOST);
        hits += (r != NULL);

        if (++k == npool) {
            k = 0;
        }
    }

    t1 = mcd_b_now();

    if (hits != (want_hit ? lookups : 0)) {
        fprintf(stderr, "bench: %zu hits of %zu, want %s\n", hits, lookups,
                want_hit ? "all" : "none");
        exit(1);
    }

    mcd_b_sink += hits;

    return (t1 - t0) / (double) lookups;
}


/*
 * The machine's cost of one dependent random load in a buffer of "bytes"
 * bytes: what a cache miss costs at the filter's size.  A lookup costs a
 * few of these, however many patterns there are.
 */

static double
mcd_b_latency(size_t bytes)
{
    size_t   i, j, n, p, t;
    size_t  *a;
    double   t0, t1;

    n = bytes / sizeof(size_t);

    if (n < 1024) {
        n = 1024;
    }

    a = malloc(n * sizeof(size_t));
    if (a == NULL) {
        return 0;
    }

    /* one random cycle through all the elements (Sattolo) */

    for (i = 0; i < n; i++) {
        a[i] = i;
    }

    for (i = n - 1; i > 0; i--) {
        j = (size_t) (mcd_b_rand() % i);
        t = a[i];
        a[i] = a[j];
        a[j] = t;
    }

    p = 0;

    for (i = 0; i < n && i < 100000; i++) {
        p = a[p];
    }

    t0 = mcd_b_now();

    for (i = 0; i < 1000000; i++) {
        p = a[p];
    }

    t1 = mcd_b_now();

    mcd_b_sink += p;

    free(a);

    return (t1 - t0) / 1e6;
}


static int
mcd_b_run(size_t n, size_t lookups)
{
    int                rc;
    size_t             i, k, npool, total, text, *lens[3];
    double             t0, t1, ns[3], norm_ns;
    mcd_filter_t      *f;
    mcd_b_arena_t      arena;
    unsigned char     *pats, *pool[3], out[MCD_FQDN_MAX + 1];
    mcd_allocator_t    al;
    mcd_filter_err_t   err;

    /* generate the pattern texts first: not part of the build time */

    pats = malloc(2 * n * MCD_B_NAME);
    lens[0] = malloc(2 * n * sizeof(size_t));

    if (pats == NULL || lens[0] == NULL) {
        fprintf(stderr, "bench: no memory\n");
        return 1;
    }

    text = 0;

    for (i = 0; i < n; i++) {
        lens[0][2 * i] = (size_t) mcd_b_exact((char *) pats
                                              + 2 * i * MCD_B_NAME,
                                              MCD_B_NAME, i);
        lens[0][2 * i + 1] = (size_t) mcd_b_wild((char *) pats
                                                 + (2 * i + 1) * MCD_B_NAME,
                                                 MCD_B_NAME, i);
        text += lens[0][2 * i] + lens[0][2 * i + 1] + 2;
    }

    memset(&arena, 0, sizeof(arena));
    al.alloc = mcd_b_alloc;
    al.data = &arena;

    t0 = mcd_b_now();

    f = mcd_filter_create(&al);
    if (f == NULL) {
        fprintf(stderr, "bench: create failed\n");
        return 1;
    }

    for (i = 0; i < 2 * n; i++) {
        rc = mcd_filter_add(f, (unsigned) (i % 3), pats + i * MCD_B_NAME,
                            lens[0][i], NULL, (unsigned) i, &err);
        if (rc != MCD_FILTER_OK) {
            fprintf(stderr, "bench: add %zu: %s\n", i, err.msg);
            return 1;
        }
    }

    if (mcd_filter_finalize(f, &err) != MCD_FILTER_OK) {
        fprintf(stderr, "bench: finalize: %s\n", err.msg);
        return 1;
    }

    t1 = mcd_b_now();

    free(pats);
    free(lens[0]);

    /* the lookup pools: random members of the whole set */

    npool = n < MCD_B_POOL ? n : MCD_B_POOL;

    for (k = 0; k < 3; k++) {
        pool[k] = malloc(npool * MCD_B_NAME);
        lens[k] = malloc(npool * sizeof(size_t));

        if (pool[k] == NULL || lens[k] == NULL) {
            fprintf(stderr, "bench: no memory\n");
            return 1;
        }
    }

    for (i = 0; i < npool; i++) {
        size_t  j = (n == npool) ? i : (size_t) (mcd_b_rand() % n);

        lens[0][i] = (size_t) mcd_b_exact((char *) pool[0] + i * MCD_B_NAME,
                                          MCD_B_NAME, j);

        lens[1][i] = (size_t) snprintf((char *) pool[1] + i * MCD_B_NAME,
                                       MCD_B_NAME,
                                       "a.b.w%zu.bench-wild.net", j);

        lens[2][i] = (size_t) snprintf((char *) pool[2] + i * MCD_B_NAME,
                                       MCD_B_NAME,
                                       "host%zu.s%zu.bench-miss.com", j,
                                       j % 1000);
    }

    /* warm up, then measure */

    (void) mcd_b_time(f, pool[0], lens[0], npool, npool, 1);

    ns[0] = mcd_b_time(f, pool[0], lens[0], npool, lookups, 1);
    ns[1] = mcd_b_time(f, pool[1], lens[1], npool, lookups, 1);
    ns[2] = mcd_b_time(f, pool[2], lens[2], npool, lookups, 0);

    /* normalisation of a mixed-case name, for comparison */

    {
        size_t  len;
        double  n0, n1;

        n0 = mcd_b_now();

        for (i = 0; i < lookups; i++) {
            k = i % npool;
            pool[2][k * MCD_B_NAME] ^= 0x20;
            mcd_b_sink += (unsigned long) mcd_fqdn_normalize(
                              pool[2] + k * MCD_B_NAME, lens[2][k], out,
                              &len);
        }

        n1 = mcd_b_now();

        norm_ns = (n1 - n0) / (double) lookups;
    }

    total = mcd_filter_memory(f);

    printf("%8zu  %8zu  %9.1f  %8.1f  %6.1f  %9.1f  %8.1f  %7.1f  %7.1f"
           "  %7.1f  %6.1f\n",
           n, 2 * n, (t1 - t0) / 1e6, (double) total / 1048576.0,
           (double) total / (double) (2 * n),
           (double) (total > text ? total - text : 0) / (double) (2 * n),
           mcd_b_latency(total), ns[0], ns[1], ns[2], norm_ns);

    for (k = 0; k < 3; k++) {
        free(pool[k]);
        free(lens[k]);
    }

    mcd_filter_cleanup(f);
    mcd_b_arena_free(&arena);

    return 0;
}


int
main(int argc, char **argv)
{
    size_t  lookups, max, i;

    static const size_t  sizes[] = { 10, 10000, 1000000 };

    lookups = argc > 1 ? (size_t) strtoul(argv[1], NULL, 10) : 2000000;
    max = argc > 2 ? (size_t) strtoul(argv[2], NULL, 10) : 1000000;

    if (lookups == 0) {
        lookups = 1;
    }

    printf("bench_fqdn: %zu lookups a kind; N exact + N wildcard patterns\n",
           lookups);
    printf("%8s  %8s  %9s  %8s  %6s  %9s  %8s  %7s  %7s  %7s  %6s\n",
           "N", "patterns", "build_ms", "mem_MB", "B/pat", "B/pat-txt",
           "miss_lat", "exact", "wild", "miss", "norm");

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (sizes[i] > max) {
            break;
        }

        if (mcd_b_run(sizes[i], lookups) != 0) {
            return 1;
        }
    }

    return 0;
}
