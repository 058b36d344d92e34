
/*
 * ngx_mcd: leaf certificates minted by the gateway CA, and their cache.
 *
 * The extensions are built from OpenSSL's structures directly rather
 * than from configuration strings (X509V3_EXT_conf_nid()), so that a
 * mint costs little more than the CA's signature.
 */


/* the legacy EC_KEY and RSA calls of mcd_cert_key_pub(), as nginx does */
#define OPENSSL_SUPPRESS_DEPRECATED


#include <string.h>
#include <stdlib.h>
#include <arpa/inet.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "mcd_cert.h"


#define MCD_CERT_LABEL_MAX   63
#define MCD_CERT_V6_TEXT     46              /* INET6_ADDRSTRLEN */
#define MCD_CERT_HASH_MIN    16              /* buckets, at least */


typedef struct mcd_cert_entry_s  mcd_cert_entry_t;

struct mcd_cert_entry_s {
    mcd_cert_entry_t        *hnext;          /* bucket chain */
    mcd_cert_entry_t        *prev;           /* towards most recent */
    mcd_cert_entry_t        *next;           /* towards least recent */
    X509                    *cert;
    time_t                   expires;        /* served while now < this */
    time_t                   not_after;
    uint64_t                 hash;
    size_t                   len;
    unsigned char            name[];
};


struct mcd_cert_cache_s {
    mcd_cert_entry_t       **buckets;
    size_t                   mask;
    mcd_cert_entry_t        *head;           /* most recently used */
    mcd_cert_entry_t        *tail;           /* least recently used */
    size_t                   max;
    time_t                   valid;
    time_t                   margin;
    unsigned char            key[16];        /* SipHash key */
    mcd_cert_cache_stats_t   stats;
};


static int mcd_cert_ipv4(const unsigned char *p, size_t len,
    unsigned char *out);
static int mcd_cert_ipv6(const unsigned char *p, size_t len,
    unsigned char *out);
static EVP_PKEY *mcd_cert_key_pub(EVP_PKEY *pkey, int type,
    const unsigned char *spki, int spki_len);
static int mcd_cert_label_numeric(const unsigned char *p, size_t len);
static int mcd_cert_asn1_time(const ASN1_TIME *a, time_t *t);
static int mcd_cert_add_extensions(X509 *x, const mcd_cert_ca_t *ca,
    const mcd_cert_key_t *key, int kind, const unsigned char *name,
    size_t len, const unsigned char *addr, int san_critical);
static mcd_cert_entry_t **mcd_cert_cache_find(mcd_cert_cache_t *cache,
    const unsigned char *name, size_t len, uint64_t hash);
static void mcd_cert_cache_unlink(mcd_cert_cache_t *cache,
    mcd_cert_entry_t **link);
static void mcd_cert_cache_to_front(mcd_cert_cache_t *cache,
    mcd_cert_entry_t *e);


static const struct {
    const char  *token;
    int          type;
    unsigned     bits;
    const char  *curve;
} mcd_cert_key_specs[] = {
    { "ec:P-256", MCD_CERT_KEY_EC, 256, "P-256" },
    { "ec:P-384", MCD_CERT_KEY_EC, 384, "P-384" },
    { "rsa:2048", MCD_CERT_KEY_RSA, 2048, NULL },
    { "rsa:3072", MCD_CERT_KEY_RSA, 3072, NULL },
    { "rsa:4096", MCD_CERT_KEY_RSA, 4096, NULL }
};


int
mcd_cert_key_spec_parse(const unsigned char *token, size_t len,
    mcd_cert_key_spec_t *spec, const char **err)
{
    size_t  i;

    memset(spec, 0, sizeof(mcd_cert_key_spec_t));

    for (i = 0; i < sizeof(mcd_cert_key_specs)
                    / sizeof(mcd_cert_key_specs[0]); i++)
    {
        if (len == strlen(mcd_cert_key_specs[i].token)
            && memcmp(token, mcd_cert_key_specs[i].token, len) == 0)
        {
            spec->type = mcd_cert_key_specs[i].type;
            spec->bits = mcd_cert_key_specs[i].bits;
            spec->curve = mcd_cert_key_specs[i].curve;
            return 0;
        }
    }

    *err = "unknown leaf key type (use ec:P-256, ec:P-384, rsa:2048, "
           "rsa:3072 or rsa:4096)";
    return -1;
}


