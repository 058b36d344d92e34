# Faults of issue 7 (items 3, 4 and 5), each bounded in time, loopback
# only (origins and helpers: t/lib/McdFaults.pm):
#
#   a  TEST 1-2    CONNECT head and FIN in one TCP segment: the FIN reaches
#                  the upstream, its answer the client (not after
#                  mcd_idle_timeout 20s)
#   b  TEST 3-4    client leaves during a 2 s DNS lookup: 499 client_closed
#                  within 1 s, no upstream connect afterwards
#   c  TEST 5      client leaves during a pending connect: 499 within 1 s
#   e  TEST 6-8    upstream RST (copy relay, splice relay, before any byte):
#                  the client sees ECONNRESET, log 502 upstream_reset
#   f  TEST 9-11   96 tunnels, segments of <= 1448 bytes, then FIN, slow
#                  readers: every FIN arrives (splice with sndbuf=8k,
#                  splice with default buffers, copy relay)
#   g  TEST 12     20 addresses, 19 refuse: the 20th is reached
#   h  TEST 13     mcd_next_upstream_tries 3: 502 connect, 3 addresses
#   i  TEST 14     mcd_next_upstream_timeout 2s over 5 blackholes: 504 in ~2 s
#   j  TEST 15-17  mcd_buffer_size 16 / 0 fail nginx -t; 1k relays
#   k  TEST 18-20  client strings escaped in the error log (SNI with a
#                  forged log line, control bytes, quotes, backslashes)
#   l  TEST 21     CONNECT bad!name.test:443 -> 400 bad_name
#   d  t/051-shutdown.t, m  t/052-overload.t
#
# Directives that do not exist before the fixes (mcd_destination,
# mcd_next_upstream_*) are written only when the module knows them, so
# that this file runs on the code before the fixes and fails there for
# the right reason.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use McdFaults;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

$ENV{TEST_NGINX_F_DEST} = 'mcd_destination allow 127.0.0.0/8 ::1;';
$ENV{TEST_NGINX_F_TRIES} = 'mcd_next_upstream_tries 3;';
$ENV{TEST_NGINX_F_NUT} = 'mcd_next_upstream_timeout 2s;';

# the names of this file: one address per line keeps their order

my $hosts = "127.0.0.1 origin.test eof.test rst.test bulk.test blackhole.test"
          . " echo.test\n";
$hosts .= "127.0.0.$_ many.test\n" for 2 .. 20;     # nothing listens there
$hosts .= "127.0.0.1 many.test\n";                  # the 20th works
$hosts .= "127.0.0.$_ holes.test\n" for 2 .. 6;     # SYNs dropped
mcd_write_file(mcd_file('faults-hosts'), $hosts);

f_start_eof_origin();
f_start_eof_origin($F->{slow_eof}, 0.002);
f_start_rst_origin();
f_start_bulk_origin(1448);
f_start_counter();
f_start_late_dns(2);
f_start_blackholes(map { "127.0.0.$_" } 2 .. 6);

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/faults-hosts;

mcd_fqdn_filter open {
    default allow;
}

stream {
    log_format mcd '$status reason=$mcd_reason action=$mcd_action '
                   'fqdn=$mcd_fqdn port=$mcd_port ups=$upstream_addr '
                   'sent=$bytes_sent received=$bytes_received';
    access_log logs/mcd.log mcd;

    resolver 127.0.0.1:$TEST_NGINX_F_DNS ipv6=off valid=1s;
    resolver_timeout 10s;

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_F_EOF $TEST_NGINX_F_SLOW_EOF
                          $TEST_NGINX_F_RST $TEST_NGINX_F_BULK
                          $TEST_NGINX_F_COUNTER $TEST_NGINX_MCD_ECHO
                          $TEST_NGINX_MCD_BLACKHOLE;
        $TEST_NGINX_F_DEST
        mcd_connect_timeout 5s;
        mcd_idle_timeout 20s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW_SPLICE;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_F_EOF $TEST_NGINX_F_SLOW_EOF
                          $TEST_NGINX_F_RST $TEST_NGINX_F_BULK
                          $TEST_NGINX_MCD_ECHO;
        $TEST_NGINX_F_DEST
        mcd_splice on;
        mcd_connect_timeout 5s;
        mcd_idle_timeout 20s;
    }

    server {
        # a small send buffer towards the client: the pipe stays full
        listen 127.0.0.1:$TEST_NGINX_F_GW_SNDBUF sndbuf=8k;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_F_BULK;
        $TEST_NGINX_F_DEST
        mcd_splice on;
        mcd_idle_timeout 20s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW_TP;
        mcd_proxy transparent;
        mcd_fqdn_filter open;
        $TEST_NGINX_F_DEST
        mcd_connect_timeout 1s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW_SMALL;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_MCD_ECHO;
        $TEST_NGINX_F_DEST
        mcd_buffer_size 1k;
        mcd_idle_timeout 20s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW_TRIES;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_MCD_ECHO;
        $TEST_NGINX_F_DEST
        $TEST_NGINX_F_TRIES
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW_NUT;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_F_HOLES;
        $TEST_NGINX_F_DEST
        mcd_connect_timeout 1s;
        $TEST_NGINX_F_NUT
    }
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
});

