# Policy per group, the nginx way: "mcd_fqdn_filter $variable;" where the
# variable comes from a stream "geo" on the client address (several
# loopback source addresses), a "map" on $remote_addr or on $mcd_user (with
# proxy authentication), in stream and in http servers.  The same name
# gets different verdicts for different groups; a value that names no
# profile is refused (no_profile: explicit 403, transparent access_denied);
# $mcd_profile is the value; nginx -t checks every literal map/geo value.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep time);

mcd_test_setup();

$ENV{TEST_NGINX_MCD_TP} = $W->{port3} + 1;        # transparent
$ENV{TEST_NGINX_MCD_DIRECT} = $W->{port3} + 2;    # http, map on $remote_addr
$ENV{TEST_NGINX_MCD_FWD} = $W->{port3} + 3;       # http behind mcd_http_pass
$ENV{TEST_NGINX_MCD_FWD_USER} = $W->{port3} + 4;  # http, map on $mcd_user

mcd_write_file(mcd_file('users-groups'),
               "alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n"
               . "carol:{PLAIN}carol-pw\n");

# g_one allows origin.test, g_two allows www.allowed.test, g_three allows
# everything but origin.test

our $Profiles = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts;

mcd_fqdn_filter g_one {
    default deny;
    allow   origin.test;
    deny    www.allowed.test;
}

mcd_fqdn_filter g_two {
    default deny;
    allow   www.allowed.test;
    deny    origin.test;
}

mcd_fqdn_filter g_three {
    default allow;
    deny    origin.test;
}
_EOC_

our $MainConfig = $Profiles . <<'_EOC_';

stream {
    log_format mcd '$remote_addr $status action=$mcd_action fqdn=$mcd_fqdn '
                   'rule=$mcd_rule profile=$mcd_profile reason=$mcd_reason '
                   'user=$mcd_user mode=$mcd_mode';
    access_log logs/mcd.log mcd;

    mcd_destination allow 127.0.0.0/8;

    geo $remote_addr $by_addr {
        default       g_one;
        127.0.0.2/32  g_two;
        127.0.0.3     g_three;
    }

    map $remote_addr $by_map {
        default    g_one;
        127.0.0.2  g_two;
        127.0.0.4  $remote_addr;    # not checked by nginx -t: no profile
    }

    map $mcd_user $by_user {
        default  g_three;
        alice    g_one;
        bob      g_two;
    }

    server {
        # by subnet (geo)
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter $by_addr;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_FWD;
    }

    server {
        # by user (map on $mcd_user)
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_proxy_auth "McdTest Groups";
        mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/users-groups;
        mcd_fqdn_filter $by_user;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_FWD_USER;
    }

    server {
        # by map on the address, one value naming no profile
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy explicit;
        mcd_fqdn_filter $by_map;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_TP;
        mcd_proxy transparent;
        mcd_fqdn_filter $by_map;
    }
}
_EOC_

our $HttpConfig = <<'_EOC_';
    log_format grp '$remote_addr $status action=$mcd_action fqdn=$mcd_fqdn '
                   'rule=$mcd_rule profile=$mcd_profile reason=$mcd_reason '
                   'user=$mcd_user mode=$mcd_mode';

    map $remote_addr $http_group {
        default    g_one;
        127.0.0.2  g_two;
    }

    map $mcd_user $http_by_user {
        default  g_three;
        alice    g_one;
        bob      g_two;
    }

    server {
        # an ordinary server (transparent port 80, reverse proxy)
        listen 127.0.0.1:$TEST_NGINX_MCD_DIRECT;
        mcd_fqdn_filter $http_group;
        mcd_http_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.1;
        access_log logs/http.log grp;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        # behind mcd_http_pass of the geo listener
        listen 127.0.0.1:$TEST_NGINX_MCD_FWD;
        mcd_fqdn_filter $http_group;
        mcd_http_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.1;
        access_log logs/http.log grp;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        # behind mcd_http_pass of the authenticated listener
        listen 127.0.0.1:$TEST_NGINX_MCD_FWD_USER;
        mcd_fqdn_filter $http_by_user;
        mcd_http_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.1;
        access_log logs/http.log grp;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
    $block->set_value('http_config', $HttpConfig)
        unless defined $block->http_config;
});

our %Alert = (access_denied => 49);

sub alert_bytes { return pack('C n n C C', 21, 0x0303, 2, 2, $Alert{$_[0]}); }