int
mcd_cert_key_generate(const mcd_cert_key_spec_t *spec, mcd_cert_key_t *key,
    const char **err)
{
    int        rc;
    EVP_PKEY  *pkey;

    memset(key, 0, sizeof(mcd_cert_key_t));

    if (spec->type == MCD_CERT_KEY_EC && spec->curve != NULL) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec->curve);

    } else if (spec->type == MCD_CERT_KEY_RSA && spec->bits >= 2048) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) spec->bits);

    } else {
        *err = "invalid leaf key specification";
        return -1;
    }

    if (pkey == NULL) {
        *err = "leaf key generation failed";
        return -1;
    }

    rc = mcd_cert_key_set(key, pkey, err);

    EVP_PKEY_free(pkey);

    return rc;
}


int
mcd_cert_key_set(mcd_cert_key_t *key, EVP_PKEY *pkey, const char **err)
{
    int                   type, plen, len;
    unsigned int          mdlen;
    X509_PUBKEY          *xpk;
    unsigned char        *spki;
    const unsigned char  *pk;

    memset(key, 0, sizeof(mcd_cert_key_t));

    switch (EVP_PKEY_get_base_id(pkey)) {

    case EVP_PKEY_EC:
        type = MCD_CERT_KEY_EC;
        break;

    case EVP_PKEY_RSA:
        type = MCD_CERT_KEY_RSA;
        break;

    default:
        *err = "the leaf key is neither EC nor RSA";
        return -1;
    }

    /* RFC 5280 4.2.1.2 (1): SHA-1 of the BIT STRING subjectPublicKey */

    xpk = NULL;
    spki = NULL;

    if (X509_PUBKEY_set(&xpk, pkey) != 1
        || (len = i2d_X509_PUBKEY(xpk, &spki)) <= 0)
    {
        X509_PUBKEY_free(xpk);
        *err = "cannot encode the leaf public key";
        return -1;
    }

    if (X509_PUBKEY_get0_param(NULL, &pk, &plen, NULL, xpk) != 1
        || EVP_Digest(pk, (size_t) plen, key->ski, &mdlen, EVP_sha1(), NULL)
           != 1
        || mdlen != sizeof(key->ski))
    {
        OPENSSL_free(spki);
        X509_PUBKEY_free(xpk);
        memset(key, 0, sizeof(mcd_cert_key_t));
        *err = "cannot hash the leaf public key";
        return -1;
    }

    X509_PUBKEY_free(xpk);

    key->pub = mcd_cert_key_pub(pkey, type, spki, len);

    OPENSSL_free(spki);

    if (key->pub == NULL) {
        if (EVP_PKEY_up_ref(pkey) != 1) {
            memset(key, 0, sizeof(mcd_cert_key_t));
            *err = "EVP_PKEY_up_ref() failed";
            return -1;
        }

        key->pub = pkey;
    }

    if (EVP_PKEY_up_ref(pkey) != 1) {
        EVP_PKEY_free(key->pub);
        memset(key, 0, sizeof(mcd_cert_key_t));
        *err = "EVP_PKEY_up_ref() failed";
        return -1;
    }

    key->pkey = pkey;
    key->type = type;

    return 0;
}


/*
 * A legacy (EC_KEY or RSA) EVP_PKEY holding the public half of pkey, or
 * NULL when it cannot be made or does not encode to spki exactly.  The
 * OpenSSL error queue is left as it was.
 */