# f: N tunnels through PORT; the origin sends SIZE bytes in CHUNK-byte
# writes (segments of at most 1448 bytes, not end to end in memory: see
# McdFaults) and then its FIN; the client reads slowly through a small
# receive buffer, so that the gateway's pipe (or buffer) stays full
# behind it until the FIN

sub splice_fin {
    my ($port, $n, @chunks) = @_;
    use Socket qw(:all);
    use Time::HiRes qw(time);
    my (%t, @open);
    for my $i (0 .. $n - 1) {
        my $s;
        socket($s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
        setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
        setsockopt($s, IPPROTO_TCP, TCP_MAXSEG, 1448);
        connect($s, sockaddr_in($port, inet_aton('127.0.0.1')))
            or die "connect: $!";
        my $size = 262144 + $i * 1409;
        my $chunk = $chunks[$i % @chunks];
        f_write_all($s, "CONNECT bulk.test:$F->{bulk} HTTP/1.1\r\n\r\n"
                        . "$size $chunk\n");
        $s->blocking(0);
        push @open, $s;
        $t{fileno $s} = { s => $s, size => $size, got => 0, head => '',
                          chunk => $chunk };
    }
    my $sel = IO::Select->new(@open);
    my $t0 = time;
    my $deadline = $t0 + 15;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.05)) {
            my $t = $t{fileno $s};
            my $r = sysread($s, my $b, 1024);
            next if !defined $r && $!{EAGAIN};
            if (!$r) {
                $t->{eof} = time - $t0;
                $sel->remove($s);
                close $s;
                next;
            }
            if (length $t->{head} < 39) {
                my $need = 39 - length $t->{head};
                $t->{head} .= substr($b, 0, $need, '');
            }
            $t->{got} += length $b;
        }
    }
    my @hung = grep { !defined $_->{eof} } values %t;
    my @short = grep { defined $_->{eof} && $_->{got} != $_->{size} }
                values %t;
    my @bad = grep { $_->{head} ne "HTTP/1.1 200 Connection established\r\n\r\n" }
              values %t;
    is scalar(@bad), 0, "$n tunnels answered 200";
    is scalar(@hung), 0, "every tunnel saw the origin's FIN within 15 s (mcd_idle_timeout is 20s)"
        or diag scalar(@hung) . " hung (size/chunk: received): "
                . join ', ', map { "$_->{size}/$_->{chunk}: $_->{got}" } @hung;
    is scalar(@short), 0, 'and all the bytes before it'
        or diag "short: " . join ', ', map { "$_->{size} got $_->{got}" } @short;
    close $_->{s} for @hung;
    my @lines = mcd_wait_log('mcd.log', qr/^200 reason=- .*fqdn=bulk\.test /,
                             $n, 5);
    is scalar(@lines), $n, "$n tunnels logged 200";
}

no_shuffle();
worker_connections(1024);
run_tests();

__DATA__

