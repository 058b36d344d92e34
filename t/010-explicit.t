# Explicit proxy (HTTP CONNECT), pass-through and deny, with real clients:
# curl -x to a loopback HTTPS origin whose own certificate curl verifies,
# raw sockets for every refusal of SPEC 4, a mock DNS server and the hosts
# file for resolution.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';
use Digest::SHA qw(sha256_hex);

mcd_test_setup();

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts;

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;

mcd_fqdn_filter egress {
    default deny;
    allow   origin.test .allowed.test example.test .dns.test hosts-wins.test
            closed.test blackhole.test v6only.test multi.test nx.test
            127.0.0.1 ::1;
    deny    denied.test .denied.test;
}

stream {
    log_format mcd '$remote_addr $status action=$mcd_action '
                   'fqdn=$mcd_fqdn port=$mcd_port rule=$mcd_rule '
                   'profile=$mcd_profile mode=$mcd_mode '
                   'upstream=$mcd_upstream addr=$mcd_upstream_addr '
                   'reason=$mcd_reason sent=$bytes_sent '
                   'received=$bytes_received ups=$upstream_addr';
    access_log logs/mcd.log mcd;

    # every origin of the test world is on loopback (SPEC 4)
    mcd_destination allow 127.0.0.0/8 ::1;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
        resolver_timeout 1s;
        listen [::1]:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ORIGIN_HTTP
                          $TEST_NGINX_MCD_ECHO $TEST_NGINX_MCD_CLOSED
                          $TEST_NGINX_MCD_BLACKHOLE;
        mcd_connect_timeout 1s;
        preread_timeout 2s;
    }

    server {
        # the zero-copy relay
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO;
        mcd_splice on;
    }

    server {
        # no resolver: names not in the hosts file cannot be resolved
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO;
        mcd_idle_timeout 1s;
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

=== TEST 1: curl -x: the origin's own certificate, the exact body, the log
--- mcd_client
my $r = mcd_curl_x(host => 'origin.test', path => '/index.html');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{connect_code}, '200', 'CONNECT answered 200';
is $r->{code}, '200', 'origin answered 200';
is $r->{out}, "hello from origin\n", 'exact body';
like $r->{err}, qr/issuer: CN=McdTest Origin CA/, 'origin certificate seen';
like $r->{err}, qr/subject: CN=origin\.test/, 'origin subject';
my $port = $W->{origin};
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=origin\.test/);
like $line, qr{^127\.0\.0\.1 200 action=allow fqdn=origin\.test port=$port rule=origin\.test profile=egress mode=explicit upstream=origin\.test:$port addr=127\.0\.0\.1:$port reason=- sent=\d+ received=\d+ ups=127\.0\.0\.1:$port$},
    'access log line';
my ($sent) = $line =~ /sent=(\d+)/;
cmp_ok $sent, '>', 1000, 'bytes sent counted';



=== TEST 2: 10 MiB body arrives intact
--- mcd_client
my $out = mcd_file('big.out');
unlink $out;
my $r = mcd_curl_x(host => 'www.allowed.test', path => '/big.bin',
                   output => $out, max_time => 60);
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is -s $out, $W->{big_size}, 'size';
is sha256_hex(mcd_slurp($out)), sha256_hex(mcd_slurp(mcd_file('www/big.bin'))),
   'sha256';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=www\.allowed\.test/);
my ($sent) = $line =~ /sent=(\d+)/;
cmp_ok $sent, '>', $W->{big_size}, 'log counts the 10 MiB';



=== TEST 3: 200 parallel tunnels, each with its own TLS session
--- mcd_client
my @urls = map { "https://origin.test:$W->{origin}/slow.bin?n=$_" } 1 .. 200;
my $r = mcd_curl('-sS', '--http1.1', '-Z', '--parallel-immediate',
                 '--parallel-max', '200', '--max-time', '60',
                 '--cacert', mcd_file('ca.crt'),
                 '-x', "http://127.0.0.1:$W->{port}",
                 '-w', '%{http_code} %{size_download}\n',
                 (map { ('-o', '/dev/null', $_) } @urls));
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
my @ok = grep { $_ eq '200 65536' } split /\n/, $r->{out};
is scalar(@ok), 200, '200 complete transfers';
my @lines = mcd_wait_log('mcd.log', qr/^127\.0\.0\.1 200 action=allow fqdn=origin\.test/, 200, 20);
is scalar(@lines), 200, '200 tunnels logged';



