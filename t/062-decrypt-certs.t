# Decryption: the certificates the gateway mints and the upstream
# verification, seen from the outside.
#
#   - every required field of a minted leaf (issue 8, item 1), read with
#     "openssl x509" from what the gateway presents through CONNECT: EC and
#     RSA leaf keys, an EC and an RSA CA, a CA that expires within 30 days
#     (the leaf ends with it), a CA file that carries an intermediate (the
#     chain is leaf + intermediate + root), an IP literal (IP SAN);
#   - the leaf is accepted by curl, openssl s_client -verify_return_error,
#     Python's ssl and headless Chromium (NSS database trusting the CA);
#   - the per-worker cache: 2,000 distinct names under max=500 (minted at
#     first sight, a recent name from the cache, an evicted one minted
#     again, the worker's memory flat), and valid= ages entries out;
#   - an origin whose certificate does not verify (expired, self-signed,
#     unknown CA, another name) gets 502, none of its content, the
#     verification error logged, $mcd_reason "upstream_cert".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';

use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);

mcd_test_setup();

our $D = $W->{dir};
our $Base = $ENV{TEST_NGINX_SERVER_PORT};

$ENV{TEST_NGINX_MCD_INTERCEPT} = $W->{port2};

# origins: one per way an upstream certificate fails verification, and
# one that answers HTML (for Chromium)

our %Port = (
    expired    => $Base + 10,
    selfsigned => $Base + 11,
    unknownca  => $Base + 12,
    wrongname  => $Base + 13,
    html       => $Base + 14,
);

our $Names = 2000;      # distinct names of the cache test

sub name_n { return sprintf 'n%04d.example.test', $_[0]; }


# certificates

sub ossl {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "command failed ($?): $cmd\n$out" if $? != 0;
    return $out;
}

sub asn1_time {
    my ($t) = @_;
    return strftime('%Y%m%d%H%M%SZ', gmtime $t);
}

# "openssl ca", for what "openssl req/x509" of OpenSSL 3.0 cannot do: a
# notBefore in the past, an expired certificate

sub ca_sign {
    my (%o) = @_;
    my $db = "$D/ca-db-$o{tag}";
    remove_tree($db);
    make_path($db);
    mcd_write_file("$db/index.txt", '');
    mcd_write_file("$db/serial", "1000\n");
    mcd_write_file("$db/ca.cnf", join "\n",
        '[ ca ]', 'default_ca = c', '[ c ]',
        "database = $db/index.txt", "new_certs_dir = $db",
        "serial = $db/serial", 'default_md = sha256', 'policy = p',
        'unique_subject = no', 'copy_extensions = none',
        '[ p ]', 'commonName = supplied',
        '[ ext ]', @{ $o{ext} }, '');
    my $signer = $o{selfsign} ? "-selfsign -keyfile $o{key}"
                              : "-cert $o{cacert} -keyfile $o{cakey}";
    ossl("openssl ca -batch -notext -config $db/ca.cnf $signer "
         . "-in $o{csr} -out $o{out} -extensions ext "
         . '-startdate ' . asn1_time($o{start}) . ' '
         . '-enddate ' . asn1_time($o{end}));
}

