# Proxy authentication on the explicit front door (mcd_proxy_auth,
# mcd_proxy_auth_user_file): 407 with Proxy-Authenticate: Basic for a
# missing, malformed or wrong Proxy-Authorization, a retry on the same
# connection (curl --proxy-user, --proxy-anyauth), at most 3 tries, every
# hash scheme of nginx's auth_basic_user_file, $mcd_user in the stream log
# and after a decrypt hand-off in the http log, the password in no log, the
# credentials at no upstream (tunnel, plain HTTP through mcd_http_pass, an
# ordinary mcd_fqdn_filter server), the user file re-read on reload, and
# the nginx -t errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';
use Digest::SHA qw(sha1);
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep time);

mcd_test_setup();

# the http servers of this file and a plain-HTTP origin that answers with
# the request head it received (so that a test sees what reached it)
$ENV{TEST_NGINX_MCD_FORWARD} = $W->{port2};
$ENV{TEST_NGINX_MCD_FORWARD2} = $W->{port3} + 1;
$ENV{TEST_NGINX_MCD_INTERCEPT} = $W->{port3} + 2;
$ENV{TEST_NGINX_MCD_DIRECT} = $W->{port3} + 3;
$ENV{TEST_NGINX_MCD_HDRECHO} = $W->{port3} + 11;

our $Realm = 'McdTest Proxy';

# one user per hash scheme nginx's auth_basic_user_file accepts; every
# password is unique so that the logs can be searched for it

sub b64 { return encode_base64($_[0], ''); }

sub openssl_passwd {
    my ($alg, $pw) = @_;
    my $r = McdTest::mcd_run_cmd('openssl', 'passwd', "-$alg", $pw);
    die "openssl passwd -$alg: $r->{err}" if $r->{exit} != 0;
    my $h = $r->{out};
    $h =~ s/\s+\z//;
    return $h;
}

our %Pw = (
    alice    => 'Sekr3t-alice-x81',
    bob      => 'Sekr3t-bob-x82',
    u_plain  => 'Plain-pw-x83',
    u_sha    => 'Sha1-pw-x84',
    u_ssha   => 'Ssha-pw-x85',
    u_apr1   => 'Apr1-pw-x86',
    u_md5    => 'Md5crypt-pw-x87',
    u_sha256 => 'Sha256crypt-pw-x88',
    u_sha512 => 'Sha512crypt-pw-x89',
    u_des    => 'DesPw-90',     # DES crypt uses 8 characters
    u_colon  => 'pa:ss:word-x91',
    u_extra  => 'Extra-pw-x92',
);

my $salt = "sAlt\x01\x02";
our %Hash = (
    alice    => openssl_passwd('6', $Pw{alice}),
    bob      => openssl_passwd('apr1', $Pw{bob}),
    u_plain  => "{PLAIN}$Pw{u_plain}",
    u_sha    => '{SHA}' . b64(sha1($Pw{u_sha})),
    u_ssha   => '{SSHA}' . b64(sha1($Pw{u_ssha} . $salt) . $salt),
    u_apr1   => openssl_passwd('apr1', $Pw{u_apr1}),
    u_md5    => openssl_passwd('1', $Pw{u_md5}),
    u_sha256 => openssl_passwd('5', $Pw{u_sha256}),
    u_sha512 => openssl_passwd('6', $Pw{u_sha512}),
    u_des    => crypt($Pw{u_des}, 'Xy'),
    u_colon  => openssl_passwd('6', $Pw{u_colon}),
);

# the wrong passwords and the unknown user's password: never logged either
our @Secrets = (values %Pw, 'Wr0ng-pw-x93', 'Unkn0wn-pw-x94',
                'R00t-only-pw-x97', 'N3w-r00t-pw-x98', 'Crlf-pw-x99',
                'Crlf-apr1-x100');

mcd_write_file(mcd_file('users'), join '',
    "# McdTest proxy users\n",
    "\n",
    (map { "$_:$Hash{$_}\n" } sort keys %Hash),
    "# a comment between users\n",
    "u_extra:{PLAIN}$Pw{u_extra}:a comment field\n");

mcd_write_file(mcd_file('users-reload'), "carol:{PLAIN}0ld-pw-x95\n");

# readable by root only (the master reads it, the workers may be "nobody")
mcd_write_file(mcd_file('users-root'), "dave:{PLAIN}R00t-only-pw-x97\n");
chmod 0600, mcd_file('users-root');

# written on Windows: CRLF line ends (nginx's auth_basic_user_file takes them)
mcd_write_file(mcd_file('users-crlf'),
               "# crlf\r\nerin:{PLAIN}Crlf-pw-x99\r\n"
               . "frank:" . openssl_passwd('apr1', 'Crlf-apr1-x100') . "\r\n");