=== TEST 4: policy deny: 403 with a reason, one log line naming the rule
--- gateway
--- raw_request eval
"CONNECT x.denied.test:$ENV{TEST_NGINX_MCD_ORIGIN} HTTP/1.1\r\nHost: x.denied.test\r\n\r\n"
--- error_code: 403
--- response_body
policy: denied by policy
--- error_log eval
qr{\[warn\] .*mcd explicit: refused "x\.denied\.test:\d+" from 127\.0\.0\.1: 403, fqdn "x\.denied\.test", rule "\.denied\.test", profile "egress", reason "policy"}



=== TEST 5: curl sees the 403 and the log says deny/policy
--- mcd_client
my $r = mcd_curl_x(host => 'denied.test');
isnt $r->{exit}, 0, 'curl failed';
is $r->{connect_code}, '403', 'CONNECT answered 403';
like $r->{err}, qr/CONNECT tunnel failed, response 403/, 'curl saw 403';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=denied\.test/);
like $line, qr{ 403 action=deny fqdn=denied\.test port=\d+ rule=denied\.test profile=egress mode=explicit upstream=denied\.test:\d+ addr=- reason=policy }, 'log';



=== TEST 6: default deny
--- gateway
--- raw_request eval
"CONNECT unlisted.test:$ENV{TEST_NGINX_MCD_ORIGIN} HTTP/1.1\r\n\r\n"
--- error_code: 403
--- response_body
policy: denied by policy
--- error_log eval
qr{refused "unlisted\.test:\d+" .* rule "default", profile "egress", reason "policy"}



=== TEST 7: a port outside mcd_connect_ports
--- gateway
--- raw_request eval
"CONNECT origin.test:22 HTTP/1.1\r\n\r\n"
--- error_code: 403
--- response_body
port: port not allowed
--- error_log eval
qr{refused "origin\.test:22" .* rule "mcd_connect_ports", profile "egress", reason "port"}



=== TEST 8: malformed request line
--- gateway
--- raw_request eval
"CONNECT origin.test:443\r\n\r\n"
--- error_code: 400
--- response_body_like eval
qr/^bad_request: /
--- error_log
reason "bad_request"



=== TEST 9: userinfo in the authority
--- gateway
--- raw_request eval
"CONNECT user:secret\@origin.test:443 HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body
bad_request: userinfo not allowed



=== TEST 10: missing port
--- gateway
--- raw_request eval
"CONNECT origin.test HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body_like
^bad_request: .*port



=== TEST 11: port zero
--- gateway
--- raw_request eval
"CONNECT origin.test:0 HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body_like
^bad_request: .*port



=== TEST 12: port out of range
--- gateway
--- raw_request eval
"CONNECT origin.test:65536 HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body_like
^bad_request: .*port



=== TEST 13: a host that is not a valid name
--- gateway
--- raw_request eval
"CONNECT a..b.test:443 HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body
bad_name: not a valid host name
--- error_log eval
qr{refused "a\.\.b\.test" from 127\.0\.0\.1: 400, fqdn "", rule "", profile "egress", reason "bad_name"}



=== TEST 14: a label over 63 bytes
--- gateway
--- raw_request eval
"CONNECT " . ("a" x 64) . ".test:443 HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body
bad_name: not a valid host name



=== TEST 15: a head larger than the buffer
--- gateway
--- raw_request eval
"CONNECT origin.test:443 HTTP/1.1\r\nX-Big: " . ("x" x 20000) . "\r\n\r\n"
--- error_code: 431
--- response_body
bad_request: request header too large



=== TEST 16: a request that is not CONNECT
--- gateway
--- raw_request eval
"GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n"
--- error_code: 405
--- response_body
bad_request: only CONNECT is supported on this port



=== TEST 17: TLS bytes instead of an HTTP request
--- gateway
--- raw_request eval
"\x16\x03\x01\x00\x05hello"
--- error_code: 400



=== TEST 18: DNS failure (NXDOMAIN from the mock server) is a 502
--- gateway
--- raw_request eval
"CONNECT nx.dns.test:$ENV{TEST_NGINX_MCD_ORIGIN} HTTP/1.1\r\n\r\n"
--- error_code: 502
--- response_body
dns: name resolution failed (3: Host not found)
--- error_log eval
qr{refused "nx\.dns\.test:\d+" .* reason "dns": name resolution failed \(3: Host not found\)}



=== TEST 19: a resolver that does not answer is a 502 after resolver_timeout
--- gateway
--- raw_request eval
"CONNECT slow.dns.test:$ENV{TEST_NGINX_MCD_ORIGIN} HTTP/1.1\r\n\r\n"
--- error_code: 502
--- response_body
dns: name resolution failed (110: Operation timed out)
--- error_log eval
qr{refused "slow\.dns\.test:\d+" .* reason "dns": name resolution failed \(110: Operation timed out\)}



