# Configuration: what "nginx -t" accepts and every error of SPEC 4, each
# reported with the file and line.

use strict;
use warnings;
use FindBin;
use File::Path qw(make_path);
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

my $d = $W->{dir};

mcd_write_file("$d/lists/good.txt", <<'L');
# allowed partners
partner.test          # exact
*.cdn.partner.test
.api.partner.test

~^img[0-9]+\.partner\.test$
L

mcd_write_file("$d/lists/bad.txt", <<'L');
one.test
two.test
bad*pattern.test
L

mcd_write_file("$d/lists/two.txt", <<'L');
one.test two.test
L

mcd_write_file("$d/lists/deny.txt", <<'L');
partner.test
L

mcd_write_file("$d/badhosts", <<'L');
127.0.0.1 fine.test
300.1.1.1 broken.test
L

# the gateway CA's key encrypted (PKCS#8 and the traditional PEM form), and
# pass phrase files for it

my $phrase = 'correct horse battery staple';

McdTest::run("openssl pkey -in $d/gwca.key -aes256 -passout 'pass:$phrase' "
             . "-out $d/gwca-enc.key");
McdTest::run("openssl pkey -in $d/gwca.key -traditional -aes256 "
             . "-passout 'pass:$phrase' -out $d/gwca-trad.key");

mcd_write_file("$d/pass/second.txt", "not this one\n$phrase\n");
mcd_write_file("$d/pass/crlf.txt", "\r\nnope\r\n$phrase\r\n");
mcd_write_file("$d/pass/wrong.txt", "nope\nstill nope\n");
mcd_write_file("$d/pass/empty.txt", "\n\n");

# CAs with chosen validity periods (openssl ca takes explicit dates): one
# that expired, one not valid yet, one that expires in ten days; and the
# gateway CA's key with a mode that group and others can read
sub dated_ca {
    my ($name, $start, $end) = @_;
    my $ca = "$d/dated/$name";
    make_path($ca);
    mcd_write_file("$ca/index.txt", '');
    mcd_write_file("$ca/serial", "01\n");
    mcd_write_file("$ca/ca.cnf", <<"C");
[ca]
default_ca = d
[d]
database = $ca/index.txt
new_certs_dir = $ca
serial = $ca/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[v3]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
C
    McdTest::run("openssl ecparam -name prime256v1 -genkey -noout "
                 . "-out $ca/ca.key && chmod 600 $ca/ca.key");
    McdTest::run("openssl req -new -key $ca/ca.key -subj /CN=$name "
                 . "-out $ca/ca.csr");
    McdTest::run("openssl ca -batch -config $ca/ca.cnf -selfsign "
                 . "-keyfile $ca/ca.key -in $ca/ca.csr -startdate $start "
                 . "-enddate $end -extensions v3 -out $ca/ca.crt");
}

{
    use POSIX qw(strftime);
    my $t = sub { strftime('%Y%m%d%H%M%SZ', gmtime(time + $_[0])) };
    dated_ca('expired', '20200101000000Z', '20200201000000Z');
    dated_ca('future', '20990101000000Z', '20991231000000Z');
    dated_ca('soon', $t->(-86400), $t->(10 * 86400));
    McdTest::run("cp $d/gwca.key $d/gwca-open.key && chmod 644 $d/gwca-open.key");
}

# "nginx -t" (or a start) of a main context with no terminal to prompt on:
# stdin from /dev/null and a time limit, so that a pass phrase prompt fails
# the test instead of hanging it; returns { exit, out, err, conf }

sub nginx_no_prompt {
    my ($main, @args) = @_;
    my $dir = "$W->{dir}/nginx-t-pass";
    make_path("$dir/logs");
    my $conf = "$dir/nginx.conf";
    my $load = join '', map { "load_module $_;\n" }
                        split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    mcd_write_file($conf, "${load}error_log $dir/logs/error.log info;\n"
                   . "pid $dir/nginx.pid;\n"
                   . "events { worker_connections 64; }\n"
                   . McdTest::expand_env($main));
    @args = ('-t') unless @args;
    my $r = McdTest::mcd_run_cmd('sh', '-c', 'exec timeout 10 "$@" </dev/null',
                                 'sh', $ENV{TEST_NGINX_BINARY}, @args,
                                 '-p', "$dir/", '-c', $conf,
                                 '-e', "$dir/logs/error.log");
    $r->{conf} = $conf;
    return $r;
}

