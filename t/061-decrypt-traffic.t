# Real traffic through the decrypting gateway (mcd_decrypt_pass +
# mcd_intercept), explicit (CONNECT) and, where it applies, transparent:
# WebSocket upgrades, request and response bodies of 64 MiB (Content-Length
# and chunked, buffered and streamed), keep-alive with chunked responses,
# HTTP/2 with a request body and a big response, and the hostile and edge
# cases of the decrypt path (plain HTTP or garbage instead of a ClientHello,
# no SNI, an absolute-form request or an :authority naming another host, a
# client gone in the middle of a handshake or a download).
#
# The interception server is configured the way an administrator would for
# this traffic: proxy_http_version 1.1 with the Upgrade/Connection headers
# of nginx's WebSocket recipe, client_max_body_size for big uploads, and a
# location that streams uploads (proxy_request_buffering off).
#
# The origin (t/lib/McdTest.pm) has a WebDAV PUT location (/dav/), chunked
# responses from SSI (/ssi/) and a WebSocket echo behind /ws.  The 64 MiB
# files live in the test world and are deleted at the end.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';
use Digest::SHA;
use IO::Socket::SSL;
use MIME::Base64 qw(encode_base64);
use Socket qw(AF_UNIX SOCK_STREAM SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);

mcd_test_setup();

$ENV{TEST_NGINX_MCD_INTERCEPT} = $W->{port2};

# the explicit listener on the "closed" port hands over to an interception
# server with HTTP/2
$ENV{TEST_NGINX_MCD_H2} = $W->{port3} + 1;

our $Big = 64 * 1024 * 1024;
our $MainPid = $$;

# every name a test uses is its own, so that the error log's certificate
# lines can be counted per test (the origin's certificate has *.example.test)
mcd_write_file(mcd_file('hosts-traffic'), mcd_slurp(mcd_file('hosts'))
    . "127.0.0.1 " . join(' ', map { "$_.example.test" }
        qw(ws wst put chunk stream get tget tput ka kat h2 h2a plain junk
           nosni abs cut drop early)) . "\n");

# the SSI file: one chunked response per request, naming the request
mcd_write_file(mcd_file('www/ssi/item.txt'),
               'item <!--# echo var="arg_i" -->' . "\n");

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-traffic;

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;

mcd_fqdn_filter egress {
    default deny;
    decrypt .example.test;
}

stream {
    log_format mcd '$status action=$mcd_action fqdn=$mcd_fqdn '
                   'reason=$mcd_reason';
    access_log logs/mcd.log mcd;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN;
        mcd_destination allow 127.0.0.0/8 ::1;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_CLOSED;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN;
        mcd_destination allow 127.0.0.0/8 ::1;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_H2;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_proxy transparent;
        mcd_fqdn_filter egress;
        mcd_destination allow 127.0.0.0/8 ::1;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT;
    }
}
_EOC_

our $HttpConfig = <<'_EOC_';
    log_format decrypted '$host $status decrypted=$mcd_decrypted '
                         'fqdn=$mcd_fqdn reason=$mcd_reason "$request" '
                         'conn=$connection/$connection_requests '
                         'sent=$body_bytes_sent';

    # nginx's WebSocket recipe: "Connection: upgrade" only when the client
    # asked for an upgrade, so that other requests keep their semantics
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT ssl;
        mcd_intercept on;
        access_log logs/decrypted.log decrypted;

        client_max_body_size 128m;

        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;

        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate $TEST_NGINX_MCD_WORLD/ca.crt;
        proxy_ssl_server_name on;
        proxy_ssl_name $mcd_fqdn;

        location / {
            proxy_pass https://$mcd_upstream_addr;
        }

        # uploads streamed to the origin as they arrive (a chunked body
        # stays chunked)
        location /dav/stream/ {
            proxy_request_buffering off;
            proxy_pass https://$mcd_upstream_addr;
        }
    }

    server {
        # the same with HTTP/2 to the client (ALPN h2)
        listen 127.0.0.1:$TEST_NGINX_MCD_H2 ssl http2;
        mcd_intercept on;
        access_log logs/decrypted.log decrypted;

        client_max_body_size 128m;

        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;

        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate $TEST_NGINX_MCD_WORLD/ca.crt;
        proxy_ssl_server_name on;
        proxy_ssl_name $mcd_fqdn;

        location / {
            proxy_pass https://$mcd_upstream_addr;
        }
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
    $block->set_value('http_config', $HttpConfig)
        unless defined $block->http_config;
    $block->set_value('no_error_log', "[alert]\n[crit]\n[emerg]\n")
        unless defined $block->no_error_log;
});