=== TEST 20: no resolver and not in the hosts file
--- gateway: port2
--- raw_request eval
"CONNECT www.dns.test:$ENV{TEST_NGINX_MCD_ORIGIN} HTTP/1.1\r\n\r\n"
--- error_code: 502
--- response_body
dns: name not in mcd_hosts_file and no resolver configured



=== TEST 21: connection refused is a 502
--- gateway
--- raw_request eval
"CONNECT closed.test:$ENV{TEST_NGINX_MCD_CLOSED} HTTP/1.1\r\n\r\n"
--- error_code: 502
--- response_body
connect: upstream connect failed
--- error_log eval
qr{reason "connect"}



=== TEST 22: connect timeout is a 504 after mcd_connect_timeout
--- gateway
--- raw_request eval
"CONNECT blackhole.test:$ENV{TEST_NGINX_MCD_BLACKHOLE} HTTP/1.1\r\n\r\n"
--- error_code: 504
--- response_body
timeout: upstream connect timed out
--- error_log eval
qr{mcd: upstream connect timed out}



=== TEST 24: resolution through the mock DNS server
--- mcd_client
my $r = mcd_curl_x(host => 'www.dns.test', path => '/host');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "host=www.dns.test sni=www.dns.test\n", 'body';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=www\.dns\.test/);
like $line, qr{ 200 action=allow fqdn=www\.dns\.test .* addr=127\.0\.0\.1:\d+ }, 'resolved address logged';



=== TEST 25: AAAA through the mock DNS server
--- mcd_client
my $r = mcd_curl_x(host => 'v6.dns.test', path => '/host');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "host=v6.dns.test sni=v6.dns.test\n", 'body';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=v6\.dns\.test/);
like $line, qr{ addr=\[::1\]:\d+ }, 'IPv6 address logged';



=== TEST 26: the hosts file is consulted before DNS
--- mcd_client
my $r = mcd_curl_x(host => 'hosts-wins.test', path => '/host');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=hosts-wins\.test/);
like $line, qr{ addr=127\.0\.0\.1:\d+ }, 'hosts file address, not DNS 127.0.0.3';



=== TEST 27: the next address is tried when one refuses
--- mcd_client
my $r = mcd_curl_x(host => 'multi.test', path => '/host');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "host=multi.test sni=multi.test\n", 'body';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=multi\.test/);
like $line, qr{ addr=127\.0\.0\.1:\d+ .* ups=127\.0\.0\.2:\d+, 127\.0\.0\.1:\d+$}, 'both tried';



=== TEST 28: IPv6 literal authority
--- mcd_client
my $r = mcd_curl_x(host => '::1', path => '/host');
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{connect_code}, '200', 'CONNECT answered 200';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=::1 /);
like $line, qr{ rule=::1 .* upstream=\[::1\]:\d+ addr=\[::1\]:\d+ }, 'log';



=== TEST 29: bytes pipelined after the CONNECT head reach the server
--- mcd_client
my $got = mcd_http_get_via_tunnel(target => "origin.test:$W->{origin_http}",
                                  path => '/index.html');
like $got, qr{\AHTTP/1\.1 200 Connection established\r\n\r\nHTTP/1\.1 200 OK\r\n}, 'both answers';
like $got, qr{\r\n\r\nhello from origin\n\z}, 'body through the tunnel';



=== TEST 30: half-close: the client's FIN reaches the server, the answer still comes back
--- mcd_client
use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $W->{port}, Timeout => 5) or die;
print $s "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n";
my $head = '';
while ($head !~ /\r\n\r\n/) { sysread($s, my $b, 1) or last; $head .= $b; }
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
syswrite($s, "ping\n");
my $echo = '';
while (length $echo < 5) { sysread($s, my $b, 5 - length $echo) or last; $echo .= $b; }
is $echo, "ping\n", 'echo';
shutdown($s, 1);
my $rest = '';
while (1) { my $n = sysread($s, my $b, 100); last unless $n; $rest .= $b; }
is $rest, "BYE\n", 'server saw the FIN and answered, then EOF';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/port=$W->{echo} /);
like $line, qr{^127\.0\.0\.1 200 action=allow }, 'logged as a complete tunnel';



