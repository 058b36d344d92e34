package McdTest;

# The world every ngx_mcd test file stands in, made on loopback by the test
# itself: a test CA and origin certificate, an HTTPS origin (a separate nginx
# that the tests never reload), a TCP echo server, a mock DNS server, a
# "blackhole" port whose SYNs are dropped, a hosts file; plus the clients
# the tests drive (curl, raw sockets) and the glue to Test::Nginx::Socket.
#
# Use it BEFORE Test::Nginx::Socket so that TEST_NGINX_LOAD_MODULES has its
# default when Test::Nginx reads it:
#
#   use McdTest;
#   use Test::Nginx::Socket 'no_plan';
#   mcd_test_setup();

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Socket;
use Time::HiRes qw(sleep time);

use parent 'Exporter';

our @EXPORT = qw(
    $W mcd_test_setup mcd_curl mcd_curl_x mcd_raw mcd_log_lines
    mcd_wait_log mcd_file mcd_slurp mcd_write_file mcd_nginx_pid
    mcd_servroot mcd_http_get_via_tunnel mcd_s_client mcd_tls_client
    mcd_client_hello
);

our $W;                 # the world: a hash of paths and ports

our $Root;
BEGIN { $Root = abs_path(dirname(__FILE__) . '/../..'); }
my @Children;
my $Blackhole;
my @BlackholeFill;
my $OriginPrefix;
my $OwnerPid = $$;

# defaults that Test::Nginx reads when it is loaded

sub _defaults {
    if (!defined $ENV{TEST_NGINX_LOAD_MODULES}) {
        my @mods;
        my $stream = '/usr/lib/nginx/modules/ngx_stream_module.so';
        push @mods, $stream if -f $stream;
        push @mods, "$Root/build/ngx_mcd_module.so";
        $ENV{TEST_NGINX_LOAD_MODULES} = join ' ', @mods;
    }

    $ENV{TEST_NGINX_BINARY} //= -x '/usr/sbin/nginx' ? '/usr/sbin/nginx'
                                                     : 'nginx';
    $ENV{TEST_NGINX_LOG_LEVEL} //= 'info';
    $ENV{TEST_NGINX_SERVER_PORT} //= 1984;
    $ENV{TEST_NGINX_NO_SHUFFLE} //= 1;
}


sub import {
    _defaults();
    world() unless $W;
    __PACKAGE__->export_to_level(1, @_);
}

sub run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "command failed ($?): $cmd\n$out" if $? != 0;
    return $out;
}

sub mcd_write_file {
    my ($path, $data) = @_;
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    binmode $fh;
    print $fh $data;
    close $fh or die "$path: $!";
}

sub mcd_slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data;
}

sub mcd_file { return "$W->{dir}/$_[0]"; }

