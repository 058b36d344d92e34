#!/usr/bin/perl
# ngx_mcd benchmark: every mode that exists, side by side with plain nginx
# and Squid, on loopback, one worker process each, as ratios against a
# baseline measured in the same run.
#
#   bench/bench.pl [--smoke] [--rounds N] [--duration S] [--out DIR]
#                  [--skip memory,filter,squid] [--mcd 'directives;']
#
# --mcd adds directives to the ngx_mcd servers (e.g. 'mcd_splice off;').
#
# Run by "make bench" (bench/run.sh) after the build. Prints a table and
# writes DIR/results.json and DIR/results.md.
#
# What is measured (SPEC 5):
#   - CPU seconds of the proxy (utime+stime of all its processes, from
#     /proc) per 1,000 connections, each a full TLS 1.3 handshake (ECDSA
#     P-256) and one small GET, next to connections/s;
#   - 10 MiB bodies: MB/s and proxy CPU seconds per GB;
#   - proxy memory (RSS) per idle tunnel with 1,000 and 10,000 open;
#   - the FQDN filter: lookup cost at 10 / 10,000 / 1,000,000 patterns, and
#     load time and memory of a 1,000,000-line list at "nginx -t".
# The load generator and the origin run on core 0, the proxy under test on
# core 1; peers are interleaved in every round (five by default); a ratio
# is the median of the per-round ratios of a peer to the baseline it ran
# next to.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime WNOHANG);
use Time::HiRes qw(sleep time);

my $Root = abs_path(dirname(__FILE__) . '/..');
my %opt = (rounds => 5, duration => 10, bulk_duration => 10,
           out => "$Root/bench/out", skip => '');
GetOptions(\%opt, 'smoke', 'rounds=i', 'duration=i', 'bulk_duration=i',
           'out=s', 'skip=s', 'keep', 'mcd=s') or die "bad options\n";

if ($opt{smoke}) {
    $opt{rounds} = 1;
    $opt{duration} = 2;
    $opt{bulk_duration} = 2;
}

my %skip = map { $_ => 1 } split /,/, $opt{skip};

my $Nginx = '/usr/sbin/nginx';
my $Load = "$Root/bench/loadgen/mcd-load";
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
            bump => 9106, splice => 9107);

my @Started;    # [ name, pidfile or pid ]

$SIG{INT} = $SIG{TERM} = sub { stop_all(); exit 1; };

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
    write_file("$W/ext", "subjectAltName=DNS:origin.test\n");
    run("openssl x509 -req -in $W/origin.csr -CA $W/ca.crt -CAkey $W/ca.key "
        . "-CAcreateserial -out $W/origin.crt -days 30 -extfile $W/ext");

    write_file("$W/www/small.txt", "x" x 1024);
    open my $fh, '>', "$W/www/big.bin" or die;
    my $chunk = join '', map { chr(($_ * 7 + 3) % 251) } 0 .. 65535;
    print $fh $chunk for 1 .. 160;    # 10 MiB
    close $fh;

    write_file("$W/hosts", "127.0.0.1 origin.test\n");

    # Squid's SslBump CA; clients of the bumping peer trust both CAs
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        . "-keyout $W/bump.key -out $W/bump.crt -days 30 -subj '/CN=bump CA' "
        . "-addext 'basicConstraints=critical,CA:TRUE' "
        . "-addext 'keyUsage=critical,keyCertSign'");
    run("cat $W/bump.crt $W/bump.key > $W/bump.pem");
    run("cat $W/ca.crt $W/bump.crt > $W/both.crt");
}