mcd_write_file(mcd_file('users-nocolon'),
               "# fine\nalice:{PLAIN}x\nno colon on this line\n");

mcd_write_file(mcd_file('hosts-auth'), mcd_slurp(mcd_file('hosts')));

# the origin that echoes the request head it received

my $hdrecho = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                    LocalPort => $ENV{TEST_NGINX_MCD_HDRECHO},
                                    Listen => 64, ReuseAddr => 1)
    or die "header echo: $!";

McdTest::spawn(sub {
    my ($parent) = @_;
    my $l = $hdrecho;
    $SIG{CHLD} = 'IGNORE';
    my $sel = IO::Select->new($l);
    while (getppid() == $parent) {
        next unless $sel->can_read(1);
        my $c = $l->accept or next;
        my $pid = fork;
        next if !defined $pid;
        if ($pid) { close $c; next; }
        close $l;
        my $head = '';
        my $cs = IO::Select->new($c);
        my $deadline = time + 10;
        while ($head !~ /\r\n\r\n/ && length $head < 65536 && time < $deadline) {
            last unless $cs->can_read($deadline - time);
            my $n = sysread($c, $head, 4096, length $head);
            last unless $n;
        }
        $head =~ s/\r\n\r\n.*\z/\r\n\r\n/s;
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     . "Content-Length: " . length($head) . "\r\n"
                     . "Connection: close\r\n\r\n" . $head);
        close $c;
        POSIX::_exit(0);
    }
});

close $hdrecho;

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-auth;

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;

mcd_fqdn_filter egress {
    default deny;
    allow   origin.test 127.0.0.1;
    deny    denied.test;
    decrypt .example.test;
}

stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn port=$mcd_port '
                   'reason=$mcd_reason user=$mcd_user profile=$mcd_profile';
    access_log logs/mcd.log mcd;

    mcd_destination allow 127.0.0.0/8;

    # main level, inherited by the servers
    mcd_proxy_auth "McdTest Proxy";
    mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/USERS_FILE;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO
                          $TEST_NGINX_MCD_HDRECHO;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT;
    }

    server {
        # an unauthenticated listener
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy explicit;
        mcd_proxy_auth off;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ECHO $TEST_NGINX_MCD_HDRECHO;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_FORWARD2;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT;
    }
}
_EOC_

our $HttpConfig = <<'_EOC_';
    log_format fwd '$status user=$mcd_user fqdn=$mcd_fqdn reason=$mcd_reason '
                   'profile=$mcd_profile';
    log_format intercepted '$host $status user=$mcd_user '
                           'decrypted=$mcd_decrypted';

    server {
        # behind mcd_http_pass of the authenticated listener
        listen 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
        mcd_fqdn_filter egress;
        mcd_http_ports $TEST_NGINX_MCD_HDRECHO $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.0/8;
        access_log logs/fwd.log fwd;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        # behind mcd_http_pass of the unauthenticated listener
        listen 127.0.0.1:$TEST_NGINX_MCD_FORWARD2;
        mcd_fqdn_filter egress;
        mcd_http_ports $TEST_NGINX_MCD_HDRECHO;
        mcd_destination allow 127.0.0.0/8;
        access_log logs/fwd2.log fwd;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        # an ordinary server with a policy (transparent port 80, reverse proxy)
        listen 127.0.0.1:$TEST_NGINX_MCD_DIRECT;
        mcd_fqdn_filter egress;
        mcd_http_ports $TEST_NGINX_MCD_HDRECHO;
        mcd_destination allow 127.0.0.0/8;
        access_log logs/direct.log fwd;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT ssl;
        mcd_intercept on;
        access_log logs/decrypted.log intercepted;

        location / {
            proxy_pass https://$mcd_upstream_addr;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TEST_NGINX_MCD_WORLD/ca.crt;
            proxy_ssl_server_name on;
            proxy_ssl_name $mcd_fqdn;
            proxy_set_header Host $host;
        }
    }
_EOC_

our $WorkerUser = $Test::Nginx::Util::WorkerUser;

add_block_preprocessor(sub {
    my $block = shift;
    my $wu = $block->worker_user;
    $wu =~ s/^\s+|\s+$//g if defined $wu;
    $Test::Nginx::Util::WorkerUser = $wu // $WorkerUser;
    my $users = $block->users_file // 'users';
    $users =~ s/\s+//g;
    (my $main = $MainConfig) =~ s/USERS_FILE/$users/;
    $block->set_value('main_config', $main)
        unless defined $block->main_config;
    $block->set_value('http_config', $HttpConfig)
        unless defined $block->http_config;
});

# clients

sub pa {
    my ($user, $pw) = @_;
    return "Proxy-Authorization: Basic " . b64("$user:$pw") . "\r\n";
}

