
/*
 * ngx_mcd: host name normalisation and per-profile FQDN policy matching.
 *
 * This part of the module is plain C99 plus PCRE2 and the C library; it
 * does not depend on nginx, so that it can be unit tested and fuzzed on
 * its own.
 *
 * Names.  mcd_fqdn_normalize() turns a host name taken from the network
 * (SNI, Host header, CONNECT target without the port) into the form that
 * policies are matched against, or rejects it:
 *
 *   - host names are lower-cased and ONE trailing dot is removed; the
 *     result must be 1..253 bytes long, made of non-empty labels of at
 *     most 63 bytes, using only letters, digits, '-' and '_';
 *   - a name whose last label is a number (all decimal digits, or "0x"
 *     followed by hex digits) must be a strict dotted quad ("10.1.2.3":
 *     four decimal octets 0-255 without leading zeros) and is then an
 *     IPv4 address; any other such name ("010.1.1.1", "127.1",
 *     "0x7f.0.0.1", "1.2.3.4.5", "example.123") is BAD, because
 *     resolvers disagree about what it means (inet_aton() octal, hex and
 *     short forms, the WHATWG URL rules);
 *   - a name containing ':' or enclosed in brackets must be an IPv6
 *     address ("::1", "[2001:DB8::1]"); it is printed the way inet_ntop()
 *     prints it: lower case, zeros compressed, no brackets.  Zone ids
 *     ("fe80::1%eth0"), ports ("[::1]:443"), a trailing dot and bracketed
 *     IPv4 addresses are BAD.
 *
 * Patterns follow the nginx server_name conventions:
 *
 *   example.com      exact name
 *   *.example.com    any subdomain at any depth, not example.com itself
 *   .example.com     example.com and any subdomain
 *   ~REGEX           PCRE2 regular expression, caseless, unanchored,
 *                    searched in the whole normalised name (write ^...$)
 *   10.1.2.3, ::1, [2001:db8::1]
 *                    only that address (IPv4 or IPv6 literal)
 *
 * Decision order for a name, whatever the order the patterns were added
 * in: (1) the exact pattern (host name or IP literal), (2) the wildcard
 * covering the longest suffix of the name (".example.com" matching
 * "example.com" itself counts as a suffix of length 11; when both
 * "*.example.com" and ".example.com" exist with the same action, the
 * "*." rule is reported for subdomains), (3) the first matching regex in
 * the order added, (4) no match: the caller applies its default.
 * IP names are matched only by IP literal patterns and by regexes (whose
 * subject is then the canonical address text).  An IPv4-mapped IPv6 name
 * ("::ffff:10.1.2.3") that has no IPv6 pattern of its own is also matched
 * by the IPv4 pattern of the embedded address ("10.1.2.3"), since it
 * reaches the same host.
 *
 * Exact, IP and wildcard patterns live in open-addressing hash tables, so
 * a lookup costs one probe for the exact name plus at most one probe per
 * label of the name, however many patterns there are.
 *
 * Memory.  The library allocates only through the mcd_allocator_t it is
 * given, which must have arena semantics: nothing is freed individually,
 * everything goes away when the caller destroys the arena (nginx passes
 * its configuration pool).  PCRE2 objects (compiled regexes with their
 * JIT code, the match data and the match context) are the exception: they
 * are allocated by PCRE2 with malloc() and released by
 * mcd_filter_cleanup(), which the caller must call before it destroys the
 * arena (with nginx, from a pool cleanup handler; those run before the
 * pool memory is freed).  mcd_filter_cleanup() is safe on a half-built
 * filter and may be called more than once.
 *
 * Threads.  A finalised filter is read-only except for the single PCRE2
 * match data block it uses for regex matching: do not call
 * mcd_filter_match() on the same filter from two threads at once (nginx
 * workers are single-threaded, so this is not an issue there).
 *
 * List files.  mcd_list_next() iterates a list file with one pattern a
 * line; '#' starts a comment.  So a regex containing '#' or white space
 * cannot be written in a list file; put it in nginx.conf instead.
 */


#ifndef MCD_FQDN_H_INCLUDED
#define MCD_FQDN_H_INCLUDED


#include <stddef.h>


#define MCD_ACTION_DENY      0
#define MCD_ACTION_ALLOW     1
#define MCD_ACTION_DECRYPT   2

#define MCD_NAME_BAD         0
#define MCD_NAME_HOST        1
#define MCD_NAME_IPV4        2
#define MCD_NAME_IPV6        3

/* longest normalised output; canonical IPv6 text fits too */
#define MCD_FQDN_MAX         253

#define MCD_RULE_EXACT       0
#define MCD_RULE_STAR        1     /* *.example.com */
#define MCD_RULE_DOT         2     /* .example.com */
#define MCD_RULE_REGEX       3
#define MCD_RULE_IP          4

#define MCD_FILTER_OK        0
#define MCD_FILTER_DUP       1     /* same pattern, same action: ignored */
#define MCD_FILTER_INVALID  -1     /* bad pattern */
#define MCD_FILTER_CONFLICT -2     /* same pattern under another action */
#define MCD_FILTER_ERROR    -3     /* allocation failure, misuse */

/*
 * The PCRE2 match limit applied to every regex match.  Host names are at
 * most 253 bytes, so sane regexes stay far below it; a pathological regex
 * (nested quantifiers) cannot stall a worker.  A regex match that fails
 * for any reason other than "no match" makes mcd_filter_match() return a
 * DENY rule with "failed" set (see below).
 */
#ifndef MCD_REGEX_MATCH_LIMIT
#define MCD_REGEX_MATCH_LIMIT  100000
#endif