# the configuration line an error names must hold the directive

sub names_line {
    my ($r, $directive, $name) = @_;
    my ($line) = $r->{err} =~ /\Q$r->{conf}\E:(\d+)/;
    my @lines = split /\n/, mcd_slurp($r->{conf});
    ok defined $line && defined $lines[$line - 1]
       && $lines[$line - 1] =~ /^\s*\Q$directive\E\s/,
       "$name: names the line of $directive"
        or diag "line " . ($line // 'none') . ": $r->{err}";
}

sub fails_with {
    my ($r, $re, $directive, $name) = @_;
    isnt $r->{exit}, 124, "$name: no prompt (no timeout)";
    isnt $r->{exit}, 0, "$name: nginx -t fails";
    like $r->{err}, $re, "$name: says why" or diag $r->{err};
    names_line($r, $directive, $name);
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a profile with every kind of pattern loads and serves
--- main_config
mcd_fqdn_filter egress {
    default deny;
    no_sni deny;
    allow   origin.test *.wild.test .apex.test ~^re[0-9]+\.test$ 127.0.0.1 ::1 [2001:db8::1];
    deny    bad.wild.test;
    allow_list $TEST_NGINX_MCD_WORLD/lists/good.txt;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports 443 8443;
        mcd_connect_timeout 5s;
        mcd_idle_timeout 1m;
    }
}
--- request
GET /t
--- config
location = /t { return 200 "ok\n"; }
--- response_body
ok
--- no_error_log
[emerg]
[warn]



=== TEST 2: a profile may be declared after the server that uses it
--- main_config
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter later;
    }
}
mcd_fqdn_filter later { default allow; }
--- request
GET /t
--- config
location = /t { return 200 "ok\n"; }
--- response_body
ok



=== TEST 3: unknown profile
--- nginx_t
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter nope;
    }
}
--- nginx_t_error eval
qr{\[emerg\] unknown mcd_fqdn_filter "nope" in \S+nginx\.conf:\d+}



=== TEST 4: the same pattern under two actions names both places
--- nginx_t
mcd_fqdn_filter p {
    allow a.test;
    deny  b.test
          A.Test.;
}
--- nginx_t_error eval
qr{\[emerg\] pattern "A\.Test\." under "deny" at \S+nginx\.conf:\d+ conflicts with "a\.test" under "allow" at \S+nginx\.conf:\d+ in mcd_fqdn_filter "p"}



=== TEST 5: ".x" and "*.x" under two actions cover the same subdomains
--- nginx_t
mcd_fqdn_filter p {
    decrypt .example.test;
    allow   *.example.test;
}
--- nginx_t_error eval
qr{\[emerg\] pattern "\*\.example\.test" under "allow" at \S+:\d+ conflicts with "\.example\.test" under "decrypt"}



=== TEST 6: ".x" with an exact apex under another action is legal
--- main_config
mcd_fqdn_filter p {
    deny  .example.test;
    allow example.test;
}
--- request
GET /t
--- config
location = /t { return 200 "ok\n"; }
--- response_body
ok



=== TEST 7: invalid wildcard
--- nginx_t
mcd_fqdn_filter p {
    allow foo*.test;
}
--- nginx_t_error eval
qr{\[emerg\] invalid pattern "foo\*\.test" at \S+nginx\.conf:\d+ in mcd_fqdn_filter "p"}



=== TEST 8: invalid host name in a pattern
--- nginx_t
mcd_fqdn_filter p {
    deny a..b.test;
}
--- nginx_t_error eval
qr{\[emerg\] invalid pattern "a\.\.b\.test"}