sub nginx_conf {
    my ($name, $body, %o) = @_;
    my $p = "$W/$name";
    make_path("$p/logs");
    my $load = $o{modules} ? join('', map { "load_module $_;\n" }
                                       @{ $o{modules} }) : '';
    write_file("$p/nginx.conf", <<"EOF");
$load
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

    nginx_conf('preread', <<"EOF", modules => [$Stream]);
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
    start_nginx('preread', $CoreProxy);

    # the decryption baseline: nginx terminating TLS with a static
    # certificate, proxy_pass https to the origin (verified, SNI), a new
    # upstream TLS session per connection like a variable proxy_pass

    nginx_conf('terminate', <<"EOF");
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
    start_nginx('terminate', $CoreProxy);

    my $mcd = <<"EOF";
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
EOF

    # "splice": explicit mode with the zero-copy relay (mcd_splice on)

    for my $name ('transparent', 'explicit', 'splice') {
        my $mode = $name eq 'splice' ? 'explicit' : $name;
        (my $c = $mcd) =~ s/MODE/$mode/;
        $c =~ s/PORT/$Port{$name}/;
        $c =~ s{LOG}{$W/$name/logs/access.log};
        $c =~ s{EXTRA}{($name eq 'splice' ? 'mcd_splice on; ' : '')
                       . ($opt{mcd} // '')}e;
        nginx_conf($name, $c, modules => [$Stream, $Module]);
        start_nginx($name, $CoreProxy);
    }

    wait_port($Port{$_}) for qw(preread transparent explicit splice terminate);

    unless ($skip{squid}) {
        start_squid('squid');
        start_squid('bump');
    }
}

sub start_squid {
    my ($name) = @_;
    my $squid = '/usr/sbin/squid';
    if (!-x $squid) {
        say "squid not installed: skipped";
        $skip{squid} = 1;
        return;
    }
    my $p = "$W/$name";
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
               . " dynamic_cert_mem_cache_size=16MB tls-cert=$W/bump.pem";
        $bump = <<"EOF";
sslcrtd_program $certgen -s $p/ssl_db -M 16MB
sslcrtd_children 4 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$W/ca.crt
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
hosts_file $W/hosts
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
# proxy's CPU seconds

sub load {
    my (%o) = @_;
    my $peer = $o{peer};
    my ($mode, $connect) = $peer eq 'direct'
        ? ('direct', "127.0.0.1:$Port{origin}")
        : $peer =~ /^(squid|explicit|bump|splice)$/
        ? ('explicit', "127.0.0.1:$Port{$peer}")
        : ('transparent', "127.0.0.1:$Port{$peer}");
    my $ca = $peer eq 'bump' ? "$W/both.crt" : "$W/ca.crt";
    my @cmd = ('taskset', '-c', $CoreLoad, $Load, '--json', '--quiet',
               '--mode', $mode, '--connect', $connect,
               '--target', "origin.test:$Port{origin}",
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
    $r->{cpu_s} = ($after - $before) / $Tick;
    return $r;
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
start_proxies();

my @peers = ('preread', 'transparent', 'explicit', 'splice', 'terminate');
push @peers, 'squid', 'bump' unless $skip{squid};

my (%conn, %bulk);

# warm up every peer (TLS session state, page cache, first allocations)

for my $p (@peers) {
    load(peer => $p, path => '/small.txt', concurrency => 16, duration => 1);
}

for my $round (1 .. $opt{rounds}) {
    for my $p ('direct', @peers) {
        my $r = load(peer => $p, path => '/small.txt', concurrency => 32,
                     duration => $opt{duration});
        push @{ $conn{$p} }, $r;
        say sprintf("round %d %-12s conn:  %8.1f conn/s  cpu %.2fs  "
                    . "%.3f cpu-s/1000 conn  errors %d",
                    $round, $p, $r->{connections_per_s}, $r->{cpu_s},
                    $r->{connections} ? 1000 * $r->{cpu_s} / $r->{connections} : 0,
                    $r->{errors_total});
    }
    for my $p ('direct', @peers) {
        my $r = load(peer => $p, path => '/big.bin', concurrency => 4,
                     duration => $opt{bulk_duration});
        push @{ $bulk{$p} }, $r;
        say sprintf("round %d %-12s 10MiB: %8.1f MB/s  cpu %.2fs  "
                    . "%.3f cpu-s/GB  errors %d",
                    $round, $p, $r->{body_mb_per_s}, $r->{cpu_s},
                    $r->{body_bytes} ? 1e9 * $r->{cpu_s} / $r->{body_bytes} : 0,
                    $r->{errors_total});
    }
}

my %sum;
for my $p ('direct', @peers) {
    my @c = @{ $conn{$p} };
    my @b = @{ $bulk{$p} };
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
        for my $p (grep { !/^(terminate|bump|splice)$/ } @peers) {
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

# the table

my $base = $sum{preread};
my @rows;

sub ratio { my ($a, $b) = @_; return defined $a && defined $b && $b ? $a / $b : undef; }

# peers run interleaved, so each round pairs a peer with its baseline under
# the same conditions: the figure is the median of the per-round ratios

sub cpu_conn { my ($r) = @_; return $r->{connections} ? 1000 * $r->{cpu_s} / $r->{connections} : undef; }
sub cpu_gb { my ($r) = @_; return $r->{body_bytes} ? 1e9 * $r->{cpu_s} / $r->{body_bytes} : undef; }
sub mbps { return $_[0]->{body_mb_per_s}; }

sub paired {
    my ($set, $peer, $basepeer, $f) = @_;
    return undef unless $set->{$peer} && $set->{$basepeer};
    my @r;
    for my $i (0 .. $#{ $set->{$peer} }) {
        push @r, ratio($f->($set->{$peer}[$i]), $f->($set->{$basepeer}[$i]));
    }
    return median(@r);
}

push @rows, ['transparent pass-through', 'CPU per 1,000 connections',
             paired(\%conn, 'transparent', 'preread', \&cpu_conn), '<= 1.05'];
push @rows, ['transparent pass-through', '10 MiB throughput',
             paired(\%bulk, 'transparent', 'preread', \&mbps), '>= 0.95'];
push @rows, ['explicit pass-through', 'CPU per 1,000 connections',
             paired(\%conn, 'explicit', 'preread', \&cpu_conn), '<= 1.15'];
push @rows, ['explicit pass-through', 'CPU per GB relayed',
             paired(\%bulk, 'explicit', 'preread', \&cpu_gb), '<= 1.0'];
push @rows, ['transparent pass-through', 'CPU per GB relayed',
             paired(\%bulk, 'transparent', 'preread', \&cpu_gb), '(<= 1.0)'];
push @rows, ['explicit, mcd_splice on', 'CPU per GB relayed',
             paired(\%bulk, 'splice', 'preread', \&cpu_gb), '(below 1.0 if it pays)'];
push @rows, ['explicit, mcd_splice on', '10 MiB throughput',
             paired(\%bulk, 'splice', 'preread', \&mbps), ''];
unless ($skip{squid}) {
    push @rows, ['Squid CONNECT (reference)', 'CPU per 1,000 connections',
                 paired(\%conn, 'squid', 'preread', \&cpu_conn), '(1.45 in SPEC)'];
    push @rows, ['Squid CONNECT (reference)', 'CPU per GB relayed',
                 paired(\%bulk, 'squid', 'preread', \&cpu_gb), ''];
}
push @rows, ['decryption (not built yet)', 'CPU per 1,000 new sessions',
             undef, '<= 1.10 of "terminate"'];
unless ($skip{squid}) {
    push @rows, ['Squid SslBump (reference)', 'CPU per 1,000 new sessions, vs "terminate"',
                 paired(\%conn, 'bump', 'terminate', \&cpu_conn), '(3.1 in SPEC)'];
}
for my $n (sort { $a <=> $b } keys %mem) {
    push @rows, ["transparent, $n idle tunnels", 'memory per tunnel',
                 ratio($mem{$n}{transparent}{per_tunnel_kb}, $mem{$n}{preread}{per_tunnel_kb}),
                 '<= 1.2'];
    push @rows, ["explicit, $n idle tunnels", 'memory per tunnel',
                 ratio($mem{$n}{explicit}{per_tunnel_kb}, $mem{$n}{preread}{per_tunnel_kb}),
                 ''];
}

my $md = "| path | measure | ratio to plain nginx stream (median of per-round ratios) | target |\n|---|---|---|---|\n";
$md .= join '', map { sprintf "| %s | %s | %s | %s |\n", $_->[0], $_->[1], fmt($_->[2], '%.2f'), $_->[3] } @rows;
$md .= "\n| peer | conn/s | CPU s / 1,000 conn | conn p50 ms | conn p99 ms | 10 MiB MB/s | CPU s / GB | errors |\n|---|---|---|---|---|---|---|---|\n";
for my $p ('direct', @peers) {
    my $s = $sum{$p};
    $md .= sprintf "| %s | %s | %s | %s | %s | %s | %s | %d |\n", $p,
        fmt($s->{conn_per_s}, '%.0f'), fmt($s->{cpu_per_1000}), fmt($s->{p50_ms}, '%.2f'),
        fmt($s->{p99_ms}, '%.2f'), fmt($s->{mb_per_s}, '%.0f'), fmt($s->{cpu_per_gb}), $s->{errors};
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

$res{summary} = \%sum;
$res{memory} = \%mem;
$res{filter} = \%filter;
$res{rows} = [ map { { path => $_->[0], measure => $_->[1], ratio => $_->[2], target => $_->[3] } } @rows ];
$res{raw} = { conn => \%conn, bulk => \%bulk };

write_file("$Out/results.json", JSON::PP->new->pretty->canonical->encode(\%res));
write_file("$Out/results.md", $md);

print "\n$md\n";
say "results: $Out/results.json, $Out/results.md";

my $errors = 0;
$errors += $sum{$_}{errors} for keys %sum;
exit($errors ? 1 : 0);