sub connect_to {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $port // $W->{port},
                                  Timeout => 5)
        or die "connect: $!";
    return $s;
}

sub send_all {
    my ($s, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $data) {
        my $w = syswrite($s, $data, length($data) - $off, $off);
        return 0 unless $w;
        $off += $w;
    }
    return 1;
}

# one response from a socket: the head byte by byte (nothing after it is
# consumed), then exactly Content-Length bytes; { eof } when the peer
# closed before a byte, { timeout } when nothing came in time

sub read_response {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + ($timeout // 10);
    my $head = '';
    while ($head !~ /\r\n\r\n\z/) {
        my $left = $deadline - time;
        return { timeout => 1, head => $head }
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, my $b, 1);
        return { eof => 1, head => $head } unless $n;
        $head .= $b;
        return { toolong => 1, head => $head } if length $head > 65536;
    }
    my ($status) = $head =~ /\A([^\r\n]*)\r\n/;
    my ($code) = $status =~ /^HTTP\/1\.[01] (\d{3}) /;
    my %h;
    for my $line (split /\r\n/, $head) {
        push @{ $h{lc $1} }, $2 if $line =~ /^([!#-'*+.0-9A-Z^-z|~-]+):[ \t]*(.*?)[ \t]*$/;
    }
    my $len = $h{'content-length'} ? $h{'content-length'}[0] : 0;
    my $body = '';
    while (length $body < $len) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $body, $len - length $body, length $body);
        last unless $n;
    }
    return { status => $status, code => $code // '', h => \%h,
             head => $head, body => $body };
}

# the peer closes within T seconds (without sending anything more)

sub closed_within {
    my ($s, $t) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + $t;
    my $extra = '';
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $b, 4096);
        return $extra eq '' ? 1 : 0 if !$n;
        $extra .= $b;
    }
    return 0;
}

# CONNECT on a new connection; returns the response (and the socket)

