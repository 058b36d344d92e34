#!/usr/bin/perl
# ngx_mcd benchmark: every mode that exists, side by side with plain nginx
# and Squid, on loopback, one worker process each, as ratios against a
# baseline measured in the same run.
#
#   bench/bench.pl [--smoke] [--rounds N] [--duration S] [--out DIR]
#                  [--skip memory,filter,squid,drip] [--mcd 'directives;']
#                  [--keepalive-requests R]
#   bench/bench.pl --decrypt [--smoke] [--rounds N] ...
#   bench/bench.pl --metrics [--smoke] [--rounds N (10)] [--duration S]
#   bench/bench.pl --drip [--smoke] [--drip-rounds N] [--drip-sizes A,B]
#                  [--drip-parallel N]
#
# --mcd adds directives to the ngx_mcd servers (e.g. 'mcd_splice off;').
# --drip runs only the drip case (see drip_bench below).
# --decrypt runs only the decryption peers (terminate, decrypt, tdecrypt,
# the keep-alive and first-sight cases, Squid SslBump unless --skip squid).
# --metrics runs only the pass-through "conn" runs with the counters on
# (the default: "transparent", "explicit") and off ("mcd_metrics off;":
# "transparent-off", "explicit-off") next to the "preread" baseline.
# The full run and --smoke have the "-off" peers in their "conn" runs too.
# At the end of every run each ngx_mcd pass-through peer's mcd_status
# endpoint is scraped: its decisions must match the connections the load
# generator made (and be zero with the counters off).
#
# Run by "make bench" (bench/run.sh) after the build. Prints a table and
# writes DIR/results.json and DIR/results.md.
#
# What is measured (SPEC 5):
#   - CPU seconds of the proxy (utime+stime of all its processes, from
#     /proc) per 1,000 connections, each a full TLS 1.3 handshake (ECDSA
#     P-256) and one small GET, next to connections/s;
#   - 10 MiB bodies: MB/s and proxy CPU seconds per GB;
#   - decryption (against nginx terminating TLS, "terminate"): CPU per
#     1,000 new sessions, explicit and transparent; CPU per request with
#     keep-alive (R requests per connection); the cost of a first-sight
#     name (every connection a new name: a certificate minted) against
#     the cached case (100 names, all in the cache), on one gateway;
#   - proxy memory (RSS) per idle tunnel with 1,000 and 10,000 open;
#   - a certificate minted and a first-sight handshake without the
#     network (bench/mint-bench.c, "--skip mint" leaves it out);
#   - the counters' cost: CPU per 1,000 connections with "mcd_metrics off;"
#     against the same gateway with the counters on (the default);
#   - the FQDN filter: lookup cost at 10 / 10,000 / 1,000,000 patterns, and
#     load time and memory of a 1,000,000-line list at "nginx -t";
#   - the drip case (issue 7): worker CPU per KB of a CONNECT head and of a
#     ClientHello sent one byte per TCP segment, at two sizes; the ratio of
#     the two says linear (about 1) or quadratic (about 4 for 4x the size).
# The load generator and the origin run on core 0, the proxy under test on
# core 1; peers are interleaved in every round (five by default); a ratio
# is the median of the per-round ratios of a peer to the baseline it ran
# next to.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use Getopt::Long;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime WNOHANG);
use Time::HiRes qw(sleep time);

my $Root = abs_path(dirname(__FILE__) . '/..');
my %opt = (duration => 10, bulk_duration => 10,
           out => "$Root/bench/out", skip => '');
GetOptions(\%opt, 'smoke', 'rounds=i', 'duration=i', 'bulk_duration=i',
           'out=s', 'skip=s', 'keep', 'mcd=s', 'drip', 'drip-rounds=i',
           'drip-sizes=s', 'drip-parallel=i', 'decrypt', 'metrics',
           'keepalive-requests=i') or die "bad options\n";
die "--decrypt and --metrics: one or the other\n"
    if $opt{decrypt} && $opt{metrics};
# the counters' cost is small against the rounds' noise: more rounds
$opt{rounds} //= $opt{metrics} ? 10 : 5;

if ($opt{smoke}) {
    $opt{rounds} = 1;
    $opt{duration} = 2;
    $opt{bulk_duration} = 2;
}

my %skip = map { $_ => 1 } split /,/, $opt{skip};
$skip{$_} = 1 for $opt{decrypt} ? qw(memory filter drip) : ();
$skip{$_} = 1 for $opt{metrics} ? qw(memory filter drip mint squid) : ();

# keep-alive: requests per connection
my $KaRequests = $opt{'keepalive-requests'} // ($opt{smoke} ? 20 : 100);

# first-sight names: n0.example.test, n1... (each used once in the whole
# run), against c0 .. c99.example.test (the cached case: all in the cache)
my $CachedNames = 100;
my $NamesMax = $opt{smoke} ? 20000
             : 5000 + $opt{rounds} * ($opt{duration} + 3) * 1500;
my $NamesNext = 0;

my %Want;    # the proxies to start (see the main part)

my $Nginx = '/usr/sbin/nginx';
my $Load = "$Root/bench/loadgen/mcd-load";
my $Drip = "$Root/bench/loadgen/mcd-drip";
my $Module = "$Root/build/ngx_mcd_module.so";
my $Stream = '/usr/lib/nginx/modules/ngx_stream_module.so';
my $Out = $opt{out};
my $W = "$Out/world";
my $Ncpu = `nproc` + 0;
my ($CoreLoad, $CoreProxy) = $Ncpu >= 2 ? (0, 1) : (0, 0);
my $Tick = `getconf CLK_TCK` + 0 || 100;

# descriptors: a tunnel costs the proxy two; the hard limit may be fixed
my $Nofile = `sh -c 'ulimit -Hn'` =~ /(\d+)/ ? $1 : 65536;
$Nofile = 1048576 if $Nofile > 1048576;

my %Port = (origin => 443, preread => 9101, transparent => 9102,
            explicit => 9103, squid => 9104, terminate => 9105,
            bump => 9106, splice => 9107, drip_explicit => 9108,
            drip_transparent => 9109, decrypt => 9110,
            decrypt_intercept => 9111, tdecrypt => 9112,
            tdecrypt_intercept => 9113, names => 9114,
            names_intercept => 9115, 'transparent-off' => 9116,
            'explicit-off' => 9117);

# the ngx_mcd pass-through peers: the counters on (the default) or off
# ("mcd_metrics off;" in the main context); each has an http server with
# "location = /metrics { mcd_status; }" on a port of its own
my @McdPeers = ('transparent', 'explicit', 'splice', 'transparent-off',
                'explicit-off');
my %MetricsPort = (transparent => 9120, explicit => 9121, splice => 9122,
                   'transparent-off' => 9123, 'explicit-off' => 9124);
my %Sent;    # connections each peer was asked for (load generator counts)
my %SentBytes;    # and the bytes on the client's wire, each way

# the destination guard (issue 7): once the module has mcd_destination,
# every ngx_mcd server that connects to the loopback origin must allow it

my $Guard = '';
if (open my $so, '<:raw', $Module) {
    local $/;
    my $bin = <$so>;
    $Guard = 'mcd_destination allow 127.0.0.0/8 ::1;'
        if index($bin, 'mcd_destination') >= 0;
}

my @Started;    # [ name, pidfile or pid ]
my $Owner = $$;

# whatever ends the run (a die included), nothing it started keeps running
END { stop_all() if $$ == $Owner && @Started; }

$SIG{INT} = $SIG{TERM} = sub { stop_all(); drip_netns_down(); exit 1; };

sub say { print @_, "\n"; }

sub run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "failed ($?): $cmd\n$out" if $?;
    return $out;
}

sub write_file {
    my ($path, $data) = @_;
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    print $fh $data;
    close $fh;
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1);
        return 1 if $s;
        sleep 0.05;
    }
    die "nothing listens on $port\n";
}

# the world: CA, origin certificate, bodies, hosts file

