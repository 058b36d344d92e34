# The destination guard (mcd_destination, SPEC 4): every address the
# gateway is about to connect to -- from DNS, the hosts file or an IP
# literal -- is judged before connect; the built-in rules refuse loopback,
# unspecified, link-local, private, multicast and reserved addresses,
# IPv4-mapped and NAT64 forms are judged as the IPv4 address they carry, a
# refused address is skipped, and when none is left the answer is 403 /
# access_denied with reason "dst_blocked".  The loop guard: the gateway never
# connects to one of its own listening sockets (reason "loop").
#
# Without the guard the gateway would connect to the private, link-local
# and reserved addresses these tests name: the file runs only in the network
# namespace scripts/test.sh makes (only "lo": such connects fail locally
# with "network unreachable").  No test needs a non-loopback address to
# answer.  The original destination under "no_sni allow" is tested in
# t/031-transparent-netns.t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket;
use Time::HiRes qw(time);

if (!$ENV{MCD_TEST_IN_NETNS}) {
    plan skip_all => 'runs only in the network namespace of scripts/test.sh '
                   . '(MCD_TEST_IN_NETNS): without the guard the gateway '
                   . 'would connect to private and link-local addresses';
} else {
    plan 'no_plan';
}

# the hosts-file source: the world's names plus one per class

mcd_write_file(mcd_file('hosts-dst'), mcd_slurp(mcd_file('hosts')) . <<'EOF');
# t/040: the destination guard
127.0.0.2        h-lo.allowed.test
0.0.0.0          h-zero.allowed.test
169.254.169.254  h-ll.allowed.test
10.1.2.3         h-p10.allowed.test
192.168.1.1      h-p192.allowed.test
fc00::1          h-ula.allowed.test
::ffff:10.1.2.3  h-map.allowed.test
10.1.2.3         h-mixed.allowed.test
127.0.0.1        h-mixed.allowed.test
127.0.0.5        h-self.allowed.test
EOF

mcd_test_setup();

# the names of the mock DNS server (t/lib/McdTest.pm), the address each
# resolves to (as a pattern for the log) and the built-in class refusing it

our @DnsClasses = (
    ['dst-lo.dns.test',      qr/127\.0\.0\.2/,              'loopback'],
    ['dst-zero.dns.test',    qr/0\.0\.0\.0/,                'unspecified'],
    ['dst-ll.dns.test',      qr/169\.254\.169\.254/,        'link-local'],
    ['dst-p10.dns.test',     qr/10\.1\.2\.3/,               'private'],
    ['dst-p172.dns.test',    qr/172\.16\.5\.5/,             'private'],
    ['dst-p192.dns.test',    qr/192\.168\.1\.1/,            'private'],
    ['dst-cgn.dns.test',     qr/100\.64\.0\.1/,             'private'],
    ['dst-mc.dns.test',      qr/224\.0\.0\.1/,              'multicast'],
    ['dst-r240.dns.test',    qr/240\.0\.0\.1/,              'reserved'],
    ['dst-doc.dns.test',     qr/192\.0\.2\.10/,             'reserved'],
    ['dst-bench.dns.test',   qr/198\.18\.0\.1/,             'reserved'],
    ['dst-v6lo.dns.test',    qr/(?<![0-9a-f:])::1(?![0-9a-f])/, 'loopback'],
    ['dst-v6ll.dns.test',    qr/fe80::1/,                   'link-local'],
    ['dst-v6ula.dns.test',   qr/fc00::1/,                   'private'],
    ['dst-v6mc.dns.test',    qr/ff02::1/,                   'multicast'],
    ['dst-v6any.dns.test',   qr/(?<![0-9a-f:])::(?![0-9a-f])/, 'unspecified'],
    ['dst-map-lo.dns.test',  qr/127\.0\.0\.2|::ffff:7f00:2/, 'loopback'],
    ['dst-map-p10.dns.test', qr/10\.1\.2\.3|::ffff:a01:203/, 'private'],
    ['dst-n64-lo.dns.test',  qr/64:ff9b::7f00:2|127\.0\.0\.2/, 'loopback'],
    ['dst-n64-p10.dns.test', qr/64:ff9b::a01:203|10\.1\.2\.3/, 'private'],
);