static EVP_PKEY *
mcd_cert_key_pub(EVP_PKEY *pkey, int type, const unsigned char *spki,
    int spki_len)
{
#ifdef OPENSSL_NO_DEPRECATED_3_0

    /* no legacy keys in this OpenSSL: the certificates get pkey itself */

    (void) pkey;
    (void) type;
    (void) spki;
    (void) spki_len;

    return NULL;

#else
    int             len, ok;
    RSA            *rsa, *pub_rsa;
    EC_KEY         *ec, *pub_ec;
    EVP_PKEY       *pub;
    X509_PUBKEY    *xpk;
    unsigned char  *der;

    ERR_set_mark();

    pub = EVP_PKEY_new();
    if (pub == NULL) {
        goto failed;
    }

    if (type == MCD_CERT_KEY_EC) {
        ec = EVP_PKEY_get1_EC_KEY(pkey);
        if (ec == NULL) {
            goto failed;
        }

        pub_ec = EC_KEY_new();

        ok = pub_ec != NULL
             && EC_KEY_set_group(pub_ec, EC_KEY_get0_group(ec)) == 1
             && EC_KEY_set_public_key(pub_ec, EC_KEY_get0_public_key(ec))
                == 1;

        if (ok) {
            EC_KEY_set_conv_form(pub_ec, EC_KEY_get_conv_form(ec));
        }

        EC_KEY_free(ec);

        if (!ok || EVP_PKEY_assign_EC_KEY(pub, pub_ec) != 1) {
            EC_KEY_free(pub_ec);
            goto failed;
        }

    } else {
        rsa = EVP_PKEY_get1_RSA(pkey);
        if (rsa == NULL) {
            goto failed;
        }

        pub_rsa = RSAPublicKey_dup(rsa);
        RSA_free(rsa);

        if (pub_rsa == NULL || EVP_PKEY_assign_RSA(pub, pub_rsa) != 1) {
            RSA_free(pub_rsa);
            goto failed;
        }
    }

    /* it must encode to the very same SubjectPublicKeyInfo */

    xpk = NULL;
    der = NULL;

    ok = X509_PUBKEY_set(&xpk, pub) == 1
         && (len = i2d_X509_PUBKEY(xpk, &der)) == spki_len
         && memcmp(der, spki, (size_t) len) == 0
         && EVP_PKEY_eq(pub, pkey) == 1;

    OPENSSL_free(der);
    X509_PUBKEY_free(xpk);

    if (!ok) {
        goto failed;
    }

    ERR_pop_to_mark();

    return pub;

failed:

    EVP_PKEY_free(pub);
    ERR_pop_to_mark();

    return NULL;

#endif
}


void
mcd_cert_key_free(mcd_cert_key_t *key)
{
    EVP_PKEY_free(key->pkey);
    EVP_PKEY_free(key->pub);
    memset(key, 0, sizeof(mcd_cert_key_t));
}


int
mcd_cert_ca_init(mcd_cert_ca_t *ca, X509 *cert, EVP_PKEY *pkey,
    const char **err)
{
    unsigned int              mdlen;
    unsigned char             md[EVP_MAX_MD_SIZE];
    const ASN1_OCTET_STRING  *skid;

    memset(ca, 0, sizeof(mcd_cert_ca_t));

    switch (EVP_PKEY_get_base_id(pkey)) {

    case EVP_PKEY_EC:
    case EVP_PKEY_RSA:
        break;

    default:
        *err = "the CA key is neither EC nor RSA";
        return -1;
    }

    if (X509_check_private_key(cert, pkey) != 1) {
        *err = "the CA key does not match the CA certificate";
        return -1;
    }

    if (X509_check_ca(cert) == 0) {
        *err = "the CA certificate is not a CA "
               "(no basicConstraints CA:TRUE or keyCertSign)";
        return -1;
    }

    if (mcd_cert_asn1_time(X509_get0_notBefore(cert), &ca->not_before) != 0
        || mcd_cert_asn1_time(X509_get0_notAfter(cert), &ca->not_after) != 0)
    {
        *err = "cannot read the CA certificate's validity";
        return -1;
    }

    skid = X509_get0_subject_key_id(cert);

    if (skid != NULL) {
        ca->keyid = ASN1_OCTET_STRING_dup(skid);

    } else {
        /* no SKI: the identifier the CA would have had (method 1) */

        if (X509_pubkey_digest(cert, EVP_sha1(), md, &mdlen) != 1) {
            *err = "cannot hash the CA public key";
            return -1;
        }

        ca->keyid = ASN1_OCTET_STRING_new();

        if (ca->keyid != NULL
            && ASN1_OCTET_STRING_set(ca->keyid, md, (int) mdlen) != 1)
        {
            ASN1_OCTET_STRING_free(ca->keyid);
            ca->keyid = NULL;
        }
    }

    if (ca->keyid == NULL) {
        *err = "cannot copy the CA key identifier";
        return -1;
    }

    if (X509_up_ref(cert) != 1) {
        ASN1_OCTET_STRING_free(ca->keyid);
        memset(ca, 0, sizeof(mcd_cert_ca_t));
        *err = "X509_up_ref() failed";
        return -1;
    }

    if (EVP_PKEY_up_ref(pkey) != 1) {
        X509_free(cert);
        ASN1_OCTET_STRING_free(ca->keyid);
        memset(ca, 0, sizeof(mcd_cert_ca_t));
        *err = "EVP_PKEY_up_ref() failed";
        return -1;
    }

    ca->cert = cert;
    ca->pkey = pkey;

    return 0;
}