=== TEST 9: a regex that does not compile, with the PCRE2 message
--- nginx_t
mcd_fqdn_filter p {
    deny ~^(unclosed\.test;
}
--- nginx_t_error eval
qr{\[emerg\] invalid pattern "~\^\(unclosed\\\.test" at \S+nginx\.conf:\d+ in mcd_fqdn_filter "p": .*missing closing parenthesis}



=== TEST 10: an unreadable list file
--- nginx_t
mcd_fqdn_filter p {
    deny_list $TEST_NGINX_MCD_WORLD/lists/missing.txt;
}
--- nginx_t_error eval
qr{\[emerg\] cannot open list file "\S+/lists/missing\.txt" \(2: No such file or directory\) in \S+nginx\.conf:\d+}



=== TEST 11: a bad entry in a list file names the list's line
--- nginx_t
mcd_fqdn_filter p {
    deny_list $TEST_NGINX_MCD_WORLD/lists/bad.txt;
}
--- nginx_t_error eval
qr{\[emerg\] invalid pattern "bad\*pattern\.test" at \S+/lists/bad\.txt:3 in mcd_fqdn_filter "p": .* in \S+nginx\.conf:\d+}



=== TEST 12: two patterns on one list line
--- nginx_t
mcd_fqdn_filter p {
    allow_list $TEST_NGINX_MCD_WORLD/lists/two.txt;
}
--- nginx_t_error eval
qr{\[emerg\] invalid entry in list file \S+/lists/two\.txt:1: one pattern a line}



=== TEST 13: a list entry conflicting with a directive names both files
--- nginx_t
mcd_fqdn_filter p {
    allow_list $TEST_NGINX_MCD_WORLD/lists/good.txt;
    deny_list  $TEST_NGINX_MCD_WORLD/lists/deny.txt;
}
--- nginx_t_error eval
qr{\[emerg\] pattern "partner\.test" under "deny" at \S+/lists/deny\.txt:1 conflicts with "partner\.test" under "allow" at \S+/lists/good\.txt:2}



=== TEST 14: decrypt reachable without a CA
--- nginx_t
mcd_fqdn_filter p {
    decrypt .example.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
    }
}
--- nginx_t_error eval
qr{\[emerg\] mcd_fqdn_filter "p" \(\S+nginx\.conf:\d+\) can decrypt, but no "mcd_ca_certificate" is configured, used in \S+nginx\.conf:\d+}



=== TEST 15: a CA certificate that is not a CA
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/notca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/notca.key;
--- nginx_t_error eval
qr{\[emerg\] "\S+/notca\.crt" is not a CA certificate .* in \S+nginx\.conf:\d+}



=== TEST 16: a CA key that does not match
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/other.key;
--- nginx_t_error eval
qr{\[emerg\] "mcd_ca_certificate_key" "\S+/other\.key" does not match "mcd_ca_certificate" "\S+/gwca\.crt" in \S+nginx\.conf:\d+}



=== TEST 17: a matching CA and an interception server make decrypt profiles legal
--- main_config
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_fqdn_filter p {
    decrypt .example.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_PORT2;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_MCD_PORT2 ssl;
    mcd_intercept on;
}
--- request
GET /t
--- config
location = /t { return 200 "ok\n"; }
--- response_body
ok



=== TEST 18: mcd_proxy without a profile
--- nginx_t
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_proxy" needs "mcd_fqdn_filter" in the same server in \S+nginx\.conf:\d+}



=== TEST 19: a profile declared twice
--- nginx_t
mcd_fqdn_filter p { default allow; }
mcd_fqdn_filter p { default deny; }
--- nginx_t_error eval
qr{\[emerg\] duplicate mcd_fqdn_filter "p", first declared in \S+nginx\.conf:\d+ in \S+nginx\.conf:\d+}



=== TEST 20: unknown directive inside a profile
--- nginx_t
mcd_fqdn_filter p { permit a.test; }
--- nginx_t_error eval
qr{\[emerg\] unknown directive "permit" in mcd_fqdn_filter "p" in \S+nginx\.conf:\d+}