our @HostsClasses = (
    ['h-lo.allowed.test',    qr/127\.0\.0\.2/,              'loopback'],
    ['h-zero.allowed.test',  qr/0\.0\.0\.0/,                'unspecified'],
    ['h-ll.allowed.test',    qr/169\.254\.169\.254/,        'link-local'],
    ['h-p10.allowed.test',   qr/10\.1\.2\.3/,               'private'],
    ['h-p192.allowed.test',  qr/192\.168\.1\.1/,            'private'],
    ['h-ula.allowed.test',   qr/fc00::1/,                   'private'],
    ['h-map.allowed.test',   qr/10\.1\.2\.3|::ffff:a01:203/, 'private'],
);

our %Alert = (decode_error => 50, access_denied => 49,
              unrecognized_name => 112, internal_error => 80,
              handshake_failure => 40);

sub alert_bytes { return pack('C n n C C', 21, 0x0303, 2, 2, $Alert{$_[0]}); }

# CONNECT TARGET through the explicit gateway on PORT, with a GET for the
# plain HTTP origin pipelined behind the head; returns (status, body, raw)

sub via {
    my ($port, $target, %o) = @_;
    my $send = "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n";
    $send .= "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n" unless $o{no_get};
    my $got = mcd_raw(port => $port, send => $send,
                      timeout => $o{timeout} // 5,
                      $o{until} ? (until => $o{until}) : ());
    my ($status) = $got =~ m{\AHTTP/1\.1 (\d{3}) };
    my (undef, $body) = split /\r\n\r\n/, $got, 2;
    return ($status // 'none', $body // '', $got);
}

# the access-log line a request adds: N0 lines matched RE before it

sub log_count {
    my ($re) = @_;
    return scalar grep { $_ =~ $re } mcd_log_lines('mcd.log');
}

sub log_next {
    my ($re, $n0) = @_;
    my @m = mcd_wait_log('mcd.log', $re, $n0 + 1, 3);
    return @m > $n0 ? $m[-1] : undef;
}

# error-log lines (the whole file: it is small)

sub err_lines {
    my ($re) = @_;
    return grep { $_ =~ $re } mcd_log_lines('error.log');
}

# explicit: TARGET (host:port) is refused with 403 dst_blocked, the warn
# line names the address and the rule, the access log says deny

sub explicit_blocked {
    my ($port, $target, $addr, $rule) = @_;
    my $key = qr/ upstream=\Q$target\E /;
    my $n0 = log_count($key);
    my ($status, $body) = via($port, $target);
    is $status, '403', "$target: 403";
    is $body, "dst_blocked: destination address not allowed\n",
       "$target: dst_blocked body";
    my @e = err_lines(qr/\[warn\] [^\n]*refused "\Q$target\E" [^\n]*reason "dst_blocked"[^\n]*(?:$addr)[^\n]*\Q$rule\E/);
    is scalar(@e), 1, "$target: warn line names the address and \"$rule\""
        or diag join "\n", err_lines(qr/\Q$target\E/);
    my $line = log_next($key, $n0);
    like $line // '', qr{^403 action=deny .* mode=explicit .* reason=dst_blocked(?: |$)},
         "$target: access log";
}

# transparent: SNI NAME is refused with a fatal access_denied alert

sub transparent_blocked {
    my ($port, $name, $addr, $rule) = @_;
    my $key = qr/ sni=\Q$name\E /;
    my $n0 = log_count($key);
    my $r = mcd_tls_client(port => $port, sni => $name, path => '/host',
                           timeout => 5);
    is $r->{raw}, alert_bytes('access_denied'), "$name: access_denied alert";
    ok !$r->{body}, "$name: no content";
    my @e = err_lines(qr/\[warn\] [^\n]*mcd transparent: refused "\Q$name\E:443" [^\n]*reason "dst_blocked"[^\n]*(?:$addr)[^\n]*\Q$rule\E/);
    is scalar(@e), 1, "$name: warn line names the address and \"$rule\""
        or diag join "\n", err_lines(qr/\Q$name\E/);
    my $line = log_next($key, $n0);
    like $line // '', qr{^403 action=deny .* mode=transparent .* reason=dst_blocked(?: |$)},
         "$name: access log";
}

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;

mcd_fqdn_filter dst {
    default deny;
    allow   origin.test .allowed.test .dns.test
            127.0.0.1 127.0.0.2 127.0.0.9 0.0.0.0 10.1.2.3 169.254.169.254
            ::1 fe80::1 ::ffff:127.0.0.2 64:ff9b::a01:203;
    deny    denied.test;
}

stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn sni=$mcd_sni '
                   'mode=$mcd_mode upstream=$mcd_upstream '
                   'addr=$mcd_upstream_addr reason=$mcd_reason '
                   'ups=$upstream_addr';
    access_log logs/mcd.log mcd;

    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 1s;

    # no mcd_destination anywhere: the built-in rules alone

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports 443 $TEST_NGINX_MCD_ORIGIN
                          $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_connect_timeout 1s;
        preread_timeout 2s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy transparent;
        mcd_fqdn_filter dst;
        mcd_connect_timeout 1s;
        preread_timeout 2s;
    }
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
});