=== TEST 31: idle tunnels are closed after mcd_idle_timeout
--- mcd_client
use IO::Socket::INET;
use Time::HiRes qw(time);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $W->{port2}, Timeout => 5) or die;
print $s "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n";
my $head = '';
while ($head !~ /\r\n\r\n/) { sysread($s, my $b, 1) or last; $head .= $b; }
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $t0 = time;
my $n = sysread($s, my $b, 10);
my $dt = time - $t0;
is $n, 0, 'closed by the gateway';
cmp_ok $dt, '<', 10, 'within the bound';
--- error_log
mcd: tunnel idle for 1000 ms, closing



=== TEST 32: a client slower than preread_timeout gets 408
--- mcd_client
my $got = mcd_raw(send => ["CONNECT origin.test:$W->{origin} HTTP/1.1\r\n", "\r\n"],
                  delay => 3, timeout => 10);
like $got, qr{\AHTTP/1\.1 408 Request Timeout\r\n}, 'answered 408';
my ($line) = mcd_wait_log('mcd.log', qr/ 400 action=deny .*reason=bad_request/);
ok $line, 'logged as bad input';



=== TEST 33: a head arriving in pieces is assembled
--- mcd_client
my $got = mcd_raw(send => ["CONN", "ECT origin.test:$W->{origin_http} HT", "TP/1.1\r\nHost: x\r\n", "\r\nGET /index.html HTTP/1.0\r\n\r\n"],
                  delay => 0.2, timeout => 10);
like $got, qr{\AHTTP/1\.1 200 Connection established\r\n\r\nHTTP/1\.1 200 OK\r\n.*hello from origin\n\z}s, 'tunnel works';



=== TEST 34: mcd_splice on: 10 MiB intact through the zero-copy relay
--- mcd_client
my $out = mcd_file('big-splice.out');
unlink $out;
my $r = mcd_curl_x(host => 'www.allowed.test', path => '/big.bin', proxy => $W->{port3},
                   output => $out, max_time => 60);
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is -s $out, $W->{big_size}, 'size';
is sha256_hex(mcd_slurp($out)), sha256_hex(mcd_slurp(mcd_file('www/big.bin'))), 'sha256';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=www\.allowed\.test/);
my ($sent) = $line =~ /sent=(\d+)/;
cmp_ok $sent, '>', $W->{big_size}, 'the log counts spliced bytes too';



=== TEST 35: mcd_splice on: 1 MiB each way and half-close
--- mcd_client
use IO::Socket::INET;
use IO::Select;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $W->{port3}, Timeout => 5) or die;
print $s "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n";
my $head = '';
while ($head !~ /\r\n\r\n/) { sysread($s, my $b, 1) or last; $head .= $b; }
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'tunnel';
my $data = join '', map { pack('N', $_ * 2654435761 % 4294967291) } 1 .. 262144;   # 1 MiB
my ($off, $got) = (0, '');
my $sel = IO::Select->new($s);
my $deadline = time + 30;
$s->blocking(0);
while (length $got < length $data && time < $deadline) {
    if ($off < length $data) {
        my $w = syswrite($s, $data, 65536, $off);
        $off += $w if $w;
    }
    if ($sel->can_read(0.05)) {
        my $n = sysread($s, my $b, 262144);
        $got .= $b if $n;
    }
}
$s->blocking(1);
is length($got), length($data), '1 MiB echoed';
ok $got eq $data, 'byte for byte';
shutdown($s, 1);
my $rest = '';
while (1) { my $n = sysread($s, my $b, 100); last unless $n; $rest .= $b; }
is $rest, "BYE\n", 'the FIN went through the pipe path, the answer came back';
close $s;



=== TEST 36: bytes the client sends while the gateway resolves and connects wait for the tunnel
--- mcd_client
use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $W->{port}, Timeout => 5) or die;
syswrite($s, "CONNECT delay.dns.test:$W->{echo} HTTP/1.1\r\n\r\n");
select(undef, undef, undef, 0.2);
syswrite($s, "early\n");
my $got = '';
my $sel = IO::Select->new($s);
while (length $got < length("HTTP/1.1 200 Connection established\r\n\r\nearly\n")) {
    last unless $sel->can_read(5);
    sysread($s, my $b, 1000) or last;
    $got .= $b;
}
is $got, "HTTP/1.1 200 Connection established\r\n\r\nearly\n", '200, then the early bytes echoed';
close $s;



=== TEST 37: each worker makes its leaf key and certificate cache at start (a CA is configured)
--- gateway
--- raw_request eval
"CONNECT x.denied.test:$ENV{TEST_NGINX_MCD_ORIGIN} HTTP/1.1\r\n\r\n"
--- error_code: 403
--- error_log eval
qr/\[info\] \d+#\d+: mcd: worker leaf key ec:P-256 generated, certificate cache max=1000 valid=86400/
