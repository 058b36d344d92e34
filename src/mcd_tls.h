
/*
 * ngx_mcd: TLS ClientHello parser for the transparent gateway.
 *
 * The parser keeps no state between calls: the caller peeks at the
 * client's bytes and calls mcd_tls_parse_client_hello() on everything
 * received so far, again each time more bytes arrive.  The handshake
 * message is reassembled from its records into the caller's scratch
 * buffer; the parser never allocates memory.
 */


#ifndef MCD_TLS_H_INCLUDED_
#define MCD_TLS_H_INCLUDED_


#include <stddef.h>


#define MCD_TLS_OK            0   /* ClientHello fully parsed */
#define MCD_TLS_AGAIN         1   /* need more bytes */
#define MCD_TLS_NOT_TLS       2   /* not a TLS handshake record */
#define MCD_TLS_ERROR        -1   /* malformed; detail says why */
#define MCD_TLS_TOO_BIG      -2   /* ClientHello larger than scratch_size */

/* the largest record length accepted: 2^14 plus the ciphertext slack */
#define MCD_TLS_MAX_RECORD   (16384 + 2048)

/* the most records a ClientHello may be spread over */
#define MCD_TLS_MAX_RECORDS  16

#define MCD_TLS_ALERT_HANDSHAKE_FAILURE   40
#define MCD_TLS_ALERT_ACCESS_DENIED       49
#define MCD_TLS_ALERT_DECODE_ERROR        50
#define MCD_TLS_ALERT_INTERNAL_ERROR      80
#define MCD_TLS_ALERT_UNRECOGNIZED_NAME  112

#define MCD_TLS_ALERT_LEN     7

/* extension types */
#define MCD_TLS_EXT_SERVER_NAME          0x0000
#define MCD_TLS_EXT_ALPN                 0x0010
#define MCD_TLS_EXT_SUPPORTED_VERSIONS   0x002b
#define MCD_TLS_EXT_ECH                  0xfe0d


typedef struct {
    /* bytes of the records that carried the ClientHello, whole records */
    size_t                records_len;

    unsigned              legacy_version;   /* client_version, 0x0303 */
    unsigned              record_version;   /* of the first record */

    /* host_name of server_name, in scratch; NULL and 0 if absent */
    const unsigned char  *sni;
    size_t                sni_len;

    /* ProtocolNameList without its length, in scratch; NULL if absent */
    const unsigned char  *alpn;
    size_t                alpn_len;

    unsigned              has_sni:1;
    unsigned              ech:1;        /* encrypted_client_hello seen */
    unsigned              tls13:1;      /* supported_versions has 0x0304 */

    const char           *detail;       /* on ERROR and TOO_BIG */
} mcd_tls_hello_t;


/*
 * Parses the ClientHello at the start of buf[0 .. len).  scratch_size
 * limits the reassembled handshake message (4-byte header + body); a
 * larger one yields MCD_TLS_TOO_BIG.  On MCD_TLS_OK, records_len <= len
 * and sni and alpn point into scratch, which must stay untouched while
 * they are used.  The result depends only on buf[0 .. len) and
 * scratch_size: a call on more bytes never contradicts a final answer
 * given for fewer.  A ClientHello that is not complete within
 * MCD_TLS_MAX_RECORDS whole records yields MCD_TLS_ERROR ("ClientHello
 * in too many records") as soon as that many records are there.
 */
int mcd_tls_parse_client_hello(const unsigned char *buf, size_t len,
    unsigned char *scratch, size_t scratch_size, mcd_tls_hello_t *h);

/*
 * How many bytes from the start of the stream must be present before
 * parsing buf[0 .. len) again can make progress, for a caller that got
 * MCD_TLS_AGAIN: the end of the first incomplete record (its start plus
 * 5 when even its header is incomplete, so 5 for an empty buffer), given
 * the record headers seen.  The parser reads records whole, so with
 * fewer bytes than that it says MCD_TLS_AGAIN again (unless a byte of
 * an incomplete header is already wrong); the result is always > len
 * while it says MCD_TLS_AGAIN, and never decreases as bytes are added.
 * Returns 0 when the bytes present are not a ClientHello's records (a
 * record that is not a handshake record, a bad record version, an empty
 * or over-long record, a handshake message that is not a ClientHello,
 * more than MCD_TLS_MAX_RECORDS records): the parser says NOT_TLS or
 * ERROR then.  When the records present already hold the whole
 * handshake message, returns where they end (<= len; records_len when
 * the parser says MCD_TLS_OK).  Costs at most MCD_TLS_MAX_RECORDS steps.
 */
size_t mcd_tls_hello_need(const unsigned char *buf, size_t len);

/*
 * Formats a ProtocolNameList as "h2,http/1.1" into out, always
 * NUL-terminated when out_size > 0, truncated at a whole character or
 * escape.  Bytes outside printable ASCII, ',' and '\' are written as
 * \xHH.  Returns the bytes written, not counting the NUL.
 */
size_t mcd_tls_alpn_format(const unsigned char *alpn, size_t alpn_len,
    unsigned char *out, size_t out_size);

/* writes a fatal alert record of MCD_TLS_ALERT_LEN (7) bytes to out */
size_t mcd_tls_alert(unsigned char *out, unsigned description);


#endif /* MCD_TLS_H_INCLUDED_ */