=== TEST 1: a: CONNECT head and FIN in one go: the upstream sees the FIN, its answer comes back
--- mcd_client
use Time::HiRes qw(time);
my $t0 = time;
my $s = f_tunnel(target => "eof.test:$F->{eof}", fin => 1);
my $head = f_head($s, 5);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $r = f_read_all($s, 5);
is $r->{data}, "got 0 bytes\n", 'the origin saw the FIN and answered';
ok $r->{eof}, 'then EOF';
cmp_ok time - $t0, '<', 4, 'promptly (mcd_idle_timeout is 20s)';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=eof\.test /, 1, 3);
like $line // '', qr/^200 reason=- action=allow /, 'logged as a complete tunnel';



=== TEST 2: a: the same with bytes pipelined after the head (today's code gets this right)
--- mcd_client
use Time::HiRes qw(time);
my $t0 = time;
my $s = f_tunnel(target => "eof.test:$F->{eof}", extra => "hello\n", fin => 1);
my $head = f_head($s, 5);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $r = f_read_all($s, 5);
is $r->{data}, "got 6 bytes\n", 'the origin got the bytes and the FIN';
cmp_ok time - $t0, '<', 4, 'promptly';
close $s;



=== TEST 3: b: a client that leaves while its name is resolved: no upstream connect afterwards, 499 client_closed at once
--- mcd_client
use Time::HiRes qw(time sleep);
my $s = f_tunnel(target => "b.late.test:$F->{counter}");
sleep 0.3;
close $s;
my $t0 = time;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=b\.late\.test /, 1, 4);
my $dt = time - $t0;
like $line // '', qr/^499 reason=client_closed /, 'logged 499 client_closed';
cmp_ok $dt, '<', 1, 'within 1 s of the close (the DNS answer comes 2 s after the query)';
# the answer (127.0.0.1:counter) comes 2 s after the query: wait past it
sleep 2.5 - (time - $t0) if time - $t0 < 2.5;
is f_count(), 0, 'no upstream connect was made after the client left';



=== TEST 4: b: the late DNS server and the counter work (a client that stays gets its tunnel)
--- mcd_client
use Time::HiRes qw(time);
my $before = f_count();
my $t0 = time;
my $s = f_tunnel(target => "b2.late.test:$F->{counter}");
my $head = f_head($s, 6);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
cmp_ok time - $t0, '>', 1.5, 'after the late answer';
my $deadline = time + 3;
select(undef, undef, undef, 0.05) while f_count() == $before && time < $deadline;
is f_count() - $before, 1, 'the counter saw one connect';
close $s;



=== TEST 5: c: a client that leaves during a pending connect: abandoned at once, 499 client_closed
--- mcd_client
use Time::HiRes qw(time sleep);
my $s = f_tunnel(target => "blackhole.test:$W->{blackhole}");
sleep 0.3;
close $s;
my $t0 = time;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=blackhole\.test /, 1, 7);
my $dt = time - $t0;
like $line // '', qr/^499 reason=client_closed /, 'logged 499 client_closed';
cmp_ok $dt, '<', 1, 'within 1 s of the close (mcd_connect_timeout is 5s)';



=== TEST 6: e: an upstream RST during the relay reaches the client as a reset, 502 upstream_reset
--- mcd_client
my $s = f_tunnel(target => "rst.test:$F->{rst}", extra => "8000\n");
my $head = f_head($s, 5);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $r = f_read_all($s, 5, 8000);
is length $r->{data}, 8000, 'the bytes before the reset';
syswrite($s, 'A');
$r = f_read_all($s, 5);
is length $r->{data}, 0, 'nothing more';
ok !$r->{eof}, 'not a clean EOF';
is $r->{err}, 'Connection reset by peer', 'ECONNRESET';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=rst\.test /, 1, 3);
like $line // '', qr/^502 reason=upstream_reset /, 'logged 502 upstream_reset';
--- error_log eval
qr/reason "upstream_reset"/



=== TEST 7: e: the same through the splice relay (the reset comes after 256 KiB spliced)
--- mcd_client
my $n = 262144;
my $s = f_tunnel(port => $F->{gw_splice}, target => "rst.test:$F->{rst}", extra => "$n\n");
my $head = f_head($s, 5);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $r = f_read_all($s, 5, $n);
is length $r->{data}, $n, 'the bytes before the reset';
syswrite($s, 'A');
$r = f_read_all($s, 5);
is length $r->{data}, 0, 'nothing more';
ok !$r->{eof}, 'not a clean EOF';
is $r->{err}, 'Connection reset by peer', 'ECONNRESET';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=rst\.test /, 1, 3);
like $line // '', qr/^502 reason=upstream_reset /, 'logged 502 upstream_reset';