# a connection from a loopback source address: send, read until EOF, UNTIL
# or the timeout

sub raw_from {
    my ($local, %o) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // $W->{port},
                                  LocalAddr => $local, Timeout => 5)
        or die "connect from $local: $!";
    my $data = $o{send} // '';
    my $off = 0;
    while ($off < length $data) {
        my $w = syswrite($s, $data, length($data) - $off, $off);
        last unless $w;
        $off += $w;
    }
    my $got = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($o{timeout} // 10);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 65536);
        last if !$n;
        $got .= $buf;
        last if $o{until} && $got =~ $o{until};
    }
    close $s;
    return $got;
}

# CONNECT to the echo server from LOCAL: the answer's status code and body

sub tunnel_from {
    my ($local, $host, %o) = @_;
    my $got = raw_from($local, port => $o{port},
                       send => "CONNECT $host:$W->{echo} HTTP/1.1\r\n"
                             . "Host: $host\r\n" . ($o{headers} // '')
                             . "\r\nping\n",
                       until => qr/\r\n\r\n.*\n/s);
    my ($code) = $got =~ m{\AHTTP/1\.1 (\d{3}) };
    my ($body) = $got =~ /\r\n\r\n(.*)\z/s;
    return ($code // '', $body // '');
}

sub pa {
    my ($user, $pw) = @_;
    return "Proxy-Authorization: Basic " . encode_base64("$user:$pw", '')
           . "\r\n";
}

sub curl_from {
    my ($local, @args) = @_;
    my $r = mcd_curl('-sS', '-v', '--max-time', '15',
                     ($local ? ('--interface', $local) : ()),
                     '-w', '\n%{http_connect} %{http_code}', @args);
    if ($r->{out} =~ s/\n(\d{3}) (\d{3})\z//) {
        $r->{connect_code} = $1;
        $r->{code} = $2;
    }
    return $r;
}

sub log_line {
    my ($log, $re) = @_;
    my ($line) = mcd_wait_log($log, $re);
    return $line // '';
}

# the line of the mcd_fqdn_filter directive using VAR in a configuration

sub directive_line {
    my ($conf, $var) = @_;
    my @lines = split /\n/, mcd_slurp($conf) // '';
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ /^\s*mcd_fqdn_filter\s+\Q$var\E\s*;/;
    }
    return 0;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: geo by client address, curl --interface: the same names, opposite verdicts for 127.0.0.1 and 127.0.0.2
--- mcd_client
my $o = $W->{origin};
my @x = ('--cacert', mcd_file('ca.crt'), '-x', "http://127.0.0.1:$W->{port}");
my $r = main::curl_from(undef, @x, "https://origin.test:$o/index.html");
is $r->{code}, '200', '127.0.0.1 (g_one): origin.test allowed' or diag $r->{err};
is $r->{out}, "hello from origin\n", 'body';
$r = main::curl_from(undef, @x, "https://www.allowed.test:$o/index.html");
is $r->{connect_code}, '403', '127.0.0.1 (g_one): www.allowed.test denied';
$r = main::curl_from('127.0.0.2', @x, "https://origin.test:$o/index.html");
is $r->{connect_code}, '403', '127.0.0.2 (g_two): origin.test denied' or diag $r->{err};
$r = main::curl_from('127.0.0.2', @x, "https://www.allowed.test:$o/index.html");
is $r->{code}, '200', '127.0.0.2 (g_two): www.allowed.test allowed' or diag $r->{err};
is $r->{out}, "hello from origin\n", 'body';
like main::log_line('mcd.log', qr/^127\.0\.0\.1 200 .*fqdn=origin\.test /),
    qr/^127\.0\.0\.1 200 action=allow fqdn=origin\.test rule=origin\.test profile=g_one reason=- user=- mode=explicit$/,
    '$mcd_profile g_one';
like main::log_line('mcd.log', qr/^127\.0\.0\.1 403 /),
    qr/ action=deny fqdn=www\.allowed\.test rule=www\.allowed\.test profile=g_one reason=policy /, 'g_one denies by its rule';
like main::log_line('mcd.log', qr/^127\.0\.0\.2 403 /),
    qr/ action=deny fqdn=origin\.test rule=origin\.test profile=g_two reason=policy /, 'g_two denies by its rule';
like main::log_line('mcd.log', qr/^127\.0\.0\.2 200 /),
    qr/ action=allow fqdn=www\.allowed\.test rule=www\.allowed\.test profile=g_two /, '$mcd_profile g_two';
my @m = mcd_wait_log('error.log', qr/refused "origin\.test:\d+" from 127\.0\.0\.2: 403, .*profile "g_two", reason "policy"/);
is scalar(@m), 1, 'the warn line names the group\'s profile';



=== TEST 2: geo, a third address with IO::Socket::INET LocalAddr 127.0.0.3 (g_three)
--- mcd_client
my ($code, $body) = main::tunnel_from('127.0.0.3', 'origin.test');
is $code, '403', 'origin.test denied';
is $body, "policy: denied by policy\n", 'by policy';
($code, $body) = main::tunnel_from('127.0.0.3', 'www.allowed.test');
is $code, '200', 'www.allowed.test allowed';
is $body, "ping\n", 'through the tunnel';
($code, $body) = main::tunnel_from('127.0.0.3', 'example.test');
is $code, '200', 'g_three\'s default allow';
($code, $body) = main::tunnel_from('127.0.0.5', 'example.test');
is $code, '403', 'the geo default (g_one) for 127.0.0.5';
like main::log_line('mcd.log', qr/^127\.0\.0\.3 .*fqdn=example\.test /),
    qr/^127\.0\.0\.3 200 action=allow fqdn=example\.test rule=default profile=g_three /, 'g_three';
like main::log_line('mcd.log', qr/^127\.0\.0\.5 /),
    qr/^127\.0\.0\.5 403 action=deny fqdn=example\.test rule=default profile=g_one reason=policy /, 'the default group';



=== TEST 3: map on $remote_addr, a value that names no profile: 403 no_profile, $mcd_profile is the value
--- mcd_client
my ($code, $body) = main::tunnel_from('127.0.0.4', 'origin.test', port => $W->{port3});
is $code, '403', 'refused';
like $body, qr/^no_profile: /, 'reason no_profile';
unlike $body, qr/ping/, 'no tunnel';
like main::log_line('mcd.log', qr/^127\.0\.0\.4 /),
    qr/^127\.0\.0\.4 403 action=deny fqdn=\S* rule=\S* profile=127\.0\.0\.4 reason=no_profile /,
    'deny, no_profile, the value as $mcd_profile';
my @m = mcd_wait_log('error.log', qr/\[warn\] .*refused .* from 127\.0\.0\.4: 403, .*reason "no_profile"/);
is scalar(@m), 1, 'one warn line';
($code, $body) = main::tunnel_from('127.0.0.2', 'www.allowed.test', port => $W->{port3});
is $code, '200', 'the same map, 127.0.0.2: g_two';
($code, $body) = main::tunnel_from('127.0.0.1', 'origin.test', port => $W->{port3});
is $code, '200', 'the same map, the default: g_one';



=== TEST 4: transparent: no_profile is a fatal access_denied alert; geo groups decide the same SNI differently
--- mcd_client
my $hello = mcd_client_hello('origin.test');
my $got = main::raw_from('127.0.0.4', port => $ENV{TEST_NGINX_MCD_TP}, send => $hello);
is $got, main::alert_bytes('access_denied'), 'no profile: access_denied';
like main::log_line('mcd.log', qr/^127\.0\.0\.4 /),
    qr/^127\.0\.0\.4 403 action=deny .* profile=127\.0\.0\.4 reason=no_profile user=- mode=transparent$/, 'logged no_profile';
$got = main::raw_from('127.0.0.2', port => $ENV{TEST_NGINX_MCD_TP}, send => $hello);
is $got, main::alert_bytes('access_denied'), '127.0.0.2 (g_two): origin.test denied';
like main::log_line('mcd.log', qr/^127\.0\.0\.2 /),
    qr/^127\.0\.0\.2 403 action=deny fqdn=origin\.test rule=origin\.test profile=g_two reason=policy /, 'g_two, policy';
SKIP: {
    skip 'the origin cannot listen on port 443 (not root)', 2 unless $W->{origin443};
    my $r = mcd_curl('-sS', '--max-time', '15', '--cacert', mcd_file('ca.crt'),
                     '--connect-to', "origin.test:443:127.0.0.1:$ENV{TEST_NGINX_MCD_TP}",
                     'https://origin.test/index.html');
    is $r->{out}, "hello from origin\n", '127.0.0.1 (g_one): origin.test allowed' or diag $r->{err};
    like main::log_line('mcd.log', qr/^127\.0\.0\.1 200 /), qr/ profile=g_one /, 'g_one';
}



=== TEST 5: map on $mcd_user with proxy authentication: two users, two profiles; a user not in the map gets the default
--- mcd_client
my $p2 = $W->{port2};
my %want = (alice => ['200', '403', 'g_one'], bob => ['403', '200', 'g_two'],
            carol => ['403', '200', 'g_three']);
for my $user (sort keys %want) {
    my ($code) = main::tunnel_from('127.0.0.1', 'origin.test', port => $p2,
                                   headers => main::pa($user, "$user-pw"));
    is $code, $want{$user}[0], "$user: origin.test";
    ($code) = main::tunnel_from('127.0.0.1', 'www.allowed.test', port => $p2,
                                headers => main::pa($user, "$user-pw"));
    is $code, $want{$user}[1], "$user: www.allowed.test";
    like main::log_line('mcd.log', qr/ user=$user /), qr/ profile=$want{$user}[2] /, "$user: \$mcd_profile $want{$user}[2]";
}
my ($code) = main::tunnel_from('127.0.0.1', 'origin.test', port => $p2);
is $code, '407', 'without credentials: 407, no group';
my $r = main::curl_from(undef, '--cacert', mcd_file('ca.crt'), '-x', "http://127.0.0.1:$p2",
                        '--proxy-user', 'bob:bob-pw', "https://www.allowed.test:$W->{origin}/index.html");
is $r->{out}, "hello from origin\n", 'curl --proxy-user bob' or diag $r->{err};



=== TEST 6: http: mcd_fqdn_filter $var with a map on $remote_addr, in an ordinary server
--- mcd_client
my $d = $ENV{TEST_NGINX_MCD_DIRECT};
my $o = $W->{origin_http};
my %want = ('127.0.0.1' => ['200', '403', 'g_one'], '127.0.0.2' => ['403', '200', 'g_two']);
for my $from (sort keys %want) {
    my $r = main::curl_from($from, '-H', "Host: origin.test:$o", "http://127.0.0.1:$d/host");
    is $r->{code}, $want{$from}[0], "$from: origin.test" or diag $r->{err};
    $r = main::curl_from($from, '-H', "Host: www.allowed.test:$o", "http://127.0.0.1:$d/host");
    is $r->{code}, $want{$from}[1], "$from: www.allowed.test";
    is $r->{out}, "host=www.allowed.test\n", 'the origin\'s answer' if $want{$from}[1] eq '200';
    like main::log_line('http.log', qr/^\Q$from\E 403 /), qr/ action=deny .* profile=$want{$from}[2] reason=policy user=- mode=http$/,
        "$from: \$mcd_profile $want{$from}[2]";
}



=== TEST 7: http behind mcd_http_pass: the map on $remote_addr sees the client's address; a map on $mcd_user sees the user
--- mcd_client
my $o = $W->{origin_http};
my $r = main::curl_from('127.0.0.2', '-x', "http://127.0.0.1:$W->{port}", "http://www.allowed.test:$o/host");
is $r->{code}, '200', '127.0.0.2 through the geo listener: g_two allows www.allowed.test' or diag $r->{err};
$r = main::curl_from(undef, '-x', "http://127.0.0.1:$W->{port}", "http://www.allowed.test:$o/host");
is $r->{code}, '403', '127.0.0.1: g_one denies it';
like main::log_line('http.log', qr/^127\.0\.0\.2 200 /), qr/ profile=g_two /, 'g_two in the http log';
$r = main::curl_from(undef, '-x', "http://127.0.0.1:$W->{port2}", '--proxy-user', 'bob:bob-pw',
                     "http://www.allowed.test:$o/host");
is $r->{code}, '200', 'bob (g_two) on the authenticated listener' or diag $r->{err};
$r = main::curl_from(undef, '-x', "http://127.0.0.1:$W->{port2}", '--proxy-user', 'alice:alice-pw',
                     "http://www.allowed.test:$o/host");
is $r->{code}, '403', 'alice (g_one): denied';
like main::log_line('http.log', qr/ user=bob /), qr/ 200 .* profile=g_two reason=- user=bob mode=http$/, 'bob, g_two';
like main::log_line('http.log', qr/ user=alice /), qr/ 403 .* profile=g_one reason=policy user=alice mode=http$/, 'alice, g_one';



=== TEST 8: nginx -t: a map value that names no profile
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
stream {
    map $remote_addr $grp {
        default    g_one;
        127.0.0.2  nosuch;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter $grp;
    }
}
--- nginx_t_error eval
qr/\[emerg\] "\$grp" may be "nosuch", which names no mcd_fqdn_filter profile, in \S+:\d+/



=== TEST 9: nginx -t: a geo default that names no profile
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
stream {
    geo $remote_addr $grp {
        default    nosuch_default;
        127.0.0.2  g_one;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter $grp;
    }
}
--- nginx_t_error eval
qr/\[emerg\] "\$grp" may be "nosuch_default", which names no mcd_fqdn_filter profile, in \S+:\d+/



=== TEST 10: nginx -t: a geo value that names no profile; the error names the mcd_fqdn_filter line
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
stream {
    geo $grp {
        default       g_one;
        127.0.0.0/24  g_one;
        127.0.0.9     g_nine;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter $grp;
    }
}
--- nginx_t_error eval
qr/\[emerg\] "\$grp" may be "g_nine", which names no mcd_fqdn_filter profile, in \S+:\d+/
--- mcd_client
my $r = McdTest::mcd_nginx_t($McdTest::Block->nginx_t);
my $line = main::directive_line($r->{conf}, '$grp');
ok $line > 0, 'the directive is in the configuration';
like $r->{err}, qr/names no mcd_fqdn_filter profile, in \Q$r->{conf}\E:$line\b/, "the line of mcd_fqdn_filter ($line)";



=== TEST 11: nginx -t: values with variables are not checked; literal values that all name profiles pass
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
mcd_fqdn_filter g_two { default deny; }
stream {
    map $remote_addr $grp {
        default    g_one;
        127.0.0.2  g_two;
        127.0.0.5  $remote_addr;
        127.0.0.6  "g_$server_port";
    }
    geo $remote_addr $geo_grp {
        default    g_two;
        127.0.0.3  g_one;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter $grp;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_fqdn_filter $geo_grp;
    }
}



=== TEST 12: nginx -t: a group's profile that can decrypt needs mcd_decrypt_pass
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_fqdn_filter g_one { default deny; }
mcd_fqdn_filter g_dec { default deny; decrypt .example.test; }
stream {
    map $remote_addr $grp {
        default    g_one;
        127.0.0.2  g_dec;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter $grp;
    }
}
--- nginx_t_error eval
qr/\[emerg\] .*"g_dec" can decrypt.*"mcd_decrypt_pass"/



=== TEST 13: nginx -t: an http map value that names no profile
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
http {
    map $remote_addr $http_grp {
        default    g_one;
        127.0.0.2  http_nosuch;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_fqdn_filter $http_grp;
        location / { proxy_pass http://$mcd_upstream_addr; }
    }
}
--- nginx_t_error eval
qr/\[emerg\] "\$http_grp" may be "http_nosuch", which names no mcd_fqdn_filter profile, in \S+:\d+/



=== TEST 14: nginx -t: a map on $mcd_user whose values all name profiles passes
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
mcd_fqdn_filter g_two { default deny; }
stream {
    map $mcd_user $grp {
        default  g_one;
        bob      g_two;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_proxy_auth "realm";
        mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/users-groups;
        mcd_fqdn_filter $grp;
    }
}



=== TEST 15: nginx -t: a geo with "ranges" whose range value names no profile
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
stream {
    geo $remote_addr $grp {
        ranges;
        default                g_one;
        127.0.0.1-127.0.0.9    g_one;
        127.0.0.10-127.0.0.20  range_nosuch;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter $grp;
    }
}
--- nginx_t_error eval
qr/\[emerg\] "\$grp" may be "range_nosuch", which names no mcd_fqdn_filter profile, in \S+:\d+/



=== TEST 16: nginx -t: a map with a regex key whose value names no profile
--- nginx_t
mcd_fqdn_filter g_one { default deny; }
stream {
    map $mcd_user $grp {
        default     g_one;
        ~^admin-    regex_nosuch;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_proxy_auth "realm";
        mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/users-groups;
        mcd_fqdn_filter $grp;
    }
}
--- nginx_t_error eval
qr/\[emerg\] "\$grp" may be "regex_nosuch", which names no mcd_fqdn_filter profile, in \S+:\d+/