=== TEST 21: invalid default
--- nginx_t
mcd_fqdn_filter p { default maybe; }
--- nginx_t_error eval
qr{\[emerg\] invalid value "maybe" in "default", it must be "deny", "allow" or "decrypt" in \S+nginx\.conf:\d+}



=== TEST 22: invalid CONNECT port
--- nginx_t
mcd_fqdn_filter p { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_connect_ports 443 70000;
    }
}
--- nginx_t_error eval
qr{\[emerg\] invalid port "70000" in \S+nginx\.conf:\d+}



=== TEST 23: a bad address in the hosts file names its line
--- nginx_t
mcd_hosts_file $TEST_NGINX_MCD_WORLD/badhosts;
--- nginx_t_error eval
qr{\[emerg\] invalid address "300\.1\.1\.1" in hosts file \S+/badhosts:2 in \S+nginx\.conf:\d+}



=== TEST 24: mcd_proxy and proxy_pass in one server
--- nginx_t
mcd_fqdn_filter p { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        proxy_pass 127.0.0.1:1;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_proxy" directive conflicts with another content handler}



=== TEST 25: the same pattern twice under one action is only a warning
--- nginx_t
mcd_fqdn_filter p {
    allow a.test;
    allow A.TEST;
}
--- nginx_t_like eval
qr{\[warn\] duplicate pattern "A\.TEST" in mcd_fqdn_filter "p" at \S+nginx\.conf:\d+, first in \S+nginx\.conf:\d+}



=== TEST 26: invalid mcd_proxy mode
--- nginx_t
mcd_fqdn_filter p { default allow; }
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy sideways;
        mcd_fqdn_filter p;
    }
}
--- nginx_t_error eval
qr{\[emerg\] invalid value "sideways"}



=== TEST 27: the shipped examples pass nginx -t
--- mcd_client
my $d = $W->{dir};
mcd_write_file("$d/ex/allow.txt", "partner.example\n");
mcd_write_file("$d/ex/users.htpasswd", "alice:{PLAIN}secret\n");
for my $f ('explicit', 'transparent', 'decrypt', 'groups') {
    my $text = mcd_slurp("$W->{root}/conf-examples/$f.conf");
    my ($mods) = $ENV{TEST_NGINX_LOAD_MODULES};
    # by file name: a folder of the path may hold "stream" or "mcd"
    my ($stream) = grep { m{(?:^|/)ngx_stream_module\.so$} } split ' ', $mods;
    my ($mcd) = grep { m{(?:^|/)ngx_mcd_module\.so$} } split ' ', $mods;
    $text =~ s{load_module modules/ngx_stream_module\.so;}{$stream ? "load_module $stream;" : ''}e;
    $text =~ s{load_module modules/ngx_mcd_module\.so;}{$mcd ? "load_module $mcd;" : ''}e;
    $text =~ s{/etc/nginx/mcd/allow\.txt}{$d/ex/allow.txt};
    $text =~ s{/etc/nginx/mcd/users\.htpasswd}{$d/ex/users.htpasswd};
    $text =~ s{/etc/nginx/mcd/gateway-ca\.(crt|key)}{$d/gwca.$1}g;
    $text =~ s{/etc/ssl/certs/ca-certificates\.crt}{$d/ca.crt};
    $text =~ s{listen 127\.0\.0\.1:8443}{listen 127.0.0.1:$W->{port2}};
    $text =~ s{mcd_decrypt_pass  127\.0\.0\.1:8443}{mcd_decrypt_pass  127.0.0.1:$W->{port2}}g;
    $text =~ s{listen (3128|8444);}{listen 127.0.0.1:$W->{port};}
        if $f eq 'decrypt';
    $text =~ s{/var/log/nginx/}{$d/ex/}g;
    $text =~ s{/run/nginx\.pid}{$d/ex/nginx.pid};
    $text =~ s{^user .*$}{}m;
    mcd_write_file("$d/ex/$f.conf", $text);
    my $r = McdTest::mcd_run_cmd($ENV{TEST_NGINX_BINARY}, '-t', '-p', "$d/ex/", '-c', "$d/ex/$f.conf");
    is $r->{exit}, 0, "$f.conf passes nginx -t" or diag $r->{err};
}