sub make_world {
    remove_tree($W);
    make_path("$W/www");

    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        . "-keyout $W/ca.key -out $W/ca.crt -days 30 -subj '/CN=bench CA' "
        . "-addext 'basicConstraints=critical,CA:TRUE' "
        . "-addext 'keyUsage=critical,keyCertSign'");
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        . "-keyout $W/origin.key -out $W/origin.csr -subj '/CN=origin.test'");
    # *.example.test: the names of the first-sight case
    write_file("$W/ext", "subjectAltName=DNS:origin.test,DNS:*.example.test\n");
    run("openssl x509 -req -in $W/origin.csr -CA $W/ca.crt -CAkey $W/ca.key "
        . "-CAcreateserial -out $W/origin.crt -days 30 -extfile $W/ext");

    write_file("$W/www/small.txt", "x" x 1024);
    open my $fh, '>', "$W/www/big.bin" or die;
    my $chunk = join '', map { chr(($_ * 7 + 3) % 251) } 0 .. 65535;
    print $fh $chunk for 1 .. 160;    # 10 MiB
    close $fh;

    write_file("$W/hosts", "127.0.0.1 origin.test\n");

    # the first-sight gateway's: the cached names and every first-sight one
    open $fh, '>', "$W/hosts-names" or die;
    print $fh "127.0.0.1 origin.test\n";
    print $fh "127.0.0.1 c$_.example.test\n" for 0 .. $CachedNames - 1;
    print $fh "127.0.0.1 n$_.example.test\n" for 0 .. $NamesMax - 1;
    close $fh;

    # Squid's SslBump CA; clients of the bumping peer trust both CAs
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        . "-keyout $W/bump.key -out $W/bump.crt -days 30 -subj '/CN=bump CA' "
        . "-addext 'basicConstraints=critical,CA:TRUE' "
        . "-addext 'keyUsage=critical,keyCertSign'");
    run("cat $W/bump.crt $W/bump.key > $W/bump.pem");
    run("cat $W/ca.crt $W/bump.crt > $W/both.crt");

    # the gateway CA of the "decrypt" peer (ngx_mcd mints from it)
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        . "-keyout $W/gwca.key -out $W/gwca.crt -days 365 -subj '/CN=gateway CA' "
        . "-addext 'basicConstraints=critical,CA:TRUE' "
        . "-addext 'keyUsage=critical,keyCertSign'");
    run("chmod 600 $W/gwca.key");
    run("cat $W/ca.crt $W/gwca.crt > $W/both-gw.crt");
}

sub nginx_conf {
    my ($name, $body, %o) = @_;
    my $p = "$W/$name";
    make_path("$p/logs");
    my $load = $o{modules} ? join('', map { "load_module $_;\n" }
                                       @{ $o{modules} }) : '';
    # as root, workers would run as "nobody", who may not reach a checkout
    # under a private (0700) directory; the same for every peer
    my $user = $> == 0 ? 'user root;' : '';
    write_file("$p/nginx.conf", <<"EOF");
$load
$user
worker_processes 1;
worker_rlimit_nofile $Nofile;
pid $p/nginx.pid;
error_log $p/logs/error.log warn;
events { worker_connections @{[ $Nofile - 100 ]}; }
$body
EOF
    return $p;
}

sub start_nginx {
    my ($name, $core) = @_;
    my $p = "$W/$name";
    run("taskset -c $core $Nginx -p $p/ -c $p/nginx.conf");
    push @Started, [$name, "$p/nginx.pid"];
}

sub start_origin {
    my $p = nginx_conf('origin', <<"EOF");
http {
    access_log off;
    client_body_temp_path $W/origin/tmp;
    proxy_temp_path $W/origin/tmp;
    fastcgi_temp_path $W/origin/tmp;
    uwsgi_temp_path $W/origin/tmp;
    scgi_temp_path $W/origin/tmp;
    keepalive_requests 100000;
    sendfile on;
    server {
        listen 127.0.0.1:$Port{origin} ssl backlog=4096;
        ssl_certificate $W/origin.crt;
        ssl_certificate_key $W/origin.key;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve prime256v1;
        ssl_session_tickets off;
        root $W/www;
    }
}
EOF
    start_nginx('origin', $CoreLoad);
    wait_port($Port{origin});
}

my $StreamLog = q{log_format b '$remote_addr [$time_local] $status $bytes_sent $bytes_received $session_time';};

