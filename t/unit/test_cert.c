
/*
 * Unit tests for src/mcd_cert.c.
 *
 * cc -std=c99 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Isrc \
 *     src/mcd_cert.c t/unit/test_cert.c -lssl -lcrypto -o /tmp/test_cert
 *
 * The CAs are generated here with OpenSSL's API.  With TEST_MCD_CERT_DUMP
 * set to a directory, the EC CA and a few minted leaves are written there
 * as PEM (ca.pem, leaf-dns.pem with its EC key leaf-key.pem, leaf-ip.pem,
 * leaf-rsa.pem, leaf-long.pem) for a look with the openssl command line
 * tool and real clients.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/core_names.h>
#include <openssl/x509v3.h>

#include "mcd_cert.h"


#define DAY        86400
#define NSERIALS   1000


static unsigned  checks;
static unsigned  failed;


#define CHECK(cond, what)                                                    \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failed++;                                                        \
            fprintf(stderr, "test_cert: %s:%d: %s: %s\n",                    \
                    __FILE__, __LINE__, what, #cond);                        \
        }                                                                    \
    } while (0)


#define U(s)  (const unsigned char *) (s), strlen(s)


typedef struct {
    EVP_PKEY       *key;
    X509           *cert;
    mcd_cert_ca_t   ca;
} test_ca_t;


static time_t    t_now;
static EVP_PKEY *t_ec_key;          /* for every EC CA */
static EVP_PKEY *t_rsa_key;         /* for every RSA CA */


/* an ASN1_TIME as a time_t, computed independently of mcd_cert.c */

static time_t
asn1_time(const ASN1_TIME *a)
{
    int         day, sec;
    ASN1_TIME  *epoch;

    epoch = ASN1_TIME_set(NULL, 0);
    if (epoch == NULL || ASN1_TIME_diff(&day, &sec, epoch, a) != 1) {
        ASN1_TIME_free(epoch);
        return (time_t) -1;
    }

    ASN1_TIME_free(epoch);

    return (time_t) day * DAY + sec;
}


static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    int              rc;
    X509V3_CTX       ctx;
    X509_EXTENSION  *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);

    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        return 0;
    }

    rc = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);

    return rc;
}


/*
 * A CA certificate "CN=cn" for key, valid [nb, na), self-signed or signed
 * by issuer/issuer_key; with a subjectKeyIdentifier when ski.
 */

static X509 *
make_ca_cert(const char *cn, EVP_PKEY *key, time_t nb, time_t na, int ski,
    X509 *issuer, EVP_PKEY *issuer_key)
{
    X509           *x;
    X509_NAME      *name;
    unsigned char   serial[8];

    x = X509_new();
    name = X509_NAME_new();

    if (x == NULL || name == NULL) {
        goto failed;
    }

    if (RAND_bytes(serial, sizeof(serial)) != 1) {
        goto failed;
    }

    serial[0] = (serial[0] & 0x7f) | 0x01;

    if (X509_set_version(x, X509_VERSION_3) != 1
        || ASN1_STRING_set(X509_get_serialNumber(x), serial, sizeof(serial))
           != 1
        || X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                      (const unsigned char *) "mcd test",
                                      -1, -1, 0) != 1
        || X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                      (const unsigned char *) cn,
                                      -1, -1, 0) != 1
        || X509_set_subject_name(x, name) != 1
        || X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                          : name) != 1
        || ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL
        || ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL
        || X509_set_pubkey(x, key) != 1)
    {
        goto failed;
    }

    if (add_ext(x, issuer ? issuer : x, NID_basic_constraints,
                "critical,CA:TRUE") != 1
        || add_ext(x, issuer ? issuer : x, NID_key_usage,
                   "critical,keyCertSign,cRLSign") != 1)
    {
        goto failed;
    }

    if (ski && add_ext(x, issuer ? issuer : x, NID_subject_key_identifier,
                       "hash") != 1)
    {
        goto failed;
    }

    if (issuer != NULL
        && add_ext(x, issuer, NID_authority_key_identifier, "keyid:always")
           != 1)
    {
        goto failed;
    }

    if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        goto failed;
    }

    X509_NAME_free(name);
    return x;

failed:

    ERR_print_errors_fp(stderr);
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}


static int
make_ca(test_ca_t *t, const char *cn, EVP_PKEY *key, time_t nb, time_t na,
    int ski)
{
    const char  *err;

    memset(t, 0, sizeof(test_ca_t));

    t->cert = make_ca_cert(cn, key, nb, na, ski, NULL, NULL);
    if (t->cert == NULL) {
        return -1;
    }

    t->key = key;

    if (mcd_cert_ca_init(&t->ca, t->cert, key, &err) != 0) {
        fprintf(stderr, "test_cert: mcd_cert_ca_init: %s\n", err);
        return -1;
    }

    return 0;
}


static void
free_ca(test_ca_t *t)
{
    mcd_cert_ca_free(&t->ca);
    X509_free(t->cert);
    memset(t, 0, sizeof(test_ca_t));
}


static void
dump(const char *file, X509 *x)
{
    char        path[1024];
    FILE       *f;
    const char *dir;

    dir = getenv("TEST_MCD_CERT_DUMP");
    if (dir == NULL || x == NULL) {
        return;
    }

    snprintf(path, sizeof(path), "%s/%s", dir, file);

    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return;
    }

    PEM_write_X509(f, x);
    fclose(f);
}


static void
dump_key(const char *file, EVP_PKEY *key)
{
    char        path[1024];
    FILE       *f;
    const char *dir;

    dir = getenv("TEST_MCD_CERT_DUMP");
    if (dir == NULL || key == NULL) {
        return;
    }

    snprintf(path, sizeof(path), "%s/%s", dir, file);

    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return;
    }

    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}


/*
 * The whole chain check: an X509_STORE holding root (plus the untrusted
 * intermediate, if any), strict RFC 5280 checks, the TLS server purpose,
 * at time `at`, with the host name or IP address `host`.  Returns the
 * X509_V_* result.
 */

static int verify_chain_flags(X509 *leaf, X509 *root, X509 *intermediate,
    const char *host, time_t at, unsigned long flags);


static int
verify_chain(X509 *leaf, X509 *root, X509 *intermediate, const char *host,
    time_t at)
{
    return verify_chain_flags(leaf, root, intermediate, host, at,
                              X509_V_FLAG_X509_STRICT);
}


static int
verify_chain_flags(X509 *leaf, X509 *root, X509 *intermediate,
    const char *host, time_t at, unsigned long flags)
{
    int                  rc, kind;
    X509_STORE          *store;
    X509_STORE_CTX      *ctx;
    STACK_OF(X509)      *chain;
    X509_VERIFY_PARAM   *param;
    unsigned char        addr[16];
    const char          *err;

    store = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    chain = sk_X509_new_null();

    if (store == NULL || ctx == NULL || chain == NULL
        || X509_STORE_add_cert(store, root) != 1
        || (intermediate != NULL && sk_X509_push(chain, intermediate) <= 0)
        || X509_STORE_CTX_init(ctx, store, leaf, chain) != 1)
    {
        rc = -1;
        goto done;
    }

    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, at);
    X509_VERIFY_PARAM_set_flags(param, flags);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);

    if (host != NULL) {
        kind = mcd_cert_name_check(U(host), addr, &err);

        if (kind == MCD_CERT_NAME_DNS || kind < 0) {
            X509_VERIFY_PARAM_set1_host(param, host, strlen(host));

        } else {
            X509_VERIFY_PARAM_set1_ip(param, addr,
                                      kind == MCD_CERT_NAME_IPV4 ? 4 : 16);
        }
    }

    rc = X509_verify_cert(ctx) == 1 ? X509_V_OK
                                    : X509_STORE_CTX_get_error(ctx);

done:

    sk_X509_free(chain);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();

    return rc;
}


/* what a leaf is expected to be */

typedef struct {
    const char  *name;
    int          kind;               /* MCD_CERT_NAME_* */
    int          rsa_leaf;
    int          rsa_ca;
    int          lax;                /* CA without SKI: not X509_STRICT */
    time_t       not_before;
    time_t       not_after;
} want_t;


