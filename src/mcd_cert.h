
/*
 * ngx_mcd: leaf certificates minted by the gateway CA, and their cache.
 *
 * Plain C99 on OpenSSL 3.0 libcrypto, no nginx headers, so that it can be
 * unit tested on its own.  Allocation is malloc() (through OpenSSL for its
 * objects); every object here has an explicit free function.  Nothing is
 * thread-safe: nginx holds one leaf key and one cache per worker.
 *
 * Names.  Only a name that mcd_cert_name_check() accepts is ever minted;
 * the caller passes the normalised FQDN that the policy authorized
 * (mcd_fqdn_normalize() output):
 *
 *   - a host name: 1..253 bytes of [a-z0-9._-] (lower case only), labels
 *     of 1..63 bytes (so no leading, trailing or double dot), and a last
 *     label that is not a number (all digits, or "0x" and hex digits);
 *     it becomes a dNSName SAN;
 *   - an IPv4 address as a strict dotted quad ("10.1.2.3", no leading
 *     zeros): an iPAddress SAN of 4 bytes;
 *   - an IPv6 address exactly as inet_ntop() prints it ("2001:db8::1",
 *     "::ffff:10.1.2.3"; no brackets, no zone id, no upper case): an
 *     iPAddress SAN of 16 bytes.
 *
 * Everything else is refused: empty, over 253 bytes, '*', upper case,
 * any byte outside the sets above.
 *
 * The minted leaf (mcd_cert_mint()):
 *
 *   version          v3
 *   serialNumber     16 bytes from RAND_bytes(), top bit cleared and the
 *                    next one set: positive, exactly 127 bits long, 126 of
 *                    them random, never zero
 *   signature        sha256WithRSAEncryption or ecdsa-with-SHA256, as the
 *                    CA key is RSA or EC
 *   issuer           the CA certificate's subject, byte for byte
 *   subject          CN=name when name is at most 64 bytes (the X.520
 *                    upper bound); an empty subject otherwise
 *   notBefore        now - 1 hour, but not before the CA's notBefore
 *   notAfter         now + lifetime (lifetime at most 30 days), but not
 *                    after the CA's notAfter
 *   subjectKeyIdentifier     SHA-1 of the leaf's subjectPublicKey (RFC
 *                            5280 4.2.1.2 method 1)
 *   authorityKeyIdentifier   keyIdentifier = the CA's SKI (the SHA-1 of
 *                            the CA's public key when it has no SKI)
 *   basicConstraints         critical, CA:FALSE
 *   keyUsage                 critical, digitalSignature, plus
 *                            keyEncipherment for an RSA leaf key
 *   extendedKeyUsage         serverAuth
 *   subjectAltName           the name (DNS or IP); critical when the
 *                            subject is empty (RFC 5280 4.2.1.6)
 *
 * Errors are short static strings in *err.  When an OpenSSL call failed,
 * OpenSSL's error queue holds the details (nginx: ngx_ssl_error()); a
 * refused name or an expired CA leaves the queue untouched.
 *
 * Use from nginx (one worker):
 *
 *   configuration:   mcd_cert_key_spec_parse() for "mcd_leaf_key";
 *                    mcd_cert_ca_init() once the CA certificate and key
 *                    are loaded (a pool cleanup calls mcd_cert_ca_free());
 *   init_process:    mcd_cert_key_generate(), then
 *                    mcd_cert_cache_create(max, valid, -1, &err);
 *   certificate callback (SSL_CTX_set_cert_cb), for the AUTHORIZED name
 *   carried with the connection, never the raw SNI:
 *                    x = mcd_cert_cache_get(cache, &ca, &key, fqdn, len,
 *                                           ngx_time(), 0, &minted, &err);
 *                    SSL_use_cert_and_key(ssl, x, key.pkey, chain, 1)
 *                    (chain: the CA certificate and the intermediates
 *                    after it in the CA file); X509_free(x);
 *   exit_process:    mcd_cert_cache_free(), mcd_cert_key_free().
 *
 * A cache hit costs a SipHash of the name and an X509_up_ref(); a mint
 * costs one signature by the CA key plus about 25 us of building: about
 * 60 us in all with an EC P-256 CA, 0.7 ms with an RSA 2048 CA (OpenSSL
 * 3.0.19 on the project's 2-core machine).
 */


#ifndef MCD_CERT_H_INCLUDED_
#define MCD_CERT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>


#define MCD_CERT_NAME_DNS        1
#define MCD_CERT_NAME_IPV4       2
#define MCD_CERT_NAME_IPV6       3