=== TEST 28: an encrypted CA key without mcd_ca_password_file: an error, never a prompt
--- mcd_client
my $main = <<'C';
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-enc.key;
C
my $r = nginx_no_prompt($main);
fails_with($r, qr{\[emerg\] CA key "\S+/gwca-enc\.key" is encrypted, but no "mcd_ca_password_file" is configured in \S+nginx\.conf:\d+},
           'mcd_ca_certificate_key', 'encrypted, no password file');
$r = nginx_no_prompt($main, '-g', 'daemon off; master_process off;');
ok $r->{exit} != 0 && $r->{exit} != 124, 'nginx refuses to start, at once'
    or diag "exit $r->{exit}: $r->{err}";



=== TEST 29: the traditional PEM encryption is refused the same way
--- mcd_client
my $r = nginx_no_prompt(<<'C');
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-trad.key;
C
fails_with($r, qr{\[emerg\] CA key "\S+/gwca-trad\.key" is encrypted, but no "mcd_ca_password_file"},
           'mcd_ca_certificate_key', 'traditional, no password file');



=== TEST 30: no pass phrase of the file decrypts the key
--- mcd_client
my $r = nginx_no_prompt(<<'C');
mcd_ca_password_file   $TEST_NGINX_MCD_WORLD/pass/wrong.txt;
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-enc.key;
C
fails_with($r, qr{\[emerg\] no pass phrase in "\S+/pass/wrong\.txt" decrypts CA key "\S+/gwca-enc\.key" in \S+nginx\.conf:\d+},
           'mcd_ca_certificate_key', 'no phrase matches');



=== TEST 31: an unreadable password file
--- mcd_client
my $r = nginx_no_prompt(<<'C');
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-enc.key;
mcd_ca_password_file   $TEST_NGINX_MCD_WORLD/pass/missing.txt;
C
fails_with($r, qr{\[emerg\] cannot open CA password file "\S+/pass/missing\.txt" \(2: No such file or directory\) in \S+nginx\.conf:\d+},
           'mcd_ca_password_file', 'unreadable password file');



=== TEST 32: a password file without a pass phrase
--- mcd_client
my $r = nginx_no_prompt(<<'C');
mcd_ca_password_file   $TEST_NGINX_MCD_WORLD/pass/empty.txt;
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-enc.key;
C
fails_with($r, qr{\[emerg\] no pass phrase in CA password file "\S+/pass/empty\.txt" in \S+nginx\.conf:\d+},
           'mcd_ca_password_file', 'empty password file');



=== TEST 33: the right pass phrase on the second line, the file after the key
--- mcd_client
my $r = nginx_no_prompt(<<'C');
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-enc.key;
mcd_ca_password_file   $TEST_NGINX_MCD_WORLD/pass/second.txt;
mcd_fqdn_filter p {
    decrypt .example.test;
}
C
is $r->{exit}, 0, 'nginx -t passes' or diag $r->{err};
unlike $r->{err}, qr/\[(emerg|alert|crit)\]/, 'no error';



=== TEST 34: traditional PEM, CRLF lines, the file before the key
--- mcd_client
my $r = nginx_no_prompt(<<'C');
mcd_ca_password_file   $TEST_NGINX_MCD_WORLD/pass/crlf.txt;
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-trad.key;
C
is $r->{exit}, 0, 'nginx -t passes' or diag $r->{err};



=== TEST 35: a CA certificate that has expired
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/dated/expired/ca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/dated/expired/ca.key;
--- nginx_t_error eval
qr{\[emerg\] CA certificate "\S+/expired/ca\.crt" expired on 2020-02-01 00:00:00 UTC in \S+nginx\.conf:\d+}



=== TEST 36: a CA certificate that is not valid yet
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/dated/future/ca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/dated/future/ca.key;
--- nginx_t_error eval
qr{\[emerg\] CA certificate "\S+/future/ca\.crt" is not valid before 2099-01-01 00:00:00 UTC in \S+nginx\.conf:\d+}