void
mcd_cert_ca_free(mcd_cert_ca_t *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->pkey);
    ASN1_OCTET_STRING_free(ca->keyid);
    memset(ca, 0, sizeof(mcd_cert_ca_t));
}


int
mcd_cert_name_check(const unsigned char *name, size_t len,
    unsigned char addr[16], const char **err)
{
    size_t         i, label, last;
    unsigned char  c, buf[16];

    if (addr == NULL) {
        addr = buf;
    }

    if (name == NULL || len == 0) {
        *err = "empty name";
        return -1;
    }

    if (len > MCD_CERT_NAME_MAX) {
        *err = "name longer than 253 bytes";
        return -1;
    }

    if (memchr(name, ':', len) != NULL) {
        if (mcd_cert_ipv6(name, len, addr) != 0) {
            *err = "not an IPv6 address in canonical form";
            return -1;
        }

        return MCD_CERT_NAME_IPV6;
    }

    label = 0;
    last = 0;

    for (i = 0; i < len; i++) {
        c = name[i];

        if (c == '.') {
            if (i == label) {
                *err = "empty label in name";
                return -1;
            }

            label = i + 1;
            continue;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_'))
        {
            *err = "invalid character in name";
            return -1;
        }

        if (i - label >= MCD_CERT_LABEL_MAX) {
            *err = "label longer than 63 bytes in name";
            return -1;
        }

        last = label;
    }

    if (label == len) {
        *err = "empty label in name";
        return -1;
    }

    if (mcd_cert_label_numeric(name + last, len - last)) {
        if (mcd_cert_ipv4(name, len, addr) != 0) {
            *err = "numeric name that is not an IPv4 address";
            return -1;
        }

        return MCD_CERT_NAME_IPV4;
    }

    return MCD_CERT_NAME_DNS;
}


static int
mcd_cert_label_numeric(const unsigned char *p, size_t len)
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


/* a strict dotted quad: four decimal octets 0-255 without leading zeros */

static int
mcd_cert_ipv4(const unsigned char *p, size_t len, unsigned char *out)
{
    size_t    i, n, octet, digits;
    unsigned  v;

    i = 0;

    for (octet = 0; octet < 4; octet++) {

        if (octet > 0) {
            if (i == len || p[i] != '.') {
                return -1;
            }

            i++;
        }

        v = 0;
        digits = 0;

        for (n = i; n < len && p[n] >= '0' && p[n] <= '9'; n++) {
            if (++digits > 3) {
                return -1;
            }

            v = v * 10 + (p[n] - '0');
        }

        if (digits == 0 || v > 255 || (digits > 1 && p[i] == '0')) {
            return -1;
        }

        out[octet] = (unsigned char) v;
        i = n;
    }

    return i == len ? 0 : -1;
}


/* an IPv6 address exactly as inet_ntop() prints it */

static int
mcd_cert_ipv6(const unsigned char *p, size_t len, unsigned char *out)
{
    size_t  i;
    char    text[MCD_CERT_V6_TEXT], back[MCD_CERT_V6_TEXT];

    if (len >= MCD_CERT_V6_TEXT) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')
              || p[i] == ':' || p[i] == '.'))
        {
            return -1;
        }
    }

    memcpy(text, p, len);
    text[len] = '\0';

    if (inet_pton(AF_INET6, text, out) != 1
        || inet_ntop(AF_INET6, out, back, sizeof(back)) == NULL
        || strcmp(text, back) != 0)
    {
        return -1;
    }

    return 0;
}