#define MCD_CERT_NAME_MAX        253      /* bytes of a host name */
#define MCD_CERT_CN_MAX          64       /* ub-common-name */
#define MCD_CERT_SERIAL_LEN      16       /* bytes of a minted serial */
#define MCD_CERT_BACKDATE        3600     /* notBefore = now - this */
#define MCD_CERT_MAX_LIFETIME    (30 * 86400)

/* a cache entry is no longer served this long before its notAfter */
#define MCD_CERT_CACHE_MARGIN    3600

#define MCD_CERT_KEY_EC          1
#define MCD_CERT_KEY_RSA         2


/* what "mcd_leaf_key TOKEN" asks for */

typedef struct {
    int            type;          /* MCD_CERT_KEY_EC or MCD_CERT_KEY_RSA */
    unsigned       bits;          /* RSA: modulus bits; EC: curve bits */
    const char    *curve;         /* EC: "P-256" or "P-384"; RSA: NULL */
} mcd_cert_key_spec_t;


/*
 * The leaf key: one per worker, the key pair of every certificate it
 * mints.  pub is what goes into the certificates: with OpenSSL 3.0 a
 * provider key costs about 240 us in X509_set_pubkey() (its encoder, then
 * its decoder), so pub is a legacy EC_KEY/RSA copy of the public half,
 * which costs under 10 us, used only when it encodes to exactly the same
 * SubjectPublicKeyInfo as pkey (else pub is another reference to pkey).
 * A minted certificate's X509_get0_pubkey() is pub, so SSL_use_certificate()
 * decodes nothing either.
 */

typedef struct {
    EVP_PKEY      *pkey;          /* a reference of its own */
    EVP_PKEY      *pub;           /* the public half, see above */
    int            type;          /* MCD_CERT_KEY_EC or MCD_CERT_KEY_RSA */
    unsigned char  ski[20];       /* SHA-1 of the subjectPublicKey */
} mcd_cert_key_t;


/* the gateway CA, as the minting needs it */

typedef struct {
    X509                 *cert;        /* a reference of its own */
    EVP_PKEY             *pkey;        /* a reference of its own */
    ASN1_OCTET_STRING    *keyid;       /* for the leaves' AKI */
    time_t                not_before;
    time_t                not_after;
} mcd_cert_ca_t;


/* the counters of one cache; read them, do not write them */

typedef struct {
    uint64_t       hits;          /* lookups that returned a certificate */
    uint64_t       misses;        /* lookups that did not (incl. expired) */
    uint64_t       expired;       /* entries dropped at lookup as too old */
    uint64_t       evictions;     /* LRU entries dropped to make room */
    uint64_t       minted;        /* certificates mcd_cert_cache_get() minted */
    size_t         entries;       /* entries held now */
} mcd_cert_cache_stats_t;


typedef struct mcd_cert_cache_s  mcd_cert_cache_t;


/*
 * Parses the TOKEN of "mcd_leaf_key TOKEN": "ec:P-256", "ec:P-384",
 * "rsa:2048", "rsa:3072" or "rsa:4096", exactly so (token need not be
 * NUL-terminated).  Returns 0, or -1 with *err set.  The default, when
 * there is no such directive, is MCD_CERT_KEY_SPEC_DEFAULT.
 */
int mcd_cert_key_spec_parse(const unsigned char *token, size_t len,
    mcd_cert_key_spec_t *spec, const char **err);

#define MCD_CERT_KEY_SPEC_DEFAULT  "ec:P-256"

/*
 * Generates a leaf key as spec says into *key (EC P-256: well under a
 * millisecond; RSA 2048: tens to hundreds of milliseconds, so do it once
 * per worker, at worker start).  Returns 0, or -1 with *err set and *key
 * zeroed.  Free with mcd_cert_key_free().
 */
int mcd_cert_key_generate(const mcd_cert_key_spec_t *spec,
    mcd_cert_key_t *key, const char **err);

/*
 * Makes *key of an existing EC or RSA key (takes a reference of its own
 * to pkey).  Returns 0, or -1 with *err set and *key zeroed.
 */
int mcd_cert_key_set(mcd_cert_key_t *key, EVP_PKEY *pkey, const char **err);

/* releases the key's reference and zeroes *key; safe on a zeroed key */
void mcd_cert_key_free(mcd_cert_key_t *key);

/*
 * Prepares *ca from the CA certificate and its private key (EC or RSA;
 * takes references of its own to both).  Checks that the key matches the
 * certificate and that the certificate is a CA (X509_check_ca()); the
 * dates are not checked here (mcd_cert_mint() refuses to mint when the
 * CA has expired).  Returns 0, or -1 with *err set and *ca zeroed.
 */
int mcd_cert_ca_init(mcd_cert_ca_t *ca, X509 *cert, EVP_PKEY *pkey,
    const char **err);

