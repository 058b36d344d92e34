
/*
 * ngx_mcd: the destination guard's rule engine (mcd_destination).
 *
 * Plain C99 over byte buffers, no nginx headers, no allocation, so that
 * it can be unit tested and fuzzed on its own.
 *
 * Tokens.  mcd_addr_rule_parse() takes one TOKEN of
 * "mcd_destination allow|deny TOKEN ...":
 *
 *   - a class name, lower case exactly as written here: loopback,
 *     unspecified, link-local, private, multicast, reserved, all;
 *   - an IPv4 address: a strict dotted quad, four decimal octets 0-255
 *     without leading zeros ("10.0.0.1"; "010.0.0.1", "10.1", "0x7f.0.0.1"
 *     are refused: resolvers disagree about what they mean);
 *   - an IPv6 address in RFC 4291 text form, with "::" and an optional
 *     dotted quad tail ("::ffff:10.0.0.1"); no brackets, no zone id;
 *   - either address followed by "/PREFIX": 1 to 3 decimal digits,
 *     0..32 for IPv4, 0..128 for IPv6.
 *
 * A CIDR whose address has bits set past the prefix ("10.1.2.3/8") is
 * REFUSED ("host bits set"), unlike nginx's allow/deny, which mask it
 * and warn: the parser cannot warn, and "deny 10.1.2.3/8" is as likely a
 * typo for a host rule as for a network rule, so the configuration has
 * to say which one it means.  An address without a prefix is a host rule
 * (/32 or /128).
 *
 * Classes (SPEC 4):
 *
 *   loopback     127.0.0.0/8  ::1
 *   unspecified  0.0.0.0/8  ::
 *   link-local   169.254.0.0/16  fe80::/10
 *   private      10.0.0.0/8  172.16.0.0/12  192.168.0.0/16
 *                100.64.0.0/10  fc00::/7
 *   multicast    224.0.0.0/4  ff00::/8
 *   reserved     240.0.0.0/4  255.255.255.255  192.0.0.0/24
 *                198.18.0.0/15  192.0.2.0/24  198.51.100.0/24
 *                203.0.113.0/24  2001:db8::/32
 *   all          every address
 *
 * Judging.  An IPv6 address in ::ffff:0:0/96 (IPv4-mapped) or
 * 64:ff9b::/96 (NAT64) is judged as the IPv4 address it carries: its
 * classes are those of that IPv4 address, and IPv4 network rules match
 * it as they match that IPv4 address.  IPv6 network rules still match
 * its IPv6 form ("deny ::ffff:0:0/96" denies every mapped address).  An
 * IPv4 address is never matched by an IPv6 network rule.  Rules are
 * tried in order, first match wins; after the configured rules come the
 * built-in ones: deny loopback, deny unspecified, deny link-local,
 * deny private, deny multicast, deny reserved, allow all.  So the verdict
 * is always decided by some rule.
 *
 * A family other than AF_INET and AF_INET6 belongs to the classes
 * reserved and all only, so that the built-in rules deny it.
 */


#ifndef MCD_ADDR_H_INCLUDED_
#define MCD_ADDR_H_INCLUDED_


#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>


#define MCD_ADDR_ALLOW  0
#define MCD_ADDR_DENY   1

#define MCD_ADDR_CLASS_LOOPBACK     0x01
#define MCD_ADDR_CLASS_UNSPECIFIED  0x02
#define MCD_ADDR_CLASS_LINK_LOCAL   0x04
#define MCD_ADDR_CLASS_PRIVATE      0x08
#define MCD_ADDR_CLASS_MULTICAST    0x10
#define MCD_ADDR_CLASS_RESERVED     0x20
#define MCD_ADDR_CLASS_ALL          0x40


typedef struct {
    unsigned        action;        /* MCD_ADDR_ALLOW or MCD_ADDR_DENY */
    unsigned        classes;       /* MCD_ADDR_CLASS_* bits; 0 for a network */
    int             family;        /* AF_INET or AF_INET6 for a network */
    unsigned char   addr[16];      /* network, masked; 4 bytes for AF_INET */
    unsigned        prefix;        /* 0..32 or 0..128 */
    char            text[64];      /* "deny 10.0.0.0/8", "deny private" */
} mcd_addr_rule_t;


/*
 * Parses one TOKEN (address, CIDR or class name) of
 * "mcd_destination ACTION TOKEN" into *rule; action is MCD_ADDR_ALLOW or
 * MCD_ADDR_DENY.  Returns 0, or -1 with a short reason in *err (a static
 * string), *rule then being unspecified.  rule->text is the action word,
 * a space and the token as written ("deny 10.0.0.0/8").  A class rule has
 * family 0 and prefix 0; a network rule has classes 0 and family AF_INET
 * or AF_INET6, with addr[] zeroed past the prefix.
 */
int mcd_addr_rule_parse(unsigned action, const unsigned char *token,
    size_t len, mcd_addr_rule_t *rule, const char **err);

/*
 * Judges one address (family AF_INET: 4 bytes, AF_INET6: 16 bytes, in
 * network byte order as in sin_addr and sin6_addr; no byte is read for
 * another family): the configured rules[0 .. nrules) in order, then the
 * built-in ones (deny loopback unspecified link-local private multicast
 * reserved; allow all); IPv4-mapped ::ffff:0:0/96 and NAT64
 * 64:ff9b::/96 are judged as the IPv4 address they carry (also against
 * IPv4 rules).  Returns
 * MCD_ADDR_ALLOW or MCD_ADDR_DENY (always (*matched)->action) and sets
 * *matched to the deciding rule (never NULL).  *builtin is set to 1 when
 * that rule is a built-in one (static storage), else to 0 (then *matched
 * points into rules[]).  rules may be NULL when nrules is 0.
 */
int mcd_addr_judge(const mcd_addr_rule_t *rules, size_t nrules, int family,
    const unsigned char *addr, const mcd_addr_rule_t **matched,
    int *builtin);

/*
 * The class bits an address belongs to (after the mapped/NAT64
 * unwrapping); MCD_ADDR_CLASS_ALL is always among them, and at most one
 * other bit is.
 */
unsigned mcd_addr_classes(int family, const unsigned char *addr);


#endif /* MCD_ADDR_H_INCLUDED_ */