X509 *
mcd_cert_mint(const mcd_cert_ca_t *ca, const mcd_cert_key_t *key,
    const unsigned char *name, size_t len, time_t now, time_t lifetime,
    const char **err)
{
    int            kind, san_critical;
    X509          *x;
    time_t         not_before, not_after;
    unsigned char  addr[16], serial[MCD_CERT_SERIAL_LEN];

    kind = mcd_cert_name_check(name, len, addr, err);
    if (kind < 0) {
        return NULL;
    }

    if (ca->cert == NULL || ca->pkey == NULL || key->pub == NULL) {
        *err = "no CA or no leaf key";
        return NULL;
    }

    if (lifetime <= 0 || lifetime > MCD_CERT_MAX_LIFETIME) {
        lifetime = MCD_CERT_MAX_LIFETIME;
    }

    if (now < ca->not_before) {
        *err = "the CA certificate is not yet valid";
        return NULL;
    }

    if (now >= ca->not_after) {
        *err = "the CA certificate has expired";
        return NULL;
    }

    not_before = now - MCD_CERT_BACKDATE;
    if (not_before < ca->not_before) {
        not_before = ca->not_before;
    }

    not_after = now + lifetime;
    if (not_after > ca->not_after) {
        not_after = ca->not_after;
    }

    /* positive, exactly 127 bits: never zero, never a leading 0x00 */

    if (RAND_bytes(serial, sizeof(serial)) != 1) {
        *err = "RAND_bytes() failed";
        return NULL;
    }

    serial[0] = (serial[0] & 0x7f) | 0x40;

    x = X509_new();
    if (x == NULL) {
        *err = "X509_new() failed";
        return NULL;
    }

    *err = "cannot build the certificate";

    if (X509_set_version(x, X509_VERSION_3) != 1
        || ASN1_STRING_set(X509_get_serialNumber(x), serial, sizeof(serial))
           != 1
        || X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1
        || ASN1_TIME_set(X509_getm_notBefore(x), not_before) == NULL
        || ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL
        || X509_set_pubkey(x, key->pub) != 1)
    {
        goto failed;
    }

    san_critical = 1;

    if (len <= MCD_CERT_CN_MAX) {
        if (X509_NAME_add_entry_by_NID(X509_get_subject_name(x),
                                       NID_commonName, MBSTRING_ASC,
                                       name, (int) len,
                                       -1, 0)
            != 1)
        {
            goto failed;
        }

        san_critical = 0;
    }

    if (mcd_cert_add_extensions(x, ca, key, kind, name, len, addr,
                                san_critical)
        != 0)
    {
        goto failed;
    }

    if (X509_sign(x, ca->pkey, EVP_sha256()) <= 0) {
        *err = "cannot sign the certificate";
        goto failed;
    }

    *err = NULL;

    return x;

failed:

    X509_free(x);
    return NULL;
}