no_shuffle();
worker_connections(1024);
run_tests();

__DATA__

=== TEST 1: explicit: a DNS answer in every built-in class is refused (403 dst_blocked)
--- mcd_client
for my $c (@main::DnsClasses) {
    my ($name, $addr, $class) = @$c;
    main::explicit_blocked($W->{port}, "$name:$W->{origin_http}", $addr, $class);
}
--- no_error_log
[alert]
[crit]
connect() to
connect() failed



=== TEST 2: explicit: a hosts-file entry in a blocked class is refused
--- mcd_client
for my $c (@main::HostsClasses) {
    my ($name, $addr, $class) = @$c;
    main::explicit_blocked($W->{port}, "$name:$W->{origin_http}", $addr, $class);
}
--- no_error_log
[alert]
[crit]
connect() to
connect() failed



=== TEST 3: explicit: IP literals are judged too, IPv4-mapped and NAT64 as IPv4
--- mcd_client
main::explicit_blocked($W->{port}, "10.1.2.3:443", qr/10\.1\.2\.3/, 'private');
main::explicit_blocked($W->{port}, "169.254.169.254:443", qr/169\.254\.169\.254/, 'link-local');
main::explicit_blocked($W->{port}, "127.0.0.2:$W->{origin_http}", qr/127\.0\.0\.2/, 'loopback');
main::explicit_blocked($W->{port}, "127.0.0.1:$W->{origin_http}", qr/127\.0\.0\.1/, 'loopback');
main::explicit_blocked($W->{port}, "0.0.0.0:$W->{origin_http}", qr/0\.0\.0\.0/, 'unspecified');
main::explicit_blocked($W->{port}, "[::1]:$W->{origin}", qr/(?<![0-9a-f:])::1(?![0-9a-f])/, 'loopback');
main::explicit_blocked($W->{port}, "[fe80::1]:443", qr/fe80::1/, 'link-local');
main::explicit_blocked($W->{port}, "[::ffff:127.0.0.2]:$W->{origin_http}", qr/127\.0\.0\.2|::ffff:7f00:2/, 'loopback');
main::explicit_blocked($W->{port}, "[64:ff9b::a01:203]:443", qr/64:ff9b::a01:203|10\.1\.2\.3/, 'private');
--- no_error_log
[alert]
[crit]
connect() to
connect() failed



=== TEST 4: transparent: a DNS answer in every built-in class gets access_denied
--- mcd_client
SKIP: {
    skip 'the test origin cannot listen on 127.0.0.1:443', 1 unless $W->{origin443};
    for my $c (@main::DnsClasses) {
        my ($name, $addr, $class) = @$c;
        main::transparent_blocked($W->{port2}, $name, $addr, $class);
    }
}
--- no_error_log
[alert]
[crit]
connect() to
connect() failed