sub start_proxies {
    # the baseline: plain nginx stream, ssl_preread + map + proxy_pass

    nginx_conf('preread', <<"EOF", modules => [$Stream]) if $Want{preread};
stream {
    log_format b '\$remote_addr \$ssl_preread_server_name \$upstream_addr '
                 '\$status \$bytes_sent \$bytes_received \$session_time';
    access_log $W/preread/logs/access.log b buffer=64k;
    map \$ssl_preread_server_name \$up {
        origin.test 127.0.0.1:$Port{origin};
        default     127.0.0.1:1;
    }
    server {
        listen 127.0.0.1:$Port{preread} backlog=4096;
        ssl_preread on;
        proxy_pass \$up;
    }
}
EOF
    start_nginx('preread', $CoreProxy) if $Want{preread};

    # the decryption baseline: nginx terminating TLS with a static
    # certificate, proxy_pass https to the origin (verified, SNI), a new
    # upstream TLS session per connection like a variable proxy_pass

    nginx_conf('terminate', <<"EOF") if $Want{terminate};
http {
    log_format b '\$remote_addr \$ssl_server_name \$upstream_addr \$status '
                 '\$body_bytes_sent \$request_time';
    access_log $W/terminate/logs/access.log b buffer=64k;
    client_body_temp_path $W/terminate/tmp;
    proxy_temp_path $W/terminate/tmp;
    fastcgi_temp_path $W/terminate/tmp;
    uwsgi_temp_path $W/terminate/tmp;
    scgi_temp_path $W/terminate/tmp;
    server {
        listen 127.0.0.1:$Port{terminate} ssl backlog=4096;
        ssl_certificate $W/origin.crt;
        ssl_certificate_key $W/origin.key;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve prime256v1;
        ssl_session_tickets off;
        location / {
            proxy_pass https://127.0.0.1:$Port{origin};
            proxy_ssl_server_name on;
            proxy_ssl_name origin.test;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $W/ca.crt;
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_session_reuse off;
            proxy_set_header Host \$host;
            proxy_buffering off;
        }
    }
}
EOF
    start_nginx('terminate', $CoreProxy) if $Want{terminate};

    my $mcd = <<"EOF";
MAIN
mcd_hosts_file $W/hosts;
mcd_fqdn_filter bench {
    default deny;
    allow origin.test;
}
stream {
    log_format m '\$remote_addr \$mcd_fqdn \$mcd_upstream_addr \$status '
                 '\$bytes_sent \$bytes_received \$session_time';
    access_log LOG m buffer=64k;
    server {
        listen 127.0.0.1:PORT backlog=4096;
        mcd_proxy MODE;
        mcd_fqdn_filter bench;
        mcd_connect_ports $Port{origin};
        EXTRA
    }
}
http {
    access_log off;
    client_body_temp_path DIR/tmp;
    proxy_temp_path DIR/tmp;
    fastcgi_temp_path DIR/tmp;
    uwsgi_temp_path DIR/tmp;
    scgi_temp_path DIR/tmp;
    server {
        listen 127.0.0.1:METRICS;
        location = /metrics { mcd_status; }
    }
}
EOF

    # "splice": explicit mode with the zero-copy relay (mcd_splice on);
    # "transparent-off", "explicit-off": the same gateways with
    # "mcd_metrics off;" (nothing counted), all else equal

    for my $name (grep { $Want{$_} } @McdPeers) {
        my $mode = $name =~ /^(transparent|explicit)/ ? $1 : 'explicit';
        (my $c = $mcd) =~ s/MODE/$mode/;
        $c =~ s/PORT/$Port{$name}/;
        $c =~ s/METRICS/$MetricsPort{$name}/;
        $c =~ s{LOG}{$W/$name/logs/access.log};
        $c =~ s{DIR}{$W/$name}g;
        $c =~ s{MAIN}{$name =~ /-off$/ ? 'mcd_metrics off;' : ''}e;
        $c =~ s{EXTRA}{($name eq 'splice' ? 'mcd_splice on; ' : '')
                       . ($Guard ? "$Guard " : '') . ($opt{mcd} // '')}e;
        nginx_conf($name, $c, modules => [$Stream, $Module]);
        start_nginx($name, $CoreProxy);
    }

    # "decrypt": explicit mode, every connection decrypted: the front door
    # hands it to an mcd_intercept server (a certificate minted for the
    # name, then cached), which re-encrypts to the verified origin like
    # "terminate" does; "tdecrypt": the same behind the transparent front
    # door (the client's SNI decides); "names": explicit, "decrypt
    # .example.test", a hosts file with every name the first-sight case
    # uses, the default certificate cache (1,000 per worker, said
    # explicitly)

    decrypt_gateway('decrypt', 'explicit', "$W/hosts",
                    'decrypt origin.test;', '') if $Want{decrypt};
    decrypt_gateway('tdecrypt', 'transparent', "$W/hosts",
                    'decrypt origin.test;', '') if $Want{tdecrypt};
    decrypt_gateway('names', 'explicit', "$W/hosts-names",
                    'decrypt .example.test;',
                    'mcd_certificate_cache max=1000 valid=1d;')
        if $Want{names};

    wait_port($Port{$_}) for grep { $Want{$_} }
        'preread', @McdPeers, qw(terminate decrypt tdecrypt names);
    wait_port($MetricsPort{$_}) for grep { $Want{$_} } @McdPeers;

    unless ($skip{squid}) {
        start_squid('squid') if $Want{squid};
        start_squid('bump') if $Want{bump};
    }
}

sub decrypt_gateway {
    my ($name, $mode, $hosts, $rule, $core) = @_;
    my $ip = "${name}_intercept";

    nginx_conf($name, <<"EOF", modules => [$Stream, $Module]);
mcd_hosts_file $hosts;
mcd_ca_certificate     $W/gwca.crt;
mcd_ca_certificate_key $W/gwca.key;
$core
mcd_fqdn_filter bench {
    default deny;
    $rule
}
stream {
    log_format m '\$remote_addr \$mcd_fqdn \$mcd_upstream_addr \$status '
                 '\$bytes_sent \$bytes_received \$session_time';
    access_log $W/$name/logs/stream.log m buffer=64k;
    server {
        listen 127.0.0.1:$Port{$name} backlog=4096;
        mcd_proxy $mode;
        mcd_fqdn_filter bench;
        mcd_connect_ports $Port{origin};
        mcd_decrypt_pass 127.0.0.1:$Port{$ip};
        $Guard
    }
}
http {
    log_format b '\$remote_addr \$mcd_fqdn \$upstream_addr \$status '
                 '\$body_bytes_sent \$request_time';
    access_log $W/$name/logs/access.log b buffer=64k;
    client_body_temp_path $W/$name/tmp;
    proxy_temp_path $W/$name/tmp;
    fastcgi_temp_path $W/$name/tmp;
    uwsgi_temp_path $W/$name/tmp;
    scgi_temp_path $W/$name/tmp;
    server {
        listen 127.0.0.1:$Port{$ip} ssl backlog=4096;
        mcd_intercept on;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve prime256v1;
        ssl_session_tickets off;
        location / {
            proxy_pass https://\$mcd_upstream_addr;
            proxy_ssl_server_name on;
            proxy_ssl_name \$mcd_fqdn;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $W/ca.crt;
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_session_reuse off;
            proxy_set_header Host \$host;
            proxy_buffering off;
        }
    }
}
EOF
    start_nginx($name, $CoreProxy);
}

my $SquidDir;

sub squid_dir {
    return $SquidDir if $SquidDir;
    $SquidDir = tempdir('mcd-bench-squid-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $SquidDir;
    for my $f ('hosts', 'ca.crt', 'bump.pem') {
        run("cp $W/$f $SquidDir/$f") if -f "$W/$f";
    }
    return $SquidDir;
}

sub start_squid {
    my ($name) = @_;
    my $squid = '/usr/sbin/squid';
    if (!-x $squid) {
        say "squid not installed: skipped";
        $skip{squid} = 1;
        return;
    }
    # Squid drops to the "proxy" user, who may not reach a checkout under a
    # private (0700) directory: its files live in a folder of their own,
    # with copies of the few world files it reads
    my $sw = squid_dir();
    my $p = "$sw/$name";
    make_path("$p/logs", "$p/cache");

    # Squid's documented setups: a CONNECT proxy with the default ACLs
    # (CONNECT only to SSL_ports), and SslBump (peek at step 1, then bump,
    # certificates generated by security_file_certgen and cached); one
    # worker like the other peers
    my $port = "http_port 127.0.0.1:$Port{$name}";
    my $bump = '';
    if ($name eq 'bump') {
        my $certgen = '/usr/lib/squid/security_file_certgen';
        run("$certgen -c -s $p/ssl_db -M 16MB");
        $port .= " ssl-bump generate-host-certificates=on"
               . " dynamic_cert_mem_cache_size=16MB tls-cert=$sw/bump.pem";
        $bump = <<"EOF";
sslcrtd_program $certgen -s $p/ssl_db -M 16MB
sslcrtd_children 4 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$sw/ca.crt
EOF
    }
    system("chown -R proxy:proxy $p 2>/dev/null");
    write_file("$p/squid.conf", <<"EOF");
acl SSL_ports port 443
acl Safe_ports port 443
acl CONNECT method CONNECT
acl loopback src 127.0.0.0/8
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow loopback
http_access deny all
$port
$bump
hosts_file $sw/hosts
workers 1
cache deny all
cache_mem 0 MB
access_log stdio:$p/logs/access.log
cache_log $p/logs/cache.log
pid_filename $p/squid.pid
coredump_dir $p/cache
shutdown_lifetime 1 seconds
max_filedescriptors $Nofile
EOF
    my $pid = fork;
    if ($pid == 0) {
        open STDOUT, '>', "$p/logs/stdout.log";
        open STDERR, '>&', \*STDOUT;
        exec 'taskset', '-c', $CoreProxy, $squid, '-N', '-f', "$p/squid.conf";
        exit 127;
    }
    push @Started, [$name, $pid];
    wait_port($Port{$name});
}

sub pids_of {
    my ($entry) = @_;
    my ($name, $pf) = @$entry;
    my $pid;
    if ($pf =~ /^\d+$/) {
        $pid = $pf;
    } else {
        open my $fh, '<', $pf or return ();
        ($pid) = <$fh> =~ /(\d+)/;
    }
    return () unless $pid;
    my @all = ($pid);
    my @queue = ($pid);
    while (my $p = shift @queue) {
        my @kids = split ' ', `pgrep -P $p 2>/dev/null`;
        push @all, @kids;
        push @queue, @kids;
    }
    return @all;
}

sub entry { my ($name) = @_; return (grep { $_->[0] eq $name } @Started)[0]; }

sub cpu_ticks {
    my ($name) = @_;
    my $t = 0;
    for my $pid (pids_of(entry($name))) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        $stat =~ s/^.*\) //;
        my @f = split ' ', $stat;
        $t += $f[11] + $f[12];    # utime, stime (fields 14, 15)
    }
    return $t;
}

sub rss_kb {
    my ($name) = @_;
    my $kb = 0;
    for my $pid (pids_of(entry($name))) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/; }
    }
    return $kb;
}

sub stop_all {
    for my $e (reverse @Started) {
        for my $pid (pids_of($e)) { kill 'TERM', $pid; }
    }
    sleep 0.5;
    for my $e (reverse @Started) {
        for my $pid (pids_of($e)) { kill 'KILL', $pid; }
        waitpid($e->[1], WNOHANG) if $e->[1] =~ /^\d+$/;
    }
    @Started = ();
}

# one load run against a peer; returns the load generator's JSON plus the
# proxy's CPU seconds.  Options: path, concurrency, duration, requests,
# and for the "names" gateway names => PATTERN, names_first, names_count.

my %PeerMode = (direct => 'direct', squid => 'explicit', explicit => 'explicit',
                'explicit-off' => 'explicit',
                bump => 'explicit', splice => 'explicit',
                decrypt => 'explicit', names => 'explicit');
my %PeerCa = (bump => "both.crt", decrypt => "both-gw.crt",
              tdecrypt => "both-gw.crt", names => "both-gw.crt");