sub make_test_certs {
    my $now = time;
    my $ec = '-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';
    my $rsa = '-newkey rsa:2048 -nodes';
    my @ca_ext = ('basicConstraints = critical,CA:TRUE',
                  'keyUsage = critical,keyCertSign,cRLSign',
                  'subjectKeyIdentifier = hash',
                  'authorityKeyIdentifier = keyid:always');

    # the file's main gateway CA: EC, valid since two days, so that the
    # one-hour backdating of the leaves is not clamped by the CA's
    # notBefore

    ossl("openssl req $ec -keyout $D/gwcb.key -out $D/gwcb.csr "
         . "-subj '/O=McdTest/CN=McdTest Certs Gateway CA'");
    ca_sign(tag => 'gwcb', selfsign => 1, key => "$D/gwcb.key",
            csr => "$D/gwcb.csr", out => "$D/gwcb.crt",
            start => $now - 2 * 86400, end => $now + 365 * 86400,
            ext => \@ca_ext);

    # a CA that expires in 10 days (and became valid just now)

    ossl("openssl req -x509 $ec -keyout $D/gwca10.key -out $D/gwca10.crt "
         . "-days 10 -subj '/CN=McdTest Short CA' "
         . "-addext 'basicConstraints=critical,CA:TRUE' "
         . "-addext 'keyUsage=critical,keyCertSign,cRLSign'");

    # an RSA root and an RSA intermediate under it: the CA file is the
    # intermediate followed by the root

    ossl("openssl req -x509 $rsa -keyout $D/root.key -out $D/root.crt "
         . "-days 365 -subj '/CN=McdTest Root CA' "
         . "-addext 'basicConstraints=critical,CA:TRUE' "
         . "-addext 'keyUsage=critical,keyCertSign,cRLSign'");
    ossl("openssl req $rsa -keyout $D/inter.key -out $D/inter.csr "
         . "-subj '/CN=McdTest Intermediate CA'");
    ca_sign(tag => 'inter', cacert => "$D/root.crt", cakey => "$D/root.key",
            csr => "$D/inter.csr", out => "$D/inter.crt",
            start => $now - 86400, end => $now + 300 * 86400,
            ext => ['basicConstraints = critical,CA:TRUE,pathlen:0',
                    'keyUsage = critical,keyCertSign,cRLSign',
                    'subjectKeyIdentifier = hash',
                    'authorityKeyIdentifier = keyid:always']);
    mcd_write_file("$D/inter-chain.crt",
                   mcd_slurp("$D/inter.crt") . mcd_slurp("$D/root.crt"));

    # the bad origins' certificates

    my @leaf = ('basicConstraints = critical,CA:FALSE',
                'keyUsage = critical,digitalSignature',
                'extendedKeyUsage = serverAuth');

    ossl("openssl req $ec -keyout $D/bad.key -out $D/bad.csr "
         . "-subj '/CN=bad origin'");

    # expired, by the origin CA the gateway trusts
    ca_sign(tag => 'expired', cacert => "$D/ca.crt", cakey => "$D/ca.key",
            csr => "$D/bad.csr", out => "$D/expired.crt",
            start => $now - 60 * 86400, end => $now - 30 * 86400,
            ext => [@leaf, 'subjectAltName = DNS:expired.example.test']);

    # self-signed, for the right name
    ca_sign(tag => 'selfsigned', selfsign => 1, key => "$D/bad.key",
            csr => "$D/bad.csr", out => "$D/selfsigned.crt",
            start => $now - 86400, end => $now + 30 * 86400,
            ext => [@leaf, 'subjectAltName = DNS:selfsigned.example.test']);

    # by a CA the gateway does not know, for the right name
    ossl("openssl req -x509 $ec -keyout $D/otherca.key -out $D/otherca.crt "
         . "-days 365 -subj '/CN=McdTest Unknown CA' "
         . "-addext 'basicConstraints=critical,CA:TRUE' "
         . "-addext 'keyUsage=critical,keyCertSign,cRLSign'");
    ca_sign(tag => 'unknownca', cacert => "$D/otherca.crt",
            cakey => "$D/otherca.key",
            csr => "$D/bad.csr", out => "$D/unknownca.crt",
            start => $now - 86400, end => $now + 30 * 86400,
            ext => [@leaf, 'subjectAltName = DNS:unknownca.example.test']);

    # by the trusted origin CA, valid, for another name
    ca_sign(tag => 'wrongname', cacert => "$D/ca.crt", cakey => "$D/ca.key",
            csr => "$D/bad.csr", out => "$D/wrongname.crt",
            start => $now - 86400, end => $now + 30 * 86400,
            ext => [@leaf, 'subjectAltName = DNS:other.test']);
}

make_test_certs();

make_path("$D/www-bad");
mcd_write_file("$D/www-bad/index.html", "SECRET of the bad origin\n");

# those origins run in an nginx of their own, started here: the gateway
# refuses to connect to its own listening sockets (reason "loop")

our $SidePrefix = "$D/side";

sub start_side {
    my $p = $SidePrefix;
    make_path("$p/logs", "$p/conf");
    my $user = $> == 0 ? 'user root;' : '';
    mcd_write_file("$p/conf/nginx.conf", <<"_EOC_");
$user
worker_processes 1;
daemon on;
master_process on;
error_log $p/logs/error.log warn;
pid $p/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $p/tmp_body;
    proxy_temp_path $p/tmp_proxy;
    fastcgi_temp_path $p/tmp_fastcgi;
    uwsgi_temp_path $p/tmp_uwsgi;
    scgi_temp_path $p/tmp_scgi;
    default_type application/octet-stream;

    # origins whose certificates do not verify

    server {
        listen 127.0.0.1:$Port{expired} ssl;
        ssl_certificate $D/expired.crt;
        ssl_certificate_key $D/bad.key;
        root $D/www-bad;
    }

    server {
        listen 127.0.0.1:$Port{selfsigned} ssl;
        ssl_certificate $D/selfsigned.crt;
        ssl_certificate_key $D/bad.key;
        root $D/www-bad;
    }

    server {
        listen 127.0.0.1:$Port{unknownca} ssl;
        ssl_certificate $D/unknownca.crt;
        ssl_certificate_key $D/bad.key;
        root $D/www-bad;
    }

    server {
        listen 127.0.0.1:$Port{wrongname} ssl;
        ssl_certificate $D/wrongname.crt;
        ssl_certificate_key $D/bad.key;
        root $D/www-bad;
    }

    # a page for a browser: HTML that a script completes

    server {
        listen 127.0.0.1:$Port{html} ssl;
        ssl_certificate $D/origin.crt;
        ssl_certificate_key $D/origin.key;

        location = /index.html {
            default_type text/html;
            return 200 '<!DOCTYPE html><html><head><title>mcd page</title></head><body><p id="p">served by the origin</p><script>document.getElementById("p").textContent += ", rendered by the browser";</script></body></html>';
        }
    }
}
_EOC_
    ossl("$ENV{TEST_NGINX_BINARY} -p $p/ -c conf/nginx.conf");
    my $pid;
    for (1 .. 100) {
        $pid = mcd_slurp("$p/logs/nginx.pid");
        last if $pid && $pid =~ /\d/;
        sleep 0.05;
    }
    ($pid) = ($pid // '') =~ /(\d+)/ or die "side nginx did not start";

    # McdTest kills what children.pid names when a killed run left it
    open my $fh, '>>', "$D/children.pid" or die;
    print $fh "$pid\n";
    close $fh;

    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $Port{html}, Timeout => 1);
        return $pid if $s;
        sleep 0.05;
    }
    die "side nginx does not listen";
}

