# Transparent proxy on loopback: the SNI is read from the ClientHello with
# MSG_PEEK, nothing is consumed, the name is re-resolved and the untouched
# ClientHello reaches the origin, whose own certificate the client sees.
# Denials are TLS alerts.  Without SO_ORIGINAL_DST (plain loopback) the
# gateway connects to port 443: the test origin listens there (root).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket;

if (!$W->{origin443}) {
    plan skip_all => 'the test origin cannot listen on 127.0.0.1:443 '
                   . '(needs root and a free port 443)';
} else {
    plan 'no_plan';
}

mcd_test_setup();

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts;

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;

mcd_fqdn_filter tp {
    default deny;
    allow   origin.test .allowed.test .dns.test refused.test;
    deny    denied.test;
}

mcd_fqdn_filter tp_nosni {
    default deny;
    no_sni  allow;
}

stream {
    log_format mcd '$pid $status action=$mcd_action fqdn=$mcd_fqdn '
                   'sni=$mcd_sni port=$mcd_port rule=$mcd_rule '
                   'mode=$mcd_mode upstream=$mcd_upstream '
                   'addr=$mcd_upstream_addr reason=$mcd_reason '
                   'alpn=$mcd_alpn ech=$mcd_ech odst=$mcd_original_dst '
                   'sent=$bytes_sent received=$bytes_received';
    access_log logs/mcd.log mcd;

    # every origin of the test world is on loopback (SPEC 4)
    mcd_destination allow 127.0.0.0/8 ::1;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter tp;
        resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
        resolver_timeout 1s;
        mcd_connect_timeout 1s;
        preread_timeout 2s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy transparent;
        mcd_fqdn_filter tp_nosni;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy transparent;
        mcd_fqdn_filter tp;
        preread_buffer_size 1k;
    }
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
});

our %Alert = (decode_error => 50, access_denied => 49,
              unrecognized_name => 112, internal_error => 80,
              handshake_failure => 40);

sub alert_bytes { return pack('C n n C C', 21, 0x0303, 2, 2, $Alert{$_[0]}); }

no_shuffle();
run_tests();

__DATA__

=== TEST 1: curl: the origin's own certificate and body, the SNI logged
--- mcd_client
my $r = mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', mcd_file('ca.crt'),
                 '--connect-to', "origin.test:443:127.0.0.1:$W->{port}",
                 'https://origin.test/host');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "host=origin.test sni=origin.test\n", 'body from the origin';
like $r->{err}, qr/issuer: CN=McdTest Origin CA/, 'origin certificate';
my ($line) = mcd_wait_log('mcd.log', qr/sni=origin\.test /);
like $line, qr{ 200 action=allow fqdn=origin\.test sni=origin\.test port=443 rule=origin\.test mode=transparent upstream=origin\.test:443 addr=127\.0\.0\.1:443 reason=- alpn=h2,http/1\.1 ech=0 odst=- sent=\d+ received=\d+$}, 'log line';



=== TEST 2: openssl s_client -servername shows the origin's chain
--- mcd_client
my $r = mcd_s_client(port => $W->{port}, sni => 'www.allowed.test',
                     input => "GET /host HTTP/1.0\r\nHost: www.allowed.test\r\n\r\n");
like $r->{out}, qr/Verification: OK/, 'verified against the test CA';
like $r->{out}, qr/issuer=CN = McdTest Origin CA/, 'issuer';
like $r->{out}, qr/host=www\.allowed\.test sni=www\.allowed\.test/, 'body';



=== TEST 3: a denied name gets a fatal access_denied alert
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'denied.test');
is $r->{raw}, main::alert_bytes('access_denied'), 'exactly one alert record';
ok !$r->{body}, 'no content';
my $c = mcd_curl('-sS', '--max-time', '20', '--cacert', mcd_file('ca.crt'),
                 '--connect-to', "denied.test:443:127.0.0.1:$W->{port}",
                 'https://denied.test/');
isnt $c->{exit}, 0, 'curl fails';
like $c->{err}, qr/alert access denied/, 'curl saw access denied';
my ($line) = mcd_wait_log('mcd.log', qr/sni=denied\.test /);
like $line, qr{ 403 action=deny fqdn=denied\.test sni=denied\.test port=443 rule=denied\.test mode=transparent upstream=denied\.test:443 addr=- reason=policy }, 'log';
--- error_log eval
qr{\[warn\] .*mcd transparent: refused "denied\.test:443" from 127\.0\.0\.1: 403, fqdn "denied\.test", rule "denied\.test", profile "tp", reason "policy"}



=== TEST 4: default deny
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'unlisted.test');
is $r->{raw}, main::alert_bytes('access_denied'), 'access_denied';
my ($line) = mcd_wait_log('mcd.log', qr/sni=unlisted\.test /);
like $line, qr{ 403 action=deny .* rule=default .* reason=policy }, 'log';