sub port_free {
    my ($port, $proto) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                  Proto => $proto || 'tcp', ReuseAddr => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub world {
    my $base = $ENV{TEST_NGINX_SERVER_PORT} || 1984;
    my $name = basename($0, '.t');
    my $dir = "$Root/t/world/$name";

    reap_stale($dir);
    remove_tree($dir);
    make_path("$dir/www", "$dir/origin/logs", "$dir/origin/conf");

    $W = {
        root        => $Root,
        dir         => $dir,
        port        => $base + 1,   # gateway (explicit)
        port2       => $base + 2,   # a second gateway listener
        origin      => $base + 3,   # HTTPS origin
        origin_http => $base + 4,   # plain HTTP origin
        echo        => $base + 5,   # TCP echo
        dns         => $base + 6,   # mock DNS (UDP)
        closed      => $base + 7,   # nothing listens here
        blackhole   => $base + 8,   # SYNs dropped: connect times out
        port3       => $base + 9,   # a third gateway listener
        ws_echo     => $base + 15,  # WebSocket echo behind the origin's /ws
    };

    for my $k (qw(port port2 port3 origin origin_http echo dns closed
                  blackhole))
    {
        my $v = uc $k;
        $ENV{"TEST_NGINX_MCD_$v"} = $W->{$k};
    }

    $ENV{TEST_NGINX_MCD_WORLD} = $dir;
    $ENV{TEST_NGINX_MCD_ROOT} = $Root;

    make_certs();
    make_files();
    start_origin();
    start_echo();
    start_dns();
    start_blackhole();

    return $W;
}

# processes a killed run left behind: only while they are still this test's
# origin nginx or its own forks, for a recorded pid may since have been
# given to any process of the machine

sub reap_stale {
    my ($dir) = @_;
    my $test = basename($dir) . '.t';
    for my $f ("$dir/origin/logs/nginx.pid", "$dir/children.pid") {
        my $data = mcd_slurp($f) // next;
        for my $pid ($data =~ /(\d+)/g) {
            next if $pid == $$;
            my $cmd = mcd_slurp("/proc/$pid/cmdline") // next;
            my $cwd = readlink("/proc/$pid/cwd") // '';
            next unless index($cmd, "$dir/origin/") >= 0
                        || (index($cmd, $test) >= 0 && $cwd eq $Root);
            my @workers = split ' ', `pgrep -P $pid 2>/dev/null`;
            kill 'KILL', $pid, @workers;
        }
        unlink $f;
    }
    sleep 0.2;
}

sub make_certs {
    my $d = $W->{dir};
    my $ossl = 'openssl';

    my $ext = "$d/leaf.ext";
    mcd_write_file($ext, join "\n",
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=DNS:origin.test,DNS:allowed.test,DNS:denied.test,"
        . "DNS:example.test,DNS:hosts-wins.test,DNS:multi.test,"
        . "DNS:closed.test,DNS:blackhole.test,DNS:v6only.test,DNS:dns.test,"
        . "DNS:unlisted.test,DNS:nx.test,DNS:refused.test,DNS:testnet.test,DNS:*.allowed.test,"
        . "DNS:*.sub.allowed.test,DNS:*.denied.test,DNS:*.example.test,"
        . "DNS:*.dns.test,DNS:localhost,IP:127.0.0.1,IP:::1",
        "");

    run("$ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        . "-nodes -keyout $d/ca.key -out $d/ca.crt -days 365 "
        . "-subj '/CN=McdTest Origin CA' "
        . "-addext 'basicConstraints=critical,CA:TRUE' "
        . "-addext 'keyUsage=critical,keyCertSign,cRLSign'");

    run("$ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        . "-keyout $d/origin.key -out $d/origin.csr "
        . "-subj '/CN=origin.test'");

    run("$ossl x509 -req -in $d/origin.csr -CA $d/ca.crt -CAkey $d/ca.key "
        . "-CAcreateserial -out $d/origin.crt -days 365 -extfile $ext");

    # a self-signed certificate that is not a CA, for configuration errors

    run("$ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        . "-nodes -keyout $d/notca.key -out $d/notca.crt -days 365 "
        . "-subj '/CN=not a CA' "
        . "-addext 'basicConstraints=critical,CA:FALSE' "
        . "-addext 'keyUsage=critical,digitalSignature'");

    # a gateway CA with a key that does not belong to it

    run("$ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        . "-nodes -keyout $d/gwca.key -out $d/gwca.crt -days 365 "
        . "-subj '/CN=McdTest Gateway CA' "
        . "-addext 'basicConstraints=critical,CA:TRUE' "
        . "-addext 'keyUsage=critical,keyCertSign,cRLSign'");

    run("$ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
        . "-out $d/other.key");
}

sub make_files {
    my $d = $W->{dir};

    mcd_write_file("$d/www/index.html", "hello from origin\n");

    # 10 MiB, deterministic, not compressible by accident

    my $big = '';
    my $x = 12345;
    my $chunk = '';
    for my $i (1 .. 4096) {
        $x = ($x * 1103515245 + 12345) & 0x7fffffff;
        $chunk .= pack('N', $x);
    }
    $big .= $chunk for 1 .. 640;    # 16 KiB * 640 = 10 MiB
    mcd_write_file("$d/www/big.bin", $big);
    $W->{big_size} = length $big;

    mcd_write_file("$d/www/slow.bin", 'z' x 65536);

    mcd_write_file("$d/hosts", <<"EOF");
# the test world's names (mcd_hosts_file)
127.0.0.1   origin.test allowed.test www.allowed.test
127.0.0.1   deep.sub.allowed.test denied.test x.denied.test
127.0.0.1   example.test www.example.test bank.example.test
127.0.0.1   hosts-wins.test
127.0.0.1   closed.test blackhole.test
127.0.0.2   refused.test
::1         v6only.test
127.0.0.2   multi.test
127.0.0.1   multi.test
EOF
}

sub start_origin {
    my $d = $W->{dir};
    my $p = "$d/origin";

    $OriginPrefix = $p;

    # transparent mode connects to port 443 when there is no original
    # destination: the origin listens there too when it can (root)

    my $l443 = '';
    if ($> == 0 && port_free(443)) {
        $l443 = "listen 127.0.0.1:443 ssl;";
        $W->{origin443} = 1;
    }

    # as root, workers would run as "nobody", who may not reach a checkout
    # under a private (0700) directory

    my $user = $> == 0 ? 'user root;' : '';

    mcd_write_file("$p/conf/nginx.conf", <<"EOF");
$user
worker_processes 1;
daemon on;
master_process on;
error_log $p/logs/error.log warn;
pid $p/logs/nginx.pid;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path $p/tmp_body;
    proxy_temp_path $p/tmp_proxy;
    fastcgi_temp_path $p/tmp_fastcgi;
    uwsgi_temp_path $p/tmp_uwsgi;
    scgi_temp_path $p/tmp_scgi;
    default_type application/octet-stream;
    keepalive_timeout 60s;
    keepalive_requests 10000;
    server {
        listen 127.0.0.1:$W->{origin} ssl;
        listen [::1]:$W->{origin} ssl;
        $l443
        ssl_certificate $d/origin.crt;
        ssl_certificate_key $d/origin.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $d/www;
        location = /host { default_type text/plain; return 200 "host=\$host sni=\$ssl_server_name\\n"; }
        location /slow.bin { limit_rate 32k; }

        # t/061: uploads (WebDAV PUT), chunked responses (SSI clears the
        # length), WebSocket (the echo of mcd_ws_echo_start)
        location /dav/ { dav_methods PUT; create_full_put_path on;
                         client_max_body_size 128m; }
        location /ssi/ { ssi on; ssi_types *; }
        location /ws {
            proxy_pass http://127.0.0.1:$W->{ws_echo};
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
    server {
        listen 127.0.0.1:$W->{origin_http};
        root $d/www;
        location = /host { default_type text/plain; return 200 "host=\$host\\n"; }
    }
}
EOF

    my $bin = $ENV{TEST_NGINX_BINARY};
    run("$bin -p $p/ -c conf/nginx.conf");

    wait_port($W->{origin}) or die "origin did not start";
}

sub stop_origin {
    return unless $OriginPrefix;
    my $pid = mcd_slurp("$OriginPrefix/logs/nginx.pid");
    if ($pid && $pid =~ /(\d+)/) {
        my $master = $1;
        my @workers = split ' ', `pgrep -P $master 2>/dev/null`;
        kill 'TERM', $master;
        for (1 .. 50) {
            last unless kill 0, $master;
            sleep 0.1;
        }
        kill 'KILL', $master, @workers;
    }
    undef $OriginPrefix;
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1);
        if ($s) { close $s; return 1; }
        sleep 0.05;
    }
    return 0;
}