=== TEST 5: transparent: a hosts-file entry in a blocked class gets access_denied
--- mcd_client
SKIP: {
    skip 'the test origin cannot listen on 127.0.0.1:443', 1 unless $W->{origin443};
    for my $c (@main::HostsClasses) {
        my ($name, $addr, $class) = @$c;
        main::transparent_blocked($W->{port2}, $name, $addr, $class);
    }
}
--- no_error_log
[alert]
[crit]
connect() to
connect() failed



=== TEST 6: refused addresses are skipped: [10.1.2.3, 127.0.0.1] reaches 127.0.0.1 only
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;
mcd_fqdn_filter dst {
    default deny;
    allow   .allowed.test .dns.test;
}
stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn sni=$mcd_sni '
                   'mode=$mcd_mode addr=$mcd_upstream_addr '
                   'reason=$mcd_reason ups=$upstream_addr';
    access_log logs/mcd.log mcd;
    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 1s;
    mcd_destination allow 127.0.0.1;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_connect_timeout 1s;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy transparent;
        mcd_fqdn_filter dst;
        mcd_connect_timeout 1s;
    }
}
--- mcd_client
# the hosts file keeps its order (10.1.2.3 first); the resolver's may vary
for my $name ('h-mixed.allowed.test', 'dst-mixed.dns.test') {
    my ($status, $body) = main::via($W->{port}, "$name:$W->{origin_http}");
    is $status, '200', "explicit $name: 200";
    like $body, qr{\AHTTP/1\.1 200 OK\r\n.*\r\n\r\nhello from origin\n\z}s,
         "explicit $name: the origin answered through the tunnel";
    my ($line) = mcd_wait_log('mcd.log', qr/ fqdn=\Q$name\E sni=- mode=explicit/, 1, 3);
    like $line // '', qr{^200 action=allow .* addr=127\.0\.0\.1:$W->{origin_http} reason=- ups=127\.0\.0\.1:\d+$},
         "explicit $name: connected to 127.0.0.1 only, 10.1.2.3 never tried";
}
SKIP: {
    skip 'the test origin cannot listen on 127.0.0.1:443', 6 unless $W->{origin443};
    for my $name ('h-mixed.allowed.test', 'dst-mixed.dns.test') {
        my $r = mcd_tls_client(port => $W->{port2}, sni => $name, path => '/host');
        is $r->{body}, "host=$name sni=$name\n", "transparent $name: the origin's body";
        is $r->{verify}, 0, "transparent $name: the origin's certificate";
        my ($line) = mcd_wait_log('mcd.log', qr/ sni=\Q$name\E mode=transparent/, 1, 3);
        like $line // '', qr{^200 action=allow .* addr=127\.0\.0\.1:443 reason=- ups=127\.0\.0\.1:443$},
             "transparent $name: 10.1.2.3 never tried";
    }
}
my @skip = main::err_lines(qr/\[info\] (?![^\n]*connect\(\) failed)[^\n]*10\.1\.2\.3/);
ok scalar(@skip) >= 2, 'an info line for each skipped address'
    or diag join "\n", mcd_log_lines('error.log');
--- no_error_log
[alert]
[crit]
connect() to 10.1.2.3



=== TEST 7: configured rules come first, first match wins, in file order
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;
mcd_fqdn_filter dst {
    default deny;
    allow   origin.test refused.test .dns.test ::1;
}
stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn '
                   'mode=$mcd_mode upstream=$mcd_upstream '
                   'addr=$mcd_upstream_addr reason=$mcd_reason '
                   'ups=$upstream_addr';
    access_log logs/mcd.log mcd;
    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 1s;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination deny 127.0.0.1;     # DENY-FIRST
        mcd_destination allow 127.0.0.0/8;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.0/8;
        mcd_destination deny 127.0.0.1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow all;
    }
}
--- mcd_client
my $o = "origin.test:$W->{origin_http}";