# the 64 MiB file the origin serves (and the tests upload), made on first use

sub big_file {
    my $path = mcd_file('www/big64.bin');
    if (!-f $path || -s $path != $Big) {
        my $r = McdTest::mcd_run_cmd('sh', '-c',
                    "head -c $Big /dev/urandom > '$path.tmp' "
                    . "&& mv '$path.tmp' '$path'");
        die "cannot make $path: $r->{err}" if $r->{exit};
    }
    return $path;
}

sub sha256_of {
    my ($path) = @_;
    return '(missing)' unless -f $path;
    return Digest::SHA->new(256)->addfile($path, 'b')->hexdigest;
}

END {
    if ($$ == $MainPid && $W) {
        unlink mcd_file('www/big64.bin'), mcd_file('www/big64.bin.tmp'),
               glob(mcd_file('www/dav/*.bin')),
               glob(mcd_file('www/dav/stream/*.bin')),
               glob(mcd_file('*.got'));
    }
}

# curl through the gateway to NAME: explicit (CONNECT to the origin's port)
# or transparent (--connect-to the transparent listener, origin on 443)

sub curl_via {
    my (%o) = @_;
    my $name = $o{name};
    my @a = ('-sS', '-v', '--max-time', $o{max_time} // 120,
             '--cacert', mcd_file('gwca.crt'));
    my $base;
    if (($o{mode} // 'explicit') eq 'transparent') {
        push @a, '--connect-to', "$name:443:127.0.0.1:$W->{port3}";
        $base = "https://$name";
    } else {
        push @a, '-x', 'http://127.0.0.1:' . ($o{proxy} // $W->{port});
        $base = "https://$name:$W->{origin}";
    }
    my @paths = ref $o{path} ? @{ $o{path} } : ($o{path} // '/index.html');
    return mcd_curl(@a, @{ $o{args} // [] }, map { "$base$_" } @paths);
}

# read an HTTP head from a socket (plain or TLS) into $$buf; bounded by the
# caller's alarm and by size

sub read_head {
    my ($s, $buf) = @_;
    $$buf //= '';
    while ($$buf !~ /\r\n\r\n/) {
        die "head too long\n" if length $$buf > 65536;
        my $n = sysread($s, $$buf, 16384, length $$buf);
        die "EOF before the end of the head\n" unless $n;
    }
    $$buf =~ s/\A(.*?\r\n)\r\n//s;
    return $1;
}

# read until EOF (or the deadline): everything the peer sent

sub read_all {
    my ($s, $timeout, $max) = @_;
    my $got = '';
    my $deadline = time + ($timeout // 10);
    my $eof = 0;
    while (time < $deadline) {
        if (!(ref $s && $s->isa('IO::Socket::SSL') && $s->pending)) {
            last unless IO::Select->new($s)->can_read($deadline - time);
        }
        my $n = sysread($s, $got, 65536, length $got);
        if (!$n) { $eof = 1; last; }
        last if $max && length $got >= $max;
    }
    return wantarray ? ($got, $eof) : $got;
}

# a plain TCP connection to the explicit gateway with a CONNECT answered 200

sub connect_tunnel {
    my (%o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{proxy} // $W->{port},
                                  Timeout => 5)
        or die "connect: $!\n";
    my $target = "$o{name}:$W->{origin}";
    syswrite($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n");
    my $head = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 10;
        my $b = '';
        # byte by byte: nothing after the head may be taken from the socket
        while ($b !~ /\r\n\r\n/ && length $b < 4096) {
            sysread($s, $b, 1, length $b) or last;
        }
        alarm 0;
        $b;
    };
    alarm 0;
    die "no 200 to CONNECT: " . ($head // $@) . "\n"
        unless defined $head && $head =~ m{\AHTTP/1\.[01] 200 };
    return $s;
}

# a TLS connection to NAME through the gateway, verified against the
# gateway CA: explicit (CONNECT first) or transparent

sub tls_via {
    my (%o) = @_;
    my $name = $o{name};
    my $s;
    if (($o{mode} // 'explicit') eq 'transparent') {
        $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                   PeerPort => $W->{port3}, Timeout => 5)
            or die "connect: $!\n";
    } else {
        $s = connect_tunnel(%o);
    }
    IO::Socket::SSL->start_SSL($s,
        SSL_hostname        => $name,
        SSL_verify_mode     => SSL_VERIFY_PEER,
        SSL_ca_file         => mcd_file('gwca.crt'),
        SSL_verifycn_name   => $name,
        SSL_verifycn_scheme => 'http',
        Timeout             => 10)
        or die "TLS through the gateway: " . IO::Socket::SSL::errstr() . "\n";
    return $s;
}

sub write_all {
    my ($s, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $w = syswrite($s, $data, length($data) - $off, $off);
        die "write: $!\n" unless $w;
        $off += $w;
    }
}

sub urandom {
    my ($n) = @_;
    open my $fh, '<:raw', '/dev/urandom' or die;
    read($fh, my $d, $n) == $n or die;
    close $fh;
    return $d;
}

# a WebSocket session through the gateway: the upgrade, messages of every
# length class up to 1 MiB, a ping, a burst of 20, the closing handshake

sub websocket_session {
    my (%o) = @_;
    my $name = $o{name};
    local $SIG{PIPE} = 'IGNORE';

    my $ok = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 60;

        my $s = tls_via(%o);
        my $key = encode_base64(urandom(16), '');
        my $host = ($o{mode} // '') eq 'transparent' ? $name
                                                     : "$name:$W->{origin}";
        write_all($s, "GET /ws HTTP/1.1\r\nHost: $host\r\n"
                      . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      . "Sec-WebSocket-Key: $key\r\n"
                      . "Sec-WebSocket-Version: 13\r\n\r\n");
        my $rbuf = '';
        my $head = read_head($s, \$rbuf);
        like $head, qr{\AHTTP/1\.1 101 }, 'the upgrade answered 101';
        my $want = encode_base64(Digest::SHA::sha1(
                       $key . '258EAFA5-E914-47DA-95CA-C5AB0DC11B65'), '');
        like $head, qr/^Sec-WebSocket-Accept: \Q$want\E\r?$/mi,
             'the origin\'s accept for our key';

        my $need = sub {
            my ($n) = @_;
            while (length $rbuf < $n) {
                my $got = sysread($s, $rbuf, 262144, length $rbuf);
                die "EOF in a frame\n" unless $got;
            }
        };
        my $frame = sub {
            $need->(2);
            my ($b0, $b1) = unpack 'CC', $rbuf;
            my $len = $b1 & 0x7f;
            my $hl = 2;
            if ($len == 126) {
                $need->(4);
                $len = unpack 'x2 n', $rbuf;
                $hl = 4;
            } elsif ($len == 127) {
                $need->(10);
                my ($hi, $lo) = unpack 'x2 N N', $rbuf;
                $len = $hi * 2**32 + $lo;
                $hl = 10;
            }
            die "a masked frame from the server\n" if $b1 & 0x80;
            die "frame too long\n" if $len > 16 * 1024 * 1024;
            $need->($hl + $len);
            my $p = substr($rbuf, $hl, $len);
            substr($rbuf, 0, $hl + $len, '');
            return ($b0, $p);
        };
        my $send = sub {
            my ($b0, $p) = @_;
            write_all($s, McdTest::mcd_ws_frame($b0, $p, urandom(4)));
        };

        my @msgs = (
            [0x81, 'hello through the gateway'],
            [0x81, ''],
            [0x81, 'a' x 125],
            [0x82, urandom(126)],
            [0x82, urandom(65535)],
            [0x82, urandom(65536)],
            [0x82, urandom(1024 * 1024)],
        );
        for my $m (@msgs) {
            $send->(@$m);
            my ($b0, $p) = $frame->();
            my $len = length $m->[1];
            is $b0, $m->[0], "echo of $len bytes: same opcode, FIN";
            ok $p eq $m->[1], "echo of $len bytes: the exact payload";
        }

        $send->(0x89, 'ping?');
        my ($b0, $p) = $frame->();
        ok $b0 == 0x8a && $p eq 'ping?', 'a ping gets its pong';

        # 20 messages in one write, echoed in order
        write_all($s, join '', map {
                      McdTest::mcd_ws_frame(0x81, "burst $_", urandom(4))
                  } 1 .. 20);
        my @got = map { ($frame->())[1] } 1 .. 20;
        is "@got", join(' ', map { "burst $_" } 1 .. 20),
           'a burst of 20 echoed in order';

        $send->(0x88, pack('n', 1000) . 'bye');
        ($b0, $p) = $frame->();
        ok $b0 == 0x88 && $p eq pack('n', 1000) . 'bye',
           'the closing handshake';
        my ($rest, $eof) = read_all($s, 10);
        ok $eof && $rest eq '' && $rbuf eq '',
           'then the connection ends, nothing more';
        close $s;

        alarm 0;
        1;
    };
    alarm 0;
    ok $ok, "the WebSocket session completed" or diag $@;
}

# a TLS client whose ClientHello follows its CONNECT in the same write,
# without waiting for the 200 (as some clients do): a relay process between
# IO::Socket::SSL and the gateway joins the two and takes the 200 head out
# of the way; returns the 200 head and the socket

sub pipelined_tls {
    my (%o) = @_;
    my $name = $o{name};
    socketpair(my $cs, my $rs, AF_UNIX, SOCK_STREAM, 0) or die "socketpair: $!";
    my $g = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $W->{port}, Timeout => 5)
        or die "connect: $!\n";
    my $head_file = mcd_file('pipelined.head');
    unlink $head_file;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        # the relay: never returns into the test
        eval { relay_child($rs, $cs, $g, $name, $head_file) };
        POSIX::_exit(0);
    }
    close $rs;
    close $g;
    IO::Socket::SSL->start_SSL($cs,
        SSL_hostname        => $name,
        SSL_verify_mode     => SSL_VERIFY_PEER,
        SSL_ca_file         => mcd_file('gwca.crt'),
        SSL_verifycn_name   => $name,
        SSL_verifycn_scheme => 'http',
        Timeout             => 10)
        or die "TLS through the gateway: " . IO::Socket::SSL::errstr() . "\n";
    return (mcd_slurp($head_file) // '', $cs, $pid);
}

sub relay_child {
    my ($rs, $cs, $g, $name, $head_file) = @_;
    close $cs;
    local $SIG{ALRM} = sub { POSIX::_exit(1) };
    alarm 30;
    local $SIG{PIPE} = 'IGNORE';
    my $hello = '';
    while (length $hello < 5
           || length $hello < 5 + unpack('x3 n', $hello))
    {
        sysread($rs, $hello, 16384, length $hello) or POSIX::_exit(1);
    }
    my $target = "$name:$W->{origin}";
    write_all($g, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n"
                  . $hello);
    my $buf = '';
    my $head = read_head($g, \$buf);
    mcd_write_file($head_file, $head);
    write_all($rs, $buf) if length $buf;
    my $sel = IO::Select->new($rs, $g);
    for (1 .. 100000) {
        for my $h ($sel->can_read(30)) {
            my $n = sysread($h, my $d, 65536);
            POSIX::_exit(0) unless $n;
            write_all($h == $rs ? $g : $rs, $d);
        }
    }
}

# no alert/crit, the same nginx process still serves

sub healthy {
    my ($pid, $name) = @_;
    ok $pid && kill(0, $pid), 'nginx (the same process) still runs';
    my $r = curl_via(name => $name // 'www.example.test', max_time => 20);
    is $r->{out}, "hello from origin\n", 'a following request works'
        or diag $r->{err};
    my @bad = grep { /\[(?:alert|crit|emerg)\]|exited on signal/ }
              mcd_log_lines('error.log');
    is scalar(@bad), 0, 'no alert, crit or emerg in the error log'
        or diag join "\n", @bad;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: WebSocket through explicit decryption: 101 with the origin's accept, messages up to 1 MiB echoed exactly, ping, burst, close
--- mcd_client
McdTest::mcd_ws_echo_start();
main::websocket_session(name => 'ws.example.test');
my ($line) = mcd_wait_log('decrypted.log', qr/^ws\.example\.test /);
like $line // '', qr/ 101 decrypted=1 fqdn=ws\.example\.test reason=- "GET \/ws HTTP\/1\.1"/,
    'the interception server logged the upgraded request';
my @m = mcd_wait_log('error.log', qr/certificate for "ws\.example\.test" minted/);
is scalar(@m), 1, 'a certificate minted for the name';



=== TEST 2: WebSocket through transparent decryption
--- mcd_client
SKIP: {
    skip 'the origin cannot listen on port 443 (not root)', 22 unless $W->{origin443};
    McdTest::mcd_ws_echo_start();
    main::websocket_session(name => 'wst.example.test', mode => 'transparent');
    my ($line) = mcd_wait_log('decrypted.log', qr/^wst\.example\.test /);
    like $line // '', qr/ 101 decrypted=1 fqdn=wst\.example\.test /,
        'logged by the http side';
}



=== TEST 3: a 64 MiB request body (Content-Length, buffered by the gateway) arrives at the origin intact
--- mcd_client
my $src = main::big_file();
my $dst = mcd_file('www/dav/put.bin');
unlink $dst;
my $r = main::curl_via(name => 'put.example.test', path => '/dav/put.bin',
                       args => ['-T', $src, '-o', '/dev/null', '-w', '%{http_code}']);
is $r->{out}, '201', 'created' or diag $r->{err};
like $r->{err}, qr/^> Content-Length: $main::Big\r?$/mi, 'sent with a Content-Length';
is -s $dst, $main::Big, '64 MiB stored';
is main::sha256_of($dst), main::sha256_of($src), 'sha256 equal';
unlink $dst;
my ($line) = mcd_wait_log('decrypted.log', qr/^put\.example\.test/);
like $line // '', qr/ 201 decrypted=1 .*"PUT \/dav\/put\.bin HTTP\/1\.1"/, 'logged';



=== TEST 4: a 64 MiB chunked request body, buffered (location /) and streamed (proxy_request_buffering off), arrives intact
--- mcd_client
my $src = main::big_file();
my $want = main::sha256_of($src);
for my $path ('/dav/chunk.bin', '/dav/stream/chunk.bin') {
    my $dst = mcd_file("www$path");
    unlink $dst;
    my $r = main::curl_via(name => 'chunk.example.test', path => $path,
                           args => ['-T', $src, '-H', 'Transfer-Encoding: chunked',
                                    '-o', '/dev/null', '-w', '%{http_code}']);
    is $r->{out}, '201', "$path: created" or diag $r->{err};
    like $r->{err}, qr/^> Transfer-Encoding: chunked\r?$/mi, "$path: sent chunked";
    unlike $r->{err}, qr/^> Content-Length:/mi, "$path: no Content-Length";
    is -s $dst, $main::Big, "$path: 64 MiB stored";
    is main::sha256_of($dst), $want, "$path: sha256 equal";
    unlink $dst;
}
my @l = mcd_wait_log('decrypted.log', qr/^chunk\.example\.test.* 201 /, 2);
is scalar(@l), 2, 'both logged 201';



=== TEST 5: a 64 MiB response body through explicit decryption, sha256 equal
--- mcd_client
my $src = main::big_file();
my $got = mcd_file('get.got');
my $r = main::curl_via(name => 'get.example.test', path => '/big64.bin',
                       args => ['-o', $got, '-w', '%{http_code} %{size_download}']);
is $r->{out}, "200 $main::Big", '200, 64 MiB' or diag $r->{err};
is main::sha256_of($got), main::sha256_of($src), 'sha256 equal';
unlink $got;
my ($line) = mcd_wait_log('decrypted.log', qr/^get\.example\.test/);
# $body_bytes_sent is the body only: not the 39 bytes of the front door's
# "HTTP/1.1 200 Connection established" on the same connection
like $line // '', qr/ 200 decrypted=1 .* sent=$main::Big$/,
    'logged, $body_bytes_sent = the 64 MiB body (not counting the CONNECT\'s 200)';



=== TEST 6: transparent decryption: a 64 MiB upload and a 64 MiB download, sha256 equal
--- mcd_client
SKIP: {
    skip 'the origin cannot listen on port 443 (not root)', 6 unless $W->{origin443};
    my $src = main::big_file();
    my $want = main::sha256_of($src);
    my $dst = mcd_file('www/dav/stream/tput.bin');
    unlink $dst;
    my $r = main::curl_via(name => 'tput.example.test', mode => 'transparent',
                           path => '/dav/stream/tput.bin',
                           args => ['-T', $src, '-H', 'Transfer-Encoding: chunked',
                                    '-o', '/dev/null', '-w', '%{http_code}']);
    is $r->{out}, '201', 'upload: created' or diag $r->{err};
    is main::sha256_of($dst), $want, 'upload: sha256 equal';
    unlink $dst;
    my $got = mcd_file('tget.got');
    $r = main::curl_via(name => 'tget.example.test', mode => 'transparent',
                        path => '/big64.bin',
                        args => ['-o', $got, '-w', '%{http_code} %{size_download}']);
    is $r->{out}, "200 $main::Big", 'download: 200, 64 MiB' or diag $r->{err};
    is main::sha256_of($got), $want, 'download: sha256 equal';
    like $r->{err}, qr/issuer: CN=McdTest Gateway CA/i, 'the minted certificate';
    unlink $got;
    my ($line) = mcd_wait_log('decrypted.log', qr/^tget\.example\.test /);
    like $line // '', qr/ 200 decrypted=1 .* sent=$main::Big$/, 'logged';
}



=== TEST 7: keep-alive: 50 requests with chunked responses on one client connection, one handshake
--- mcd_client
my @paths = map { "/ssi/item.txt?i=$_" } 1 .. 50;
my $r = main::curl_via(name => 'ka.example.test', path => \@paths, max_time => 60);
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, join('', map { "item $_\n" } 1 .. 50), 'each response is its request\'s';
my $n = () = $r->{err} =~ /Re-using existing connection/g;
is $n, 49, 'curl re-used its connection 49 times';
$n = () = $r->{err} =~ /^> CONNECT /mg;
is $n, 1, 'one CONNECT';
$n = () = $r->{err} =~ /^< Transfer-Encoding: chunked\r?$/mig;
is $n, 50, '50 chunked responses';
my @l = mcd_wait_log('decrypted.log', qr/^ka\.example\.test/, 50, 10);
is scalar(@l), 50, '50 requests logged';
my %conns = map { /conn=(\d+)\// ? ($1 => 1) : () } @l;
is scalar(keys %conns), 1, 'all on one connection';
like $l[-1] // '', qr{conn=\d+/50 }, 'the 50th request of the connection';
my @m = mcd_wait_log('error.log', qr/certificate for "ka\.example\.test"/);
sleep 0.3;
@m = grep { /certificate for "ka\.example\.test"/ } mcd_log_lines('error.log');
is scalar(@m), 1, 'one handshake (one certificate line)';



=== TEST 8: keep-alive through transparent decryption
--- mcd_client
SKIP: {
    skip 'the origin cannot listen on port 443 (not root)', 5 unless $W->{origin443};
    my @paths = map { "/ssi/item.txt?i=$_" } 1 .. 50;
    my $r = main::curl_via(name => 'kat.example.test', mode => 'transparent',
                           path => \@paths, max_time => 60);
    is $r->{out}, join('', map { "item $_\n" } 1 .. 50), 'each response is its request\'s'
        or diag $r->{err};
    my $n = () = $r->{err} =~ /Re-using existing connection/g;
    is $n, 49, 'curl re-used its connection 49 times';
    $n = () = $r->{err} =~ /^< Transfer-Encoding: chunked\r?$/mig;
    is $n, 50, '50 chunked responses';
    my @l = mcd_wait_log('decrypted.log', qr/^kat\.example\.test/, 50, 10);
    my %conns = map { /conn=(\d+)\// ? ($1 => 1) : () } @l;
    ok @l == 50 && keys %conns == 1, '50 requests logged, one connection';
    mcd_wait_log('error.log', qr/certificate for "kat\.example\.test"/);
    sleep 0.3;
    my @m = grep { /certificate for "kat\.example\.test"/ } mcd_log_lines('error.log');
    is scalar(@m), 1, 'one handshake';
}



=== TEST 9: HTTP/2 to the client: a 64 MiB request body, a 64 MiB response, several requests on the connection
--- mcd_client
my $src = main::big_file();
my $want = main::sha256_of($src);
my $dst = mcd_file('www/dav/h2.bin');
unlink $dst;
my $r = main::curl_via(name => 'h2.example.test', proxy => $W->{closed},
                       path => '/dav/h2.bin',
                       args => ['--http2', '-T', $src, '-o', '/dev/null',
                                '-w', '%{http_version} %{http_code}']);
is $r->{out}, '2 201', 'HTTP/2, created' or diag $r->{err};
like $r->{err}, qr/ALPN: server accepted h2/, 'h2 negotiated';
is -s $dst, $main::Big, '64 MiB stored';
is main::sha256_of($dst), $want, 'upload: sha256 equal';
unlink $dst;
my $got = mcd_file('h2.got');
$r = main::curl_via(name => 'h2.example.test', proxy => $W->{closed},
                    path => '/big64.bin',
                    args => ['--http2', '-o', $got,
                             '-w', '%{http_version} %{http_code} %{size_download}']);
is $r->{out}, "2 200 $main::Big", 'HTTP/2, 200, 64 MiB' or diag $r->{err};
is main::sha256_of($got), $want, 'download: sha256 equal';
unlink $got;
my @paths = map { "/ssi/item.txt?i=$_" } 1 .. 10;
$r = main::curl_via(name => 'h2.example.test', proxy => $W->{closed},
                    path => \@paths, args => ['--http2']);
is $r->{out}, join('', map { "item $_\n" } 1 .. 10), '10 requests, each its response'
    or diag $r->{err};
my $n = () = $r->{err} =~ /Re-using existing connection/g;
is $n, 9, 'on one connection';



=== TEST 10: plain HTTP instead of TLS after the 200: nginx answers 400, nothing from the origin
--- mcd_client
my $pid = mcd_nginx_pid();
my $s = main::connect_tunnel(name => 'plain.example.test');
main::write_all($s, "GET /index.html HTTP/1.1\r\nHost: plain.example.test\r\n\r\n");
my ($got, $eof) = main::read_all($s, 10);
close $s;
like $got, qr{\AHTTP/1\.1 400 }, 'answered 400';
like $got, qr/plain HTTP request was sent to HTTPS port/, 'nginx\'s own page';
unlike $got, qr/hello from origin/, 'nothing from the origin';
ok $eof, 'and closed';
my @m = grep { /certificate for "plain\.example\.test"/ } mcd_log_lines('error.log');
is scalar(@m), 0, 'no certificate minted';
main::healthy($pid);



=== TEST 11: garbage instead of a ClientHello (TLS-looking and not): no origin content, the connection ends, the worker is fine
--- mcd_client
my $pid = mcd_nginx_pid();
my %junk = (
    'a TLS record of garbage'  => "\x16\x03\x01\x00\x40" . ("\xaa" x 64),
    'a handshake of garbage'   => "\x16\x03\x01\x00\x08\x01\x00\x00\x04\xff\xff\xff\xff",
    'random bytes'             => "\x00\xff\x13\x37" . main::urandom(500),
    'an SSLv2-looking header'  => "\x80\x2e\x01\x00\x02" . ("\x00" x 45),
);
for my $what (sort keys %junk) {
    my $s = main::connect_tunnel(name => 'junk.example.test');
    local $SIG{PIPE} = 'IGNORE';
    syswrite($s, $junk{$what});
    my ($got, $eof) = main::read_all($s, 15);
    close $s;
    ok $eof, "$what: the connection ends";
    unlike $got, qr/hello from origin/, "$what: nothing from the origin";
    ok $got eq '' || $got =~ /\A\x15/ || $got =~ m{\AHTTP/1\.1 400 },
       "$what: an alert, a 400 or nothing"
        or diag(unpack 'H*', substr $got, 0, 64);
    Test::More::note "$what: answered " . ($got =~ m{\A(HTTP/1\.1 \d+)} ? $1
                                : 'hex ' . unpack('H*', substr $got, 0, 16));
}
my @m = grep { /certificate for "junk\.example\.test"/ } mcd_log_lines('error.log');
is scalar(@m), 0, 'no certificate minted';
main::healthy($pid);



=== TEST 12: an explicit client that sends no SNI gets the certificate for the CONNECT host
--- mcd_client
my $in = mcd_file('nosni.in');
mcd_write_file($in, "GET /index.html HTTP/1.1\r\nHost: nosni.example.test\r\nConnection: close\r\n\r\n");
my $r = McdTest::mcd_run_cmd('sh', '-c', 'exec timeout 15 openssl s_client -brief '
                    . "-proxy 127.0.0.1:$W->{port} "
                    . "-connect nosni.example.test:$W->{origin} -noservername "
                    . '-verify_return_error -verify_hostname nosni.example.test '
                    . '-CAfile ' . mcd_file('gwca.crt') . " -ign_eof < $in");
is $r->{exit}, 0, 's_client succeeded' or diag $r->{err};
like $r->{err}, qr/Verification: OK/, 'verified against the gateway CA, for the name';
like $r->{err}, qr/Peer certificate: CN ?= ?nosni\.example\.test/, 'the certificate is for the CONNECT host';
like $r->{out}, qr/\r\n\r\nhello from origin\n\z/, 'the origin\'s body';
my @m = mcd_wait_log('error.log', qr/certificate for "nosni\.example\.test" minted/);
is scalar(@m), 1, 'minted for the CONNECT host';



=== TEST 13: an absolute-form request naming another host inside the tunnel: 421 host_mismatch, nothing from the origin
--- mcd_client
my $req = sub {
    my ($line, $host) = @_;
    my $got = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 20;
        my $s = main::tls_via(name => 'abs.example.test');
        main::write_all($s, "$line\r\nHost: $host\r\nConnection: close\r\n\r\n");
        my $g = main::read_all($s, 15);
        close $s;
        alarm 0;
        $g;
    };
    alarm 0;
    diag $@ unless defined $got;
    return $got // '';
};
my $got = $req->('GET https://other.example.test/index.html HTTP/1.1', 'abs.example.test');
like $got, qr{\AHTTP/1\.1 421 }, 'GET https://other.example.test/ with Host: abs.example.test: 421';
unlike $got, qr/hello from origin/, 'nothing from the origin';
my @m = mcd_wait_log('error.log', qr/refused a request for "other\.example\.test" on a connection authorized for "abs\.example\.test", reason "host_mismatch"/);
is scalar(@m), 1, 'logged with the reason';
my ($line) = mcd_wait_log('decrypted.log', qr/^other\.example\.test /);
like $line // '', qr/ 421 decrypted=1 fqdn=abs\.example\.test reason=host_mismatch /, 'the access log has the reason';

# the request line's authority is the one that counts (RFC 9112 3.2.2), both ways
$got = $req->("GET https://abs.example.test:$W->{origin}/index.html HTTP/1.1", 'other.example.test');
like $got, qr{\AHTTP/1\.1 200 .*\r\n\r\nhello from origin\n\z}s,
     'GET https://abs.example.test/ with Host: other.example.test: the origin\'s page';
$got = $req->('GET https://abs.example.test/index.html HTTP/1.1', 'abs.example.test');
like $got, qr{\r\n\r\nhello from origin\n\z}, 'the authorized name in absolute form: the origin\'s page';



=== TEST 14: HTTP/2: a request whose :authority names another host is answered 421, nothing from the origin
--- mcd_client
my $r = main::curl_via(name => 'h2a.example.test', proxy => $W->{closed},
                       args => ['--http2', '-H', 'Host: other.example.test',
                                '-w', '\n%{http_version} %{http_code}']);
like $r->{out}, qr/\n2 421\z/, 'HTTP/2, 421' or diag $r->{err};
unlike $r->{out}, qr/hello from origin/, 'nothing from the origin';
my @m = mcd_wait_log('error.log', qr/refused a request for "other\.example\.test" on a connection authorized for "h2a\.example\.test", reason "host_mismatch"/);
is scalar(@m), 1, 'logged with the reason';
$r = main::curl_via(name => 'h2a.example.test', proxy => $W->{closed},
                    args => ['--http2', '-w', '\n%{http_version} %{http_code}']);
is $r->{out}, "hello from origin\n\n2 200", 'the authorized :authority: the origin\'s page';



=== TEST 15: clients that go away in the middle of the handshake leave the worker healthy
--- mcd_client
my $pid = mcd_nginx_pid();
my $hello = mcd_client_hello('cut.example.test');
local $SIG{PIPE} = 'IGNORE';
for my $i (1 .. 12) {
    my $s = main::connect_tunnel(name => 'cut.example.test');
    if ($i % 3 == 1) {
        # a ClientHello cut short
        syswrite($s, substr($hello, 0, 40));
        sleep 0.1;
    } else {
        # a whole ClientHello, the server's first flight read in part
        syswrite($s, $hello);
        my $got = main::read_all($s, 5, 100);
        like $got, qr/\A\x16\x03/, "$i: the server's handshake began";
    }
    # every other one with a reset instead of a FIN
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) if $i % 2;
    close $s;
}
sleep 0.5;
my @m = grep { /certificate for "cut\.example\.test"/ } mcd_log_lines('error.log');
is scalar(@m), 8, 'a certificate for each whole ClientHello';
main::healthy($pid, 'cut.example.test');



=== TEST 16: clients that go away in the middle of a 64 MiB download (HTTP/1.1 and HTTP/2) leave the worker healthy
--- mcd_client
main::big_file();
my $pid = mcd_nginx_pid();
local $SIG{PIPE} = 'IGNORE';
for my $rst (0, 1) {
    my $got = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 30;
        my $s = main::tls_via(name => 'drop.example.test');
        main::write_all($s, "GET /big64.bin HTTP/1.1\r\nHost: drop.example.test\r\n\r\n");
        my $g = main::read_all($s, 20, 2 * 1024 * 1024);
        setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) if $rst;
        $s->close(SSL_no_shutdown => 1);
        alarm 0;
        length $g;
    };
    alarm 0;
    ok $got && $got >= 2 * 1024 * 1024, "the download was under way ($rst)" or diag $@;
}
my @l = mcd_wait_log('decrypted.log', qr/^drop\.example\.test.*big64/, 2, 10);
is scalar(@l), 2, 'both requests ended (logged)';
for (@l) {
    my ($sent) = /sent=(\d+)$/;
    ok defined $sent && $sent < $main::Big, 'with less than the whole body sent';
}
my $r = main::curl_via(name => 'drop.example.test', proxy => $W->{closed},
                       path => '/big64.bin', max_time => 2,
                       args => ['--http2', '--limit-rate', '4M', '-o', '/dev/null']);
is $r->{exit}, 28, 'an HTTP/2 download abandoned by its client (timeout)' or diag $r->{err};
main::healthy($pid, 'drop.example.test');



=== TEST 17: a ClientHello sent right behind the CONNECT, before the 200: the hand-off keeps it, the request works
--- mcd_client
my $got = eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 30;
    my ($head, $s, $pid) = main::pipelined_tls(name => 'early.example.test');
    like $head, qr{\AHTTP/1\.1 200 }, 'the 200 came first';
    main::write_all($s, "GET /index.html HTTP/1.1\r\nHost: early.example.test\r\nConnection: close\r\n\r\n");
    my $g = main::read_all($s, 15);
    close $s;
    waitpid($pid, 0);
    alarm 0;
    $g;
};
alarm 0;
like $got // '', qr{\AHTTP/1\.1 200 .*\r\n\r\nhello from origin\n\z}s, 'the origin\'s page'
    or diag $@;