sub spawn {
    my ($code) = @_;
    my $parent = $$;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        eval { $code->($parent) };
        POSIX::_exit(0);
    }
    push @Children, $pid;
    open my $fh, '>>', "$W->{dir}/children.pid" or die;
    print $fh "$pid\n";
    close $fh;
    return $pid;
}

# echo: bytes are sent back as they come; on the client's FIN the server
# answers "BYE\n" and closes (so that half-close can be observed)

sub start_echo {
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $W->{echo}, Listen => 128,
                                  ReuseAddr => 1)
        or die "echo listen: $!";

    spawn(sub {
        my ($parent) = @_;
        $SIG{CHLD} = 'IGNORE';
        my $sel = IO::Select->new($l);
        while (getppid() == $parent) {
            next unless $sel->can_read(1);
            my $c = $l->accept or next;
            my $pid = fork;
            next if !defined $pid;
            if ($pid) { close $c; next; }
            close $l;
            my $deadline = time + 60;
            while (time < $deadline) {
                my $n = sysread($c, my $buf, 65536);
                last if !defined $n;
                if ($n == 0) {
                    syswrite($c, "BYE\n");
                    last;
                }
                my $off = 0;
                while ($off < $n) {
                    my $w = syswrite($c, $buf, $n - $off, $off);
                    last unless $w;
                    $off += $w;
                }
            }
            close $c;
            POSIX::_exit(0);
        }
    });

    close $l;
}

# mock DNS on UDP loopback: the zone below; "slow." names never answer,
# "delay." names answer 127.0.0.1 after 0.4 s