static int
mcd_cert_add_extensions(X509 *x, const mcd_cert_ca_t *ca,
    const mcd_cert_key_t *key, int kind, const unsigned char *name,
    size_t len, const unsigned char *addr, int san_critical)
{
    int                  rc;
    GENERAL_NAME        *gen;
    GENERAL_NAMES       *gens;
    ASN1_BIT_STRING     *ku;
    AUTHORITY_KEYID     *akid;
    ASN1_IA5STRING      *dns;
    ASN1_OCTET_STRING   *os;
    BASIC_CONSTRAINTS   *bc;
    EXTENDED_KEY_USAGE  *eku;

    /* basicConstraints: critical, CA:FALSE (the empty SEQUENCE) */

    bc = BASIC_CONSTRAINTS_new();
    if (bc == NULL) {
        return -1;
    }

    bc->ca = 0;
    rc = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1,
                           X509V3_ADD_DEFAULT);
    BASIC_CONSTRAINTS_free(bc);

    if (rc != 1) {
        return -1;
    }

    /* keyUsage: critical, digitalSignature (+ keyEncipherment for RSA) */

    ku = ASN1_BIT_STRING_new();
    if (ku == NULL) {
        return -1;
    }

    rc = ASN1_BIT_STRING_set_bit(ku, 0, 1);

    if (rc == 1 && key->type == MCD_CERT_KEY_RSA) {
        rc = ASN1_BIT_STRING_set_bit(ku, 2, 1);
    }

    if (rc == 1) {
        rc = X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT);
    }

    ASN1_BIT_STRING_free(ku);

    if (rc != 1) {
        return -1;
    }

    /* extendedKeyUsage: serverAuth */

    eku = sk_ASN1_OBJECT_new_null();
    if (eku == NULL) {
        return -1;
    }

    rc = sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) > 0
         ? X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0,
                             X509V3_ADD_DEFAULT)
         : 0;

    /* the object is OpenSSL's static one: free the stack only */
    sk_ASN1_OBJECT_free(eku);

    if (rc != 1) {
        return -1;
    }

    /* subjectAltName: the one name */

    gens = sk_GENERAL_NAME_new_null();
    if (gens == NULL) {
        return -1;
    }

    rc = 0;
    gen = GENERAL_NAME_new();

    if (gen != NULL) {
        if (kind == MCD_CERT_NAME_DNS) {
            dns = ASN1_IA5STRING_new();

            if (dns != NULL && ASN1_STRING_set(dns, name, (int) len) == 1) {
                GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
                rc = 1;

            } else {
                ASN1_IA5STRING_free(dns);
            }

        } else {
            os = ASN1_OCTET_STRING_new();

            if (os != NULL
                && ASN1_OCTET_STRING_set(os, addr,
                                         kind == MCD_CERT_NAME_IPV4 ? 4 : 16)
                   == 1)
            {
                GENERAL_NAME_set0_value(gen, GEN_IPADD, os);
                rc = 1;

            } else {
                ASN1_OCTET_STRING_free(os);
            }
        }

        if (rc == 1 && sk_GENERAL_NAME_push(gens, gen) <= 0) {
            rc = 0;
        }

        if (rc != 1) {
            GENERAL_NAME_free(gen);
        }
    }

    if (rc == 1) {
        rc = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, san_critical,
                               X509V3_ADD_DEFAULT);
    }

    GENERAL_NAMES_free(gens);

    if (rc != 1) {
        return -1;
    }

    /* subjectKeyIdentifier */

    os = ASN1_OCTET_STRING_new();
    if (os == NULL) {
        return -1;
    }

    rc = ASN1_OCTET_STRING_set(os, key->ski, sizeof(key->ski));

    if (rc == 1) {
        rc = X509_add1_ext_i2d(x, NID_subject_key_identifier, os, 0,
                               X509V3_ADD_DEFAULT);
    }

    ASN1_OCTET_STRING_free(os);

    if (rc != 1) {
        return -1;
    }

    /* authorityKeyIdentifier: keyIdentifier only, the CA's */

    akid = AUTHORITY_KEYID_new();
    if (akid == NULL) {
        return -1;
    }

    akid->keyid = ca->keyid;
    rc = X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
                           X509V3_ADD_DEFAULT);
    akid->keyid = NULL;
    AUTHORITY_KEYID_free(akid);

    return rc == 1 ? 0 : -1;
}


int
mcd_cert_not_after(const X509 *cert, time_t *t)
{
    return mcd_cert_asn1_time(X509_get0_notAfter(cert), t);
}


/* the civil date in an ASN1_TIME as seconds since the epoch, UTC */

static int
mcd_cert_asn1_time(const ASN1_TIME *a, time_t *t)
{
    int64_t    y, era, yoe, doy, doe, days;
    unsigned   m;
    struct tm  tm;

    if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1) {
        return -1;
    }

    /* days since 1970-01-01 in the proleptic Gregorian calendar */

    y = (int64_t) tm.tm_year + 1900;
    m = (unsigned) tm.tm_mon + 1;

    if (m <= 2) {
        y--;
    }

    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + tm.tm_mday - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    *t = (time_t) (days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60
                   + tm.tm_sec);

    return 0;
}


/* the cache */


mcd_cert_cache_t *
mcd_cert_cache_create(size_t max, time_t valid, time_t margin,
    const char **err)
{
    size_t             n;
    mcd_cert_cache_t  *cache;

    if (max > ((size_t) -1 >> 4) / sizeof(mcd_cert_entry_t *)) {
        *err = "cache too large";
        return NULL;
    }

    for (n = MCD_CERT_HASH_MIN; n < max; n <<= 1) {
        /* void */
    }

    cache = calloc(1, sizeof(mcd_cert_cache_t));
    if (cache == NULL) {
        *err = "out of memory";
        return NULL;
    }

    cache->buckets = calloc(n, sizeof(mcd_cert_entry_t *));
    if (cache->buckets == NULL) {
        free(cache);
        *err = "out of memory";
        return NULL;
    }

    if (RAND_bytes(cache->key, sizeof(cache->key)) != 1) {
        free(cache->buckets);
        free(cache);
        *err = "RAND_bytes() failed";
        return NULL;
    }

    cache->mask = n - 1;
    cache->max = max;
    cache->valid = valid > 0 ? valid : 0;
    cache->margin = margin >= 0 ? margin : MCD_CERT_CACHE_MARGIN;

    return cache;
}