static void
check_leaf(X509 *x, test_ca_t *ca, const mcd_cert_key_t *key,
    const want_t *w)
{
    int                        crit, n, i;
    char                       cn[256];
    BIGNUM                    *bn;
    time_t                     t;
    unsigned int               mdlen;
    unsigned char              addr[16], md[EVP_MAX_MD_SIZE];
    X509_NAME                 *subject;
    GENERAL_NAME              *gen;
    GENERAL_NAMES             *gens;
    ASN1_BIT_STRING           *ku;
    BASIC_CONSTRAINTS         *bc;
    EXTENDED_KEY_USAGE        *eku;
    const ASN1_INTEGER        *serial;
    const ASN1_OCTET_STRING   *ski, *aki, *ca_ski;
    unsigned char             *der1, *der2;
    int                        len1, len2;

    CHECK(x != NULL, w->name);
    if (x == NULL) {
        return;
    }

    /* version */

    CHECK(X509_get_version(x) == X509_VERSION_3, "version v3");

    /* serial: positive, 16 bytes, 127 bits */

    serial = X509_get0_serialNumber(x);
    CHECK(ASN1_STRING_type(serial) == V_ASN1_INTEGER, "serial positive");
    CHECK(ASN1_STRING_length(serial) == MCD_CERT_SERIAL_LEN,
          "serial 16 bytes");
    CHECK((ASN1_STRING_get0_data(serial)[0] & 0xc0) == 0x40,
          "serial top bits 01");

    bn = ASN1_INTEGER_to_BN(serial, NULL);
    CHECK(bn != NULL && BN_num_bits(bn) == 127, "serial 127 bits");
    CHECK(bn != NULL && !BN_is_negative(bn) && !BN_is_zero(bn),
          "serial > 0");
    BN_free(bn);

    /* issuer: the CA's subject, byte for byte */

    CHECK(X509_NAME_cmp(X509_get_issuer_name(x),
                        X509_get_subject_name(ca->cert)) == 0,
          "issuer = CA subject");

    der1 = NULL;
    der2 = NULL;
    len1 = i2d_X509_NAME(X509_get_issuer_name(x), &der1);
    len2 = i2d_X509_NAME(X509_get_subject_name(ca->cert), &der2);
    CHECK(len1 > 0 && len1 == len2 && memcmp(der1, der2, len1) == 0,
          "issuer DER = CA subject DER");
    OPENSSL_free(der1);
    OPENSSL_free(der2);

    /* subject: CN = name when it fits, else empty */

    subject = X509_get_subject_name(x);

    if (strlen(w->name) <= MCD_CERT_CN_MAX) {
        CHECK(X509_NAME_entry_count(subject) == 1, "subject has one RDN");
        n = X509_NAME_get_text_by_NID(subject, NID_commonName, cn,
                                      sizeof(cn));
        CHECK(n == (int) strlen(w->name) && strcmp(cn, w->name) == 0,
              "CN = name");

    } else {
        CHECK(X509_NAME_entry_count(subject) == 0, "empty subject");
    }

    /* SAN: exactly the name */

    gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    CHECK(gens != NULL && sk_GENERAL_NAME_num(gens) == 1, "one SAN");
    CHECK(crit == (strlen(w->name) > MCD_CERT_CN_MAX),
          "SAN critical only with an empty subject");

    if (gens != NULL && sk_GENERAL_NAME_num(gens) == 1) {
        gen = sk_GENERAL_NAME_value(gens, 0);

        if (w->kind == MCD_CERT_NAME_DNS) {
            CHECK(gen->type == GEN_DNS, "SAN is a dNSName");
            CHECK(gen->type == GEN_DNS
                  && ASN1_STRING_length(gen->d.dNSName)
                     == (int) strlen(w->name)
                  && memcmp(ASN1_STRING_get0_data(gen->d.dNSName), w->name,
                            strlen(w->name)) == 0,
                  "dNSName = name");

        } else {
            n = w->kind == MCD_CERT_NAME_IPV4 ? 4 : 16;
            CHECK(inet_pton(n == 4 ? AF_INET : AF_INET6, w->name, addr)
                  == 1, "test IP");
            CHECK(gen->type == GEN_IPADD, "SAN is an iPAddress");
            CHECK(gen->type == GEN_IPADD
                  && ASN1_STRING_length(gen->d.iPAddress) == n
                  && memcmp(ASN1_STRING_get0_data(gen->d.iPAddress), addr,
                            n) == 0,
                  "iPAddress = name");
        }
    }

    GENERAL_NAMES_free(gens);

    /* validity */

    t = asn1_time(X509_get0_notBefore(x));
    CHECK(t == w->not_before, "notBefore");
    if (t != w->not_before) {
        fprintf(stderr, "  notBefore %lld, want %lld\n", (long long) t,
                (long long) w->not_before);
    }

    t = asn1_time(X509_get0_notAfter(x));
    CHECK(t == w->not_after, "notAfter");
    if (t != w->not_after) {
        fprintf(stderr, "  notAfter %lld, want %lld\n", (long long) t,
                (long long) w->not_after);
    }

    CHECK(mcd_cert_not_after(x, &t) == 0 && t == w->not_after,
          "mcd_cert_not_after");

    /* the public key is the leaf key */

    CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), key->pkey) == 1, "public key");

    /* SKI: SHA-1 of the subjectPublicKey */

    ski = X509_get0_subject_key_id(x);
    CHECK(X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) == 1, "digest");
    CHECK(ski != NULL && ASN1_STRING_length(ski) == (int) mdlen
          && memcmp(ASN1_STRING_get0_data(ski), md, mdlen) == 0,
          "SKI = SHA-1 of the key");

    /* AKI: the CA's SKI (or the SHA-1 of its key), nothing else */

    aki = X509_get0_authority_key_id(x);
    ca_ski = X509_get0_subject_key_id(ca->cert);

    if (ca_ski != NULL) {
        CHECK(aki != NULL && ASN1_OCTET_STRING_cmp(aki, ca_ski) == 0,
              "AKI = CA SKI");

    } else {
        CHECK(X509_pubkey_digest(ca->cert, EVP_sha1(), md, &mdlen) == 1,
              "CA digest");
        CHECK(aki != NULL && ASN1_STRING_length(aki) == (int) mdlen
              && memcmp(ASN1_STRING_get0_data(aki), md, mdlen) == 0,
              "AKI = SHA-1 of the CA key");
    }

    CHECK(X509_get0_authority_issuer(x) == NULL
          && X509_get0_authority_serial(x) == NULL,
          "AKI has the key identifier only");
    CHECK(X509_check_issued(ca->cert, x) == X509_V_OK, "X509_check_issued");

    /* basicConstraints: critical, CA:FALSE */

    bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    CHECK(bc != NULL && crit == 1, "basicConstraints critical");
    CHECK(bc != NULL && bc->ca == 0 && bc->pathlen == NULL, "CA:FALSE");
    BASIC_CONSTRAINTS_free(bc);
    CHECK(X509_check_ca(x) == 0, "not a CA");
    CHECK((X509_get_extension_flags(x) & EXFLAG_CA) == 0, "no EXFLAG_CA");

    /* keyUsage: critical, digitalSignature (+ keyEncipherment for RSA) */

    ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
    CHECK(ku != NULL && crit == 1, "keyUsage critical");
    ASN1_BIT_STRING_free(ku);
    CHECK(X509_get_key_usage(x)
          == (w->rsa_leaf ? KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT
                          : KU_DIGITAL_SIGNATURE),
          "keyUsage bits");

    /* extendedKeyUsage: serverAuth only, not critical */

    eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
    CHECK(eku != NULL && crit == 0 && sk_ASN1_OBJECT_num(eku) == 1
          && OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)) == NID_server_auth,
          "EKU serverAuth");
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    CHECK(X509_get_extended_key_usage(x) == XKU_SSL_SERVER, "EKU flags");

    /* six extensions, no more; SKI and AKI not critical */

    CHECK(X509_get_ext_count(x) == 6, "six extensions");

    for (i = 0; i < X509_get_ext_count(x); i++) {
        n = OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(x, i)));

        if (n == NID_subject_key_identifier
            || n == NID_authority_key_identifier
            || n == NID_ext_key_usage)
        {
            CHECK(X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 0,
                  "not critical");
        }
    }

    /* signature: SHA-256 with the CA's key type */

    CHECK(X509_get_signature_nid(x)
          == (w->rsa_ca ? NID_sha256WithRSAEncryption
                        : NID_ecdsa_with_SHA256),
          "signature algorithm");
    CHECK(X509_verify(x, ca->key) == 1, "X509_verify with the CA key");

    /* the whole chain, with the name */

    n = verify_chain_flags(x, ca->cert, NULL, w->name, t_now,
                           w->lax ? 0 : X509_V_FLAG_X509_STRICT);
    CHECK(n == X509_V_OK, "X509_verify_cert");
    if (n != X509_V_OK) {
        fprintf(stderr, "  %s: %s\n", w->name,
                X509_verify_cert_error_string(n));
    }

    /* and not for another name */

    if (w->kind == MCD_CERT_NAME_DNS) {
        n = verify_chain_flags(x, ca->cert, NULL, "other.example.test",
                               t_now, w->lax ? 0 : X509_V_FLAG_X509_STRICT);
        CHECK(n == X509_V_ERR_HOSTNAME_MISMATCH, "other host refused");
        if (n != X509_V_ERR_HOSTNAME_MISMATCH) {
            fprintf(stderr, "  %s: %d %s\n", w->name, n,
                    X509_verify_cert_error_string(n));
        }

    } else {
        n = verify_chain(x, ca->cert, NULL,
                         w->kind == MCD_CERT_NAME_IPV4 ? "10.9.9.9" : "::2",
                         t_now);
        CHECK(n == X509_V_ERR_IP_ADDRESS_MISMATCH, "other IP refused");
    }
}