our $SidePid = start_side();
our $SideOwner = $$;

END {
    if ($SidePid && $$ == $SideOwner) {
        my @workers = split ' ', `pgrep -P $SidePid 2>/dev/null`;
        kill 'TERM', $SidePid;
        for (1 .. 50) {
            last unless kill 0, $SidePid;
            sleep 0.1;
        }
        kill 'KILL', $SidePid, @workers if kill 0, $SidePid;
    }
}

# the hosts file: the world's names, the bad origins', 2,000 more

{
    my $hosts = mcd_slurp(mcd_file('hosts'))
        . "127.0.0.1 expired.example.test selfsigned.example.test\n"
        . "127.0.0.1 unknownca.example.test wrongname.example.test\n"
        . "127.0.0.1 valid.example.test rsa.example.test\n";
    for my $i (1 .. $Names) {
        $hosts .= '127.0.0.1 ' . name_n($i) . "\n";
    }
    mcd_write_file("$D/hosts-certs", $hosts);
}

# the main context, per block: "--- mcd_conf" holds KEY=VALUE words
# (ca=NAME: NAME.crt/NAME.key; ca_file=FILE; leaf_key=SPEC; cache=ARGS,
# commas for spaces)

sub main_conf {
    my ($spec) = @_;
    my %o = (ca => 'gwcb');
    for my $w (split ' ', $spec // '') {
        my ($k, $v) = split /=/, $w, 2;
        $o{$k} = $v;
    }
    my $ca_file = $o{ca_file} // "$o{ca}.crt";
    my $extra = '';
    $extra .= "mcd_leaf_key $o{leaf_key};\n" if $o{leaf_key};
    if ($o{cache}) {
        (my $c = $o{cache}) =~ tr/,/ /;
        $extra .= "mcd_certificate_cache $c;\n";
    }
    my $ports = join ' ', $W->{origin}, map { $Port{$_} } sort keys %Port;

    return <<"_EOC_";
mcd_hosts_file $D/hosts-certs;

mcd_ca_certificate     $D/$ca_file;
mcd_ca_certificate_key $D/$o{ca}.key;
$extra
mcd_fqdn_filter egress {
    default deny;
    decrypt .example.test 127.0.0.1;
}

stream {
    server {
        listen 127.0.0.1:$W->{port};
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $ports;
        mcd_destination allow 127.0.0.0/8 ::1;
        mcd_decrypt_pass 127.0.0.1:$W->{port2};
    }
}
_EOC_
}

our $HttpConfig = <<'_EOC_';
    log_format decrypted '$host $status decrypted=$mcd_decrypted '
                         'fqdn=$mcd_fqdn reason=$mcd_reason';

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT ssl;
        mcd_intercept on;
        access_log logs/decrypted.log decrypted;

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

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', main_conf($block->mcd_conf))
        unless defined $block->main_config;
    $block->set_value('http_config', $HttpConfig)
        unless defined $block->http_config;
});


# helpers

sub run_cmd { return McdTest::mcd_run_cmd(@_); }

# the certificates the gateway presents for HOST:PORT through CONNECT
# (s_client -showcerts): { exit, out, err, certs => [PEM ...] }