/* releases what *ca holds and zeroes it; safe on a zeroed one */
void mcd_cert_ca_free(mcd_cert_ca_t *ca);

/*
 * Checks a name as described at the top of this file.  Returns
 * MCD_CERT_NAME_DNS, MCD_CERT_NAME_IPV4 or MCD_CERT_NAME_IPV6 and, for an
 * address, its 4 or 16 bytes in network order in addr (when addr is not
 * NULL); or -1 with *err set.
 */
int mcd_cert_name_check(const unsigned char *name, size_t len,
    unsigned char addr[16], const char **err);

/*
 * Mints a leaf certificate for name (see the top of this file) with the
 * public half of key, signed by ca.  now is the current time; lifetime
 * is the longest validity wanted from now on, in seconds (0 or more than
 * MCD_CERT_MAX_LIFETIME means MCD_CERT_MAX_LIFETIME).  Returns a new
 * certificate (the caller frees it with X509_free()), or NULL with *err
 * set: a refused name, a CA that has expired (or expires within the
 * second) at now, or an OpenSSL failure.
 */
X509 *mcd_cert_mint(const mcd_cert_ca_t *ca, const mcd_cert_key_t *key,
    const unsigned char *name, size_t len, time_t now, time_t lifetime,
    const char **err);

/*
 * The certificate's notAfter as a time_t (also for years past 2038 and
 * GeneralizedTime).  Returns 0, or -1 when it cannot be read.
 */
int mcd_cert_not_after(const X509 *cert, time_t *t);

/*
 * Creates an LRU cache of at most max certificates keyed by name (max 0:
 * a cache that holds nothing, so every mcd_cert_cache_get() mints).  An
 * entry is served until the earliest of: its insertion time + valid (no
 * such bound when valid is 0; valid= of mcd_certificate_cache), and its
 * certificate's notAfter - margin (margin < 0 means
 * MCD_CERT_CACHE_MARGIN).  The table is sized for max entries at
 * creation; entries are allocated on insertion and freed when dropped.
 * Names are hashed with SipHash-2-4 under a random key, so clients that
 * choose names cannot make the chains long.  Returns NULL with *err set
 * on failure.
 */
mcd_cert_cache_t *mcd_cert_cache_create(size_t max, time_t valid,
    time_t margin, const char **err);

/*
 * Looks name up at time now.  Returns a new reference to the cached
 * certificate (the caller X509_free()s it) and moves the entry to the
 * most recently used end, counting a hit; sets *not_after to the
 * certificate's notAfter when not_after is not NULL.  Returns NULL,
 * counting a miss, when there is no entry or when its time is up (the
 * entry is then dropped and also counted as expired).  O(1) expected.
 */
X509 *mcd_cert_cache_lookup(mcd_cert_cache_t *cache,
    const unsigned char *name, size_t len, time_t now, time_t *not_after);

/*
 * Stores cert (taking a reference of its own) for name at time now, as
 * the most recently used entry, replacing an entry of the same name.
 * When the cache is full, the least recently used entry is evicted
 * first.  Returns 1 when stored, 0 when not stored because the entry
 * would not be served at now anyway (notAfter - margin <= now, or max 0),
 * -1 with *err set on failure (the cache is unchanged then).
 */
int mcd_cert_cache_insert(mcd_cert_cache_t *cache,
    const unsigned char *name, size_t len, X509 *cert, time_t now,
    const char **err);

/*
 * The one call the certificate callback needs: the cached certificate
 * for name, else a freshly minted one (mcd_cert_mint() with ca, key, now
 * and lifetime), which is then inserted.  Returns a new reference (the
 * caller X509_free()s it) and sets *minted to 1 when it minted (counted
 * in stats.minted), 0 on a hit; or NULL with *err set.  A name the
 * minting refuses is never looked up or stored.
 */
X509 *mcd_cert_cache_get(mcd_cert_cache_t *cache, const mcd_cert_ca_t *ca,
    const mcd_cert_key_t *key, const unsigned char *name, size_t len,
    time_t now, time_t lifetime, int *minted, const char **err);

/* the cache's counters */
const mcd_cert_cache_stats_t *mcd_cert_cache_stats(
    const mcd_cert_cache_t *cache);

/* drops every entry and frees the cache; cache may be NULL */
void mcd_cert_cache_free(mcd_cert_cache_t *cache);

/* SipHash-2-4 of p[0 .. len) under a 16-byte key: the cache's hash */
uint64_t mcd_cert_siphash(const unsigned char *key, const unsigned char *p,
    size_t len);


#endif /* MCD_CERT_H_INCLUDED_ */