static void
test_key_spec(void)
{
    size_t                i;
    const char           *err;
    mcd_cert_key_spec_t   spec;

    static const char  *bad[] = {
        "", "ec", "ec:", "ec:P-521", "ec:p-256", "EC:P-256", "ec:P-2566",
        "ec:prime256v1", "rsa", "rsa:", "rsa:1024", "rsa:204", "rsa:20480",
        "RSA:2048", "rsa:2048 ", " rsa:2048", "dsa:2048", "ed25519"
    };

    CHECK(mcd_cert_key_spec_parse(U("ec:P-256"), &spec, &err) == 0
          && spec.type == MCD_CERT_KEY_EC && spec.bits == 256
          && strcmp(spec.curve, "P-256") == 0, "ec:P-256");
    CHECK(mcd_cert_key_spec_parse(U("ec:P-384"), &spec, &err) == 0
          && spec.type == MCD_CERT_KEY_EC && spec.bits == 384, "ec:P-384");
    CHECK(mcd_cert_key_spec_parse(U("rsa:2048"), &spec, &err) == 0
          && spec.type == MCD_CERT_KEY_RSA && spec.bits == 2048
          && spec.curve == NULL, "rsa:2048");
    CHECK(mcd_cert_key_spec_parse(U("rsa:4096"), &spec, &err) == 0
          && spec.bits == 4096, "rsa:4096");
    CHECK(mcd_cert_key_spec_parse(U(MCD_CERT_KEY_SPEC_DEFAULT), &spec,
                                  &err) == 0
          && spec.type == MCD_CERT_KEY_EC && spec.bits == 256, "default");

    /* not NUL-terminated: only len bytes count */
    CHECK(mcd_cert_key_spec_parse((const unsigned char *) "rsa:2048x", 8,
                                  &spec, &err) == 0, "length bounded");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        CHECK(mcd_cert_key_spec_parse(U(bad[i]), &spec, &err) == -1
              && err != NULL, bad[i]);
    }
}


static void
test_names(void)
{
    size_t          i;
    char            big[300];
    unsigned char   addr[16];
    const char     *err;

    static const struct {
        const char  *name;
        int          kind;
    } good[] = {
        { "example.test", MCD_CERT_NAME_DNS },
        { "a", MCD_CERT_NAME_DNS },
        { "localhost", MCD_CERT_NAME_DNS },
        { "_dmarc.x-y.example.test", MCD_CERT_NAME_DNS },
        { "-a-.b_", MCD_CERT_NAME_DNS },
        { "1.2.3.example", MCD_CERT_NAME_DNS },
        { "example.1a", MCD_CERT_NAME_DNS },
        { "example.0xg", MCD_CERT_NAME_DNS },
        { "10.1.2.3", MCD_CERT_NAME_IPV4 },
        { "0.0.0.0", MCD_CERT_NAME_IPV4 },
        { "255.255.255.255", MCD_CERT_NAME_IPV4 },
        { "::1", MCD_CERT_NAME_IPV6 },
        { "::", MCD_CERT_NAME_IPV6 },
        { "2001:db8::1", MCD_CERT_NAME_IPV6 },
        { "::ffff:10.1.2.3", MCD_CERT_NAME_IPV6 },
        { "fe80::1:2:3:4", MCD_CERT_NAME_IPV6 },
        { "2001:db8:1:2:3:4:5:6", MCD_CERT_NAME_IPV6 }
    };

    static const char  *bad[] = {
        "Example.test", "EXAMPLE.TEST", "a..b", ".a", "a.", ".", "..",
        "*.example.test", "*", "a b", "a/b", "a@b", "a:b", "a,b", "a\\b",
        "caf\xc3\xa9.test", "a\tb", "\"a\"", "example.123", "example.0x1f",
        "example.0x", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04",
        "256.1.1.1", "1.2.3.4444", "0x7f.0.0.1", "127.1", "4294967295",
        "1.2.3.4.", "[::1]", "2001:DB8::1", "2001:0db8::1", "2001:db8:0::1",
        "fe80::1%eth0", ":::", "1::2::3", "::1:", "2001:db8::1/64",
        "::ffff:010.1.2.3", "0:0:0:0:0:0:0:1", "2001:db8::g"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        err = NULL;
        CHECK(mcd_cert_name_check(U(good[i].name), addr, &err)
              == good[i].kind, good[i].name);
    }

    CHECK(mcd_cert_name_check(U("10.1.2.3"), addr, &err)
          == MCD_CERT_NAME_IPV4
          && memcmp(addr, "\x0a\x01\x02\x03", 4) == 0, "IPv4 bytes");
    CHECK(mcd_cert_name_check(U("2001:db8::1"), addr, &err)
          == MCD_CERT_NAME_IPV6
          && memcmp(addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16)
             == 0, "IPv6 bytes");
    CHECK(mcd_cert_name_check(U("example.test"), NULL, &err)
          == MCD_CERT_NAME_DNS, "addr may be NULL");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        CHECK(mcd_cert_name_check(U(bad[i]), addr, &err) == -1
              && err != NULL, bad[i]);
    }

    err = NULL;
    CHECK(mcd_cert_name_check(NULL, 0, addr, &err) == -1 && err != NULL,
          "NULL");
    CHECK(mcd_cert_name_check((const unsigned char *) "", 0, addr, &err)
          == -1, "empty");
    CHECK(mcd_cert_name_check((const unsigned char *) "a\0b", 3, addr, &err)
          == -1, "NUL byte");
    CHECK(mcd_cert_name_check((const unsigned char *) "abc", 2, addr, &err)
          == MCD_CERT_NAME_DNS, "length bounded");

    /* labels of 63 bytes are fine, 64 are not */

    memset(big, 'a', 63);
    memcpy(big + 63, ".test", 6);
    CHECK(mcd_cert_name_check(U(big), addr, &err) == MCD_CERT_NAME_DNS,
          "63-byte label");

    memset(big, 'a', 64);
    memcpy(big + 64, ".test", 6);
    CHECK(mcd_cert_name_check(U(big), addr, &err) == -1, "64-byte label");

    /* 253 bytes are fine, 254 are not */

    for (i = 0; i < 253; i++) {
        big[i] = (i % 50 == 49) ? '.' : 'b';
    }

    big[253] = '\0';
    CHECK(mcd_cert_name_check(U(big), addr, &err) == MCD_CERT_NAME_DNS,
          "253 bytes");

    big[253] = 'c';
    big[254] = '\0';
    CHECK(mcd_cert_name_check(U(big), addr, &err) == -1, "254 bytes");
}