sub gateway_certs {
    my (%o) = @_;
    my $host = $o{host} // 'www.example.test';
    my $port = $o{port} // $W->{origin};
    my @sni = defined $o{sni} ? ('-servername', $o{sni})
            : $o{no_sni}      ? ('-noservername')
            :                   ('-servername', $host);
    my $r = run_cmd('timeout', '20', 'openssl', 's_client', '-showcerts',
                    '-proxy', "127.0.0.1:$W->{port}",
                    '-connect', "$host:$port", @sni,
                    '-CAfile', $o{cafile}, '-verify_return_error',
                    @{ $o{args} // [] });
    $r->{certs} = [ $r->{out} =~ /(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n)/sg ];
    return $r;
}

my $XN = 0;

# openssl x509 ARGS of a PEM certificate (a string) or a file

sub x509 {
    my ($cert, @args) = @_;
    my $file = $cert;
    if ($cert =~ /BEGIN CERTIFICATE/) {
        $file = "$D/x509.$$." . $XN++ . '.pem';
        mcd_write_file($file, $cert);
    }
    my $r = run_cmd('openssl', 'x509', '-in', $file, '-noout', @args);
    unlink $file if $file ne $cert;
    die "openssl x509 @args: $r->{err}" if $r->{exit} != 0;
    return $r->{out};
}

sub cert_time {
    my ($cert, $which) = @_;
    my $out = x509($cert, "-$which", '-dateopt', 'iso_8601');
    my ($y, $mo, $d, $h, $mi, $s) =
        $out =~ /=(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)Z/
        or die "no $which in $out";
    return timegm($s, $mi, $h, $d, $mo - 1, $y);
}

sub ext_value {
    my ($cert, $ext) = @_;
    my $out = x509($cert, '-ext', $ext);
    $out =~ s/\A[^\n]*\n//;     # the extension's title line
    $out =~ s/^\s+|\s+$//mg;
    return $out;
}

sub fingerprint {
    my ($cert) = @_;
    my $out = x509($cert, '-fingerprint', '-sha256');
    my ($fp) = $out =~ /=([0-9A-F:]+)/;
    return $fp;
}

sub subject_of {
    my ($cert) = @_;
    my $out = x509($cert, '-subject', '-nameopt', 'RFC2253');
    $out =~ s/\Asubject=//;
    chomp $out;
    return $out;
}

sub issuer_of {
    my ($cert) = @_;
    my $out = x509($cert, '-issuer', '-nameopt', 'RFC2253');
    $out =~ s/\Aissuer=//;
    chomp $out;
    return $out;
}

# every required field of a minted leaf; name => NAME, ip => 1 for an IP
# literal, ca => the issuing CA's certificate file, key => 'ec' | 'rsa',
# sig => the signature algorithm's name

sub check_leaf {
    my ($leaf, %o) = @_;
    my $name = $o{name};
    my $t = $o{title} // $name;
    my $text = x509($leaf, '-text');
    my $now = time;

    like $text, qr/^\s*Version: 3 \(0x2\)$/m, "$t: X.509 v3";

    my ($serial) = x509($leaf, '-serial') =~ /serial=([0-9A-F]+)/;
    unlike $text, qr/Serial Number:.*Negative/s, "$t: serial not negative";
    $serial //= '';
    $serial =~ s/^0+//;
    my $bits = 0;
    if (length $serial) {
        my $top = hex substr($serial, 0, 1);
        my $topbits = $top >= 8 ? 4 : $top >= 4 ? 3 : $top >= 2 ? 2 : 1;
        $bits = 4 * (length($serial) - 1) + $topbits;
    }
    cmp_ok $bits, '>=', 64, "$t: serial positive, at least 64 bits ($bits)";

    is subject_of($leaf), "CN=$name", "$t: subject CN is the name";
    is ext_value($leaf, 'subjectAltName'),
       ($o{ip} ? "IP Address:$name" : "DNS:$name"),
       "$t: the SAN is the name, nothing else";
    is issuer_of($leaf), subject_of($o{ca}), "$t: issuer is the CA's subject";

    my $nb = cert_time($leaf, 'startdate');
    my $na = cert_time($leaf, 'enddate');
    my $ca_nb = cert_time($o{ca}, 'startdate');
    my $ca_na = cert_time($o{ca}, 'enddate');
    my $want_nb = $now - 3600 < $ca_nb ? $ca_nb : $now - 3600;
    ok abs($nb - $want_nb) <= 120,
       "$t: notBefore one hour back (or the CA's notBefore)"
        or diag "notBefore $nb, now $now, CA notBefore $ca_nb";
    cmp_ok $nb, '>=', $ca_nb, "$t: notBefore not before the CA's";
    cmp_ok $na, '<=', $now + 30 * 86400 + 60, "$t: notAfter at most 30 days ahead";
    cmp_ok $na, '>', $now + 86400, "$t: notAfter more than a day ahead";
    cmp_ok $na, '<=', $ca_na, "$t: notAfter not after the CA's";

    my $ski = ext_value($leaf, 'subjectKeyIdentifier');
    like $ski, qr/\A[0-9A-F]{2}(:[0-9A-F]{2})+\z/, "$t: SKI present";
    my $aki = ext_value($leaf, 'authorityKeyIdentifier');
    $aki =~ s/^keyid://;
    is $aki, ext_value($o{ca}, 'subjectKeyIdentifier'), "$t: AKI is the CA's SKI";

    like $text, qr/X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/,
         "$t: basicConstraints critical CA:FALSE";
    my $ku = $o{key} eq 'rsa' ? 'Digital Signature, Key Encipherment'
                              : 'Digital Signature';
    like $text, qr/X509v3 Key Usage: critical\n\s+\Q$ku\E\n/,
         "$t: keyUsage $ku";
    like $text, qr/X509v3 Extended Key Usage: *\n\s+TLS Web Server Authentication\n/,
         "$t: extendedKeyUsage serverAuth";
    like $text, qr/^\s*Signature Algorithm: \Q$o{sig}\E$/m, "$t: $o{sig}";
    if ($o{key} eq 'rsa') {
        like $text, qr/Public Key Algorithm: rsaEncryption\n\s+Public-Key: \(2048 bit\)/,
             "$t: an RSA 2048 leaf key";
    } else {
        like $text, qr/Public Key Algorithm: id-ecPublicKey.*NIST CURVE: P-256/s,
             "$t: an EC P-256 leaf key";
    }
    return ($nb, $na);
}

# TLS handshakes through CONNECT for each name, in $procs processes;
# returns the names whose handshake failed (with why)

sub handshakes {
    my ($names, $procs, $timeout) = @_;
    require IO::Socket::SSL;
    my $deadline = time + $timeout;
    my @pids;
    for my $p (0 .. $procs - 1) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my $out = "$D/handshakes.$p";
            open my $fh, '>', $out or POSIX::_exit(1);
            my $ctx = IO::Socket::SSL::SSL_Context->new(
                SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_PEER(),
                SSL_ca_file => "$D/gwcb.crt",
                SSL_verifycn_scheme => 'http');
            for my $i (grep { $_ % $procs == $p } 0 .. $#$names) {
                my $name = $names->[$i];
                if (time > $deadline) {
                    print $fh "fail $name timeout\n";
                    next;
                }
                my $err = one_handshake($name, $ctx);
                print $fh $err ? "fail $name $err\n" : "ok $name\n";
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my (%ok, @fail);
    for my $p (0 .. $procs - 1) {
        for (split /\n/, mcd_slurp("$D/handshakes.$p") // '') {
            if (/^ok (\S+)/) { $ok{$1} = 1; } else { push @fail, $_; }
        }
        unlink "$D/handshakes.$p";
    }
    push @fail, map { "fail $_ no result" } grep { !$ok{$_} } @$names
        unless @fail;
    return @fail;
}

sub one_handshake {
    my ($name, $ctx) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $W->{port}, Timeout => 5)
        or return "connect: $!";
    my $target = "$name:$W->{origin}";
    syswrite($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n");
    my $head = '';
    my $sel = IO::Select->new($s);
    my $until = time + 10;
    while ($head !~ /\r\n\r\n/ && time < $until) {
        last unless $sel->can_read($until - time);
        my $n = sysread($s, $head, 1, length $head);
        last unless $n;
    }
    return "no 200: $head" unless $head =~ m{\AHTTP/1\.[01] 200 };
    my $ok = IO::Socket::SSL->start_SSL($s, SSL_reuse_ctx => $ctx,
                                        SSL_hostname => $name,
                                        SSL_verifycn_name => $name,
                                        Timeout => 10);
    if (!$ok) {
        my $e = IO::Socket::SSL::errstr() || 'handshake failed';
        close $s;
        return $e;
    }
    $s->close(SSL_fast_shutdown => 1);
    return undef;
}

sub vm_rss {
    my $pid = mcd_nginx_pid() // return undef;
    my @kids = split ' ', `pgrep -P $pid 2>/dev/null`;
    $pid = $kids[0] if @kids;
    my $st = mcd_slurp("/proc/$pid/status") // return undef;
    my ($kb) = $st =~ /^VmRSS:\s+(\d+) kB/m;
    return $kb;
}

sub cert_lines {
    my ($name, $n, $timeout) = @_;
    return mcd_wait_log('error.log', qr/mcd: certificate for "\Q$name\E" /,
                        $n, $timeout);
}

# a GET through the decrypting gateway to an origin whose certificate
# does not verify

sub bad_origin {
    my ($name, $port, $err_re) = @_;
    my $direct = mcd_curl('-sSk', '--max-time', '10',
                          "https://127.0.0.1:$port/index.html");
    is $direct->{out}, "SECRET of the bad origin\n",
       "$name: the origin serves content (directly, without verification)";
    my $r = mcd_curl('-sS', '-v', '--max-time', '20',
                     '--cacert', "$D/gwcb.crt",
                     '-x', "http://127.0.0.1:$W->{port}",
                     '-w', '\n%{http_connect} %{http_code}',
                     "https://$name:$port/index.html");
    like $r->{out}, qr/\n200 502\z/, "$name: the tunnel opened, the request answered 502"
        or diag $r->{err};
    unlike $r->{out}, qr/SECRET/, "$name: none of the origin's content";
    like $r->{err}, qr/issuer: CN=McdTest Certs Gateway CA/i,
         "$name: the client saw the minted certificate";
    my @m = mcd_wait_log('error.log', $err_re, 1, 5);
    is scalar(@m), 1, "$name: nginx names the verification error"
        or diag join "\n", grep { /upstream SSL/ } mcd_log_lines('error.log');
    my ($line) = mcd_wait_log('decrypted.log', qr/^\Q$name\E /, 1, 5);
    like $line // '', qr/^\Q$name\E 502 decrypted=1 fqdn=\Q$name\E reason=upstream_cert$/,
         "$name: \$mcd_reason is upstream_cert in the http access log";
    @m = mcd_wait_log('error.log', qr/\[warn\].*reason "upstream_cert"/, 1, 3);
    is scalar(@m), 1, "$name: one module warn line with reason \"upstream_cert\"";
}

sub python3 { return -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3'; }

our $PyClient = <<'_PY_';
import socket, ssl, sys
proxy, host, port, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
target = "%s:%s" % (host, port)
s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
head = b""
while b"\r\n\r\n" not in head and len(head) < 4096:
    b = s.recv(1)
    if not b:
        break
    head += b
status = head.split(b"\r\n")[0].decode()
print("connect:", status)
if " 200 " not in status + " ":
    sys.exit(2)
ctx = ssl.create_default_context(cafile=cafile)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
t = ctx.wrap_socket(s, server_hostname=host)
cert = t.getpeercert()
print("subject:", dict(x[0] for x in cert["subject"])["commonName"])
print("issuer:", dict(x[0] for x in cert["issuer"])["commonName"])
print("san:", ",".join("%s:%s" % x for x in cert["subjectAltName"]))
t.sendall(("GET /index.html HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
data = b""
while len(data) < 1 << 20:
    b = t.recv(65536)
    if not b:
        break
    data += b
resp = data.decode(errors="replace")
print("status:", resp.split("\r\n")[0])
print("body:", resp.split("\r\n\r\n", 1)[-1], end="")
_PY_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the minted leaf (EC CA, EC P-256 leaf key): every required field; the chain is leaf + CA
--- mcd_client
my $r = main::gateway_certs(cafile => "$main::D/gwcb.crt");
is $r->{exit}, 0, 's_client verified the chain' or diag $r->{out} . $r->{err};
like $r->{out}, qr/Verify return code: 0 \(ok\)/, 'verify return code 0';
is scalar(@{ $r->{certs} }), 2, 'two certificates sent: the leaf and the CA';
main::check_leaf($r->{certs}[0], name => 'www.example.test',
                 ca => "$main::D/gwcb.crt", key => 'ec',
                 sig => 'ecdsa-with-SHA256');
is main::fingerprint($r->{certs}[1] // ''), main::fingerprint("$main::D/gwcb.crt"),
   'the second is the gateway CA itself';
my @m = main::cert_lines('www.example.test', 1, 5);
like $m[0] // '', qr/minted/, 'minted (error log)';



=== TEST 2: an IP literal: the leaf carries an IP SAN, a client that sends no SNI gets it
--- mcd_client
my $r = main::gateway_certs(host => '127.0.0.1', no_sni => 1,
                            cafile => "$main::D/gwcb.crt",
                            args => ['-verify_ip', '127.0.0.1']);
is $r->{exit}, 0, 's_client verified the chain and the IP' or diag $r->{out} . $r->{err};
is scalar(@{ $r->{certs} }), 2, 'leaf and CA';
main::check_leaf($r->{certs}[0], name => '127.0.0.1', ip => 1,
                 ca => "$main::D/gwcb.crt", key => 'ec',
                 sig => 'ecdsa-with-SHA256');
my $x = main::gateway_certs(host => '127.0.0.1', no_sni => 1,
                            cafile => "$main::D/gwcb.crt",
                            args => ['-verify_ip', '127.0.0.2']);
isnt $x->{exit}, 0, 'the certificate is for that address only';

# end to end: the client accepts the leaf; the re-encryption to the IP
# fails closed, because nginx's proxy_ssl_verify (1.22 to the current
# mainline) matches proxy_ssl_name against DNS names only (X509_check_host),
# never the origin's iPAddress SAN: 502, upstream_cert, nothing of the
# origin's (README: decrypting IP literals)
my $c = mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', "$main::D/gwcb.crt",
                 '-x', "http://127.0.0.1:$W->{port}", '-w', '\n%{http_code}',
                 "https://127.0.0.1:$W->{origin}/index.html");
like $c->{err}, qr/SSL certificate verify ok/, 'curl accepts the leaf for the IP';
like $c->{out}, qr/\n502\z/, 'the re-encryption fails closed: 502';
unlike $c->{out}, qr/hello from origin/, 'nothing of the origin';
my @m = mcd_wait_log('error.log', qr/the certificate of "127\.0\.0\.1" at 127\.0\.0\.1:\d+ is not for "127\.0\.0\.1", reason "upstream_cert"/, 1, 5);
is scalar(@m), 1, 'reason upstream_cert, logged';



=== TEST 3: an RSA 2048 leaf key: keyUsage adds keyEncipherment
--- mcd_conf
leaf_key=rsa:2048
--- mcd_client
my $r = main::gateway_certs(host => 'rsa.example.test',
                            cafile => "$main::D/gwcb.crt");
is $r->{exit}, 0, 's_client verified the chain' or diag $r->{out} . $r->{err};
is scalar(@{ $r->{certs} }), 2, 'leaf and CA';
main::check_leaf($r->{certs}[0], name => 'rsa.example.test',
                 ca => "$main::D/gwcb.crt", key => 'rsa',
                 sig => 'ecdsa-with-SHA256');
my @m = mcd_wait_log('error.log', qr/worker leaf key rsa:2048 generated/, 1, 5);
is scalar(@m), 1, 'the worker generated an RSA 2048 leaf key';



=== TEST 4: a CA that expires in 10 days: nginx -t warns, the leaf ends no later than the CA (and starts no earlier)
--- mcd_conf
ca=gwca10
--- mcd_client
my $t = McdTest::mcd_nginx_t(
    "mcd_ca_certificate $main::D/gwca10.crt;\n"
    . "mcd_ca_certificate_key $main::D/gwca10.key;\n");
is $t->{exit}, 0, 'nginx -t passes';
like $t->{err}, qr/\[warn\].*CA certificate "\Q$main::D\E\/gwca10\.crt" expires on \d{4}-\d\d-\d\d .* in less than 30 days/,
     'nginx -t warns that the CA expires within 30 days';
my $r = main::gateway_certs(cafile => "$main::D/gwca10.crt");
is $r->{exit}, 0, 's_client verified the chain' or diag $r->{out} . $r->{err};
my ($nb, $na) = main::check_leaf($r->{certs}[0], name => 'www.example.test',
                                 ca => "$main::D/gwca10.crt", key => 'ec',
                                 sig => 'ecdsa-with-SHA256');
my $ca_na = main::cert_time("$main::D/gwca10.crt", 'enddate');
my $ca_nb = main::cert_time("$main::D/gwca10.crt", 'startdate');
ok $na && $na <= $ca_na && $na > $ca_na - 86400,
   'the leaf ends with the CA (10 days), not 30 days ahead';
is $nb, $ca_nb, 'a CA valid only since now: the leaf starts with it';



=== TEST 5: a CA file with intermediate + root: the chain is leaf + intermediate + root; a client that trusts only the root verifies (RSA CA: sha256WithRSAEncryption)
--- mcd_conf
ca=inter ca_file=inter-chain.crt
--- mcd_client
my $r = main::gateway_certs(cafile => "$main::D/root.crt");
is $r->{exit}, 0, 's_client trusting only the root verified' or diag $r->{out} . $r->{err};
like $r->{out}, qr/Verify return code: 0 \(ok\)/, 'verify return code 0';
is scalar(@{ $r->{certs} }), 3, 'three certificates sent';
main::check_leaf($r->{certs}[0], name => 'www.example.test',
                 ca => "$main::D/inter.crt", key => 'ec',
                 sig => 'sha256WithRSAEncryption');
is main::fingerprint($r->{certs}[1] // ''), main::fingerprint("$main::D/inter.crt"),
   'then the intermediate';
is main::fingerprint($r->{certs}[2] // ''), main::fingerprint("$main::D/root.crt"),
   'then the root';
my $c = mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', "$main::D/root.crt",
                 '-x', "http://127.0.0.1:$W->{port}",
                 "https://www.example.test:$W->{origin}/index.html");
is $c->{exit}, 0, 'curl trusting only the root' or diag $c->{err};
is $c->{out}, "hello from origin\n", 'the origin\'s body';



=== TEST 6: accepted by curl, openssl s_client -verify_return_error, Python's ssl (strict X.509)
--- mcd_client
my $ca = "$main::D/gwcb.crt";
my $r = mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', $ca,
                 '-x', "http://127.0.0.1:$W->{port}",
                 "https://www.example.test:$W->{origin}/index.html");
is $r->{exit}, 0, 'curl' or diag $r->{err};
is $r->{out}, "hello from origin\n", 'curl: the origin\'s body';
like $r->{err}, qr/SSL certificate verify ok/, 'curl verified the certificate';

$r = McdTest::mcd_run_cmd('sh', '-c', 'printf "GET /index.html HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n" | '
                 . 'timeout 20 openssl s_client -ign_eof -verify_return_error '
                 . "-proxy 127.0.0.1:$W->{port} -connect www.example.test:$W->{origin} "
                 . "-servername www.example.test -verify_hostname www.example.test -CAfile $ca");
is $r->{exit}, 0, 'openssl s_client -verify_return_error' or diag $r->{out} . $r->{err};
like $r->{out}, qr/Verification: OK/, 's_client: verification OK';
like $r->{out}, qr/Verified peername: www\.example\.test/, 's_client: the host name verified';
like $r->{out}, qr/\r\n\r\nhello from origin\n/, 's_client: the origin\'s body';

$r = McdTest::mcd_run_cmd('timeout', '20', main::python3(), '-c', $main::PyClient,
                          $W->{port}, 'www.example.test', $W->{origin}, $ca);
is $r->{exit}, 0, 'python ssl' or diag $r->{out} . $r->{err};
like $r->{out}, qr/^connect: HTTP\/1\.[01] 200 /m, 'python: tunnel';
like $r->{out}, qr/^subject: www\.example\.test$/m, 'python: leaf for the name';
like $r->{out}, qr/^issuer: McdTest Certs Gateway CA$/m, 'python: issued by the gateway CA';
like $r->{out}, qr/^san: DNS:www\.example\.test$/m, 'python: the SAN';
like $r->{out}, qr/^status: HTTP\/1\.1 200 OK$/m, 'python: 200';
like $r->{out}, qr/^body: hello from origin$/m, 'python: the origin\'s body';



=== TEST 7: accepted by headless Chromium (the CA in an NSS database): the page arrives and renders
--- mcd_client
SKIP: {
    skip 'chromium or certutil missing (scripts/deps.sh installs them)', 7
        unless -x '/usr/bin/chromium' && -x '/usr/bin/certutil';
    my $home = "$main::D/chromium-home";
    File::Path::remove_tree($home);
    File::Path::make_path("$home/.pki/nssdb", "$home/profile");
    my $db = "sql:$home/.pki/nssdb";
    my $r = McdTest::mcd_run_cmd('certutil', '-d', $db, '-N', '--empty-password');
    is $r->{exit}, 0, 'NSS database created' or diag $r->{err};

    local $ENV{HOME} = $home;
    my $url = "https://www.example.test:$main::Port{html}/index.html";
    my $chromium = sub {
        File::Path::remove_tree("$home/profile");
        return McdTest::mcd_run_cmd('timeout', '-k', '5', '90', 'chromium',
            '--headless', '--no-sandbox', '--disable-gpu',
            '--disable-dev-shm-usage', '--no-first-run',
            '--disable-background-networking', '--disable-extensions',
            "--user-data-dir=$home/profile",
            "--proxy-server=http://127.0.0.1:$W->{port}",
            '--dump-dom', $url);
    };

    # control: without the gateway CA, chromium refuses the page
    $r = $chromium->();
    unlike $r->{out}, qr/served by the origin/,
           'without the CA in NSS: no page';
    like $r->{err}, qr/ERR_CERT_AUTHORITY_INVALID/, 'chromium: unknown authority'
        or diag substr($r->{err}, -2000);

    $r = McdTest::mcd_run_cmd('certutil', '-d', $db, '-A', '-t', 'C,,',
                              '-n', 'McdTest Certs Gateway CA',
                              '-i', "$main::D/gwcb.crt");
    is $r->{exit}, 0, 'the gateway CA trusted in it' or diag $r->{err};
    $r = $chromium->();
    like $r->{out}, qr{<p id="p">served by the origin, rendered by the browser</p>},
         'chromium rendered the origin\'s page (the script ran)'
        or diag "exit $r->{exit}\n$r->{out}\n" . substr($r->{err}, -3000);
    like $r->{out}, qr{<title>mcd page</title>}, 'the title';
    my @m = main::cert_lines('www.example.test', 1, 5);
    like $m[0] // '', qr/minted/, 'the gateway minted the certificate chromium accepted';
}



=== TEST 8: 2,000 distinct names under max=500: every handshake succeeds, each name minted at first sight, a recent name from the cache, an evicted one minted again, the worker's memory flat
--- mcd_conf
cache=max=500
--- mcd_client
my @w = mcd_wait_log('error.log', qr/certificate cache max=500 valid=/, 1, 2);
is scalar(@w), 1, 'the worker runs with max=500';
my @names = map { main::name_n($_) } 1 .. $main::Names;
my $t0 = time;
my $rss0 = main::vm_rss();
my @fail = main::handshakes([ @names[0 .. 999] ], 2, 150);
my $rss1 = main::vm_rss();
is scalar(@fail), 0, 'the first 1,000 handshakes succeeded'
    or diag join "\n", @fail[0 .. ($#fail < 9 ? $#fail : 9)];
push @fail, main::handshakes([ @names[1000 .. $#names] ], 2, 150);
my $rss2 = main::vm_rss();
is scalar(@fail), 0, 'all 2,000 handshakes succeeded'
    or diag join "\n", @fail[0 .. ($#fail < 9 ? $#fail : 9)];
diag sprintf '2000 handshakes in %.1f s; worker VmRSS %s kB at start, '
           . '%s kB after 1000 names, %s kB after 2000', time - $t0,
           $rss0 // '?', $rss1 // '?', $rss2 // '?';

my @lines = mcd_wait_log('error.log', qr/mcd: certificate for "n\d{4}\.example\.test" /,
                         $main::Names, 10);
my (%minted, $cached);
for (@lines) {
    my ($n, $how) = /certificate for "(\S+)" (minted|from the cache)/ or next;
    $how eq 'minted' ? $minted{$n}++ : $cached++;
}
is scalar(keys %minted), $main::Names, 'every name minted at first sight';
is scalar(grep { $_ != 1 } values %minted), 0, 'each exactly once';
is $cached // 0, 0, 'nothing from the cache among distinct names';

# the most recent name is still cached; the first ones were evicted long ago
for my $n ($names[-1], $names[-400]) {
    my @f = main::handshakes([$n], 1, 20);
    is scalar(@f), 0, "$n again";
    my @m = main::cert_lines($n, 2, 5);
    like $m[1] // '', qr/from the cache/, "$n: a recently used name comes from the cache";
}
for my $n ($names[0], $names[1000]) {
    my @f = main::handshakes([$n], 1, 20);
    is scalar(@f), 0, "$n again";
    my @m = main::cert_lines($n, 2, 5);
    like $m[1] // '', qr/minted/, "$n: an evicted name is minted again";
}

ok defined $rss1 && defined $rss2, 'the worker\'s VmRSS read';
ok $rss2 < $rss1 * 1.2,
   "the worker's memory stays flat from 1,000 to 2,000 names (${\($rss1 // 0)} -> ${\($rss2 // 0)} kB, < 20%)";



=== TEST 9: valid=2s: an entry older than that is minted again
--- mcd_conf
cache=max=500,valid=2s
--- mcd_client
my $n = 'valid.example.test';
is scalar(main::handshakes([$n], 1, 20)), 0, 'first handshake';
is scalar(main::handshakes([$n], 1, 20)), 0, 'second handshake, at once';
sleep 3.2;
is scalar(main::handshakes([$n], 1, 20)), 0, 'third handshake, 3 s later';
my @m = main::cert_lines($n, 3, 5);
is scalar(@m), 3, 'three certificate lines';
like $m[0] // '', qr/minted/, 'minted at first sight';
like $m[1] // '', qr/from the cache/, 'from the cache within valid';
like $m[2] // '', qr/minted/, 'minted again once older than valid';
my @w = mcd_wait_log('error.log', qr/certificate cache max=500 valid=2\b/, 1, 2);
is scalar(@w), 1, 'the worker runs with valid=2';



=== TEST 10: an upstream with an expired certificate: 502, none of its content, the verification error, reason upstream_cert
--- mcd_client
main::bad_origin('expired.example.test', $main::Port{expired},
                 qr/upstream SSL certificate verify error: \(10:certificate has expired\)/);



=== TEST 11: a self-signed upstream certificate: 502, reason upstream_cert
--- mcd_client
main::bad_origin('selfsigned.example.test', $main::Port{selfsigned},
                 qr/upstream SSL certificate verify error: \(18:self[- ]signed certificate\)/);



=== TEST 12: an upstream certificate from an unknown CA: 502, reason upstream_cert
--- mcd_client
main::bad_origin('unknownca.example.test', $main::Port{unknownca},
                 qr/upstream SSL certificate verify error: \((?:20:unable to get local issuer certificate|21:unable to verify the first certificate)\)/);



=== TEST 13: an upstream certificate for another name: 502, reason upstream_cert
--- mcd_client
main::bad_origin('wrongname.example.test', $main::Port{wrongname},
                 qr/upstream SSL certificate does not match "wrongname\.example\.test"/);