=== TEST 5: no SNI is refused by default with unrecognized_name
--- mcd_client
my $r = mcd_tls_client(port => $W->{port});
is $r->{raw}, main::alert_bytes('unrecognized_name'), 'unrecognized_name';
my $s = mcd_s_client(port => $W->{port});
like $s->{err}, qr/unrecognized name/, 's_client saw unrecognized_name';
my ($line) = mcd_wait_log('mcd.log', qr/reason=no_sni/);
like $line, qr{ 403 action=deny fqdn=- sni=- port=443 rule=no_sni .*reason=no_sni }, 'log';



=== TEST 6: no_sni allow without an original destination is refused
--- mcd_client
my $r = mcd_tls_client(port => $W->{port2});
is $r->{raw}, main::alert_bytes('unrecognized_name'), 'refused';
--- error_log eval
qr{reason "no_sni": ClientHello without SNI and no original destination}



=== TEST 7: an SNI that is not a host name
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'bad_name!.test');
is $r->{raw}, main::alert_bytes('access_denied'), 'access_denied';
my ($line) = mcd_wait_log('mcd.log', qr/reason=bad_name/);
like $line, qr{ 400 action=deny fqdn=- sni=bad_name!\.test }, 'fqdn empty, sni kept';



=== TEST 9: DNS failure is an internal_error alert and a 502
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'nx.dns.test');
is $r->{raw}, main::alert_bytes('internal_error'), 'internal_error';
my ($line) = mcd_wait_log('mcd.log', qr/sni=nx\.dns\.test /);
like $line, qr{ 502 action=allow .* reason=dns }, 'log';



=== TEST 10: connection refused is an internal_error alert and a 502
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'refused.test');
is $r->{raw}, main::alert_bytes('internal_error'), 'internal_error';
my ($line) = mcd_wait_log('mcd.log', qr/sni=refused\.test /);
like $line, qr{ 502 action=allow .* reason=connect }, 'log';



=== TEST 11: resolution through the mock DNS server
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'www.dns.test', path => '/host');
is $r->{body}, "host=www.dns.test sni=www.dns.test\n", 'body';
is $r->{verify}, 0, 'certificate verified';



=== TEST 12: a ClientHello re-framed into two TLS records still passes
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'origin.test', path => '/host',
                       records => [40]);
is $r->{body}, "host=origin.test sni=origin.test\n", 'body';
like $r->{issuer}, qr/McdTest Origin CA/, 'origin certificate';
my ($line) = mcd_wait_log('mcd.log', qr/sni=origin\.test /);
like $line, qr{ 200 action=allow }, 'allowed';



=== TEST 13: a ClientHello in two TCP segments still passes
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'origin.test', path => '/host',
                       segments => [30], delay => 0.3);
is $r->{body}, "host=origin.test sni=origin.test\n", 'body';



=== TEST 14: three records, each cut across TCP segments
--- mcd_client
my $r = mcd_tls_client(port => $W->{port}, sni => 'www.allowed.test', path => '/host',
                       records => [7, 90], segments => [3, 11, 60], delay => 0.15);
is $r->{body}, "host=www.allowed.test sni=www.allowed.test\n", 'body';



=== TEST 15: a ClientHello larger than a packet (long ALPN list, s_client)
--- mcd_client
my $alpn = join ',', (map { sprintf 'proto-%04d-xxxxxxxx', $_ } 1 .. 100), 'http/1.1';
my $r = mcd_s_client(port => $W->{port}, sni => 'origin.test', args => ['-alpn', $alpn, '-msg'],
                     input => "GET /host HTTP/1.0\r\nHost: origin.test\r\n\r\n");
my ($len) = $r->{out} =~ /ClientHello.*?length\s+=?\s*(\d+)/s;
like $r->{out}, qr/Verification: OK/, 'verified';
like $r->{out}, qr/host=origin\.test sni=origin\.test/, 'body';
my ($line) = mcd_wait_log('mcd.log', qr/sni=origin\.test .*alpn=proto-0001/);
like $line, qr{alpn=proto-0001-xxxxxxxx,proto-0002-xxxxxxxx,.*,proto-0100-xxxxxxxx,http/1\.1 }, 'ALPN list logged';
my ($received) = $line =~ /received=(\d+)/;
cmp_ok $received, '>', 2000, 'the client sent over 2 KiB';



=== TEST 16: a large ClientHello (ffdhe8192 key share, long SNI) in segments
--- mcd_client
my $sni = join('.', 'a' x 60, 'b' x 60, 'c' x 60, 'd' x 47) . '.wild.dns.test';
my $r = mcd_tls_client(port => $W->{port}, sni => $sni, path => '/host',
                       groups => 'ffdhe8192:P-256', segments => [1000, 500], delay => 0.2,
                       timeout => 30);    # ffdhe8192 is slow on a loaded machine
cmp_ok length($r->{hello}), '>', 1500, 'hello over 1500 bytes';
is $r->{body}, "host=$sni sni=$sni\n", 'body';
is $r->{verify}, 0, 'origin certificate verified';