=== TEST 8: e: an upstream reset before any byte (today's code: a clean EOF, logged 200)
--- mcd_client
my $s = f_tunnel(target => "rst.test:$F->{rst}", extra => "0\n");
my $head = f_head($s, 5);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $r = f_read_all($s, 5);
ok !$r->{eof}, 'not a clean EOF';
is $r->{err}, 'Connection reset by peer', 'ECONNRESET';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=rst\.test /, 1, 3);
like $line // '', qr/^502 reason=upstream_reset /, 'logged 502 upstream_reset';



=== TEST 9: f: mcd_splice on, sndbuf=8k: 96 tunnels, 256+ KiB each in 4000- and 1448-byte writes, then FIN, to slow readers: every FIN arrives
--- timeout: 60
--- mcd_client
main::splice_fin($F->{gw_sndbuf}, 96, 4000, 1448);



=== TEST 10: f: mcd_splice on, default buffers: the same with 4000-, 1448- and 16384-byte writes
--- timeout: 60
--- mcd_client
main::splice_fin($F->{gw_splice}, 96, 4000, 1448, 4000, 16384);



=== TEST 11: f: the same without splice (today's code gets this right)
--- timeout: 60
--- mcd_client
main::splice_fin($F->{gw}, 96, 4000, 1448, 4000, 16384);



=== TEST 12: g: 20 addresses, the first 19 refuse: the 20th is reached (no silent cap of 16)
--- mcd_client
my $s = f_tunnel(target => "many.test:$W->{echo}", extra => "ping\n");
my $head = f_head($s, 10);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $r = f_read_all($s, 5, 5);
is $r->{data}, "ping\n", 'echo through the 20th address';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=many\.test /, 1, 3);
my ($ups) = ($line // '') =~ / ups=(.*?) sent=/;
my @tried = split /, /, $ups // '';
is scalar(@tried), 20, 'all 20 addresses tried';
is $tried[-1], "127.0.0.1:$W->{echo}", 'the last one is 127.0.0.1';



=== TEST 13: h: mcd_next_upstream_tries 3: 502 connect after exactly 3 attempts
--- mcd_client
my $got = mcd_raw(port => $F->{gw_tries}, send => "CONNECT many.test:$W->{echo} HTTP/1.1\r\n\r\n",
                  timeout => 5);
like $got, qr{\AHTTP/1\.1 502 Bad Gateway\r\n.*\r\n\r\nconnect: }s, 'answered 502, reason connect';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=many\.test /, 1, 3);
like $line // '', qr/^502 reason=connect /, 'logged 502 connect';
my ($ups) = ($line // '') =~ / ups=(.*?) sent=/;
my @tried = split /, /, $ups // '';
is_deeply \@tried, [map { "127.0.0.$_:$W->{echo}" } 2 .. 4], 'exactly 3 addresses tried, in order';



=== TEST 14: i: mcd_next_upstream_timeout 2s over 5 blackholed addresses at mcd_connect_timeout 1s: 504 in about 2 s
--- mcd_client
use Time::HiRes qw(time);
my $t0 = time;
my $got = mcd_raw(port => $F->{gw_nut}, send => "CONNECT holes.test:$F->{holes} HTTP/1.1\r\n\r\n",
                  timeout => 10);
my $dt = time - $t0;
like $got, qr{\AHTTP/1\.1 504 Gateway Timeout\r\n}, 'answered 504';
like $got, qr{\r\n\r\ntimeout: }, 'body names the reason';
cmp_ok $dt, '>', 1.5, 'not before the timeout';
cmp_ok $dt, '<', 3, 'after about 2 s, not 5 x 1 s';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=holes\.test /, 1, 3);
like $line // '', qr/^504 reason=timeout /, 'logged 504 timeout';



=== TEST 15: j: mcd_buffer_size below 1k fails nginx -t
--- nginx_t
mcd_fqdn_filter open { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_buffer_size 16;
    }
}
--- nginx_t_error eval
qr/mcd_buffer_size/