sub load {
    my (%o) = @_;
    my $peer = $o{peer};
    my $mode = $PeerMode{$peer} // 'transparent';
    my $connect = $peer eq 'direct' ? "127.0.0.1:$Port{origin}"
                                    : "127.0.0.1:$Port{$peer}";
    my $ca = "$W/" . ($PeerCa{$peer} // 'ca.crt');
    my @names = $o{names}
        ? ('--names', $o{names}, '--names-first', $o{names_first} // 0,
           $o{names_count} ? ('--names-count', $o{names_count}) : ())
        : ();
    my @cmd = ('taskset', '-c', $CoreLoad, $Load, '--json', '--quiet',
               '--mode', $mode, '--connect', $connect,
               '--target', "origin.test:$Port{origin}", @names,
               '--cafile', $ca, '--tls13', '--groups', 'P-256',
               '--path', $o{path}, '--expect-file', "$W/www$o{path}",
               '--concurrency', $o{concurrency},
               '--duration', $o{duration}, '--requests', $o{requests} // 1,
               '--source-addrs', join(',', map { "127.0.0.$_" } 1 .. 8));
    my $before = $peer eq 'direct' ? 0 : cpu_ticks($peer);
    my $out = `@cmd 2>/dev/null`;
    my $after = $peer eq 'direct' ? 0 : cpu_ticks($peer);
    my ($line) = grep { /^\{/ } split /\n/, $out;
    die "no result from the load generator: @cmd\n$out" unless $line;
    my $r = decode_json($line);
    # every connection the generator started, completed or not
    $Sent{$peer} += ($r->{connections} // 0) + ($r->{errors_total} // 0)
                    + ($r->{warmup_errors} // 0);
    $SentBytes{$peer}{up} += $r->{bytes_up} // 0;
    $SentBytes{$peer}{down} += $r->{bytes_down} // 0;
    $r->{cpu_s} = ($after - $before) / $Tick;
    return $r;
}

# GET /metrics from a peer's mcd_status server; returns the text or undef

sub scrape {
    my ($peer) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $MetricsPort{$peer},
                                  Timeout => 5) or return undef;
    print $s "GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n";
    local $/;
    my $resp = <$s>;
    close $s;
    return undef unless defined $resp
                        && $resp =~ m{^HTTP/1\.\d 200 .*?\r\n\r\n(.*)\z}s;
    return $1;
}

# the samples of a Prometheus text exposition: [name, {labels}, value]

sub parse_metrics {
    my ($text) = @_;
    my @s;
    for my $line (split /\n/, $text) {
        next if $line =~ /^#/ || $line !~ /\S/;
        my ($name, $labels, $v) = $line =~ /^(\w+)(?:\{(.*)\})? (\S+)$/
            or next;
        my %l;
        while (($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g) {
            $l{$1} = $2;
        }
        push @s, [$name, \%l, $v];
    }
    return @s;
}

sub sum_of {
    my ($samples, $name, %want) = @_;
    my $t = 0;
    for my $x (@$samples) {
        next unless $x->[0] eq $name;
        next if grep { ($x->[1]{$_} // '') ne $want{$_} } keys %want;
        $t += $x->[2];
    }
    return $t;
}

sub scrape_check {
    my (@list) = @_;
    my %r;
    sleep 0.5;    # the last tunnels close after the client's last byte
    for my $peer (@list) {
        my $mode = $peer =~ /^transparent/ ? 'transparent' : 'explicit';
        my $off = $peer =~ /-off$/;
        my $text = scrape($peer);
        my %x = (sent => $Sent{$peer} // 0, counting => $off ? 0 : 1,
                 client_bytes_up => $SentBytes{$peer}{up} // 0,
                 client_bytes_down => $SentBytes{$peer}{down} // 0);
        if (!defined $text) {
            $x{ok} = 0;
            $x{problem} = 'no answer from /metrics';
        } else {
            my @s = parse_metrics($text);
            $x{decisions} = sum_of(\@s, 'mcd_decisions_total', mode => $mode);
            $x{pass} = sum_of(\@s, 'mcd_decisions_total', mode => $mode,
                              action => 'allow', reason => '');
            for my $d (grep { $_->[0] eq 'mcd_decisions_total' } @s) {
                $x{by}{"$d->[1]{action}/$d->[1]{reason}"} += $d->[2];
            }
            $x{tunnels_active} = sum_of(\@s, 'mcd_tunnels_active',
                                        mode => $mode);
            $x{bytes_up} = sum_of(\@s, 'mcd_bytes_total',
                                  direction => 'client_to_upstream');
            $x{bytes_down} = sum_of(\@s, 'mcd_bytes_total',
                                    direction => 'upstream_to_client');
            my @bad;
            if ($off) {
                push @bad, "counted with mcd_metrics off"
                    if $x{decisions} || $x{bytes_up} || $x{bytes_down};
            } else {
                # wait_port's connection is closed before a request: it
                # counts as a decision, never as "allow"
                push @bad, "allow decisions $x{pass} != connections $x{sent}"
                    if $x{pass} != $x{sent};
                push @bad, "$x{tunnels_active} tunnels still active"
                    if $x{tunnels_active};
                push @bad, 'no bytes counted'
                    unless $x{bytes_up} > 0 && $x{bytes_down} > 0;
                # transparent relays every byte the client's wire carried;
                # explicit all but the CONNECT head and the 200 reply
                if ($mode eq 'transparent') {
                    push @bad, "bytes $x{bytes_up}/$x{bytes_down} != the "
                               . "client's $x{client_bytes_up}/"
                               . "$x{client_bytes_down}"
                        if $x{bytes_up} != $x{client_bytes_up}
                           || $x{bytes_down} != $x{client_bytes_down};
                } elsif ($x{sent}) {
                    $x{head_bytes_per_conn} = sprintf('%.2f/%.2f',
                        ($x{client_bytes_up} - $x{bytes_up}) / $x{sent},
                        ($x{client_bytes_down} - $x{bytes_down}) / $x{sent});
                }
            }
            $x{ok} = @bad ? 0 : 1;
            $x{problem} = join '; ', @bad if @bad;
        }
        $x{by_text} = join(', ', map { "$_ $x{by}{$_}" }
                                 sort keys %{ $x{by} // {} }) || '-';
        say sprintf("metrics %-15s connections %7d, decisions %7s (%s), "
                    . "tunnels active %s, bytes up/down %s/%s%s: %s",
                    $peer, $x{sent}, $x{decisions} // '-', $x{by_text},
                    $x{tunnels_active} // '-', $x{bytes_up} // '-',
                    $x{bytes_down} // '-',
                    $x{head_bytes_per_conn}
                    ? " (the client's wire: $x{head_bytes_per_conn} more "
                      . "a connection)" : '',
                    $x{ok} ? 'ok' : "WRONG: $x{problem}");
        $r{$peer} = \%x;
    }
    return %r;
}

# the first-sight case: every connection of the whole run a name of its
# own (n<i>.example.test, i never reused); the load generator may not wrap
# around the names the hosts file holds (a repeated name would be a cache
# hit): if it did, the run counts an error

sub load_first_sight {
    my (%o) = @_;
    my $left = $NamesMax - $NamesNext;
    my $r = load(%o, peer => 'names', names => 'n{n}.example.test',
                 names_first => $NamesNext, names_count => $left);
    $NamesNext += $r->{names_used} // 0;
    if ($r->{names_wrapped} || $NamesNext > $NamesMax) {
        say "first-sight: the $NamesMax names of the hosts file ran out: "
            . "some were used twice (raise \$NamesMax)";
        $r->{errors_total}++;
        $NamesNext = $NamesMax;
    }
    return $r;
}

# the cached case: c0 .. c99.example.test in turn, all in the cache (the
# first-sight runs push them out of the 1,000-entry LRU: a short unmeasured
# run puts them back first)

sub load_cached {
    my (%o) = @_;
    load(%o, peer => 'names', names => 'c{n}.example.test',
         names_count => $CachedNames, duration => 1);
    return load(%o, peer => 'names', names => 'c{n}.example.test',
                names_count => $CachedNames);
}

# the drip case (issue 7, item 2): a request head sent one byte per TCP
# segment.  A front door that re-reads (MSG_PEEK) and re-parses the whole
# prefix on every read event costs O(S^2) CPU for a head of S bytes, a
# linear one O(S): the figure is the worker's CPU per KB of head at two
# sizes, and the ratio of the larger size's figure to the smaller's
# (about 1 when linear, about 4 for a 4x larger head when quadratic).
#
# bench/loadgen/mcd-drip sends the heads (a CONNECT head with X-Pad
# fields, or a ClientHello with a padding extension, split into records
# of at most 16 KiB) for a name the profile denies, so the gateway answers
# 403 / an access_denied alert and connects nowhere; a wrong answer fails
# the run.  It paces by the worker: the next byte goes out once the
# worker has run and sleeps again.
#
# One byte per segment needs the receiver to ACK every segment at once:
# with delayed ACKs the sender's congestion window (10-20 segments of one
# byte) fills and the kernel coalesces the following bytes into larger
# segments.  So the case runs in a network namespace of its own whose
# loopback routes carry "quickack 1" (root needed); without one it runs
# here and says that its segments are coalesced.

my $DripNs = '';

sub drip_netns {
    return '' if $> != 0 || !-x '/usr/sbin/ip' && !-x '/sbin/ip'
                 && !-x '/bin/ip';
    my $ns = "mcd-bench-drip-$$";
    return '' if system("ip netns add $ns 2>/dev/null") != 0;
    $DripNs = $ns;
    my $ok = system("ip -n $ns link set lo up") == 0;
    for my $dst ('127.0.0.0/8', '127.0.0.1') {
        $ok &&= system("ip -n $ns route replace local $dst dev lo table local "
                       . "proto kernel scope host src 127.0.0.1 quickack 1") == 0;
    }
    unless ($ok) {
        drip_netns_down();
        return '';
    }
    return $ns;
}

sub drip_netns_down {
    system("ip netns del $DripNs 2>/dev/null") if $DripNs;
    $DripNs = '';
}

sub drip_once {
    my (%o) = @_;
    my @cmd = (@{ $o{in} }, 'taskset', '-c', $CoreLoad, $Drip, '--json',
               '--mode', $o{mode},
               '--connect', "127.0.0.1:$Port{\"drip_$o{mode}\"}",
               '--size', $o{size}, '--parallel', $o{parallel},
               '--worker-pid', $o{worker}, '--timeout', 1800,
               $o{burst} ? ('--pace', 'burst') : ());
    my $out = `@cmd 2>&1`;
    my $rc = $? >> 8;
    my ($line) = grep { /^\{/ } split /\n/, $out;
    my $r = $line ? decode_json($line) : undef;
    if ($rc != 0 || !$r || $r->{errors} || $r->{late}) {
        print "drip FAILED: @cmd\n$out";
        return undef;
    }
    return $r;
}

sub drip_bench {
    my $smoke = $opt{smoke};
    my @sizes = split /,/, ($opt{'drip-sizes'}
                            // ($smoke ? '1024,4096' : '8192,32768'));
    my $rounds = $opt{'drip-rounds'} // ($smoke ? 1 : 3);
    # one head at a time: today's quadratic front door is the bottleneck,
    # so parallel heads would not shorten a run, only lengthen each head
    my $par = $opt{'drip-parallel'} // 1;
    my %d = (sizes => \@sizes, rounds => $rounds, parallel => $par,
             errors => 0);

    die "build first: $Drip\n" unless -x $Drip;

    my $ns = drip_netns();
    my @in = $ns ? ('ip', 'netns', 'exec', $ns) : ();
    $d{one_byte_segments} = $ns ? JSON::PP::true : JSON::PP::false;
    say $ns ? "drip: network namespace $ns, loopback routes with quickack"
            : "drip: no network namespace of its own (needs root and "
              . "iproute2): delayed ACKs will coalesce the drip into larger "
              . "segments, the figures are not one byte per segment";

    # preread_timeout: long enough for today's quadratic front door to
    # finish a 32 KiB drip at all (about 4 minutes of CPU); a linear one
    # takes seconds
    my $srv = sub {
        my ($mode) = @_;
        return <<"EOF";
    server {
        listen 127.0.0.1:$Port{"drip_$mode"} backlog=4096;
        mcd_proxy $mode;
        mcd_fqdn_filter drip;
        preread_buffer_size 64k;
        preread_timeout 1800s;
        $Guard
    }
EOF
    };
    my $p = nginx_conf('drip', <<"EOF" . $srv->('explicit') . $srv->('transparent') . "}\n", modules => [$Stream, $Module]);
mcd_fqdn_filter drip {
    default deny;
    allow origin.test;
}
stream {
    log_format m '\$remote_addr \$mcd_fqdn \$mcd_action \$status '
                 '\$bytes_received \$session_time';
    access_log $W/drip/logs/access.log m buffer=64k;
EOF
    run("@in taskset -c $CoreProxy $Nginx -p $p/ -c $p/nginx.conf");
    push @Started, ['drip', "$p/nginx.pid"];

    for my $mode ('explicit', 'transparent') {
        my $port = $Port{"drip_$mode"};
        my $up = 0;
        for (1 .. 100) {
            if (system(@in, 'bash', '-c',
                       "exec 3<>/dev/tcp/127.0.0.1/$port", ) == 0) {
                $up = 1;
                last;
            }
            sleep 0.05;
        }
        die "drip: nothing listens on $port\n" unless $up;
    }

    my ($master, @workers) = pids_of(entry('drip'));
    die "drip: expected one worker, found @workers\n" unless @workers == 1;
    my $worker = $workers[0];
    sleep 0.2;

    # the reference: each head in one send()
    for my $mode ('explicit', 'transparent') {
        for my $size (@sizes) {
            my $r = drip_once(in => \@in, mode => $mode, size => $size,
                              parallel => $par, worker => $worker, burst => 1);
            $d{errors}++ unless $r;
            $d{burst}{$mode}{$size} = $r;
        }
    }

    for my $round (1 .. $rounds) {
        for my $size (@sizes) {
            for my $mode ('explicit', 'transparent') {
                my $r = drip_once(in => \@in, mode => $mode, size => $size,
                                  parallel => $par, worker => $worker);
                unless ($r) {
                    $d{errors}++;
                    next;
                }
                push @{ $d{raw}{$mode}{$size} }, $r;
                say sprintf("drip round %d %-11s %2d x %6d B: %6.2f s, "
                            . "worker CPU %8.1f ms (sched %8.1f), "
                            . "%8.3f ms/KB, %.2f worker runs/byte",
                            $round, $mode, $par, $size, $r->{wall_s},
                            $r->{cpu_ms}, $r->{sched_cpu_ms},
                            $r->{cpu_ms_per_kb},
                            $r->{worker_runs} / ($size * $par));
            }
        }
    }

    stop_all();
    drip_netns_down();

    # medians; the ratio is the median of the per-round ratios of the
    # largest size's CPU per KB to the smallest's
    my ($lo, $hi) = ($sizes[0], $sizes[-1]);
    for my $mode ('explicit', 'transparent') {
        my $raw = $d{raw}{$mode} or next;
        for my $size (@sizes) {
            my @r = @{ $raw->{$size} // [] };
            $d{summary}{$mode}{$size} = {
                cpu_ms_per_kb => median(map { $_->{cpu_ms_per_kb} } @r),
                sched_cpu_ms_per_kb =>
                    median(map { $_->{sched_cpu_ms_per_kb} } @r),
                runs_per_byte =>
                    median(map { $_->{worker_runs} / ($size * $par) } @r),
                wall_s => median(map { $_->{wall_s} } @r),
                burst_sched_cpu_ms_per_kb =>
                    $d{burst}{$mode}{$size}
                    ? $d{burst}{$mode}{$size}{sched_cpu_ms_per_kb} : undef,
            };
        }
        my (@ratio, @sratio);
        for my $i (0 .. $rounds - 1) {
            my ($a, $b) = ($raw->{$lo}[$i], $raw->{$hi}[$i]);
            next unless $a && $b;
            push @ratio, ratio($b->{cpu_ms_per_kb}, $a->{cpu_ms_per_kb});
            push @sratio, ratio($b->{sched_cpu_ms_per_kb},
                                $a->{sched_cpu_ms_per_kb});
        }
        $d{ratio}{$mode} = median(@ratio);
        $d{sched_ratio}{$mode} = median(@sratio);
    }

    my $md = sprintf("Drip: %d head(s) at a time, %s; median of %d "
                     . "round(s).\n\n", $par,
                     $ns ? 'one byte per TCP segment'
                         : 'one byte per send() but COALESCED into larger '
                           . 'segments by delayed ACKs (no network namespace '
                           . 'of its own)',
                     $rounds);
    $md .= "| front door | head bytes | worker CPU ms / KB (utime+stime) "
         . "| same, schedstat | worker runs / byte | wall s "
         . "| sent at once, ms / KB (schedstat) |\n"
         . "|---|---|---|---|---|---|---|\n";
    for my $mode ('explicit', 'transparent') {
        for my $size (@sizes) {
            my $x = $d{summary}{$mode}{$size} or next;
            $md .= sprintf("| %s | %d | %s | %s | %s | %s | %s |\n", $mode,
                           $size, fmt($x->{cpu_ms_per_kb}, '%.3f'),
                           fmt($x->{sched_cpu_ms_per_kb}, '%.3f'),
                           fmt($x->{runs_per_byte}, '%.2f'),
                           fmt($x->{wall_s}, '%.1f'),
                           fmt($x->{burst_sched_cpu_ms_per_kb}, '%.4f'));
        }
    }
    $md .= "\n| front door | CPU per KB at $hi B / at $lo B (utime+stime) "
         . "| same, schedstat | linear | quadratic |\n|---|---|---|---|---|\n";
    for my $mode ('explicit', 'transparent') {
        $md .= sprintf("| %s | %s | %s | ~1 | ~%.0f |\n", $mode,
                       fmt($d{ratio}{$mode}, '%.2f'),
                       fmt($d{sched_ratio}{$mode}, '%.2f'), $hi / $lo);
    }
    $d{md} = $md;

    return \%d;
}

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return $v[$#v / 2] if @v % 2;
    return ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub fmt { my ($v, $f) = @_; return defined $v ? sprintf($f // '%.3f', $v) : 'n/a'; }

# --- main ---

die "build first: $Load\n" unless -x $Load;
die "build first: $Module\n" unless -f $Module;

make_path($Out);

if ($opt{drip}) {
    make_path($W);
    my $d = drip_bench();
    print "\n$d->{md}\n";
    delete $d->{md};
    write_file("$Out/drip.json", JSON::PP->new->pretty->canonical->encode($d));
    say "results: $Out/drip.json";
    exit($d->{errors} ? 1 : 0);
}

my %res = (date => strftime('%Y-%m-%d %H:%M:%S %Z', localtime),
           machine => {
               cpus => $Ncpu,
               model => (`grep -m1 'model name' /proc/cpuinfo` =~ /:\s*(.*)/)[0],
               kernel => `uname -r` =~ s/\s+$//r,
               nginx => `$Nginx -v 2>&1` =~ s/\s+$//r,
               squid => (-x '/usr/sbin/squid'
                         ? (`/usr/sbin/squid -v` =~ /Version (\S+)/)[0] : 'n/a'),
           },
           options => \%opt);

make_world();
start_origin();

# the peers of the "conn" and "10 MiB" runs; the decryption cases of
# their own: keep-alive (terminate and decrypt, R requests a connection)
# and first-sight names (the "names" gateway, first-sight and cached).
# The "-off" peers ("mcd_metrics off;") run in the "conn" runs only, each
# next to its peer with the counters on.

my (@peers, @conn_peers, @bulk_peers, @ka_peers, $with_names);
if ($opt{metrics}) {
    @peers = ('preread', 'transparent', 'transparent-off', 'explicit',
              'explicit-off');
    @conn_peers = @peers;
} elsif ($opt{decrypt}) {
    @peers = ('terminate', 'decrypt', 'tdecrypt');
    push @peers, 'bump' unless $skip{squid};
    @conn_peers = @bulk_peers = @peers;
    @ka_peers = ('terminate', 'decrypt');
    $with_names = 1;
} else {
    @peers = ('preread', 'transparent', 'transparent-off', 'explicit',
              'explicit-off', 'splice', 'terminate', 'decrypt', 'tdecrypt');
    push @peers, 'squid', 'bump' unless $skip{squid};
    @conn_peers = ('direct', @peers);
    @bulk_peers = grep { !/-off$/ } @conn_peers;
    @ka_peers = ('terminate', 'decrypt');
    $with_names = 1;
}

# every other round, each peer and its "-off" twin run in the other order,
# so that a drift of the machine's load within a round cancels out
sub round_order {
    my ($round, @list) = @_;
    return @list if $round % 2;
    my @o;
    while (@list) {
        my $p = shift @list;
        if (@list && $list[0] eq "$p-off") {
            push @o, shift(@list), $p;
        } else {
            push @o, $p;
        }
    }
    return @o;
}

%Want = map { $_ => 1 } @peers, @ka_peers, $with_names ? 'names' : ();
start_proxies();

my (%conn, %bulk, %ka, %names);

# warm up every peer (TLS session state, page cache, first allocations;
# the cached names into the cache)

for my $p (@peers) {
    load(peer => $p, path => '/small.txt', concurrency => 16, duration => 1);
}
if ($with_names) {
    load_cached(path => '/small.txt', concurrency => 16, duration => 1);
    load_first_sight(path => '/small.txt', concurrency => 16, duration => 1);
}

# two runs of the same case as one: counts and CPU summed, rates over the
# summed time, latencies of the first
sub merge_runs {
    my ($a, @more) = @_;
    my %m = %$a;
    for my $b (@more) {
        $m{$_} += $b->{$_} // 0
            for qw(connections requests cpu_s elapsed_s errors_total
                   body_bytes names_used);
        $m{names_wrapped} ||= $b->{names_wrapped};
    }
    if ($m{elapsed_s}) {
        $m{connections_per_s} = $m{connections} / $m{elapsed_s};
        $m{requests_per_s} = $m{requests} / $m{elapsed_s};
    }
    $m{parts} = [ $a, @more ];
    return \%m;
}

sub conn_line {
    my ($round, $p, $r) = @_;
    say sprintf("round %d %-15s conn:  %8.1f conn/s  cpu %.2fs  "
                . "%.3f cpu-s/1000 conn  %.3f cpu-ms/req  errors %d",
                $round, $p, $r->{connections_per_s}, $r->{cpu_s},
                $r->{connections} ? 1000 * $r->{cpu_s} / $r->{connections} : 0,
                $r->{requests} ? 1000 * $r->{cpu_s} / $r->{requests} : 0,
                $r->{errors_total});
}

for my $round (1 .. $opt{rounds}) {
    for my $p (round_order($round, @conn_peers)) {
        my $r = load(peer => $p, path => '/small.txt', concurrency => 32,
                     duration => $opt{duration});
        push @{ $conn{$p} }, $r;
        conn_line($round, $p, $r);
    }
    for my $p (@ka_peers) {
        my $r = load(peer => $p, path => '/small.txt', concurrency => 32,
                     duration => $opt{duration}, requests => $KaRequests);
        push @{ $ka{$p} }, $r;
        conn_line($round, "$p-ka", $r);
    }
    # the two name cases in A-B-B-A order, half the duration each (a
    # drift of the machine's load during the round cancels out), the order
    # swapped from round to round; a round's figure is the two halves'
    # sum
    my %part;
    my @order = $round % 2 ? ('cached', 'first') : ('first', 'cached');
    @order = () unless $with_names;
    for my $case (@order, reverse @order) {
        my %o = (path => '/small.txt', concurrency => 32,
                 duration => $opt{duration} / 2);
        my $r = $case eq 'first' ? load_first_sight(%o) : load_cached(%o);
        push @{ $part{$case} }, $r;
    }
    for my $case (grep { $part{$_} } 'cached', 'first') {
        my $r = merge_runs(@{ $part{$case} });
        push @{ $names{$case} }, $r;
        conn_line($round, "names-$case", $r);
    }
    for my $p (@bulk_peers) {
        my $r = load(peer => $p, path => '/big.bin', concurrency => 4,
                     duration => $opt{bulk_duration});
        push @{ $bulk{$p} }, $r;
        say sprintf("round %d %-15s 10MiB: %8.1f MB/s  cpu %.2fs  "
                    . "%.3f cpu-s/GB  errors %d",
                    $round, $p, $r->{body_mb_per_s}, $r->{cpu_s},
                    $r->{body_bytes} ? 1e9 * $r->{cpu_s} / $r->{body_bytes} : 0,
                    $r->{errors_total});
    }
}

# the counters, scraped once the load runs are over (before the memory
# runs): a peer with the counters on must have decided "allow" once per
# connection the load generator made and have no tunnel open; one with
# "mcd_metrics off;" must show no decision at all

my %scrape = scrape_check(grep { $Want{$_} } @McdPeers);

my %sum;
for my $p (@conn_peers) {
    my @c = @{ $conn{$p} };
    my @b = @{ $bulk{$p} // [] };
    $sum{$p} = {
        conn_per_s => median(map { $_->{connections_per_s} } @c),
        cpu_per_1000 => median(map { $_->{connections}
                                     ? 1000 * $_->{cpu_s} / $_->{connections}
                                     : undef } @c),
        p50_ms => median(map { $_->{latency_ms}{connection}{p50} } @c),
        p99_ms => median(map { $_->{latency_ms}{connection}{p99} } @c),
        mb_per_s => median(map { $_->{body_mb_per_s} } @b),
        cpu_per_gb => median(map { $_->{body_bytes}
                                   ? 1e9 * $_->{cpu_s} / $_->{body_bytes}
                                   : undef } @b),
        errors => (eval { my $e = 0; $e += $_->{errors_total} for @c, @b; $e }),
    };
}

# the keep-alive and name cases: CPU per request and per connection

my %sum2;
for my $k ((map { ["$_-ka", $ka{$_}] } @ka_peers),
           (map { ["names-$_", $names{$_}] }
                $with_names ? ('first', 'cached') : ()))
{
    my ($name, $runs) = @$k;
    my @c = @{ $runs // [] };
    $sum2{$name} = {
        req_per_s => median(map { $_->{requests_per_s} } @c),
        conn_per_s => median(map { $_->{connections_per_s} } @c),
        cpu_ms_per_req => median(map { $_->{requests}
                                       ? 1000 * $_->{cpu_s} / $_->{requests}
                                       : undef } @c),
        cpu_per_1000 => median(map { $_->{connections}
                                     ? 1000 * $_->{cpu_s} / $_->{connections}
                                     : undef } @c),
        p50_ms => median(map { $_->{latency_ms}{request}{p50} } @c),
        errors => (eval { my $e = 0; $e += $_->{errors_total} for @c; $e }),
    };
}

# memory per idle tunnel

my %mem;
unless ($skip{memory}) {
    for my $want ($opt{smoke} ? (200) : (1000, 10000)) {
        # two descriptors a tunnel in the proxy, a margin for the rest
        my $n = $want;
        my $cap = int(($Nofile - 500) / 2);
        if ($n > $cap) {
            say "memory: $want tunnels need more descriptors than this "
                . "machine's hard limit ($Nofile): measuring $cap";
            $n = $cap;
        }
        for my $p (grep { !/^(terminate|bump|splice|t?decrypt)$|-off$/ }
                   @peers)
        {
            my $idle = rss_kb($p);
            my ($mode) = $p eq 'explicit' || $p eq 'squid' ? 'explicit' : 'transparent';
            my @cmd = ('taskset', '-c', $CoreLoad, $Load, '--hold', '--json',
                       '--quiet', '--mode', $mode,
                       '--connect', "127.0.0.1:$Port{$p}",
                       '--target', "origin.test:$Port{origin}",
                       '--cafile', "$W/ca.crt", '--tls13',
                       '--path', '/small.txt', '--connections', $n,
                       '--concurrency', 200, '--duration', 120,
                       '--source-addrs', join(',', map { "127.0.0.$_" } 1 .. 8));
            my $pid = open(my $fh, '-|', @cmd) or die "load: $!";
            my $held = 0;
            while (my $l = <$fh>) {
                if ($l =~ /^HOLDING (\d+)/) { $held = $1; last; }
            }
            sleep 1;
            my $busy = rss_kb($p);
            kill 'TERM', $pid;
            close $fh;
            $mem{$n}{$p} = { held => $held, idle_kb => $idle, busy_kb => $busy,
                             per_tunnel_kb => $held ? ($busy - $idle) / $held : undef };
            say sprintf("memory %-12s %6d tunnels: %8d KiB -> %8d KiB, %.2f KiB/tunnel",
                        $p, $held, $idle, $busy, $mem{$n}{$p}{per_tunnel_kb} // 0);
            sleep 2;
        }
    }
}

stop_all() unless $opt{keep};

# what a first-sight name costs, without the network: mint-bench (see
# bench/mint-bench.c) with the gateway CA of the run

my $mint;
unless ($skip{mint}) {
    my $bin = "$Out/mint-bench";
    run("cc -std=c99 -D_GNU_SOURCE -O2 -I$Root/src $Root/src/mcd_cert.c "
        . "$Root/bench/mint-bench.c -lssl -lcrypto -o $bin");
    my $out = run("taskset -c $CoreProxy $bin --ca $W/gwca.crt "
                  . "--key $W/gwca.key "
                  . ($opt{smoke} ? '--n 200 --rounds 1' : '--n 2000 --rounds 5'));
    print $out;
    my ($line) = grep { /^\{/ } split /\n/, $out;
    $mint = decode_json($line);
    $mint->{text} = join "\n", grep { !/^\{/ } split /\n/, $out;
}

# the filter: lookup cost, and a 1,000,000-line list at nginx -t

my %filter;
unless ($skip{filter}) {
    my $bin = "$Out/bench_fqdn";
    run("cc -std=c99 -D_GNU_SOURCE -O2 -I$Root/src $Root/src/mcd_fqdn.c "
        . "$Root/t/unit/bench_fqdn.c -lpcre2-8 -o $bin");
    $filter{lookup} = `$bin 2>&1`;
    print $filter{lookup};

    my $n = $opt{smoke} ? 10000 : 1000000;
    my $list = "$W/list.txt";
    open my $fh, '>', $list or die;
    for my $i (1 .. $n) {
        print $fh $i % 2 ? "host$i.example$i.com\n" : "*.zone$i.example.net\n";
    }
    close $fh;
    for my $case ('empty', 'list') {
        my $p = nginx_conf("filter-$case",
            "mcd_fqdn_filter f {\n    default deny;\n"
            . ($case eq 'list' ? "    allow_list $list;\n" : '')
            . "}\n", modules => [$Stream, $Module]);
        my $t = `/usr/bin/time -f '%e %M' $Nginx -t -q -p $p/ -c $p/nginx.conf 2>&1`;
        my ($sec, $kb) = $t =~ /([\d.]+) (\d+)\s*$/;
        $filter{"nginx_t_$case"} = { seconds => $sec, max_rss_kb => $kb };
        say "nginx -t, $case profile: ${sec}s, max RSS ${kb} KiB";
    }
    $filter{list_lines} = $n;
}

# the drip case

my $drip;
unless ($skip{drip}) {
    $drip = drip_bench();
}

# the table

my $base = $sum{preread};
my @rows;

sub ratio { my ($a, $b) = @_; return defined $a && defined $b && $b ? $a / $b : undef; }

# peers run interleaved, so each round pairs a peer with its baseline under
# the same conditions: the figure is the median of the per-round ratios

sub cpu_conn { my ($r) = @_; return $r->{connections} ? 1000 * $r->{cpu_s} / $r->{connections} : undef; }
sub cpu_gb { my ($r) = @_; return $r->{body_bytes} ? 1e9 * $r->{cpu_s} / $r->{body_bytes} : undef; }
sub mbps { return $_[0]->{body_mb_per_s}; }

sub cpu_req { my ($r) = @_; return $r->{requests} ? 1000 * $r->{cpu_s} / $r->{requests} : undef; }

# the per-round ratios of $peer in $set to $basepeer in $baseset
sub per_round {
    my ($set, $peer, $baseset, $basepeer, $f) = @_;
    return () unless $set->{$peer} && $baseset->{$basepeer};
    my @r;
    for my $i (0 .. $#{ $set->{$peer} }) {
        next unless $baseset->{$basepeer}[$i];
        push @r, ratio($f->($set->{$peer}[$i]),
                       $f->($baseset->{$basepeer}[$i]));
    }
    return @r;
}

sub paired {
    my ($set, $peer, $basepeer, $f) = @_;
    return median(per_round($set, $peer, $set, $basepeer, $f));
}

# a row of the table, if both sides ran: [path, measure, median, target,
# per-round ratios]
sub row {
    my ($path, $measure, $set, $peer, $baseset, $basepeer, $f, $target) = @_;
    my @r = per_round($set, $peer, $baseset, $basepeer, $f);
    return unless @r;
    push @rows, [$path, $measure, median(@r), $target,
                 join(', ', map { fmt($_, '%.2f') } @r), spread(@r)];
}

# a quantile of sorted values, linear between the two nearest
sub quantile {
    my ($q, @v) = @_;
    return undef unless @v;
    my $i = $q * $#v;
    my $lo = int($i);
    return $v[$lo] if $lo == $#v;
    return $v[$lo] + ($i - $lo) * ($v[$lo + 1] - $v[$lo]);
}

# "IQR; range" of per-round ratios: "q1-q3; min-max"
sub spread {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return '' if @v < 2;
    return sprintf('%.2f-%.2f; %.2f-%.2f', quantile(0.25, @v),
                   quantile(0.75, @v), $v[0], $v[-1]);
}

row('transparent pass-through', 'CPU per 1,000 connections',
    \%conn, 'transparent', \%conn, 'preread', \&cpu_conn, '<= 1.05');
row('transparent pass-through', '10 MiB throughput',
    \%bulk, 'transparent', \%bulk, 'preread', \&mbps, '>= 0.95');
row('explicit pass-through', 'CPU per 1,000 connections',
    \%conn, 'explicit', \%conn, 'preread', \&cpu_conn, '<= 1.15');
row('transparent pass-through, mcd_metrics off', 'CPU per 1,000 connections',
    \%conn, 'transparent-off', \%conn, 'preread', \&cpu_conn, '');
row('explicit pass-through, mcd_metrics off', 'CPU per 1,000 connections',
    \%conn, 'explicit-off', \%conn, 'preread', \&cpu_conn, '');
row('transparent pass-through, counters on vs off',
    'CPU per 1,000 connections, vs "transparent-off"',
    \%conn, 'transparent', \%conn, 'transparent-off', \&cpu_conn,
    '(the cost of counting)');
row('explicit pass-through, counters on vs off',
    'CPU per 1,000 connections, vs "explicit-off"',
    \%conn, 'explicit', \%conn, 'explicit-off', \&cpu_conn,
    '(the cost of counting)');
row('explicit pass-through', 'CPU per GB relayed',
    \%bulk, 'explicit', \%bulk, 'preread', \&cpu_gb, '<= 1.0');
row('transparent pass-through', 'CPU per GB relayed',
    \%bulk, 'transparent', \%bulk, 'preread', \&cpu_gb, '(<= 1.0)');
row('explicit, mcd_splice on', 'CPU per GB relayed',
    \%bulk, 'splice', \%bulk, 'preread', \&cpu_gb, '(below 1.0 if it pays)');
row('explicit, mcd_splice on', '10 MiB throughput',
    \%bulk, 'splice', \%bulk, 'preread', \&mbps, '');
row('Squid CONNECT (reference)', 'CPU per 1,000 connections',
    \%conn, 'squid', \%conn, 'preread', \&cpu_conn, '(1.45 in SPEC)');
row('Squid CONNECT (reference)', 'CPU per GB relayed',
    \%bulk, 'squid', \%bulk, 'preread', \&cpu_gb, '');
row('explicit decryption', 'CPU per 1,000 new sessions, vs "terminate"',
    \%conn, 'decrypt', \%conn, 'terminate', \&cpu_conn, '<= 1.10');
row('transparent decryption', 'CPU per 1,000 new sessions, vs "terminate"',
    \%conn, 'tdecrypt', \%conn, 'terminate', \&cpu_conn, '<= 1.10');
row("explicit decryption, keep-alive ($KaRequests requests a connection)",
    'CPU per request, vs "terminate"',
    \%ka, 'decrypt', \%ka, 'terminate', \&cpu_req, '<= 1.10');
row('first-sight names (a certificate minted per connection)',
    'CPU per new session, vs the cached case',
    \%names, 'first', \%names, 'cached', \&cpu_conn, '<= 1.3');
row("cached case ($CachedNames names, \"names\" gateway)",
    'CPU per 1,000 new sessions, vs "terminate"',
    \%names, 'cached', \%conn, 'terminate', \&cpu_conn, '(reference)');
row('explicit decryption', '10 MiB throughput, vs "terminate"',
    \%bulk, 'decrypt', \%bulk, 'terminate', \&mbps, '>= 0.9');
row('transparent decryption', '10 MiB throughput, vs "terminate"',
    \%bulk, 'tdecrypt', \%bulk, 'terminate', \&mbps, '>= 0.9');
row('explicit decryption', 'CPU per GB, vs "terminate"',
    \%bulk, 'decrypt', \%bulk, 'terminate', \&cpu_gb, '');
row('Squid SslBump (reference)', 'CPU per 1,000 new sessions, vs "terminate"',
    \%conn, 'bump', \%conn, 'terminate', \&cpu_conn, '(3.1 in SPEC)');
for my $n (sort { $a <=> $b } keys %mem) {
    push @rows, ["transparent, $n idle tunnels", 'memory per tunnel',
                 ratio($mem{$n}{transparent}{per_tunnel_kb}, $mem{$n}{preread}{per_tunnel_kb}),
                 '<= 1.2', '', ''];
    push @rows, ["explicit, $n idle tunnels", 'memory per tunnel',
                 ratio($mem{$n}{explicit}{per_tunnel_kb}, $mem{$n}{preread}{per_tunnel_kb}),
                 '', '', ''];
}

my $md = "| path | measure | ratio (median of per-round ratios) | IQR; range | target | per round |\n|---|---|---|---|---|---|\n";
$md .= join '', map { sprintf "| %s | %s | %s | %s | %s | %s |\n", $_->[0], $_->[1], fmt($_->[2], '%.2f'), $_->[5], $_->[3], $_->[4] } @rows;
$md .= "\n| peer | conn/s | CPU s / 1,000 conn | conn p50 ms | conn p99 ms | 10 MiB MB/s | CPU s / GB | errors |\n|---|---|---|---|---|---|---|---|\n";
for my $p (@conn_peers) {
    my $s = $sum{$p};
    $md .= sprintf "| %s | %s | %s | %s | %s | %s | %s | %d |\n", $p,
        fmt($s->{conn_per_s}, '%.0f'), fmt($s->{cpu_per_1000}), fmt($s->{p50_ms}, '%.2f'),
        fmt($s->{p99_ms}, '%.2f'), fmt($s->{mb_per_s}, '%.0f'), fmt($s->{cpu_per_gb}), $s->{errors};
}
$md .= "\n| case | requests/s | conn/s | CPU ms / request | CPU s / 1,000 conn | request p50 ms | errors |\n|---|---|---|---|---|---|---|\n"
    if %sum2;
for my $k (sort keys %sum2) {
    my $s = $sum2{$k};
    $md .= sprintf "| %s | %s | %s | %s | %s | %s | %d |\n", $k,
        fmt($s->{req_per_s}, '%.0f'), fmt($s->{conn_per_s}, '%.0f'),
        fmt($s->{cpu_ms_per_req}, '%.3f'), fmt($s->{cpu_per_1000}),
        fmt($s->{p50_ms}, '%.2f'), $s->{errors};
}
if (%mem) {
    $md .= "\n| idle tunnels | peer | proxy RSS idle KiB | with tunnels KiB | KiB per tunnel |\n|---|---|---|---|---|\n";
    for my $n (sort { $a <=> $b } keys %mem) {
        for my $p (sort keys %{ $mem{$n} }) {
            my $m = $mem{$n}{$p};
            $md .= sprintf "| %d | %s | %d | %d | %s |\n", $m->{held}, $p, $m->{idle_kb},
                $m->{busy_kb}, fmt($m->{per_tunnel_kb}, '%.2f');
        }
    }
}

if (%scrape) {
    $md .= "\n| peer (mcd_status at the end) | connections made | decisions "
         . "| by action/reason | tunnels active | bytes up / down | check |\n"
         . "|---|---|---|---|---|---|---|\n";
    for my $p (grep { $scrape{$_} } @McdPeers) {
        my $x = $scrape{$p};
        $md .= sprintf "| %s | %d | %s | %s | %s | %s / %s | %s |\n", $p,
            $x->{sent}, $x->{decisions} // '-', $x->{by_text},
            $x->{tunnels_active} // '-', $x->{bytes_up} // '-',
            $x->{bytes_down} // '-', $x->{ok} ? 'ok' : "WRONG: $x->{problem}";
    }
}

if ($mint) {
    my $per = $sum2{'names-cached'} && $sum2{'names-cached'}{cpu_per_1000};
    $md .= "\n```\n$mint->{text}\n```\n";
    $md .= sprintf("\nA first-sight name adds %.0f us to the server side of "
                   . "a handshake (mint %.0f us); the cached case costs the "
                   . "gateway %.0f us per session in this run: %.2fx "
                   . "expected. The certificate callback itself (cached) "
                   . "costs %.0f us a handshake against a static "
                   . "certificate.\n", $mint->{hs_extra_us},
                   $mint->{mint_us}, 1000 * $per,
                   1 + $mint->{hs_extra_us} / (1000 * $per),
                   $mint->{cb_cost_us})
        if $per;
    $res{mint} = $mint;
}

if ($drip) {
    $md .= "\n" . delete($drip->{md});
    $res{drip} = $drip;
}

$res{summary} = \%sum;
$res{summary_cases} = \%sum2;
$res{names} = { hosts_file_names => $NamesMax, first_sight_used => $NamesNext,
                cached_names => $CachedNames,
                certificate_cache => 'max=1000 valid=1d' };
$res{memory} = \%mem;
$res{filter} = \%filter;
$res{rows} = [ map { { path => $_->[0], measure => $_->[1], ratio => $_->[2], target => $_->[3], per_round => $_->[4], spread => $_->[5] } } @rows ];
$res{metrics_scrape} = \%scrape;
$res{raw} = { conn => \%conn, bulk => \%bulk, keepalive => \%ka,
              names => \%names };

write_file("$Out/results.json", JSON::PP->new->pretty->canonical->encode(\%res));
write_file("$Out/results.md", $md);

print "\n$md\n";
say "results: $Out/results.json, $Out/results.md";

my $errors = 0;
$errors += $sum{$_}{errors} for keys %sum;
$errors += $sum2{$_}{errors} for keys %sum2;
$errors += $drip->{errors} if $drip;
$errors += grep { !$_->{ok} } values %scrape;
exit($errors ? 1 : 0);