# deny 127.0.0.1 before allow 127.0.0.0/8
my ($status, $body) = main::via($W->{port}, $o);
is $status, '403', 'deny first: 403';
is $body, "dst_blocked: destination address not allowed\n", 'deny first: dst_blocked';
my $conf = $Test::Nginx::Util::ConfFile;
my @conf = split /\n/, mcd_slurp($conf);
my ($lineno) = grep { $conf[$_ - 1] =~ /DENY-FIRST/ } 1 .. scalar(@conf);
ok $lineno, 'the rule is found in nginx.conf' or $lineno = 'NONE';
my @e = main::err_lines(qr/reason "dst_blocked"[^\n]*127\.0\.0\.1[^\n]*"deny 127\.0\.0\.1(?:\/32)?"(?![^\n]*built-in)/);
is scalar(@e), 1, 'the warn line names the configured rule, not a built-in one'
    or diag join "\n", main::err_lines(qr/dst_blocked/);
ok scalar(main::err_lines(qr/reason "dst_blocked"[^\n]*"deny 127\.0\.0\.1(?:\/32)?"[^\n]*nginx\.conf:$lineno\b/)),
   "the rule's place in nginx.conf (line $lineno)";
# 127.0.0.2 falls through to "allow 127.0.0.0/8": connected (and refused by
# the kernel: nothing listens there)
($status, $body) = main::via($W->{port}, "refused.test:$W->{origin_http}");
is $status, '502', 'deny first: 127.0.0.2 allowed by the second rule, connect refused';
like $body, qr/^connect: /, 'reason connect, not dst_blocked';
($status, $body) = main::via($W->{port}, "dst-lo.dns.test:$W->{origin_http}");
is $status, '502', 'deny first: 127.0.0.2 from DNS allowed too';

# allow 127.0.0.0/8 before deny 127.0.0.1
($status, $body) = main::via($W->{port2}, $o);
is $status, '200', 'allow first: 200';
like $body, qr/hello from origin\n\z/, 'allow first: the origin answered';

# allow all lets loopback through, v4 and v6
($status, $body) = main::via($W->{port3}, $o);
is $status, '200', 'allow all: 200';
like $body, qr/hello from origin\n\z/, 'allow all: the origin answered';
($status, $body) = main::via($W->{port3}, "[::1]:$W->{origin}", no_get => 1,
                             until => qr/\r\n\r\n/, timeout => 3);
is $status, '200', 'allow all: [::1] too';
($status, $body) = main::via($W->{port3}, "dst-v6lo.dns.test:$W->{origin}", no_get => 1,
                             until => qr/\r\n\r\n/, timeout => 3);
is $status, '200', 'allow all: ::1 from DNS too';
--- no_error_log
[alert]
[crit]



=== TEST 8: a server's own list replaces the main level's; classes as tokens
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;
mcd_fqdn_filter dst {
    default deny;
    allow   origin.test refused.test .dns.test .allowed.test ::1;
}
stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn sni=$mcd_sni '
                   'mode=$mcd_mode upstream=$mcd_upstream '
                   'addr=$mcd_upstream_addr reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 1s;

    mcd_destination allow 127.0.0.0/8 ::1;

    server {
        # inherits the main level's list
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ORIGIN_HTTP;
    }
    server {
        # its own list, without loopback: the built-ins refuse it
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination deny 10.0.0.0/8;
    }
    server {
        # a class as a token
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy transparent;
        mcd_fqdn_filter dst;
        mcd_destination allow loopback;
    }
}
--- mcd_client
my $o = "origin.test:$W->{origin_http}";
my ($status, $body) = main::via($W->{port}, $o);
is $status, '200', 'inherited: 200';
like $body, qr/hello from origin\n\z/, 'inherited: the origin answered';
($status, $body) = main::via($W->{port}, "[::1]:$W->{origin}", no_get => 1,
                             until => qr/\r\n\r\n/, timeout => 3);
is $status, '200', 'inherited: ::1 allowed too';

main::explicit_blocked($W->{port2}, $o, qr/127\.0\.0\.1/, 'loopback');
main::explicit_blocked($W->{port2}, "dst-v6lo.dns.test:$W->{origin}",
                       qr/(?<![0-9a-f:])::1(?![0-9a-f])/, 'loopback');
my @e = main::err_lines(qr/reason "dst_blocked"[^\n]*127\.0\.0\.1[^\n]*deny loopback[^\n]*built-in/);
ok scalar(@e) >= 1, 'refused by the built-in "deny loopback"'
    or diag join "\n", main::err_lines(qr/dst_blocked/);