X509 *
mcd_cert_cache_lookup(mcd_cert_cache_t *cache, const unsigned char *name,
    size_t len, time_t now, time_t *not_after)
{
    uint64_t           hash;
    mcd_cert_entry_t  *e, **link;

    hash = mcd_cert_siphash(cache->key, name, len);
    link = mcd_cert_cache_find(cache, name, len, hash);

    if (link == NULL) {
        cache->stats.misses++;
        return NULL;
    }

    e = *link;

    if (now >= e->expires || X509_up_ref(e->cert) != 1) {
        mcd_cert_cache_unlink(cache, link);
        cache->stats.expired++;
        cache->stats.misses++;
        return NULL;
    }

    mcd_cert_cache_to_front(cache, e);
    cache->stats.hits++;

    if (not_after != NULL) {
        *not_after = e->not_after;
    }

    return e->cert;
}


int
mcd_cert_cache_insert(mcd_cert_cache_t *cache, const unsigned char *name,
    size_t len, X509 *cert, time_t now, const char **err)
{
    time_t             not_after, expires;
    uint64_t           hash;
    mcd_cert_entry_t  *e, **link;

    if (mcd_cert_not_after(cert, &not_after) != 0) {
        *err = "cannot read the certificate's notAfter";
        return -1;
    }

    expires = not_after - cache->margin;

    if (cache->valid > 0 && now + cache->valid < expires) {
        expires = now + cache->valid;
    }

    hash = mcd_cert_siphash(cache->key, name, len);
    link = mcd_cert_cache_find(cache, name, len, hash);

    if (expires <= now || cache->max == 0) {
        /* an older entry of that name is no better */

        if (link != NULL) {
            mcd_cert_cache_unlink(cache, link);
        }

        return 0;
    }

    if (X509_up_ref(cert) != 1) {
        *err = "X509_up_ref() failed";
        return -1;
    }

    if (link != NULL) {
        e = *link;
        X509_free(e->cert);

    } else {
        e = malloc(sizeof(mcd_cert_entry_t) + len);
        if (e == NULL) {
            X509_free(cert);
            *err = "out of memory";
            return -1;
        }

        if (cache->stats.entries == cache->max) {
            for (link = &cache->buckets[cache->tail->hash & cache->mask];
                 *link != cache->tail;
                 link = &(*link)->hnext)
            {
                /* void */
            }

            mcd_cert_cache_unlink(cache, link);
            cache->stats.evictions++;
        }

        e->hash = hash;
        e->len = len;
        memcpy(e->name, name, len);

        e->hnext = cache->buckets[hash & cache->mask];
        cache->buckets[hash & cache->mask] = e;

        e->prev = NULL;
        e->next = cache->head;

        if (cache->head != NULL) {
            cache->head->prev = e;

        } else {
            cache->tail = e;
        }

        cache->head = e;
        cache->stats.entries++;
    }

    e->cert = cert;
    e->expires = expires;
    e->not_after = not_after;

    mcd_cert_cache_to_front(cache, e);

    return 1;
}


X509 *
mcd_cert_cache_get(mcd_cert_cache_t *cache, const mcd_cert_ca_t *ca,
    const mcd_cert_key_t *key, const unsigned char *name, size_t len,
    time_t now, time_t lifetime, int *minted, const char **err)
{
    X509  *x;

    *minted = 0;

    if (mcd_cert_name_check(name, len, NULL, err) < 0) {
        return NULL;
    }

    x = mcd_cert_cache_lookup(cache, name, len, now, NULL);
    if (x != NULL) {
        return x;
    }

    x = mcd_cert_mint(ca, key, name, len, now, lifetime, err);
    if (x == NULL) {
        return NULL;
    }

    *minted = 1;
    cache->stats.minted++;

    /* a certificate that cannot be cached is still good for this one */

    (void) mcd_cert_cache_insert(cache, name, len, x, now, err);

    *err = NULL;

    return x;
}