static void
test_mint_fields(void)
{
    size_t           i, j, k;
    X509            *x;
    test_ca_t        ec_ca, rsa_ca;
    test_ca_t       *cas[2];
    mcd_cert_key_t   ec_leaf, rsa_leaf;
    mcd_cert_key_t  *leaves[2];
    want_t           w;
    char             long_name[120];
    const char      *err;
    const char      *dumped;
    mcd_cert_key_spec_t  spec;

    static const struct {
        const char  *name;
        int          kind;
    } names[] = {
        { "www.example.test", MCD_CERT_NAME_DNS },
        { "_srv.x-y.example.test", MCD_CERT_NAME_DNS },
        { "10.1.2.3", MCD_CERT_NAME_IPV4 },
        { "2001:db8::1", MCD_CERT_NAME_IPV6 },
        { "::ffff:192.0.2.1", MCD_CERT_NAME_IPV6 },
        { NULL, MCD_CERT_NAME_DNS }           /* the long name */
    };

    /* a name of 100 bytes: no CN, critical SAN */

    memset(long_name, 'l', 100);
    memcpy(long_name + 60, ".", 1);
    memcpy(long_name + 90, ".test.test", 10);
    long_name[100] = '\0';

    CHECK(make_ca(&ec_ca, "mcd test EC CA", t_ec_key, t_now - 10 * DAY,
                  t_now + 3650 * DAY, 1) == 0, "EC CA");
    CHECK(make_ca(&rsa_ca, "mcd test RSA CA", t_rsa_key, t_now - 10 * DAY,
                  t_now + 3650 * DAY, 1) == 0, "RSA CA");

    CHECK(mcd_cert_key_spec_parse(U("ec:P-256"), &spec, &err) == 0, "spec");
    CHECK(mcd_cert_key_generate(&spec, &ec_leaf, &err) == 0, "EC leaf key");
    CHECK(ec_leaf.type == MCD_CERT_KEY_EC
          && EVP_PKEY_get_bits(ec_leaf.pkey) == 256, "EC leaf key type");

    CHECK(mcd_cert_key_spec_parse(U("rsa:2048"), &spec, &err) == 0, "spec");
    CHECK(mcd_cert_key_generate(&spec, &rsa_leaf, &err) == 0,
          "RSA leaf key");
    CHECK(rsa_leaf.type == MCD_CERT_KEY_RSA
          && EVP_PKEY_get_bits(rsa_leaf.pkey) == 2048, "RSA leaf key type");

    cas[0] = &ec_ca;
    cas[1] = &rsa_ca;
    leaves[0] = &ec_leaf;
    leaves[1] = &rsa_leaf;

    dump("ca.pem", ec_ca.cert);
    dumped = NULL;

    for (i = 0; i < 2; i++) {
        for (j = 0; j < 2; j++) {
            for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
                w.name = names[k].name ? names[k].name : long_name;
                w.kind = names[k].kind;
                w.rsa_ca = (i == 1);
                w.rsa_leaf = (j == 1);
                w.lax = 0;
                w.not_before = t_now - 3600;
                w.not_after = t_now + 30 * DAY;

                err = NULL;
                x = mcd_cert_mint(&cas[i]->ca, leaves[j], U(w.name), t_now,
                                  0, &err);
                CHECK(x != NULL && err == NULL, w.name);
                if (x == NULL) {
                    fprintf(stderr, "  mint %s: %s\n", w.name, err);
                    ERR_print_errors_fp(stderr);
                    continue;
                }

                check_leaf(x, cas[i], leaves[j], &w);

                if (i == 0 && j == 0 && k == 0) {
                    dump("leaf-dns.pem", x);
                    dump_key("leaf-key.pem", leaves[j]->pkey);
                    dumped = "dns";
                }

                if (i == 0 && j == 0 && k == 3) {
                    dump("leaf-ip.pem", x);
                }

                if (i == 0 && j == 1 && k == 0) {
                    dump("leaf-rsa.pem", x);
                }

                if (i == 0 && j == 0 && names[k].name == NULL) {
                    dump("leaf-long.pem", x);
                }

                X509_free(x);
            }
        }
    }

    CHECK(dumped != NULL, "minted");

    /* the same name twice: two serials, the same key */

    {
        X509  *a, *b;

        a = mcd_cert_mint(&ec_ca.ca, &ec_leaf, U("twice.example.test"),
                          t_now, 0, &err);
        b = mcd_cert_mint(&ec_ca.ca, &ec_leaf, U("twice.example.test"),
                          t_now, 0, &err);
        CHECK(a != NULL && b != NULL
              && ASN1_INTEGER_cmp(X509_get0_serialNumber(a),
                                  X509_get0_serialNumber(b)) != 0,
              "distinct serials");
        X509_free(a);
        X509_free(b);
    }

    mcd_cert_key_free(&ec_leaf);
    mcd_cert_key_free(&rsa_leaf);
    mcd_cert_key_free(&rsa_leaf);             /* safe twice */
    free_ca(&ec_ca);
    free_ca(&rsa_ca);
}


static void
test_validity(void)
{
    X509            *x;
    test_ca_t        ca;
    mcd_cert_key_t   leaf;
    want_t           w;
    time_t           t;
    const char      *err;

    CHECK(mcd_cert_key_set(&leaf, t_ec_key, &err) == 0, "key_set");

    memset(&w, 0, sizeof(want_t));
    w.name = "v.example.test";
    w.kind = MCD_CERT_NAME_DNS;
    w.rsa_ca = 0;
    w.rsa_leaf = 0;

    /* lifetime: asked for, capped at 30 days, 0 means 30 days */

    CHECK(make_ca(&ca, "validity CA", t_ec_key, t_now - 10 * DAY,
                  t_now + 3650 * DAY, 1) == 0, "CA");

    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now, DAY, &err);
    CHECK(x != NULL, "lifetime 1 day");
    CHECK(x && asn1_time(X509_get0_notAfter(x)) == t_now + DAY,
          "notAfter now + 1 day");
    CHECK(x && asn1_time(X509_get0_notBefore(x)) == t_now - 3600,
          "notBefore now - 1 hour");
    X509_free(x);

    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now, 365 * DAY, &err);
    CHECK(x && asn1_time(X509_get0_notAfter(x)) == t_now + 30 * DAY,
          "lifetime capped at 30 days");
    X509_free(x);

    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now, -5, &err);
    CHECK(x && asn1_time(X509_get0_notAfter(x)) == t_now + 30 * DAY,
          "negative lifetime: 30 days");
    X509_free(x);

    /* an injected "now" in the future */

    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now + 100 * DAY, 0, &err);
    CHECK(x && asn1_time(X509_get0_notBefore(x)) == t_now + 100 * DAY - 3600
          && asn1_time(X509_get0_notAfter(x)) == t_now + 130 * DAY,
          "injected now");
    CHECK(x && verify_chain(x, ca.cert, NULL, w.name, t_now + 100 * DAY)
               == X509_V_OK, "verifies at that now");
    CHECK(x && verify_chain(x, ca.cert, NULL, w.name, t_now)
               == X509_V_ERR_CERT_NOT_YET_VALID, "not valid before");
    X509_free(x);

    free_ca(&ca);

    /* a CA that expires in 10 days: the leaf ends with it */

    CHECK(make_ca(&ca, "short CA", t_ec_key, t_now - 10 * DAY,
                  t_now + 10 * DAY, 1) == 0, "short CA");

    w.not_before = t_now - 3600;
    w.not_after = t_now + 10 * DAY;
    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now, 0, &err);
    check_leaf(x, &ca, &leaf, &w);
    CHECK(x && verify_chain(x, ca.cert, NULL, w.name, t_now + 10 * DAY - 1)
               == X509_V_OK, "valid to the CA's end");
    X509_free(x);

    /* ... one second before it expires, and at the second it does */

    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now + 10 * DAY - 1, 0,
                      &err);
    CHECK(x && asn1_time(X509_get0_notAfter(x)) == t_now + 10 * DAY,
          "last second");
    X509_free(x);

    err = NULL;
    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now + 10 * DAY, 0, &err);
    CHECK(x == NULL && err != NULL && strstr(err, "expired") != NULL,
          "expired CA refused");

    free_ca(&ca);

    /* a CA made a minute ago: notBefore is the CA's */

    CHECK(make_ca(&ca, "new CA", t_ec_key, t_now - 60, t_now + 3650 * DAY,
                  1) == 0, "new CA");

    w.not_before = t_now - 60;
    w.not_after = t_now + 30 * DAY;
    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now, 0, &err);
    check_leaf(x, &ca, &leaf, &w);
    X509_free(x);

    err = NULL;
    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now - 61, 0, &err);
    CHECK(x == NULL && err != NULL && strstr(err, "not yet") != NULL,
          "CA not yet valid refused");

    free_ca(&ca);

    /* a CA without a subjectKeyIdentifier: AKI = SHA-1 of its key */

    CHECK(make_ca(&ca, "no SKI CA", t_ec_key, t_now - 10 * DAY,
                  t_now + 3650 * DAY, 0) == 0, "no-SKI CA");
    CHECK(X509_get0_subject_key_id(ca.cert) == NULL, "CA has no SKI");

    w.not_before = t_now - 3600;
    w.lax = 1;
    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), t_now, 0, &err);
    check_leaf(x, &ca, &leaf, &w);
    CHECK(x && verify_chain(x, ca.cert, NULL, w.name, t_now)
               == X509_V_ERR_MISSING_SUBJECT_KEY_IDENTIFIER,
          "strict: the CA itself lacks an SKI");
    X509_free(x);
    w.lax = 0;

    free_ca(&ca);

    /* a CA after 2050 (GeneralizedTime) */

    CHECK(make_ca(&ca, "long CA", t_ec_key, t_now - 10 * DAY,
                  (time_t) 4102444800LL + 12345, 1) == 0, "2100 CA");
    CHECK(ca.ca.not_after == (time_t) 4102444800LL + 12345,
          "CA notAfter after 2050");
    x = mcd_cert_mint(&ca.ca, &leaf, U(w.name), (time_t) 4102444800LL, 0,
                      &err);
    CHECK(x && mcd_cert_not_after(x, &t) == 0
          && t == (time_t) 4102444800LL + 12345, "leaf ends with the CA");
    X509_free(x);

    free_ca(&ca);

    mcd_cert_key_free(&leaf);
}