=== TEST 16b: ECH is noted
--- mcd_client
my $hello = mcd_client_hello('origin.test');
# append an encrypted_client_hello extension (type 0xfe0d) and fix lengths
my $ext = pack('n n', 0xfe0d, 4) . "\x00\x01\x02\x03";
my ($type, $ver, $rlen) = unpack('C n n', $hello);
my $hs = substr($hello, 5, $rlen);
my $body = substr($hs, 4);
# walk to the extensions block
my $p = 2 + 32;
$p += 1 + unpack('C', substr($body, $p, 1));
$p += 2 + unpack('n', substr($body, $p, 2));
$p += 1 + unpack('C', substr($body, $p, 1));
my $elen = unpack('n', substr($body, $p, 2));
substr($body, $p, 2) = pack('n', $elen + length $ext);
$body .= $ext;
$hs = pack('C', 1) . substr(pack('N', length $body), 1) . $body;
my $wire = pack('C n n', 22, $ver, length $hs) . $hs;
my $got = mcd_raw(port => $W->{port}, send => $wire, timeout => 3, until => qr/./s);
ok length $got, 'the origin answered the (forwarded) hello';
my ($line) = mcd_wait_log('mcd.log', qr/ ech=1 /);
like $line, qr{ action=allow fqdn=origin\.test .* alpn=- ech=1 }, 'ech=1';



=== TEST 17: non-TLS bytes: closed without a byte
--- mcd_client
my $got = mcd_raw(port => $W->{port}, send => "GET / HTTP/1.0\r\n\r\n", timeout => 5);
is $got, '', 'nothing sent back';
my ($line) = mcd_wait_log('mcd.log', qr/ 400 action=deny .*reason=bad_request/);
ok $line, 'logged as bad input';



=== TEST 18: a truncated ClientHello gets decode_error
--- mcd_client
my $hello = mcd_client_hello('origin.test');
my $got = mcd_raw(port => $W->{port}, send => substr($hello, 0, 60), shutdown => 1, timeout => 5);
is $got, main::alert_bytes('decode_error'), 'decode_error';
--- error_log
truncated ClientHello



=== TEST 19: a malformed ClientHello gets decode_error, the worker lives on
--- mcd_client
my $hello = mcd_client_hello('origin.test');
my $bad = $hello;
# break the handshake length: one byte more than the record holds
substr($bad, 6, 3) = substr(pack('N', unpack('N', "\0" . substr($hello, 6, 3)) - 1), 1);
my $got = mcd_raw(port => $W->{port}, send => $bad, timeout => 5);
is $got, main::alert_bytes('decode_error'), 'decode_error';
for my $junk ("\x16\x03\x01\xff\xff" . ("A" x 100), "\x16\x03\x01\x00\x00",
              "\x16\x03\x01\x00\x04\x02\x00\x00\x00", "\x16\xff\xff\xff")
{
    mcd_raw(port => $W->{port}, send => $junk, timeout => 3);
}
my $r = mcd_tls_client(port => $W->{port}, sni => 'origin.test', path => '/host');
is $r->{body}, "host=origin.test sni=origin.test\n", 'still serving';
my @pids = map { /^(\d+) / } mcd_log_lines('mcd.log');
my %pids = map { $_ => 1 } @pids;
is scalar(keys %pids), 1, 'one worker served everything';
--- no_error_log
[alert]
[crit]



=== TEST 20: a client slower than preread_timeout is closed without a byte
--- mcd_client
my $hello = mcd_client_hello('origin.test');
my $got = mcd_raw(port => $W->{port}, send => [substr($hello, 0, 20), substr($hello, 20)],
                  delay => 3, timeout => 10);
is $got, '', 'closed without a byte';
--- error_log
timed out reading the ClientHello



=== TEST 21: ssl_preread in the same server would eat the ClientHello: refused at nginx -t
--- nginx_t
mcd_fqdn_filter tp {
    default deny;
    allow   origin.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        ssl_preread on;
        mcd_proxy transparent;
        mcd_fqdn_filter tp;
        mcd_destination allow 127.0.0.0/8 ::1;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_proxy" cannot be used with "ssl_preread on"}



=== TEST 21b: ssl_preread on at the stream level, inherited by an mcd_proxy server
--- nginx_t
mcd_fqdn_filter tp {
    default deny;
    allow   origin.test;
}
stream {
    ssl_preread on;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter tp;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_proxy" cannot be used with "ssl_preread on"}



=== TEST 22: a ClientHello larger than preread_buffer_size is refused
--- mcd_client
my $r = mcd_tls_client(port => $W->{port3}, sni => 'origin.test', path => '/host',
                       groups => 'ffdhe8192:P-256');
cmp_ok length($r->{hello}), '>', 1024, 'hello over 1 KiB';
is $r->{raw}, main::alert_bytes('decode_error'), 'decode_error';
my $small = mcd_tls_client(port => $W->{port3}, sni => 'origin.test', path => '/host');
is $small->{body}, "host=origin.test sni=origin.test\n", 'a small hello still passes';
--- error_log
ClientHello larger than preread_buffer_size