SKIP: {
    skip 'the test origin cannot listen on 127.0.0.1:443', 3 unless $W->{origin443};
    my $r = mcd_tls_client(port => $W->{port3}, sni => 'www.allowed.test', path => '/host');
    is $r->{body}, "host=www.allowed.test sni=www.allowed.test\n", 'transparent, allow loopback: the origin';
    main::transparent_blocked($W->{port3}, 'h-p10.allowed.test', qr/10\.1\.2\.3/, 'private');
}
--- no_error_log
[alert]
[crit]



=== TEST 9: the loop guard: never a connect to one of the gateway's own listeners
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;
mcd_fqdn_filter dst {
    default deny;
    allow   origin.test dns.test 127.0.0.1 127.0.0.9 ::1;
}
stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn '
                   'mode=$mcd_mode upstream=$mcd_upstream '
                   'addr=$mcd_upstream_addr reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 1s;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_PORT $TEST_NGINX_MCD_PORT2
                          $TEST_NGINX_MCD_PORT3 $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow all;
        preread_timeout 2s;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_PORT $TEST_NGINX_MCD_PORT2
                          $TEST_NGINX_MCD_PORT3 $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.0/8 ::1;
        preread_timeout 2s;
    }
    server {
        # wildcard listeners: every local address on this port is the gateway
        listen $TEST_NGINX_MCD_PORT3;
        listen [::]:$TEST_NGINX_MCD_PORT3 ipv6only=on;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.0/8 ::1;
        preread_timeout 2s;
    }
}
--- mcd_client
my @loops = (
    [$W->{port},  "127.0.0.1:$W->{port}",  'its own listener, allow all'],
    [$W->{port},  "127.0.0.1:$W->{port2}", 'another server of the gateway'],
    [$W->{port},  "dns.test:$W->{port}",   'a name resolving to itself'],
    [$W->{port},  "127.0.0.9:$W->{port3}", 'any address on a 0.0.0.0 listener port'],
    [$W->{port},  "[::1]:$W->{port3}",     '::1 on a [::] listener port'],
    [$W->{port2}, "127.0.0.1:$W->{port}",  'allow 127.0.0.0/8 does not open the loop'],
    [$W->{port2}, "127.0.0.1:$W->{port2}", 'its own listener, allow 127.0.0.0/8'],
);
for my $l (@loops) {
    my ($port, $target, $what) = @$l;
    my $key = qr/ upstream=\Q$target\E /;
    my $n0 = main::log_count($key);
    my ($status, $body) = main::via($port, $target, no_get => 1, timeout => 5);
    is $status, '403', "$what ($target): 403";
    like $body, qr/\Aloop: [^\n]*\n\z/, "$what: reason loop";
    my $line = main::log_next($key, $n0);
    like $line // '', qr{^403 action=deny .* reason=loop$}, "$what: access log";
}
my @e = main::err_lines(qr/\[warn\] [^\n]*reason "loop"/);
is scalar(@e), scalar(@loops), 'one warn line per loop'
    or diag join "\n", mcd_log_lines('error.log');

# the gateway still works
my ($status, $body) = main::via($W->{port}, "origin.test:$W->{origin_http}");
is $status, '200', 'a normal CONNECT still works';
like $body, qr/hello from origin\n\z/, 'the origin answered';
--- no_error_log
[alert]
[crit]



=== TEST 10: 200 pipelined CONNECT-to-self heads on one connection build no nested tunnels
--- main_config
mcd_fqdn_filter dst {
    default deny;
    allow   origin.test 127.0.0.1;
}
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;
stream {
    log_format mcd '$status action=$mcd_action upstream=$mcd_upstream '
                   'reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter dst;
        mcd_connect_ports $TEST_NGINX_MCD_PORT $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow all;
        preread_timeout 2s;
    }
}
--- mcd_client
my $head = "CONNECT 127.0.0.1:$W->{port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
my $t0 = time;
my $got = mcd_raw(port => $W->{port}, send => $head x 200, timeout => 8);
my $dt = time - $t0;
my @status = $got =~ m{HTTP/1\.1 (\d{3}) }g;
is "@status", '403', 'exactly one answer, 403';
unlike $got, qr/Connection established/, 'no tunnel was opened';
like $got, qr/\r\n\r\nloop: [^\n]*\n\z/, 'reason loop';
cmp_ok $dt, '<', 5, 'answered and closed at once';
sleep 0.5;
my @sessions = mcd_log_lines('mcd.log');
is scalar(@sessions), 1, 'one session, no nested ones' or diag join "\n", @sessions;
like $sessions[0] // '', qr{^403 action=deny upstream=127\.0\.0\.1:\d+ reason=loop$}, 'logged as loop';