sub start_dns {
    require Net::DNS;

    my %a = (
        'dns.test'         => ['127.0.0.1'],
        'www.dns.test'     => ['127.0.0.1'],
        'allowed.dns.test' => ['127.0.0.1'],
        'hosts-wins.test'  => ['127.0.0.3'],
        'refused.dns.test' => ['127.0.0.1'],

        # the destination guard (t/040): one name per built-in class;
        # never a real target (the suite runs in a namespace with only lo)
        'dst-lo.dns.test'    => ['127.0.0.2'],          # loopback
        'dst-zero.dns.test'  => ['0.0.0.0'],            # unspecified
        'dst-ll.dns.test'    => ['169.254.169.254'],    # link-local
        'dst-p10.dns.test'   => ['10.1.2.3'],           # private
        'dst-p172.dns.test'  => ['172.16.5.5'],
        'dst-p192.dns.test'  => ['192.168.1.1'],
        'dst-cgn.dns.test'   => ['100.64.0.1'],
        'dst-mc.dns.test'    => ['224.0.0.1'],          # multicast
        'dst-r240.dns.test'  => ['240.0.0.1'],          # reserved
        'dst-doc.dns.test'   => ['192.0.2.10'],
        'dst-bench.dns.test' => ['198.18.0.1'],
        'dst-mixed.dns.test' => ['10.1.2.3', '127.0.0.1'],
    );
    my %aaaa = (
        'v6.dns.test' => ['::1'],

        'dst-v6lo.dns.test'     => ['::1'],
        'dst-v6ll.dns.test'     => ['fe80::1'],
        'dst-v6ula.dns.test'    => ['fc00::1'],
        'dst-v6mc.dns.test'     => ['ff02::1'],
        'dst-v6any.dns.test'    => ['::'],
        'dst-map-lo.dns.test'   => ['::ffff:127.0.0.2'],  # IPv4-mapped
        'dst-map-p10.dns.test'  => ['::ffff:10.1.2.3'],
        'dst-n64-lo.dns.test'   => ['64:ff9b::7f00:2'],   # NAT64 127.0.0.2
        'dst-n64-p10.dns.test'  => ['64:ff9b::a01:203'],  # NAT64 10.1.2.3
    );

    my $port = $W->{dns};

    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $port, Proto => 'udp')
        or die "dns: cannot listen on $port: $!";

    spawn(sub {
        my ($parent) = @_;
        my $sel = IO::Select->new($sock);
        while (getppid() == $parent) {
            next unless $sel->can_read(1);
            my $peer = recv($sock, my $buf, 4096, 0);
            next unless defined $peer;
            my $query = eval { Net::DNS::Packet->new(\$buf) } or next;
            my ($q) = $query->question or next;
            my $name = lc $q->qname;
            $name =~ s/\.$//;
            next if $name =~ /^slow\./;
            my $reply = $query->reply;
            $reply->header->aa(1);
            my $type = $q->qtype;
            my @ans;
            if ($name =~ /\.wild\.dns\.test$/) {
                $a{$name} = ['127.0.0.1'];
            }
            if ($name =~ /^delay\./) {
                # a slow but successful answer
                sleep 0.4 if $type eq 'A';
                $a{$name} = ['127.0.0.1'];
            }
            if ($type eq 'A' && $a{$name}) {
                push @ans, Net::DNS::RR->new("$name 5 IN A $_")
                    for @{ $a{$name} };
            } elsif ($type eq 'AAAA' && $aaaa{$name}) {
                push @ans, Net::DNS::RR->new("$name 5 IN AAAA $_")
                    for @{ $aaaa{$name} };
            }
            if (@ans || $a{$name} || $aaaa{$name}) {
                $reply->header->rcode('NOERROR');
                $reply->push(answer => @ans) if @ans;
            } else {
                $reply->header->rcode('NXDOMAIN');
            }
            send($sock, $reply->data, 0, $peer);
        }
    });

    close $sock;

    # wait until it answers

    my $res = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'],
                                      port => $port, udp_timeout => 0.2,
                                      retry => 1, recurse => 0);
    for (1 .. 50) {
        my $r = $res->send('dns.test', 'A');
        return if $r && $r->answer;
        sleep 0.1;
    }
    die "mock DNS did not start";
}

# a listener with a full accept queue: the kernel drops further SYNs

sub start_blackhole {
    socket($Blackhole, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($Blackhole, SOL_SOCKET, SO_REUSEADDR, 1);
    bind($Blackhole, sockaddr_in($W->{blackhole}, inet_aton('127.0.0.1')))
        or die "bind blackhole: $!";
    listen($Blackhole, 0) or die "listen: $!";

    my $fill = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $W->{blackhole},
                                     Timeout => 1);
    push @BlackholeFill, $fill if $fill;
}

# t/061: a WebSocket echo server (RFC 6455) that the origin's /ws proxies
# to, started on first use.  A data frame comes back unmasked with the same
# FIN bit and opcode, a ping gets a pong, a close is answered with a close
# and ends the session; a session lives at most 60 s, a frame 16 MiB.

sub mcd_ws_frame {
    my ($b0, $payload, $mask) = @_;
    my $len = length $payload;
    my $m = defined $mask ? 0x80 : 0;
    my $h = pack 'C', $b0;
    if ($len < 126) {
        $h .= pack 'C', $m | $len;
    } elsif ($len < 65536) {
        $h .= pack 'Cn', $m | 126, $len;
    } else {
        $h .= pack 'CNN', $m | 127, int($len / 2**32), $len % 2**32;
    }
    if (defined $mask) {
        $h .= $mask;
        $payload ^= substr($mask x (int($len / 4) + 1), 0, $len);
    }
    return $h . $payload;
}