static void
test_chain_and_refusals(void)
{
    size_t           i;
    X509            *x, *inter;
    test_ca_t        root, ca;
    mcd_cert_ca_t    bad;
    mcd_cert_key_t   leaf;
    const char      *err;

    static const char  *refused[] = {
        "", "Example.test", "*.example.test", "a..b", "example.123",
        "[::1]", "2001:DB8::1", "a b", "x.example.test\n"
    };

    CHECK(mcd_cert_key_set(&leaf, t_ec_key, &err) == 0, "key_set");

    /* root (RSA) -> gateway CA (EC) -> leaf; only the root is trusted */

    memset(&root, 0, sizeof(root));
    root.cert = make_ca_cert("mcd test root", t_rsa_key, t_now - 20 * DAY,
                             t_now + 7300 * DAY, 1, NULL, NULL);
    root.key = t_rsa_key;
    CHECK(root.cert != NULL, "root");

    inter = make_ca_cert("mcd test gateway", t_ec_key, t_now - 10 * DAY,
                         t_now + 3650 * DAY, 1, root.cert, t_rsa_key);
    CHECK(inter != NULL, "intermediate");

    memset(&ca, 0, sizeof(ca));
    ca.cert = inter;
    ca.key = t_ec_key;
    CHECK(mcd_cert_ca_init(&ca.ca, inter, t_ec_key, &err) == 0, "ca_init");

    x = mcd_cert_mint(&ca.ca, &leaf, U("chain.example.test"), t_now, 0,
                      &err);
    CHECK(x != NULL, "chain mint");
    CHECK(x && verify_chain(x, root.cert, inter, "chain.example.test", t_now)
               == X509_V_OK, "leaf + intermediate to the root");
    CHECK(x && verify_chain(x, root.cert, NULL, "chain.example.test", t_now)
               == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
          "without the intermediate: no chain");
    X509_free(x);

    /* names that are refused: no certificate */

    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        err = NULL;
        x = mcd_cert_mint(&ca.ca, &leaf, U(refused[i]), t_now, 0, &err);
        CHECK(x == NULL && err != NULL, refused[i]);
        X509_free(x);
    }

    CHECK(ERR_peek_error() == 0, "a refused name leaves no OpenSSL error");

    /* ca_init refusals: a mismatched key, a certificate that is no CA */

    err = NULL;
    CHECK(mcd_cert_ca_init(&bad, inter, t_rsa_key, &err) == -1
          && err != NULL && strstr(err, "match") != NULL, "key mismatch");
    CHECK(bad.cert == NULL && bad.pkey == NULL, "zeroed");
    ERR_clear_error();

    x = mcd_cert_mint(&ca.ca, &leaf, U("leaf.example.test"), t_now, 0, &err);
    err = NULL;
    CHECK(mcd_cert_ca_init(&bad, x, t_ec_key, &err) == -1 && err != NULL
          && strstr(err, "not a CA") != NULL, "leaf as CA");
    ERR_clear_error();
    X509_free(x);

    /* an empty CA or key */

    memset(&bad, 0, sizeof(bad));
    err = NULL;
    x = mcd_cert_mint(&bad, &leaf, U("a.example.test"), t_now, 0, &err);
    CHECK(x == NULL && err != NULL, "no CA");
    mcd_cert_ca_free(&bad);

    mcd_cert_ca_free(&ca.ca);
    X509_free(inter);
    X509_free(root.cert);
    mcd_cert_key_free(&leaf);
}


static int
cmp_serial(const void *a, const void *b)
{
    return memcmp(a, b, MCD_CERT_SERIAL_LEN);
}


static void
test_serials(void)
{
    int              n;
    size_t           i, dups;
    X509            *x;
    clock_t          c;
    test_ca_t        ca;
    mcd_cert_key_t   leaf;
    unsigned char   *serials;
    const char      *err;
    const ASN1_INTEGER  *s;

    CHECK(mcd_cert_key_set(&leaf, t_ec_key, &err) == 0, "key_set");
    CHECK(make_ca(&ca, "serial CA", t_ec_key, t_now - DAY,
                  t_now + 365 * DAY, 1) == 0, "CA");

    serials = calloc(NSERIALS, MCD_CERT_SERIAL_LEN);
    CHECK(serials != NULL, "calloc");
    if (serials == NULL) {
        return;
    }

    c = clock();

    for (i = 0; i < NSERIALS; i++) {
        x = mcd_cert_mint(&ca.ca, &leaf, U("serial.example.test"), t_now, 0,
                          &err);
        if (x == NULL) {
            CHECK(x != NULL, "mint");
            break;
        }

        s = X509_get0_serialNumber(x);
        n = ASN1_STRING_length(s);

        if (n != MCD_CERT_SERIAL_LEN
            || (ASN1_STRING_get0_data(s)[0] & 0xc0) != 0x40)
        {
            CHECK(0, "serial form");
        }

        memcpy(serials + i * MCD_CERT_SERIAL_LEN, ASN1_STRING_get0_data(s),
               MCD_CERT_SERIAL_LEN);
        X509_free(x);
    }

    c = clock() - c;

    qsort(serials, NSERIALS, MCD_CERT_SERIAL_LEN, cmp_serial);

    dups = 0;
    for (i = 1; i < NSERIALS; i++) {
        if (memcmp(serials + (i - 1) * MCD_CERT_SERIAL_LEN,
                   serials + i * MCD_CERT_SERIAL_LEN, MCD_CERT_SERIAL_LEN)
            == 0)
        {
            dups++;
        }
    }

    CHECK(dups == 0, "1000 mints, 1000 distinct serials");

    printf("test_cert: %d mints (EC CA, EC leaf) in %.1f ms CPU, "
           "%.1f us each\n", NSERIALS,
           (double) c * 1000 / CLOCKS_PER_SEC,
           (double) c * 1e6 / CLOCKS_PER_SEC / NSERIALS);

    free(serials);
    free_ca(&ca);
    mcd_cert_key_free(&leaf);
}


/* the cache */

static int
has(mcd_cert_cache_t *cache, const char *name, time_t now)
{
    X509  *x;

    x = mcd_cert_cache_lookup(cache, U(name), now, NULL);
    X509_free(x);

    return x != NULL;
}