=== TEST 16: j: mcd_buffer_size 0 fails nginx -t
--- nginx_t
mcd_fqdn_filter open { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_buffer_size 0;
    }
}
--- nginx_t_error eval
qr/mcd_buffer_size/



=== TEST 17: j: mcd_buffer_size 1k passes nginx -t and relays 100 KiB each way
--- nginx_t
mcd_fqdn_filter open { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_buffer_size 1k;
    }
}
--- mcd_client
my $data = join '', map { chr(($_ * 7) % 251) } 1 .. 102400;
my $s = f_tunnel(port => $F->{gw_small}, target => "echo.test:$W->{echo}");
my $head = f_head($s, 5);
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'CONNECT answered 200';
my $got = '';
$s->blocking(0);
my ($off, $deadline) = (0, time + 20);
my $sel = IO::Select->new($s);
while (length $got < length $data && time < $deadline) {
    if ($off < length $data) {
        my $w = syswrite($s, $data, 8192, $off);
        $off += $w if $w;
    }
    if ($sel->can_read(0.02)) {
        my $n = sysread($s, my $b, 65536);
        $got .= $b if $n;
    }
}
$s->blocking(1);
is length $got, length $data, '100 KiB echoed';
ok $got eq $data, 'byte for byte';
close $s;



=== TEST 18: k: an SNI with a newline cannot forge an error log line
--- mcd_client
use IO::Socket::INET;
my $forged = "2026/12/06 00:00:00 [emerg] 1#1: forged";
my $hello = mcd_client_hello("x\n$forged");
like $hello, qr/\Q$forged\E/, 'the ClientHello carries the forged text';
my $got = mcd_raw(port => $F->{gw_tp}, send => $hello, timeout => 5);
ok length $got, 'answered (an alert)';
my @err = mcd_log_lines('error.log');
my @forged = grep { /^\Q$forged\E/ } @err;
is scalar(@forged), 0, 'no error log line starts with the forged text';
ok((grep { /\\x0[aA]\Q$forged\E/ } @err), 'the refusal line has it escaped')
    or diag join "\n", grep { /forged/ } @err;



=== TEST 19: k: control bytes, quotes and backslashes in an SNI are escaped in the error log
--- mcd_client
my $hello = mcd_client_hello("ev\x1bil\x7f\"q\\.test");
my $got = mcd_raw(port => $F->{gw_tp}, send => $hello, timeout => 5);
ok length $got, 'answered (an alert)';
my $err = mcd_slurp(mcd_servroot() . '/logs/error.log') // '';
unlike $err, qr/[\x1b\x7f]/, 'no raw control byte in the error log';
like $err, qr/"ev\\x1[bB]il\\x7[fF]\\x22q\\x5[cC]\.test"/, 'the refusal line has the SNI escaped'
    or diag join "\n", grep { /refused/ } split /\n/, $err;



=== TEST 20: k: a CONNECT host with control bytes or quotes: the refusal line stays well-formed (the parser refuses such bytes before they are logged, today too)
--- mcd_client
for my $host ("ev\x1bil.test", "q\"uo\\te.test", "b\x7fyte.test") {
    my $got = mcd_raw(port => $F->{gw}, send => "CONNECT $host:443 HTTP/1.1\r\n\r\n", timeout => 5);
    like $got, qr{\AHTTP/1\.1 400 }, 'answered 400';
}
my $err = mcd_slurp(mcd_servroot() . '/logs/error.log') // '';
unlike $err, qr/[\x00-\x09\x0b-\x1f\x7f-\xff]/, 'no raw control byte in the error log';
my @refused = grep { /refused / } split /\n/, $err;
is scalar(@refused), 3, 'three refusal lines';
for (@refused) {
    like $_, qr/ refused "(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\x[0-9A-Fa-f]{2})*" from /, 'the host is quoted and escaped';
}



=== TEST 21: l: CONNECT bad!name.test:443 is a bad_name
--- gateway: f_gw
--- raw_request eval
"CONNECT bad!name.test:443 HTTP/1.1\r\n\r\n"
--- error_code: 400
--- response_body_like eval
qr/^bad_name: /
--- error_log
reason "bad_name"