const mcd_cert_cache_stats_t *
mcd_cert_cache_stats(const mcd_cert_cache_t *cache)
{
    return &cache->stats;
}


void
mcd_cert_cache_free(mcd_cert_cache_t *cache)
{
    mcd_cert_entry_t  *e, *next;

    if (cache == NULL) {
        return;
    }

    for (e = cache->head; e != NULL; e = next) {
        next = e->next;
        X509_free(e->cert);
        free(e);
    }

    free(cache->buckets);
    OPENSSL_cleanse(cache->key, sizeof(cache->key));
    free(cache);
}


static mcd_cert_entry_t **
mcd_cert_cache_find(mcd_cert_cache_t *cache, const unsigned char *name,
    size_t len, uint64_t hash)
{
    mcd_cert_entry_t  **link;

    for (link = &cache->buckets[hash & cache->mask];
         *link != NULL;
         link = &(*link)->hnext)
    {
        if ((*link)->hash == hash && (*link)->len == len
            && memcmp((*link)->name, name, len) == 0)
        {
            return link;
        }
    }

    return NULL;
}


/* removes the entry *link points to from its bucket and the list, frees it */

static void
mcd_cert_cache_unlink(mcd_cert_cache_t *cache, mcd_cert_entry_t **link)
{
    mcd_cert_entry_t  *e;

    e = *link;
    *link = e->hnext;

    if (e->prev != NULL) {
        e->prev->next = e->next;

    } else {
        cache->head = e->next;
    }

    if (e->next != NULL) {
        e->next->prev = e->prev;

    } else {
        cache->tail = e->prev;
    }

    cache->stats.entries--;

    X509_free(e->cert);
    free(e);
}


static void
mcd_cert_cache_to_front(mcd_cert_cache_t *cache, mcd_cert_entry_t *e)
{
    if (cache->head == e) {
        return;
    }

    e->prev->next = e->next;

    if (e->next != NULL) {
        e->next->prev = e->prev;

    } else {
        cache->tail = e->prev;
    }

    e->prev = NULL;
    e->next = cache->head;
    cache->head->prev = e;
    cache->head = e;
}


/* SipHash-2-4 (Aumasson and Bernstein), 128-bit key, 64-bit result */

#define MCD_ROTL(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define MCD_SIPROUND                                                         \
    do {                                                                     \
        v0 += v1; v1 = MCD_ROTL(v1, 13); v1 ^= v0; v0 = MCD_ROTL(v0, 32);    \
        v2 += v3; v3 = MCD_ROTL(v3, 16); v3 ^= v2;                           \
        v0 += v3; v3 = MCD_ROTL(v3, 21); v3 ^= v0;                           \
        v2 += v1; v1 = MCD_ROTL(v1, 17); v1 ^= v2; v2 = MCD_ROTL(v2, 32);    \
    } while (0)


static uint64_t
mcd_cert_le64(const unsigned char *p)
{
    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40 | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
}


uint64_t
mcd_cert_siphash(const unsigned char *key, const unsigned char *p,
    size_t len)
{
    size_t    i, tail;
    uint64_t  k0, k1, v0, v1, v2, v3, m, b;

    k0 = mcd_cert_le64(key);
    k1 = mcd_cert_le64(key + 8);

    v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    v3 = k1 ^ UINT64_C(0x7465646279746573);

    tail = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        m = mcd_cert_le64(p + i);
        v3 ^= m;
        MCD_SIPROUND;
        MCD_SIPROUND;
        v0 ^= m;
    }

    b = (uint64_t) len << 56;

    while (tail > 0) {
        tail--;
        b |= (uint64_t) p[i + tail] << (8 * tail);
    }

    v3 ^= b;
    MCD_SIPROUND;
    MCD_SIPROUND;
    v0 ^= b;

    v2 ^= 0xff;
    MCD_SIPROUND;
    MCD_SIPROUND;
    MCD_SIPROUND;
    MCD_SIPROUND;

    return v0 ^ v1 ^ v2 ^ v3;
}