sub connect_req {
    my (%o) = @_;
    my $target = $o{target} // "origin.test:$W->{echo}";
    my $s = $o{sock} // connect_to($o{port});
    send_all($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n"
                 . ($o{headers} // '') . "\r\n" . ($o{after} // ''));
    my $r = read_response($s, $o{timeout});
    $r->{sock} = $s;
    return $r;
}

# a tunnel to the echo server with these credentials: 200 and the echo

sub tunnel_code {
    my ($user, $pw, $port) = @_;
    my $r = connect_req(port => $port, headers => pa($user, $pw),
                        after => "ping-$user\n");
    my $code = $r->{code} // '';
    if ($code eq '200') {
        my $want = "ping-$user\n";
        my $got = '';
        my $sel = IO::Select->new($r->{sock});
        while (length $got < length $want) {
            last unless $sel->can_read(5);
            sysread($r->{sock}, $got, length($want) - length $got,
                    length $got) or last;
        }
        $code = "200 but no echo ($got)" if $got ne $want;
    }
    close $r->{sock};
    return $code;
}

# the exact 407 of the interface

sub is_407 {
    my ($r, $detail, $name) = @_;
    Test::More::is($r->{status}, 'HTTP/1.1 407 Proxy Authentication Required',
                   "$name: status line");
    Test::More::is_deeply($r->{h}{'proxy-authenticate'},
                          ["Basic realm=\"$Realm\""],
                          "$name: one Proxy-Authenticate: Basic realm");
    Test::More::is_deeply($r->{h}{'content-type'}, ['text/plain'],
                          "$name: Content-Type");
    Test::More::is($r->{body}, "auth: $detail\n", "$name: body");
    Test::More::is_deeply($r->{h}{'content-length'}, [length $r->{body}],
                          "$name: Content-Length");
}

sub curl_via {
    my ($url, @args) = @_;
    my $r = mcd_curl('-sS', '-v', '--max-time', '15',
                     '-x', "http://127.0.0.1:$W->{port}",
                     '-w', '\n%{http_connect} %{http_code}', @args, $url);
    if ($r->{out} =~ s/\n(\d{3}) (\d{3})\z//) {
        $r->{connect_code} = $1;
        $r->{code} = $2;
    }
    return $r;
}

sub connections { my @c = $_[0] =~ /^\* Connected to /mg; return scalar @c; }

sub log_has_no_secret {
    my ($name) = @_;
    for my $log ('error.log', 'mcd.log', 'fwd.log', 'fwd2.log',
                 'direct.log', 'decrypted.log')
    {
        my $text = mcd_slurp(mcd_servroot() . "/logs/$log") // '';
        my @found = grep { index($text, $_) >= 0 } @Secrets;
        push @found, grep { index($text, b64($_)) >= 0 }
                     map { "alice:$_" } @Secrets;
        Test::More::is("@found", '', "$name: no password in $log");
    }
}

master_on();
workers(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: no Proxy-Authorization: the exact 407, the try logged (deny, auth, no user), one warn line
--- mcd_client
my $r = main::connect_req();
main::is_407($r, 'proxy authentication required', 'missing');
unlike $r->{head}, qr/^Connection: close\r$/mi, 'the connection is kept for a retry';
close $r->{sock};
my ($line) = mcd_wait_log('mcd.log', qr/reason=auth/);
like $line // '', qr/^407 action=deny fqdn=\S* port=\S* reason=auth user=- /,
    'logged: 407, deny, auth, no user';
my @m = mcd_wait_log('error.log', qr/reason "auth"/);
is scalar(@m), 1, 'one warn line';
like $m[0] // '', qr/\[warn\]/, 'at warn';



=== TEST 2: a wrong password and an unknown user: 407 invalid credentials; the user is logged, the password is not
--- mcd_client
my $r = main::connect_req(headers => main::pa('alice', 'Wr0ng-pw-x93'));
main::is_407($r, 'invalid credentials', 'wrong password');
close $r->{sock};
$r = main::connect_req(headers => main::pa('mallory', 'Unkn0wn-pw-x94'));
main::is_407($r, 'invalid credentials', 'unknown user');
close $r->{sock};
my ($l1) = mcd_wait_log('mcd.log', qr/reason=auth user=alice /);
like $l1 // '', qr/^407 action=deny .* reason=auth user=alice /, 'wrong password: user alice';
my ($l2) = mcd_wait_log('mcd.log', qr/reason=auth user=mallory /);
like $l2 // '', qr/^407 action=deny .* reason=auth user=mallory /, 'unknown user: user mallory';
my @m = mcd_wait_log('error.log', qr/reason "auth"/, 2);
is scalar(@m), 2, 'one warn line per refusal';
like $m[0] // '', qr/alice/, 'the warn line names the user';
like $m[1] // '', qr/mallory/, 'the warn line names the unknown user';
main::log_has_no_secret('refusals');



=== TEST 3: malformed Proxy-Authorization: another scheme, bad base64, no colon, nothing after Basic
--- mcd_client
my %cases = (
    'Digest scheme'  => "Proxy-Authorization: Digest username=\"alice\", realm=\"McdTest Proxy\"\r\n",
    'bad base64'     => "Proxy-Authorization: Basic !!!*not-base64*\r\n",
    'no colon'       => "Proxy-Authorization: Basic " . main::b64('aliceSekr3t-alice-x81') . "\r\n",
    'empty'          => "Proxy-Authorization: Basic\r\n",
    'empty user'     => "Proxy-Authorization: Basic " . main::b64(':Sekr3t-alice-x81') . "\r\n",
    'Authorization, not Proxy-' => "Authorization: Basic " . main::b64('alice:Sekr3t-alice-x81') . "\r\n",
);
for my $name (sort keys %cases) {
    my $r = main::connect_req(headers => $cases{$name});
    is $r->{code}, '407', "$name: 407";
    my $detail = $name =~ /^Authorization/ ? 'proxy authentication required' : 'invalid credentials';
    is $r->{body}, "auth: $detail\n", "$name: $detail";
    close $r->{sock};
}
my @l = mcd_wait_log('mcd.log', qr/reason=auth/, 6);
is scalar(@l), 6, 'each logged';
my @bad = grep { /\[(alert|crit|emerg)\]|signal/ } mcd_log_lines('error.log');
is scalar(@bad), 0, 'no alert, no crash' or diag join "\n", @bad;



=== TEST 4: every hash scheme of auth_basic_user_file; a password with ':'; each with a wrong password too
--- mcd_client
for my $user (sort keys %main::Pw) {
    is main::tunnel_code($user, $main::Pw{$user}), '200', "$user: the right password opens the tunnel";
    is main::tunnel_code($user, 'x' . $main::Pw{$user}), '407', "$user: a wrong one does not";
}
is main::tunnel_code('u_colon', 'pa'), '407', "u_colon: the password is all after the first ':'";
my @l = mcd_wait_log('mcd.log', qr/^200 action=allow .* user=u_sha512 /);
is scalar(@l), 1, 'the user in the log of the tunnel';
main::log_has_no_secret('hash schemes');



=== TEST 5: the scheme and the header name are case-insensitive
--- mcd_client
my $cred = main::b64('alice:Sekr3t-alice-x81');
my $r = main::connect_req(headers => "proxy-authorization: basic $cred\r\n", after => "ci\n");
is $r->{code}, '200', 'lower case';
close $r->{sock};
$r = main::connect_req(headers => "PROXY-AUTHORIZATION: BASIC $cred\r\n");
is $r->{code}, '200', 'upper case';
close $r->{sock};



=== TEST 6: curl --proxy-user: preemptive Basic, the origin's own certificate, $mcd_user in the stream log
--- mcd_client
my $r = mcd_curl_x(host => 'origin.test', args => ['--proxy-user', "alice:$main::Pw{alice}"]);
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{connect_code}, '200', 'CONNECT answered 200';
is $r->{out}, "hello from origin\n", 'body';
like $r->{err}, qr/issuer: CN=McdTest Origin CA/, 'the origin\'s certificate';
is main::connections($r->{err}), 1, 'one connection';
my ($line) = mcd_wait_log('mcd.log', qr/^200 .*fqdn=origin\.test /);
like $line // '', qr/^200 action=allow fqdn=origin\.test port=$W->{origin} reason=- user=alice profile=egress$/, 'user=alice';
$r = mcd_curl_x(host => 'origin.test', args => ['--proxy-user', 'alice:Wr0ng-pw-x93']);
isnt $r->{exit}, 0, 'a wrong password: curl fails';
is $r->{connect_code}, '407', 'CONNECT answered 407';
main::log_has_no_secret('curl');



=== TEST 7: curl --proxy-anyauth: CONNECT without credentials, 407, the retry with Basic on the same connection
--- mcd_client
my $r = mcd_curl_x(host => 'origin.test',
                   args => ['--proxy-anyauth', '--proxy-user', "bob:$main::Pw{bob}"]);
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "hello from origin\n", 'body';
my @tries = $r->{err} =~ /^> CONNECT /mg;
is scalar(@tries), 2, 'two CONNECTs';
like $r->{err}, qr/^< HTTP\/1\.1 407 .*^< HTTP\/1\.1 200 /ms, '407, then 200';
is main::connections($r->{err}), 1, 'on one connection';
unlike $r->{err}, qr/Connection died|Connect me again/, 'no reconnect';
my ($line) = mcd_wait_log('mcd.log', qr/^200 .*fqdn=origin\.test /);
like $line // '', qr/ user=bob /, 'the session ends as bob\'s tunnel';



=== TEST 8: raw retries on one connection: missing, wrong, right; the tunnel then works
--- mcd_client
my $r = main::connect_req();
is $r->{code}, '407', 'first try: 407';
my $s = $r->{sock};
$r = main::connect_req(sock => $s, headers => main::pa('alice', 'Wr0ng-pw-x93'));
is $r->{code}, '407', 'second try (same connection): 407';
is $r->{body}, "auth: invalid credentials\n", 'invalid credentials';
$r = main::connect_req(sock => $s, headers => main::pa('alice', $main::Pw{alice}), after => "third\n");
is $r->{status}, 'HTTP/1.1 200 Connection established', 'third try: 200';
is $r->{head}, "HTTP/1.1 200 Connection established\r\n\r\n", 'the usual 200';
my $got = '';
my $sel = IO::Select->new($s);
while (length $got < 6) { last unless $sel->can_read(5); sysread($s, $got, 6 - length $got, length $got) or last; }
is $got, "third\n", 'the bytes after the third head are the first through the tunnel';
close $s;
my ($line) = mcd_wait_log('mcd.log', qr/^200 /);
like $line // '', qr/^200 action=allow fqdn=origin\.test port=$W->{echo} reason=- user=alice /, 'logged as alice\'s tunnel';



=== TEST 9: three refused tries, then the gateway closes the connection
--- mcd_client
my $s = main::connect_to();
for my $i (1 .. 3) {
    my $r = main::connect_req(sock => $s, headers => main::pa('alice', 'Wr0ng-pw-x93'));
    is $r->{code}, '407', "try $i: 407";
}
ok main::closed_within($s, 5), 'closed after the third 407';
close $s;
my @m = mcd_wait_log('error.log', qr/reason "auth"/, 3);
is scalar(@m), 3, 'three warn lines';
my ($line) = mcd_wait_log('mcd.log', qr/reason=auth/);
like $line // '', qr/^407 action=deny .* reason=auth user=alice /, 'the session logged as a 407';
main::log_has_no_secret('three tries');



=== TEST 10: authentication before the policy: a denied name, a port not allowed: 407 without credentials, 403 with them
--- mcd_client
my $r = main::connect_req(target => "denied.test:$W->{origin}");
is $r->{code}, '407', 'denied name, no credentials: 407';
unlike $r->{body}, qr/policy/, 'nothing about the policy';
close $r->{sock};
$r = main::connect_req(target => 'origin.test:22');
is $r->{code}, '407', 'port not allowed, no credentials: 407';
close $r->{sock};
$r = main::connect_req(target => "denied.test:$W->{origin}", headers => main::pa('alice', 'Wr0ng-pw-x93'));
is $r->{code}, '407', 'denied name, wrong password: 407';
close $r->{sock};
$r = main::connect_req(target => "denied.test:$W->{origin}", headers => main::pa('alice', $main::Pw{alice}));
is $r->{code}, '403', 'denied name, right password: 403';
is $r->{body}, "policy: denied by policy\n", 'reason policy';
close $r->{sock};
my ($line) = mcd_wait_log('mcd.log', qr/reason=policy/);
like $line // '', qr/^403 action=deny fqdn=denied\.test .* user=alice /, 'the policy refusal names the user';



=== TEST 11: the CONNECT head with the credentials never reaches the upstream
--- mcd_client
my $cred = main::pa('alice', $main::Pw{alice});
my $r = main::connect_req(headers => $cred, after => "first bytes\n");
is $r->{code}, '200', 'tunnel to the echo server';
my $got = '';
my $sel = IO::Select->new($r->{sock});
while (length $got < 12) { last unless $sel->can_read(5); sysread($r->{sock}, $got, 100, length $got) or last; }
is $got, "first bytes\n", 'the echo server received exactly the bytes after the head';
close $r->{sock};
my $o = $ENV{TEST_NGINX_MCD_HDRECHO};
my $req = "GET /in-tunnel HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n";
$r = main::connect_req(target => "origin.test:$o", headers => $cred, after => $req);
is $r->{code}, '200', 'tunnel to the header-echo origin';
my $inner = main::read_response($r->{sock});
is $inner->{body}, $req, 'the origin received exactly the request sent through the tunnel';
close $r->{sock};



=== TEST 12: a decrypt hand-off: 407 first, then with credentials the minted certificate and $mcd_user in the http log
--- mcd_client
my @args = ('-sS', '-v', '--max-time', '20', '--cacert', mcd_file('gwca.crt'),
            '-x', "http://127.0.0.1:$W->{port}", '-w', '\n%{http_connect} %{http_code}');
my $url = "https://www.example.test:$W->{origin}/index.html";
my $r = mcd_curl(@args, $url);
like $r->{out}, qr/\A\n?407 000\z/, 'no credentials: 407, no hand-off' or diag $r->{err};
$r = mcd_curl(@args, '--proxy-user', "alice:$main::Pw{alice}", $url);
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "hello from origin\n\n200 200", 'the body';
like $r->{err}, qr/issuer: CN=McdTest Gateway CA/i, 'decrypted';
my ($line) = mcd_wait_log('decrypted.log', qr/^www\.example\.test /);
like $line // '', qr/^www\.example\.test 200 user=alice decrypted=1$/, 'the http log has the user';
($line) = mcd_wait_log('mcd.log', qr/action=decrypt/);
like $line // '', qr/^200 action=decrypt fqdn=www\.example\.test .* user=alice /, 'so has the stream log';
main::log_has_no_secret('decrypt');



=== TEST 13: plain HTTP through mcd_http_pass: 407 from the http side, curl --proxy-user works, the origin never sees Proxy-Authorization
--- mcd_client
my $o = $ENV{TEST_NGINX_MCD_HDRECHO};
my $url = "http://origin.test:$o/plain";
my $r = main::curl_via($url);
is $r->{code}, '407', 'no credentials: 407';
like $r->{err}, qr/^< Proxy-Authenticate: Basic realm="McdTest Proxy"\r?$/mi, 'with the realm';
like $r->{out}, qr/^auth: /, 'the reason in the body';
$r = main::curl_via($url, '--proxy-user', 'alice:Wr0ng-pw-x93');
is $r->{code}, '407', 'a wrong password: 407';
$r = main::curl_via($url, '--proxy-user', "alice:$main::Pw{alice}");
is $r->{code}, '200', 'the right password: 200' or diag $r->{err};
like $r->{err}, qr/^> Proxy-Authorization: Basic /mi, 'curl sent the credentials';
like $r->{out}, qr{\AGET /plain HTTP/1\.[01]\r\n}, 'the origin answered with what it received';
unlike $r->{out}, qr/Proxy-Authorization/i, 'no Proxy-Authorization at the origin';
unlike $r->{out}, qr/\Q$main::Pw{alice}\E|\Q${\ main::b64("alice:$main::Pw{alice}")}\E/, 'no credentials at the origin';
my ($line) = mcd_wait_log('fwd.log', qr/^200 /);
like $line // '', qr/^200 user=alice fqdn=origin\.test reason=- profile=egress$/, 'the http log has the user';
my @l = mcd_wait_log('fwd.log', qr/^407 /, 2);
like $l[0] // '', qr/^407 user=- .*reason=auth /, 'the 407 logged with reason auth';
like $l[1] // '', qr/^407 user=alice .*reason=auth /, 'the wrong password logged with the user';
main::log_has_no_secret('plain HTTP');



=== TEST 14: plain HTTP: curl --proxy-anyauth retries on the same connection; raw keep-alive 407 then 200
--- mcd_client
my $o = $ENV{TEST_NGINX_MCD_HDRECHO};
my $r = main::curl_via("http://origin.test:$o/anyauth", '--proxy-anyauth', '--proxy-user', "bob:$main::Pw{bob}");
is $r->{code}, '200', 'curl succeeded' or diag $r->{err};
my @tries = $r->{err} =~ /^> GET http:/mg;
is scalar(@tries), 2, 'two requests';
is main::connections($r->{err}), 1, 'on one connection';
my $s = main::connect_to();
main::send_all($s, "GET http://origin.test:$o/one HTTP/1.1\r\nHost: origin.test:$o\r\n\r\n");
my $resp = main::read_response($s);
is $resp->{code}, '407', 'first request: 407';
is_deeply $resp->{h}{'proxy-authenticate'}, ['Basic realm="McdTest Proxy"'], 'Proxy-Authenticate';
unlike $resp->{head}, qr/^Connection: close\r$/mi, 'keep-alive';
main::send_all($s, "GET http://origin.test:$o/two HTTP/1.1\r\nHost: origin.test:$o\r\n"
                   . main::pa('alice', $main::Pw{alice}) . "\r\n");
$resp = main::read_response($s);
is $resp->{code}, '200', 'second request on the same connection: 200';
like $resp->{body}, qr{\AGET /two HTTP/1\.[01]\r\n}, 'from the origin';
unlike $resp->{body}, qr/Proxy-Authorization/i, 'without Proxy-Authorization';
close $s;



=== TEST 15: an unauthenticated listener and an ordinary mcd_fqdn_filter server do not forward Proxy-Authorization either
--- mcd_client
my $o = $ENV{TEST_NGINX_MCD_HDRECHO};
my $cred = main::pa('someone', 'Wr0ng-pw-x93');
my $s = main::connect_to($W->{port3});
main::send_all($s, "GET http://origin.test:$o/unauth HTTP/1.1\r\nHost: origin.test:$o\r\n$cred"
                   . "Connection: close\r\n\r\n");
my $resp = main::read_response($s);
is $resp->{code}, '200', 'mcd_proxy_auth off: no 407';
like $resp->{body}, qr{\AGET /unauth }, 'from the origin';
unlike $resp->{body}, qr/Proxy-Authorization/i, 'without Proxy-Authorization';
close $s;
$s = main::connect_to($ENV{TEST_NGINX_MCD_DIRECT});
main::send_all($s, "GET /direct HTTP/1.1\r\nHost: origin.test:$o\r\n$cred"
                   . "Connection: close\r\n\r\n");
$resp = main::read_response($s);
is $resp->{code}, '200', 'an ordinary server with a policy';
like $resp->{body}, qr{\AGET /direct }, 'from the origin';
unlike $resp->{body}, qr/Proxy-Authorization/i, 'without Proxy-Authorization';
close $s;
my $r = main::connect_req(port => $W->{port3}, headers => $cred, after => "x\n");
is $r->{code}, '200', 'CONNECT on the unauthenticated listener ignores the header';
close $r->{sock};
my ($line) = mcd_wait_log('mcd.log', qr/^200 action=allow/);
like $line // '', qr/ user=- /, 'and no user is claimed';



=== TEST 16: user names are escaped in the logs: no forged line, no raw control byte
--- mcd_client
for my $user ("bob\nforged line", "ev\"il\x1b[31m", "x\r\n407 action=allow") {
    my $r = main::connect_req(headers => main::pa($user, 'Unkn0wn-pw-x94'));
    is $r->{code}, '407', 'refused';
    close $r->{sock};
}
my @l = mcd_wait_log('mcd.log', qr/reason=auth/, 3);
is scalar(@l), 3, 'three log lines';
my $all = mcd_slurp(mcd_servroot() . '/logs/mcd.log') . mcd_slurp(mcd_servroot() . '/logs/error.log');
unlike $all, qr/^forged line|^407 action=allow/m, 'no forged line';
unlike $all, qr/\x1b|\r/, 'no raw control byte';
main::log_has_no_secret('escaping');



=== TEST 17: the user file is re-read on reload: the new password works, the old does not; a broken file keeps the running one
--- users_file: users-reload
--- mcd_client
is main::tunnel_code('carol', '0ld-pw-x95'), '200', 'the old password before the reload';
is main::tunnel_code('carol', 'N3w-pw-x96'), '407', 'the new one does not work yet';
mcd_write_file(mcd_file('users-reload'), "carol:{SHA}" . main::b64(Digest::SHA::sha1('N3w-pw-x96')) . "\n");
my $master = mcd_nginx_pid();
kill 'HUP', $master;
my ($new, $old) = ('', '');
my $deadline = time + 15;
while (time < $deadline) {
    $new = main::tunnel_code('carol', 'N3w-pw-x96');
    last if $new eq '200';
    sleep 0.2;
}
is $new, '200', 'after the reload the new password works';
$deadline = time + 15;
while (time < $deadline) {
    $old = main::tunnel_code('carol', '0ld-pw-x95');
    last if $old eq '407';
    sleep 0.2;
}
is $old, '407', 'and the old one does not';
# a broken file: the reload fails, the running configuration stays
mcd_write_file(mcd_file('users-reload'), "carol:{PLAIN}third-pw\nno colon here\n");
kill 'HUP', $master;
my @m = mcd_wait_log('error.log', qr/\[emerg\].*invalid line 2 in "[^"]*users-reload"/, 1, 10);
is scalar(@m), 1, 'the reload is refused, the line named';
sleep 0.5;
is main::tunnel_code('carol', 'N3w-pw-x96'), '200', 'the last good file still applies';
is main::tunnel_code('carol', 'third-pw'), '407', 'nothing of the broken file';
mcd_write_file(mcd_file('users-reload'), "carol:{PLAIN}0ld-pw-x95\n");
--- error_log eval
['[emerg]', qr/invalid line 2 in "[^"]*users-reload"/]



=== TEST 18: workers as "nobody", a user file readable by root only: the master reads it, at start and on reload
--- users_file: users-root
--- worker_user: nobody nogroup
--- mcd_client
my $master = mcd_nginx_pid();
my @workers = split ' ', `pgrep -P $master`;
my $user = @workers ? `ps -o user= -p $workers[0]` : '';
$user =~ s/\s+//g;
is $user, 'nobody', 'the worker runs as nobody';
is sprintf('%o', (stat mcd_file('users-root'))[2] & 0777), '600', 'the file is root\'s only';
is main::tunnel_code('dave', 'R00t-only-pw-x97'), '200', 'the right password';
is main::tunnel_code('dave', 'Wr0ng-pw-x93'), '407', 'a wrong one';
my $r = main::curl_via("http://origin.test:$ENV{TEST_NGINX_MCD_HDRECHO}/root",
                       '--proxy-user', 'dave:R00t-only-pw-x97');
is $r->{code}, '200', 'plain HTTP: the http side has the users too' or diag $r->{err};
mcd_write_file(mcd_file('users-root'), "dave:{PLAIN}N3w-r00t-pw-x98\n");
chmod 0600, mcd_file('users-root');
kill 'HUP', $master;
my $new = '';
my $deadline = time + 15;
while (time < $deadline) {
    $new = main::tunnel_code('dave', 'N3w-r00t-pw-x98');
    last if $new eq '200';
    sleep 0.2;
}
is $new, '200', 'after the reload the new password works';
@workers = split ' ', `pgrep -P $master`;
$user = @workers ? `ps -o user= -p $workers[-1]` : '';
$user =~ s/\s+//g;
is $user, 'nobody', 'the new worker runs as nobody too';
mcd_write_file(mcd_file('users-root'), "dave:{PLAIN}R00t-only-pw-x97\n");
chmod 0600, mcd_file('users-root');
main::log_has_no_secret('root only');



=== TEST 19: a user file with CRLF line ends works as with nginx's auth_basic_user_file
--- users_file: users-crlf
--- mcd_client
is main::tunnel_code('erin', 'Crlf-pw-x99'), '200', '{PLAIN} on a CRLF line';
is main::tunnel_code('frank', 'Crlf-apr1-x100'), '200', '$apr1$ on the last CRLF line';
is main::tunnel_code('erin', "Crlf-pw-x99\r"), '407', 'the CR is not part of the password';



=== TEST 20: nginx -t: mcd_proxy_auth without a user file
--- nginx_t
mcd_fqdn_filter p { default deny; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_proxy_auth "realm";
    }
}
--- nginx_t_error eval
qr/\[emerg\] .*mcd_proxy_auth_user_file/



=== TEST 21: nginx -t: a user file that cannot be read
--- nginx_t
mcd_fqdn_filter p { default deny; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_proxy_auth "realm";
        mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/no-such-users-file;
    }
}
--- nginx_t_error eval
qr/\[emerg\] .*no-such-users-file/



=== TEST 22: nginx -t: a line without ':' in the user file
--- nginx_t
mcd_fqdn_filter p { default deny; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_proxy_auth "realm";
        mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/users-nocolon;
    }
}
--- nginx_t_error eval
qr/\[emerg\] .*invalid line 3 in "[^"]*users-nocolon"/



=== TEST 23: nginx -t: main level realm and file, a server that turns it off; every hash scheme's file loads
--- nginx_t
mcd_fqdn_filter p { default deny; }
stream {
    mcd_proxy_auth "realm";
    mcd_proxy_auth_user_file $TEST_NGINX_MCD_WORLD/users;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT2;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_proxy_auth off;
    }
}