typedef struct {
    /* returns NULL on failure; memory aligned for any type */
    void                 *(*alloc)(void *data, size_t size);
    void                  *data;
} mcd_allocator_t;


typedef struct {
    /*
     * the normalised pattern text as it should be logged: "*.example.com",
     * ".example.com", "~^re$", "10.0.0.1", "2001:db8::1"; NUL-terminated
     */
    const unsigned char   *pattern;
    size_t                 len;
    const void            *source;   /* caller's cookie, as given to add */
    unsigned               line;     /* caller's line number, as given */
    unsigned               action:2; /* MCD_ACTION_* */
    unsigned               kind:3;   /* MCD_RULE_* */

    /*
     * Set only in the rule returned by mcd_filter_match() when a regex
     * match could not be completed (match limit, no memory, filter not
     * finalised or already cleaned up): that rule's action is always
     * MCD_ACTION_DENY (fail closed) and its pattern, source and line are
     * those of the regex that failed.  The caller should log it as an
     * error.  The returned object is overwritten by the next failure.
     */
    unsigned               failed:1;
} mcd_rule_t;


typedef struct {
    /* for MCD_FILTER_CONFLICT and MCD_FILTER_DUP: the rule already held */
    const mcd_rule_t      *conflict;
    /* human-readable reason; always NUL-terminated, "" on success */
    char                   msg[256];
} mcd_filter_err_t;


typedef struct mcd_filter_s  mcd_filter_t;


/*
 * Writes the normalised name to "out" (at least MCD_FQDN_MAX + 1 bytes,
 * NUL-terminated; may be the same buffer as "in"), sets *out_len and
 * returns MCD_NAME_*.  On MCD_NAME_BAD, out is "" and *out_len is 0.
 */
int mcd_fqdn_normalize(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len);

/*
 * The same, and on MCD_NAME_BAD sets *reason to a static string such as
 * "empty label" (reason may be NULL).
 */
int mcd_fqdn_normalize_reason(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len, const char **reason);


/* NULL on allocation failure */
mcd_filter_t *mcd_filter_create(const mcd_allocator_t *a);

/*
 * Adds a pattern (raw text, as written in the configuration; need not be
 * NUL-terminated) under "action".  Returns MCD_FILTER_OK, MCD_FILTER_DUP
 * (the first rule is kept, err->conflict points to it),
 * MCD_FILTER_INVALID, MCD_FILTER_CONFLICT (err->conflict is the rule with
 * the other action) or MCD_FILTER_ERROR.  "err" may be NULL.  A failed
 * add leaves the filter as it was.  Adding after finalize is an error.
 *
 * Conflicts: the same normalised pattern under two actions ("allow
 * Example.com." and "deny example.com"; regexes compare by exact text;
 * "2001:DB8:0::1" and "[2001:db8::1]" are the same pattern), and
 * ".example.com" with "*.example.com" under two actions (both cover the
 * subdomains).
 */
int mcd_filter_add(mcd_filter_t *f, unsigned action,
    const unsigned char *pattern, size_t len, const void *source,
    unsigned line, mcd_filter_err_t *err);

/*
 * After the last add, before the first match.  MCD_FILTER_OK or
 * MCD_FILTER_ERROR.  Calling it again is harmless.
 */
int mcd_filter_finalize(mcd_filter_t *f, mcd_filter_err_t *err);

/*
 * "name" must have been normalised by mcd_fqdn_normalize() and "type" be
 * its return value (not MCD_NAME_BAD).  Returns the deciding rule or NULL
 * when nothing matches (the caller applies its default action).  Returns
 * NULL for MCD_NAME_BAD, an empty name or one over MCD_FQDN_MAX bytes.
 * Not thread-safe for one filter (see above).
 */
const mcd_rule_t *mcd_filter_match(const mcd_filter_t *f,
    const unsigned char *name, size_t len, int type);

/*
 * Frees the resources that do not live in the arena (PCRE2 objects).  Safe
 * on a half-built filter, on NULL and when called twice.  Afterwards a
 * regex match fails closed (see mcd_rule_t.failed).
 */
void mcd_filter_cleanup(mcd_filter_t *f);

/* number of patterns held (duplicates are not counted) */
size_t mcd_filter_count(const mcd_filter_t *f);

/* the i-th pattern held, in the order added; NULL if i >= count */
const mcd_rule_t *mcd_filter_rule(const mcd_filter_t *f, size_t i);

/* bytes requested from the allocator so far (pattern text included) */
size_t mcd_filter_memory(const mcd_filter_t *f);

/* "deny", "allow", "decrypt", or "unknown" */
const char *mcd_action_name(unsigned action);


/*
 * Iterates the patterns of a list file held in [*pos, end): '#' starts a
 * comment that runs to the end of the line, blank lines are skipped,
 * spaces, tabs and CR are trimmed around the pattern (so CRLF files
 * work), a UTF-8 byte order mark at the start of the file is skipped.
 * A line holding two tokens separated by white space is malformed.
 *
 * *pos is the caller's cursor (start at the buffer), *line_no a running
 * line counter the caller sets to 0 first.  Returns 1 and sets *pat, *len
 * and *line_no (the pattern's line) for the next pattern, 0 at the end,
 * -1 on a malformed line (*line_no is then that line; iteration may
 * continue after it).  Patterns are not validated here: pass them to
 * mcd_filter_add().  A regex containing '#' or white space cannot be
 * written in a list file (use nginx.conf for it).
 */
int mcd_list_next(const unsigned char **pos, const unsigned char *end,
    const unsigned char **pat, size_t *len, unsigned *line_no);


#endif /* MCD_FQDN_H_INCLUDED */