static void
test_cache(void)
{
    int                            minted;
    size_t                         i;
    X509                          *a, *b, *x, *y;
    time_t                         na, t;
    char                           name[64];
    clock_t                        c;
    test_ca_t                      ca, short_ca;
    mcd_cert_key_t                 leaf;
    mcd_cert_cache_t              *cache;
    const mcd_cert_cache_stats_t  *st;
    const char                    *err;

    CHECK(mcd_cert_key_set(&leaf, t_ec_key, &err) == 0, "key_set");
    CHECK(make_ca(&ca, "cache CA", t_ec_key, t_now - DAY,
                  t_now + 365 * DAY, 1) == 0, "CA");

    a = mcd_cert_mint(&ca.ca, &leaf, U("a.test"), t_now, 0, &err);
    b = mcd_cert_mint(&ca.ca, &leaf, U("b.test"), t_now, 0, &err);
    CHECK(a != NULL && b != NULL, "mint a, b");

    /* LRU order with max=3 */

    cache = mcd_cert_cache_create(3, 0, -1, &err);
    CHECK(cache != NULL, "create");
    st = mcd_cert_cache_stats(cache);

    CHECK(!has(cache, "a.test", t_now), "empty: miss");
    CHECK(st->misses == 1 && st->hits == 0, "one miss");

    CHECK(mcd_cert_cache_insert(cache, U("a.test"), a, t_now, &err) == 1,
          "insert a");
    CHECK(mcd_cert_cache_insert(cache, U("b.test"), b, t_now, &err) == 1,
          "insert b");
    CHECK(mcd_cert_cache_insert(cache, U("c.test"), a, t_now, &err) == 1,
          "insert c");
    CHECK(st->entries == 3 && st->evictions == 0, "three entries");

    /* recency now c b a; a hit makes it a c b */

    x = mcd_cert_cache_lookup(cache, U("a.test"), t_now, &na);
    CHECK(x == a, "hit a: the same certificate");
    CHECK(mcd_cert_not_after(a, &t) == 0 && na == t, "notAfter returned");
    X509_free(x);
    CHECK(st->hits == 1 && st->misses == 1, "counters after hit");

    /* d evicts b, the least recently used */

    CHECK(mcd_cert_cache_insert(cache, U("d.test"), b, t_now, &err) == 1,
          "insert d");
    CHECK(st->entries == 3 && st->evictions == 1, "one eviction");
    CHECK(!has(cache, "b.test", t_now), "b evicted");

    /* now d a c; c hit -> c d a; e evicts a */

    CHECK(has(cache, "c.test", t_now), "c kept");
    CHECK(mcd_cert_cache_insert(cache, U("e.test"), b, t_now, &err) == 1,
          "insert e");
    CHECK(st->evictions == 2, "two evictions");
    CHECK(!has(cache, "a.test", t_now), "a evicted");
    CHECK(has(cache, "d.test", t_now) && has(cache, "c.test", t_now)
          && has(cache, "e.test", t_now), "c d e kept");

    /* replacing an entry: no eviction, the new certificate */

    CHECK(mcd_cert_cache_insert(cache, U("d.test"), a, t_now, &err) == 1,
          "replace d");
    CHECK(st->entries == 3 && st->evictions == 2, "replaced in place");
    x = mcd_cert_cache_lookup(cache, U("d.test"), t_now, NULL);
    CHECK(x == a, "d is a's certificate now");
    X509_free(x);

    /* names are compared by length and bytes */

    CHECK(!has(cache, "d.tes", t_now) && !has(cache, "D.test", t_now),
          "no prefix or case match");

    CHECK(st->hits == 6 && st->misses == 5 && st->expired == 0,
          "hit/miss counters");

    /* the references are the cache's own: free ours and still hit */

    mcd_cert_cache_free(cache);

    /* valid=600 */

    cache = mcd_cert_cache_create(10, 600, -1, &err);
    st = mcd_cert_cache_stats(cache);

    CHECK(mcd_cert_cache_insert(cache, U("a.test"), a, t_now, &err) == 1,
          "insert");
    CHECK(has(cache, "a.test", t_now + 599), "valid for 599 s");
    CHECK(!has(cache, "a.test", t_now + 600), "gone at 600 s");
    CHECK(st->expired == 1 && st->entries == 0, "dropped as expired");
    CHECK(!has(cache, "a.test", t_now), "dropped for good");
    CHECK(st->hits == 1 && st->misses == 2 && st->expired == 1,
          "expired counts as a miss");

    mcd_cert_cache_free(cache);

    /* valid= and notAfter - margin one second apart: the earlier wins */

    cache = mcd_cert_cache_create(10, 600, 100, &err);
    x = X509_new();
    CHECK(x != NULL
          && ASN1_TIME_set(X509_getm_notAfter(x), t_now + 701) != NULL,
          "a bare certificate");
    CHECK(mcd_cert_cache_insert(cache, U("a.test"), x, t_now, &err) == 1,
          "insert");
    CHECK(has(cache, "a.test", t_now + 599)
          && !has(cache, "a.test", t_now + 600), "valid= first");
    CHECK(ASN1_TIME_set(X509_getm_notAfter(x), t_now + 699) != NULL
          && mcd_cert_cache_insert(cache, U("a.test"), x, t_now, &err) == 1,
          "insert");
    CHECK(has(cache, "a.test", t_now + 598)
          && !has(cache, "a.test", t_now + 599), "notAfter - margin first");
    X509_free(x);
    mcd_cert_cache_free(cache);

    /* the notAfter margin: a 30-day leaf, valid= of 90 days */

    cache = mcd_cert_cache_create(10, 90 * DAY, -1, &err);
    st = mcd_cert_cache_stats(cache);
    CHECK(mcd_cert_not_after(a, &na) == 0 && na == t_now + 30 * DAY,
          "a's notAfter");

    CHECK(mcd_cert_cache_insert(cache, U("a.test"), a, t_now, &err) == 1,
          "insert");
    CHECK(has(cache, "a.test", na - MCD_CERT_CACHE_MARGIN - 1),
          "served up to the margin");
    CHECK(!has(cache, "a.test", na - MCD_CERT_CACHE_MARGIN),
          "not within the margin");
    CHECK(st->expired == 1, "expired by notAfter");

    /* an explicit margin of 0: served to the last second */

    mcd_cert_cache_free(cache);
    cache = mcd_cert_cache_create(10, 0, 0, &err);
    CHECK(mcd_cert_cache_insert(cache, U("a.test"), a, t_now, &err) == 1,
          "insert");
    CHECK(has(cache, "a.test", na - 1), "margin 0: last second");
    CHECK(!has(cache, "a.test", na), "margin 0: notAfter");

    /* not stored when it could not be served */

    CHECK(mcd_cert_cache_insert(cache, U("a.test"), a, na, &err) == 0,
          "too late to store");
    CHECK(mcd_cert_cache_stats(cache)->entries == 0, "nothing stored");

    mcd_cert_cache_free(cache);

    /* mcd_cert_cache_get(): mint once, then hits */

    cache = mcd_cert_cache_create(2, 0, -1, &err);
    st = mcd_cert_cache_stats(cache);

    x = mcd_cert_cache_get(cache, &ca.ca, &leaf, U("get.example.test"),
                           t_now, 0, &minted, &err);
    CHECK(x != NULL && minted == 1, "first get mints");
    y = mcd_cert_cache_get(cache, &ca.ca, &leaf, U("get.example.test"),
                           t_now + 10, 0, &minted, &err);
    CHECK(y == x && minted == 0, "second get hits, same certificate");
    CHECK(st->minted == 1 && st->hits == 1 && st->misses == 1,
          "get counters");
    X509_free(x);
    X509_free(y);

    err = NULL;
    x = mcd_cert_cache_get(cache, &ca.ca, &leaf, U("Bad.Example"), t_now, 0,
                           &minted, &err);
    CHECK(x == NULL && err != NULL && minted == 0, "get refuses a bad name");
    CHECK(st->minted == 1 && st->hits == 1 && st->misses == 1,
          "a refused name is not counted");

    mcd_cert_cache_free(cache);

    /* a CA that expires in 30 minutes: minted every time, never cached */

    CHECK(make_ca(&short_ca, "expiring CA", t_ec_key, t_now - DAY,
                  t_now + 1800, 1) == 0, "expiring CA");

    cache = mcd_cert_cache_create(2, 0, -1, &err);
    st = mcd_cert_cache_stats(cache);

    for (i = 0; i < 2; i++) {
        x = mcd_cert_cache_get(cache, &short_ca.ca, &leaf, U("s.test"),
                               t_now, 0, &minted, &err);
        CHECK(x != NULL && minted == 1, "minted, not cached");
        X509_free(x);
    }

    CHECK(st->minted == 2 && st->entries == 0, "nothing cached");

    mcd_cert_cache_free(cache);
    free_ca(&short_ca);

    /* max=0: a cache that holds nothing */

    cache = mcd_cert_cache_create(0, 0, -1, &err);
    CHECK(cache != NULL, "max=0");
    CHECK(mcd_cert_cache_insert(cache, U("a.test"), a, t_now, &err) == 0,
          "max=0 stores nothing");

    x = mcd_cert_cache_get(cache, &ca.ca, &leaf, U("z.test"), t_now, 0,
                           &minted, &err);
    CHECK(x != NULL && minted == 1, "max=0 get mints");
    X509_free(x);

    mcd_cert_cache_free(cache);
    mcd_cert_cache_free(NULL);

    /* 2,000 distinct names through max=100 */

    cache = mcd_cert_cache_create(100, 0, -1, &err);
    st = mcd_cert_cache_stats(cache);

    for (i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "n%zu.example.test", i);
        CHECK(mcd_cert_cache_insert(cache, U(name), (i & 1) ? a : b, t_now,
                                    &err) == 1, "insert");
        CHECK(st->entries <= 100, "bounded");
    }

    CHECK(st->entries == 100 && st->evictions == 1900, "2000 in 100");

    for (i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "n%zu.example.test", i);
        CHECK(has(cache, name, t_now) == (i >= 1900), "the last 100 kept");
    }

    /* hits cost no signing: time a million of them */

    c = clock();

    for (i = 0; i < 200000; i++) {
        snprintf(name, sizeof(name), "n%zu.example.test", 1900 + i % 100);
        x = mcd_cert_cache_lookup(cache, U(name), t_now, NULL);
        if (x == NULL) {
            CHECK(x != NULL, "hit");
            break;
        }

        X509_free(x);
    }

    c = clock() - c;
    printf("test_cert: 200000 cache hits in %.1f ms CPU "
           "(with snprintf)\n", (double) c * 1000 / CLOCKS_PER_SEC);

    mcd_cert_cache_free(cache);

    X509_free(a);
    X509_free(b);
    free_ca(&ca);
    mcd_cert_key_free(&leaf);
}