=== TEST 37: a CA certificate that expires within 30 days: a warning
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/dated/soon/ca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/dated/soon/ca.key;
--- nginx_t_like eval
qr{\[warn\] CA certificate "\S+/soon/ca\.crt" expires on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, in less than 30 days in \S+nginx\.conf:\d+}



=== TEST 38: a CA key that group or others may read: a warning
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca-open.key;
--- nginx_t_like eval
qr{\[warn\] CA key "\S+/gwca-open\.key" is accessible by group or others \(mode 0644\): it should be readable by its owner only in \S+nginx\.conf:\d+}



=== TEST 39: an unknown mcd_leaf_key type
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_leaf_key rsa:1024;
--- nginx_t_error eval
qr{\[emerg\] invalid value "rsa:1024" in "mcd_leaf_key": .* in \S+nginx\.conf:\d+}



=== TEST 40: mcd_leaf_key rsa:2048 and a certificate cache pass
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_leaf_key rsa:2048;
mcd_certificate_cache max=5000 valid=1h;



=== TEST 41: mcd_decrypt_pass that names no mcd_intercept listener
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_fqdn_filter p {
    decrypt .example.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_PORT3;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_decrypt_pass" 127\.0\.0\.1:\d+ names no http "listen \.\.\. ssl" with "mcd_intercept on" in \S+nginx\.conf:\d+}



=== TEST 42: a profile that can decrypt needs mcd_decrypt_pass in the server that uses it
--- nginx_t
mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_fqdn_filter p {
    default allow;
    decrypt .example.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter p;
    }
}
--- nginx_t_error eval
qr{\[emerg\] mcd_fqdn_filter "p" can decrypt, but the server of "mcd_proxy" in \S+nginx\.conf:\d+ has no "mcd_decrypt_pass"}



=== TEST 43: mcd_http_pass must name a plain http listener whose server has mcd_fqdn_filter
--- nginx_t
mcd_fqdn_filter p {
    allow .example.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter p;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_PORT3;
    }
}
http {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_http_pass" 127\.0\.0\.1:\d+ names no plain http "listen" whose server has "mcd_fqdn_filter" in \S+nginx\.conf:\d+}



=== TEST 44: mcd_http_pass is for the explicit front door
--- nginx_t
mcd_fqdn_filter p {
    allow .example.test;
}
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter p;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_PORT3;
    }
}
http {
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3;
        mcd_fqdn_filter p;
    }
}
--- nginx_t_error eval
qr{\[emerg\] "mcd_http_pass" is for "mcd_proxy explicit" in \S+nginx\.conf:\d+}



=== TEST 45: http: an unknown profile, a bad mcd_destination, a bad mcd_http_ports
--- mcd_client
for my $case (
    [ "http { server { listen 127.0.0.1:$W->{port3}; mcd_fqdn_filter nope; } }",
      qr{\[emerg\] unknown mcd_fqdn_filter "nope" in \S+nginx\.conf:\d+}, 'unknown profile' ],
    [ "http { mcd_destination allow 10.0.0.0/33; }",
      qr{\[emerg\] invalid value "10\.0\.0\.0/33" in "mcd_destination"}, 'bad CIDR' ],
    [ "http { server { listen 127.0.0.1:$W->{port3}; mcd_http_ports 0; } }",
      qr{\[emerg\] invalid port "0"}, 'bad port' ],
    [ "http { server { listen 127.0.0.1:$W->{port3}; mcd_fqdn_filter p; mcd_fqdn_filter p; } }",
      qr{\[emerg\] "mcd_fqdn_filter" directive is duplicate}, 'duplicate' ],
) {
    my $r = nginx_no_prompt("mcd_fqdn_filter p { allow .example.test; }\n$case->[0]\n");
    isnt $r->{exit}, 0, "$case->[2]: nginx -t fails";
    like $r->{err}, $case->[1], "$case->[2]: the message";
}