my ($status, $body) = main::via($W->{port}, "origin.test:$W->{origin_http}");
is $status, '200', 'the worker still serves a normal CONNECT';
like $body, qr/hello from origin\n\z/, 'the origin answered';
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 10b: transparent: an SNI resolving to the gateway's own listener is a loop
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-dst;
mcd_fqdn_filter dst {
    default deny;
    allow   .allowed.test;
}
stream {
    log_format mcd '$status action=$mcd_action sni=$mcd_sni '
                   'upstream=$mcd_upstream reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    server {
        # no original destination on plain loopback: the gateway connects
        # to port 443 of the SNI's address, here its own listener
        listen 127.0.0.5:443;
        mcd_proxy transparent;
        mcd_fqdn_filter dst;
        mcd_destination allow 127.0.0.0/8 ::1;
        preread_timeout 2s;
    }
}
--- mcd_client
use IO::Socket::INET;
my $r = mcd_raw(addr => '127.0.0.5', port => 443, send => mcd_client_hello('h-self.allowed.test'),
                timeout => 5);
is $r, main::alert_bytes('access_denied'), 'access_denied alert';
my @sessions = mcd_wait_log('mcd.log', qr/sni=h-self\.allowed\.test /, 1, 3);
is scalar(@sessions), 1, 'one session, no nested ones';
like $sessions[0] // '', qr{^403 action=deny sni=h-self\.allowed\.test upstream=h-self\.allowed\.test:443 reason=loop$}, 'logged as loop';
--- error_log eval
qr{\[warn\] [^\n]*mcd transparent: refused "h-self\.allowed\.test:443" [^\n]*reason "loop"}
--- no_error_log
[alert]
[crit]



=== TEST 11: nginx -t: every kind of token is accepted, at stream and server level
--- nginx_t
mcd_fqdn_filter p { default allow; }
stream {
    mcd_destination allow 127.0.0.0/8 ::1 10.20.0.0/16 fc00::/7 192.0.2.1;
    mcd_destination deny loopback unspecified link-local private multicast
                         reserved;
    mcd_destination allow all;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_destination deny 169.254.169.254 fe80::/10 2001:db8::1;
        mcd_destination allow 0.0.0.0/0 ::/0;
    }
}



=== TEST 12: nginx -t: an invalid CIDR
--- nginx_t
stream {
    mcd_destination allow 10.0.0.0/33;
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*"10\.0\.0\.0/33"}



=== TEST 13: nginx -t: an invalid IPv6 prefix length
--- nginx_t
stream {
    mcd_destination deny fc00::/129;
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*"fc00::/129"}



=== TEST 14: nginx -t: an invalid address
--- nginx_t
mcd_fqdn_filter p { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_destination deny 300.1.2.3;
    }
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*"300\.1\.2\.3"}



=== TEST 15: nginx -t: an unknown class
--- nginx_t
stream {
    mcd_destination deny bogus;
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*"bogus"}



=== TEST 16: nginx -t: an unknown action
--- nginx_t
stream {
    mcd_destination permit 10.0.0.0/8;
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*"permit"}



=== TEST 17: nginx -t: the action is missing
--- nginx_t
stream {
    mcd_destination 10.0.0.0/8;
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*(?:"10\.0\.0\.0/8"|"mcd_destination")}



=== TEST 18: nginx -t: an action without a token
--- nginx_t
stream {
    mcd_destination allow;
}
--- nginx_t_error eval
qr{\[emerg\] (?!unknown directive)[^\n]*(?:mcd_destination|"allow")}