/*
 * The cache against a reference model: random inserts and lookups of 12
 * names, with certificates of different notAfter times, time moving on,
 * for several max / valid / margin settings.  Every answer and counter
 * must agree with a plain array kept in recency order.
 */

#define M_NAMES   12
#define M_CERTS   4
#define M_OPS     20000
#define M_CONFIGS 54                 /* maxes x valids x margins */


typedef struct {
    int      name;
    int      cert;
    time_t   expires;
} m_entry_t;


static void
test_cache_model(void)
{
    int                            rc, want, k, c, found;
    size_t                         i, n, op, max, evictions, expired, hits,
                                   misses;
    X509                          *certs[M_CERTS], *x;
    time_t                         now, nas[M_CERTS], valid, margin, exp;
    char                           names[M_NAMES][32];
    unsigned char                  r[4];
    m_entry_t                      m[8], e;
    mcd_cert_cache_t              *cache;
    const mcd_cert_cache_stats_t  *st;
    const char                    *err;

    static const size_t  maxes[] = { 0, 1, 2, 3, 5, 8 };
    static const time_t  valids[] = { 0, 50, 200 };
    static const time_t  margins[] = { 0, 10, 100 };

    for (k = 0; k < M_NAMES; k++) {
        snprintf(names[k], sizeof(names[k]), "m%d.example.test", k);
    }

    for (c = 0; c < M_CERTS; c++) {
        nas[c] = t_now + 100 + 150 * c;
        certs[c] = X509_new();
        CHECK(certs[c] != NULL
              && ASN1_TIME_set(X509_getm_notAfter(certs[c]), nas[c]) != NULL,
              "model certificate");
    }

    for (i = 0; i < M_CONFIGS; i++) {

        max = maxes[i / 9];
        valid = valids[i / 3 % 3];
        margin = margins[i % 3];

        cache = mcd_cert_cache_create(max, valid, margin, &err);
        CHECK(cache != NULL, "create");
        if (cache == NULL) {
            continue;
        }

        st = mcd_cert_cache_stats(cache);

        n = 0;
        evictions = 0;
        expired = 0;
        hits = 0;
        misses = 0;
        now = t_now;

        for (op = 0; op < M_OPS / M_CONFIGS; op++) {
            RAND_bytes(r, sizeof(r));

            now += r[0] % 8 == 0 ? r[1] % 40 : 0;
            if (now > t_now + 700) {
                now = t_now;           /* the model does not care */

                /* but the cache does: start both afresh */
                mcd_cert_cache_free(cache);
                cache = mcd_cert_cache_create(max, valid, margin, &err);
                st = mcd_cert_cache_stats(cache);
                n = 0;
                evictions = expired = hits = misses = 0;
            }

            e.name = r[2] % M_NAMES;
            e.cert = r[3] % M_CERTS;

            for (found = -1, c = 0; c < (int) n; c++) {
                if (m[c].name == e.name) {
                    found = c;
                }
            }

            if (r[1] & 1) {

                /* insert */

                exp = nas[e.cert] - margin;
                if (valid > 0 && now + valid < exp) {
                    exp = now + valid;
                }

                e.expires = exp;

                if (exp <= now || max == 0) {
                    want = 0;

                    if (found >= 0) {
                        memmove(&m[found], &m[found + 1],
                                (n - found - 1) * sizeof(m_entry_t));
                        n--;
                    }

                } else {
                    want = 1;

                    if (found >= 0) {
                        memmove(&m[found], &m[found + 1],
                                (n - found - 1) * sizeof(m_entry_t));
                        n--;

                    } else if (n == max) {
                        n--;
                        evictions++;
                    }

                    memmove(&m[1], &m[0], n * sizeof(m_entry_t));
                    m[0] = e;
                    n++;
                }

                rc = mcd_cert_cache_insert(cache, U(names[e.name]),
                                           certs[e.cert], now, &err);
                CHECK(rc == want, "model: insert");

            } else {

                /* lookup */

                x = mcd_cert_cache_lookup(cache, U(names[e.name]), now,
                                          NULL);

                if (found < 0) {
                    misses++;
                    CHECK(x == NULL, "model: miss");

                } else if (now >= m[found].expires) {
                    misses++;
                    expired++;
                    memmove(&m[found], &m[found + 1],
                            (n - found - 1) * sizeof(m_entry_t));
                    n--;
                    CHECK(x == NULL, "model: expired");

                } else {
                    hits++;
                    e = m[found];
                    memmove(&m[1], &m[0], found * sizeof(m_entry_t));
                    m[0] = e;
                    CHECK(x == certs[e.cert], "model: hit");
                }

                X509_free(x);
            }

            CHECK(st->entries == n && st->evictions == evictions
                  && st->expired == expired && st->hits == hits
                  && st->misses == misses, "model: counters");
        }

        mcd_cert_cache_free(cache);
    }

    for (c = 0; c < M_CERTS; c++) {
        X509_free(certs[c]);
    }
}


/*
 * Real TLS handshakes over a memory BIO pair: the server's certificate
 * callback gets the certificate from the cache as the nginx module will
 * (name -> mcd_cert_cache_get() -> SSL_use_cert_and_key() with the CA as
 * the chain), the client verifies it against the CA with the host name
 * and checks that it was sent the leaf and the CA.
 */

typedef struct {
    mcd_cert_cache_t      *cache;
    const mcd_cert_ca_t   *ca;
    const mcd_cert_key_t  *key;
    STACK_OF(X509)        *chain;
    int                    minted;
    int                    calls;
} tls_srv_t;


static int
tls_cert_cb(SSL *ssl, void *arg)
{
    int          minted;
    X509        *x;
    tls_srv_t   *srv;
    const char  *name, *err;

    srv = arg;
    srv->calls++;

    name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL) {
        return 0;
    }

    x = mcd_cert_cache_get(srv->cache, srv->ca, srv->key, U(name), t_now, 0,
                           &minted, &err);
    if (x == NULL) {
        return 0;
    }

    srv->minted += minted;

    if (SSL_use_cert_and_key(ssl, x, srv->key->pkey, srv->chain, 1) != 1
        || SSL_check_private_key(ssl) != 1)
    {
        X509_free(x);
        return 0;
    }

    X509_free(x);

    return 1;
}