sub mcd_ws_echo_start {
    return if $W->{ws_echo_started};
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $W->{ws_echo}, Listen => 64,
                                  ReuseAddr => 1)
        or die "ws echo listen: $!";
    spawn(sub {
        my ($parent) = @_;
        $SIG{CHLD} = 'IGNORE';
        my $sel = IO::Select->new($l);
        while (getppid() == $parent) {
            next unless $sel->can_read(1);
            my $c = $l->accept or next;
            my $pid = fork;
            next if !defined $pid;
            if ($pid) { close $c; next; }
            close $l;
            ws_echo_session($c);
            close $c;
            POSIX::_exit(0);
        }
    });
    close $l;
    $W->{ws_echo_started} = 1;
}

sub ws_echo_session {
    my ($c) = @_;
    require Digest::SHA;
    require MIME::Base64;
    local $SIG{PIPE} = 'IGNORE';

    my $deadline = time + 60;
    my $sel = IO::Select->new($c);
    my $buf = '';
    my $need = sub {
        my ($n) = @_;
        while (length $buf < $n) {
            my $left = $deadline - time;
            return 0 if $left <= 0 || !$sel->can_read($left);
            my $got = sysread($c, $buf, 262144, length $buf);
            return 0 unless $got;
        }
        return 1;
    };
    my $send = sub {
        my ($data) = @_;
        my $off = 0;
        while ($off < length $data) {
            my $w = syswrite($c, $data, length($data) - $off, $off);
            return 0 unless $w;
            $off += $w;
        }
        return 1;
    };

    while ($buf !~ /\r\n\r\n/) {
        return if length $buf > 16384 || !$need->(length($buf) + 1);
    }
    $buf =~ s/\A(.*?\r\n)\r\n//s;
    my $head = $1;
    my ($key) = $head =~ /^Sec-WebSocket-Key:[ \t]*(\S+)/mi;
    if (!$key || $head !~ /^Upgrade:[ \t]*websocket\r?$/mi) {
        $send->("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                . "Connection: close\r\n\r\n");
        return;
    }
    my $accept = MIME::Base64::encode_base64(Digest::SHA::sha1(
                     $key . '258EAFA5-E914-47DA-95CA-C5AB0DC11B65'), '');
    $send->("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n")
        or return;

    for (1 .. 100000) {
        $need->(2) or return;
        my ($b0, $b1) = unpack 'CC', $buf;
        my $len = $b1 & 0x7f;
        my $hl = 2;
        if ($len == 126) {
            $need->(4) or return;
            $len = unpack 'x2 n', $buf;
            $hl = 4;
        } elsif ($len == 127) {
            $need->(10) or return;
            my ($hi, $lo) = unpack 'x2 N N', $buf;
            $len = $hi * 2**32 + $lo;
            $hl = 10;
        }
        return if $len > 16 * 1024 * 1024;
        my $masked = $b1 & 0x80;
        $hl += 4 if $masked;
        $need->($hl + $len) or return;
        my $payload = substr($buf, $hl, $len);
        if ($masked) {
            my $mask = substr($buf, $hl - 4, 4);
            $payload ^= substr($mask x (int($len / 4) + 1), 0, $len);
        }
        substr($buf, 0, $hl + $len, '');
        my $op = $b0 & 0x0f;
        if ($op == 8) {
            $send->(mcd_ws_frame(0x88, $payload));
            return;
        }
        next if $op == 10;
        $send->(mcd_ws_frame($op == 9 ? 0x8a : $b0 & 0x8f, $payload))
            or return;
    }
}

END {
    if ($$ == $OwnerPid) {
        kill 'TERM', @Children if @Children;
        for my $pid (@Children) {
            waitpid($pid, 0);
        }
        unlink "$W->{dir}/children.pid" if $W;
        stop_origin();
    }
}

# clients

# run a command; returns { exit, out, err }

sub mcd_run_cmd {
    my (@cmd) = @_;
    my $out = "$W->{dir}/cmd.out.$$";
    my $err = "$W->{dir}/cmd.err.$$";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $r = { exit => $? >> 8, out => mcd_slurp($out) // '',
              err => mcd_slurp($err) // '' };
    unlink $out, $err;
    return $r;
}

sub mcd_curl { return mcd_run_cmd('curl', @_); }

# curl -x through the gateway to https://HOST:PORT/PATH, verifying the
# origin's certificate against the test CA; returns { exit, out, err, code }

sub mcd_curl_x {
    my (%o) = @_;
    my $host = $o{host} // 'origin.test';
    my $port = $o{port} // $W->{origin};
    my $path = $o{path} // '/index.html';
    my $proxy = $o{proxy} // $W->{port};
    my @args = ('-sS', '-v', '--max-time', $o{max_time} // 20,
                '--cacert', "$W->{dir}/ca.crt",
                '-x', "http://127.0.0.1:$proxy",
                '-w', '\n%{http_connect} %{http_code}',
                @{ $o{args} // [] });
    push @args, '-o', $o{output} if $o{output};
    my $authority = $host =~ /:/ ? "[$host]" : $host;
    my $r = mcd_curl(@args, "https://$authority:$port$path");
    if ($r->{out} =~ s/\n(\d{3}) (\d{3})\z//) {
        $r->{connect_code} = $1;
        $r->{code} = $2;
    }
    return $r;
}

# send raw bytes to a port, read until EOF or timeout

sub mcd_raw {
    my (%o) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::INET->new(PeerAddr => $o{addr} // '127.0.0.1',
                                  PeerPort => $o{port} // $W->{port},
                                  Timeout => 5)
        or die "connect: $!";
    my @parts = ref $o{send} ? @{ $o{send} } : ($o{send} // '');
    for my $i (0 .. $#parts) {
        my $p = $parts[$i];
        my $off = 0;
        while ($off < length $p) {
            my $w = syswrite($s, $p, length($p) - $off, $off);
            last unless $w;
            $off += $w;
        }
        sleep($o{delay}) if $o{delay} && $i < $#parts;
    }
    shutdown($s, 1) if $o{shutdown};
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

# through a CONNECT tunnel to the plain HTTP origin (or any port): one GET

sub mcd_http_get_via_tunnel {
    my (%o) = @_;
    my $target = $o{target} // "origin.test:$W->{origin_http}";
    my $path = $o{path} // '/index.html';
    return mcd_raw(port => $o{proxy} // $W->{port},
                   send => "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n"
                         . "GET $path HTTP/1.0\r\nHost: x\r\n\r\n",
                   timeout => $o{timeout} // 10);
}

# openssl s_client against PORT; returns { exit, out, err }

sub mcd_s_client {
    my (%o) = @_;
    my @args = ('s_client', '-connect', "127.0.0.1:" . ($o{port} // $W->{port}),
                '-CAfile', "$W->{dir}/ca.crt", '-verify_return_error',
                '-ign_eof', @{ $o{args} // [] });
    push @args, defined $o{sni} ? ('-servername', $o{sni}) : '-noservername';
    my $in = "$W->{dir}/s_client.in.$$";
    mcd_write_file($in, $o{input} // '');
    my $out = "$W->{dir}/s_client.out.$$";
    my $err = "$W->{dir}/s_client.err.$$";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', $in or die;
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec 'timeout', '20', 'openssl', @args or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $r = { exit => $? >> 8, out => mcd_slurp($out) // '',
              err => mcd_slurp($err) // '' };
    unlink $in, $out, $err;
    return $r;
}

# A TLS client driven through memory BIOs, so that the test controls how
# the ClientHello travels: re-framed into several TLS records (split
# points in "records"), written in several TCP segments ("segments": byte
# counts, with "delay" between them).  Verifies the origin certificate
# against the test CA, sends one GET, returns { body, error, subject,
# issuer, hello }.

sub mcd_tls_client {
    my (%o) = @_;
    require Net::SSLeay;
    Net::SSLeay::load_error_strings();
    Net::SSLeay::SSLeay_add_ssl_algorithms();
    local $SIG{PIPE} = 'IGNORE';

    my $r = {};
    my $ctx = Net::SSLeay::CTX_new() or die;
    Net::SSLeay::CTX_load_verify_locations($ctx, "$W->{dir}/ca.crt", '');
    Net::SSLeay::CTX_set_verify($ctx, Net::SSLeay::VERIFY_PEER(), undef);
    my $ssl = Net::SSLeay::new($ctx);
    my $rbio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    my $wbio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    Net::SSLeay::set_bio($ssl, $rbio, $wbio);
    Net::SSLeay::set_tlsext_host_name($ssl, $o{sni}) if defined $o{sni};
    # (Net::SSLeay 1.92's ALPN setters corrupt memory: ALPN is tested with
    # curl and s_client instead)
    if ($o{groups}) {
        Net::SSLeay::set1_groups_list($ssl, $o{groups}) or die "groups";
    }
    Net::SSLeay::set_connect_state($ssl);

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // $W->{port},
                                  Timeout => 5) or die "connect: $!";
    setsockopt($s, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);

    my $pending = sub {
        my $out = '';
        while (Net::SSLeay::BIO_pending($wbio)) {
            $out .= Net::SSLeay::BIO_read($wbio);
        }
        return $out;
    };

    my $send = sub {
        my ($data) = @_;
        my $off = 0;
        while ($off < length $data) {
            my $w = syswrite($s, $data, length($data) - $off, $off);
            return 0 unless $w;
            $off += $w;
        }
        return 1;
    };

    Net::SSLeay::do_handshake($ssl);
    my $hello = $pending->();
    $r->{hello} = $hello;

    # re-frame the ClientHello record into several records

    my $wire = $hello;
    if ($o{records}) {
        my ($type, $ver, $len) = unpack('C n n', $hello);
        my $body = substr($hello, 5, $len);
        my $rest = substr($hello, 5 + $len);
        $wire = '';
        my $at = 0;
        for my $cut (@{ $o{records} }, length $body) {
            my $frag = substr($body, $at, $cut - $at);
            $wire .= pack('C n n', $type, $ver, length $frag) . $frag;
            $at = $cut;
        }
        $wire .= $rest;
    }

    if ($o{segments}) {
        my $at = 0;
        for my $n (@{ $o{segments} }) {
            $send->(substr($wire, $at, $n));
            $at += $n;
            sleep($o{delay} // 0.2);
        }
        $send->(substr($wire, $at)) if $at < length $wire;
    } else {
        $send->($wire);
    }

    my $sel = IO::Select->new($s);
    my $deadline = time + ($o{timeout} // 10);
    my $request_sent = 0;
    my $body = '';

    while (time < $deadline) {
        my $out = $pending->();
        $send->($out) if length $out;

        if (Net::SSLeay::is_init_finished($ssl) && !$request_sent) {
            my $cert = Net::SSLeay::get_peer_certificate($ssl);
            $r->{subject} = Net::SSLeay::X509_NAME_oneline(
                Net::SSLeay::X509_get_subject_name($cert)) if $cert;
            $r->{issuer} = Net::SSLeay::X509_NAME_oneline(
                Net::SSLeay::X509_get_issuer_name($cert)) if $cert;
            $r->{verify} = Net::SSLeay::get_verify_result($ssl);
            Net::SSLeay::write($ssl, "GET " . ($o{path} // '/index.html')
                . " HTTP/1.0\r\nHost: " . ($o{sni} // 'x') . "\r\n\r\n");
            $request_sent = 1;
            $send->($pending->());
        }

        last unless $sel->can_read(0.5);
        my $n = sysread($s, my $buf, 65536);
        if (!$n) {
            $r->{eof} = 1;
            last;
        }
        $r->{raw} .= $buf unless $request_sent;
        Net::SSLeay::BIO_write($rbio, $buf);

        if (!$request_sent) {
            my $rc = Net::SSLeay::do_handshake($ssl);
            if ($rc <= 0) {
                my $e = Net::SSLeay::get_error($ssl, $rc);
                if ($e != Net::SSLeay::ERROR_WANT_READ()) {
                    $r->{error} = Net::SSLeay::ERR_error_string(
                        Net::SSLeay::ERR_get_error()) || "ssl error $e";
                    last;
                }
            }
        }

        if ($request_sent) {
            while (1) {
                my $d = Net::SSLeay::read($ssl);
                last unless defined $d && length $d;
                $body .= $d;
            }
        }
    }

    if ($request_sent) {
        while (1) {
            my $d = Net::SSLeay::read($ssl);
            last unless defined $d && length $d;
            $body .= $d;
        }
    }

    $r->{response} = $body;
    ($r->{body}) = $body =~ /\r\n\r\n(.*)\z/s;
    close $s;
    Net::SSLeay::free($ssl);
    Net::SSLeay::CTX_free($ctx);
    return $r;
}

# the bytes of a real ClientHello for SNI (from OpenSSL via memory BIOs)

sub mcd_client_hello {
    my ($sni) = @_;
    require Net::SSLeay;
    my $ctx = Net::SSLeay::CTX_new() or die;
    my $ssl = Net::SSLeay::new($ctx);
    my $rbio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    my $wbio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    Net::SSLeay::set_bio($ssl, $rbio, $wbio);
    Net::SSLeay::set_tlsext_host_name($ssl, $sni) if defined $sni;
    Net::SSLeay::set_connect_state($ssl);
    Net::SSLeay::do_handshake($ssl);
    my $out = '';
    while (Net::SSLeay::BIO_pending($wbio)) {
        $out .= Net::SSLeay::BIO_read($wbio);
    }
    Net::SSLeay::free($ssl);
    Net::SSLeay::CTX_free($ctx);
    return $out;
}

sub mcd_servroot {
    no warnings 'once';
    return $Test::Nginx::Util::ServRoot;
}

sub mcd_nginx_pid {
    no warnings 'once';
    my $f = $Test::Nginx::Util::PidFile;
    my $pid = mcd_slurp($f);
    return $pid && $pid =~ /(\d+)/ ? $1 : undef;
}

sub mcd_log_lines {
    my ($name) = @_;
    my $data = mcd_slurp(mcd_servroot() . "/logs/$name") // '';
    return split /\n/, $data;
}

# wait until the log has N lines matching RE (access logs are written when
# a session ends, which may be a moment after the client saw EOF)

sub mcd_wait_log {
    my ($name, $re, $n, $timeout) = @_;
    $n //= 1;
    my $deadline = time + ($timeout // 5);
    my @m;
    while (1) {
        @m = grep { $_ =~ $re } mcd_log_lines($name);
        last if @m >= $n || time > $deadline;
        sleep 0.05;
    }
    return @m;
}

# Test::Nginx glue: "--- mcd_client" holds Perl code run against the live
# nginx after the block's request; "--- gateway" sends the block's request
# to the gateway port (or the port given) instead of the http port

sub mcd_test_setup {
    my $caller = caller;

    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;

        if (defined $block->gateway) {
            my $p = $block->gateway;
            $p =~ s/\s+//g;
            $p = $W->{port} if $p eq '' || $p eq '1';
            $p = $W->{$p} if exists $W->{$p};
            Test::Nginx::Util::server_port_for_client($p);
        } else {
            Test::Nginx::Util::server_port_for_client(
                $ENV{TEST_NGINX_SERVER_PORT});
        }

        if ((defined $block->mcd_client || defined $block->nginx_t)
            && !defined $block->request && !defined $block->raw_request)
        {
            $block->set_value('request', "GET /mcd-ping\n");
            my $config = $block->config // '';
            $block->set_value('config', $config
                . "\n    location = /mcd-ping { return 200 \"pong\\n\"; }\n");
            $block->set_value('response_body', "pong\n")
                unless defined $block->response_body;
        }
    });

    Test::Nginx::Socket::add_response_body_check(sub {
        my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
        return if $dry_run || $req_idx != 0;
        check_nginx_t($block) if defined $block->nginx_t;
        my $code = $block->mcd_client;
        return unless defined $code;
        my $name = $block->name;
        local $McdTest::Block = $block;
        my $ok = eval "package $caller; no strict 'vars'; $code; 1";
        if (!$ok) {
            Test::More::fail("$name - mcd_client died: $@");
        }
    });
}

our $Block;

sub expand_env {
    my ($text) = @_;
    $text =~ s/\$(TEST_NGINX_[_A-Z0-9]+)/
        defined $ENV{$1} ? $ENV{$1} : die "unknown variable \$$1\n"/ge;
    return $text;
}

# "nginx -t" of a configuration: the main context of "--- nginx_t" plus the
# modules of TEST_NGINX_LOAD_MODULES; returns { exit, out, err, conf }

sub mcd_nginx_t {
    my ($main) = @_;
    my $dir = "$W->{dir}/nginx-t";
    make_path("$dir/logs");
    my $conf = "$dir/nginx.conf";
    my $load = join '', map { "load_module $_;\n" }
                        split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    mcd_write_file($conf, "${load}error_log $dir/logs/error.log info;\n"
                   . "pid $dir/nginx.pid;\n"
                   . "events { worker_connections 64; }\n"
                   . expand_env($main));
    my $r = mcd_run_cmd($ENV{TEST_NGINX_BINARY}, '-t', '-p', "$dir/",
                        '-c', $conf, '-e', "$dir/logs/error.log");
    $r->{conf} = $conf;
    return $r;
}

# "--- nginx_t": that configuration must pass "nginx -t", or, with
# "--- nginx_t_error" (a regex, with "eval"), fail with a matching message

sub check_nginx_t {
    my ($block) = @_;
    my $name = $block->name;
    my $r = mcd_nginx_t($block->nginx_t);
    my $want = $block->nginx_t_error;
    if (!defined $want) {
        Test::More::is($r->{exit}, 0, "$name - nginx -t passes")
            or Test::More::diag($r->{err});
        my $like = $block->nginx_t_like;
        if (defined $like) {
            $like = qr/\Q$like\E/ unless ref $like;
            Test::More::like($r->{err}, $like, "$name - nginx -t says")
                or Test::More::diag($r->{err});
        }
        return;
    }
    $want = qr/\Q$want\E/ unless ref $want;
    Test::More::isnt($r->{exit}, 0, "$name - nginx -t fails");
    Test::More::like($r->{err}, $want, "$name - nginx -t says why")
        or Test::More::diag($r->{err});
    Test::More::like($r->{err}, qr/in \Q$r->{conf}\E:\d+|\Q$r->{conf}\E:\d+/,
                     "$name - with the file and line");

    # and nginx refuses to start with it
    my $dir = dirname($r->{conf});
    my $s = mcd_run_cmd('timeout', '10', $ENV{TEST_NGINX_BINARY},
                        '-p', "$dir/", '-c', $r->{conf},
                        '-e', "$dir/logs/error.log",
                        '-g', 'daemon off; master_process off;');
    Test::More::ok($s->{exit} != 0 && $s->{exit} != 124,
                   "$name - nginx refuses to start")
        or Test::More::diag("exit $s->{exit}: $s->{err}");
}

1;