/* returns X509_V_OK when both sides finished the handshake and it verified */

static int
tls_handshake(tls_srv_t *srv, X509 *root, const char *sni, int version,
    const char **proto)
{
    int          i, rs, rc, done_s, done_c;
    BIO         *bs, *bc;
    SSL         *s, *c;
    SSL_CTX     *sctx, *cctx;
    X509        *peer;

    rs = -1;
    s = NULL;
    c = NULL;

    sctx = SSL_CTX_new(TLS_server_method());
    cctx = SSL_CTX_new(TLS_client_method());

    if (sctx == NULL || cctx == NULL) {
        goto done;
    }

    SSL_CTX_set_cert_cb(sctx, tls_cert_cb, srv);
    SSL_CTX_set_min_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(sctx, version);

    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), root) != 1) {
        goto done;
    }

    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);

    s = SSL_new(sctx);
    c = SSL_new(cctx);

    if (s == NULL || c == NULL
        || BIO_new_bio_pair(&bs, 0, &bc, 0) != 1)
    {
        goto done;
    }

    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);

    if (SSL_set_tlsext_host_name(c, sni) != 1 || SSL_set1_host(c, sni) != 1)
    {
        goto done;
    }

    done_s = 0;
    done_c = 0;

    for (i = 0; i < 50 && !(done_s && done_c); i++) {
        if (!done_c) {
            rc = SSL_do_handshake(c);
            if (rc == 1) {
                done_c = 1;

            } else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ) {
                break;
            }
        }

        if (!done_s) {
            rc = SSL_do_handshake(s);
            if (rc == 1) {
                done_s = 1;

            } else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ) {
                break;
            }
        }
    }

    rs = SSL_get_verify_result(c);

    if (!(done_s && done_c)) {
        rs = rs == X509_V_OK ? -2 : rs;
        goto done;
    }

    peer = SSL_get1_peer_certificate(c);
    if (peer == NULL) {
        rs = -3;
        goto done;
    }

    if (X509_check_host(peer, sni, strlen(sni), 0, NULL) != 1) {
        rs = -4;
    }

    /* what was sent: the leaf and the CA */

    if (sk_X509_num(SSL_get_peer_cert_chain(c)) != 2
        || X509_cmp(sk_X509_value(SSL_get_peer_cert_chain(c), 1), root) != 0)
    {
        rs = -5;
    }

    X509_free(peer);

    *proto = SSL_get_version(c);

done:

    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ERR_clear_error();

    return rs;
}


static void
test_tls(void)
{
    int                  rc, v, versions[2];
    size_t               i, j;
    test_ca_t            ca;
    tls_srv_t            srv;
    mcd_cert_key_t       keys[2];
    mcd_cert_key_spec_t  spec;
    const char          *err, *proto;

    versions[0] = TLS1_3_VERSION;
    versions[1] = TLS1_2_VERSION;

    CHECK(make_ca(&ca, "TLS CA", t_ec_key, t_now - DAY, t_now + 365 * DAY,
                  1) == 0, "CA");

    CHECK(mcd_cert_key_spec_parse(U("ec:P-256"), &spec, &err) == 0
          && mcd_cert_key_generate(&spec, &keys[0], &err) == 0, "EC key");
    CHECK(mcd_cert_key_set(&keys[1], t_rsa_key, &err) == 0, "RSA key");

    for (i = 0; i < 2; i++) {
        CHECK(keys[i].pub != keys[i].pkey
              && EVP_PKEY_eq(keys[i].pub, keys[i].pkey) == 1,
              "the fast public half");

        memset(&srv, 0, sizeof(tls_srv_t));
        srv.cache = mcd_cert_cache_create(10, 0, -1, &err);
        srv.ca = &ca.ca;
        srv.key = &keys[i];
        srv.chain = sk_X509_new_null();
        CHECK(srv.chain != NULL && sk_X509_push(srv.chain, ca.cert) > 0,
              "chain");

        for (j = 0; j < 2; j++) {
            for (v = 0; v < 2; v++) {
                proto = "";
                rc = tls_handshake(&srv, ca.cert, "tls.example.test",
                                   versions[v], &proto);
                CHECK(rc == X509_V_OK, "handshake verifies");
                if (rc != X509_V_OK) {
                    fprintf(stderr, "  key %zu version %x: %d %s\n", i,
                            versions[v], rc,
                            rc > 0 ? X509_verify_cert_error_string(rc) : "");
                }

                CHECK(strcmp(proto, v == 0 ? "TLSv1.3" : "TLSv1.2") == 0,
                      "protocol");
            }
        }

        CHECK(srv.calls == 4 && srv.minted == 1,
              "four handshakes, one signing");

        rc = tls_handshake(&srv, ca.cert, "Other.Example.Test",
                           TLS1_3_VERSION, &proto);
        CHECK(rc != X509_V_OK, "a name the minting refuses: no handshake");

        mcd_cert_cache_free(srv.cache);
        sk_X509_free(srv.chain);
        mcd_cert_key_free(&keys[i]);
    }

    free_ca(&ca);
}


static void
test_siphash(void)
{
    size_t         i;
    unsigned char  key[16], msg[64];

    /* the reference vectors: key 00..0f, message 00..(n-1) */

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char) i;
    }

    for (i = 0; i < 64; i++) {
        msg[i] = (unsigned char) i;
    }

    CHECK(mcd_cert_siphash(key, msg, 0) == UINT64_C(0x726fdb47dd0e0e31),
          "siphash of nothing");
    CHECK(mcd_cert_siphash(key, msg, 15) == UINT64_C(0xa129ca6149be45e5),
          "siphash of 15 bytes");
    CHECK(mcd_cert_siphash(key, msg, 8) == UINT64_C(0x93f5f5799a932462),
          "siphash of 8 bytes");
    CHECK(mcd_cert_siphash(key, msg, 63) == UINT64_C(0x958a324ceb064572),
          "siphash of 63 bytes");

    /* and OpenSSL's SipHash-2-4 agrees for every length up to 64 */

    {
        size_t        n, outl;
        EVP_MAC      *mac;
        OSSL_PARAM    params[2];
        EVP_MAC_CTX  *ctx;
        uint64_t      want;
        unsigned char out[8];

        mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
        CHECK(mac != NULL, "SIPHASH");

        outl = 8;
        params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outl);
        params[1] = OSSL_PARAM_construct_end();

        for (n = 0; mac != NULL && n <= 64; n++) {
            RAND_bytes(key, sizeof(key));
            RAND_bytes(msg, sizeof(msg));

            ctx = EVP_MAC_CTX_new(mac);
            outl = 8;

            if (ctx == NULL
                || EVP_MAC_init(ctx, key, sizeof(key), params) != 1
                || EVP_MAC_update(ctx, msg, n) != 1
                || EVP_MAC_final(ctx, out, &outl, sizeof(out)) != 1)
            {
                CHECK(0, "EVP_MAC");
                EVP_MAC_CTX_free(ctx);
                break;
            }

            EVP_MAC_CTX_free(ctx);

            want = 0;
            for (i = 8; i > 0; i--) {
                want = want << 8 | out[i - 1];
            }

            CHECK(mcd_cert_siphash(key, msg, n) == want, "siphash = OpenSSL");
        }

        EVP_MAC_free(mac);
    }
}


int
main(void)
{
    const char  *v;

    t_now = time(NULL);

    v = getenv("TEST_MCD_CERT_NOW");
    if (v != NULL) {
        t_now = (time_t) strtoll(v, NULL, 10);
    }

    t_ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    t_rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);

    if (t_ec_key == NULL || t_rsa_key == NULL) {
        fprintf(stderr, "test_cert: key generation failed\n");
        return 1;
    }

    test_siphash();
    test_key_spec();
    test_names();
    test_mint_fields();
    test_validity();
    test_chain_and_refusals();
    test_serials();
    test_cache();
    test_cache_model();
    test_tls();

    EVP_PKEY_free(t_ec_key);
    EVP_PKEY_free(t_rsa_key);

    printf("test_cert: %u checks, %u failed\n", checks, failed);

    return failed ? 1 : 0;
}
