# Decryption, explicit mode: a "decrypt" verdict answers 200 once the name
# resolved, hands the connection in-process to the http "listen ... ssl"
# server with mcd_intercept (mcd_decrypt_pass), which presents a leaf the
# gateway CA minted for the authorized name and re-encrypts to the address
# the front door resolved, verifying the origin.  A decryption exception
# (allow under decrypt) still shows the origin's own certificate.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

$ENV{TEST_NGINX_MCD_INTERCEPT} = $W->{port2};

# a second gateway listener (nothing else uses the "closed" port here) and
# its interception server with HTTP/2
$ENV{TEST_NGINX_MCD_H2} = $W->{port3} + 1;

# a gateway whose interception server has a destination guard of its own
$ENV{TEST_NGINX_MCD_GUARDED} = $W->{port3} + 2;
$ENV{TEST_NGINX_MCD_GUARDED_HTTP} = $W->{port3} + 3;

# a name the origin's certificate does not carry
mcd_write_file(mcd_file('hosts-decrypt'),
               mcd_slurp(mcd_file('hosts')) . "127.0.0.1 wrongname.test\n");

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-decrypt;

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;

mcd_fqdn_filter egress {
    default deny;
    decrypt .example.test wrongname.test;
    allow   bank.example.test origin.test;
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
        listen 127.0.0.1:$TEST_NGINX_MCD_GUARDED;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN;
        mcd_destination allow 127.0.0.0/8 ::1;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_GUARDED_HTTP;
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
                         'fqdn=$mcd_fqdn up=$mcd_upstream_addr '
                         'rule=$mcd_rule reason=$mcd_reason';

    log_format vars 'mode=$mcd_mode action=$mcd_action port=$mcd_port '
                    'profile=$mcd_profile up=$mcd_upstream sni=$mcd_sni '
                    'alpn=$mcd_alpn ech=$mcd_ech odst=$mcd_original_dst '
                    'sent=$body_bytes_sent';

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT ssl;
        mcd_intercept on;
        access_log logs/decrypted.log decrypted;
        access_log logs/vars.log vars;

        location / {
            proxy_pass https://$mcd_upstream_addr;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TEST_NGINX_MCD_WORLD/ca.crt;
            proxy_ssl_server_name on;
            proxy_ssl_name $mcd_fqdn;
            proxy_set_header Host $host;
        }
    }

    server {
        # the http side judges the address the front door resolved too
        listen 127.0.0.1:$TEST_NGINX_MCD_GUARDED_HTTP ssl;
        mcd_intercept on;
        mcd_destination deny 127.0.0.1;
        mcd_destination allow 127.0.0.0/8;
        access_log logs/decrypted.log decrypted;

        location / {
            proxy_pass https://$mcd_upstream_addr;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TEST_NGINX_MCD_WORLD/ca.crt;
            proxy_ssl_server_name on;
            proxy_ssl_name $mcd_fqdn;
        }
    }

    server {
        # the same with HTTP/2 to the client (ALPN h2)
        listen 127.0.0.1:$TEST_NGINX_MCD_H2 ssl http2;
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
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
    $block->set_value('http_config', $HttpConfig)
        unless defined $block->http_config;
});

sub via_gateway {
    my ($host, $cacert) = @_;
    return mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', $cacert,
                    '-x', "http://127.0.0.1:$W->{port}",
                    '-w', '\n%{http_connect} %{http_code}',
                    "https://$host:$W->{origin}/index.html");
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: decrypt: the client sees a certificate of the gateway CA for the name, and the origin's exact body
--- mcd_client
my $r = main::via_gateway('www.example.test', mcd_file('gwca.crt'));
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
like $r->{out}, qr/\Ahello from origin\n\n200 200\z/, '200, then the body';
like $r->{err}, qr/subject: CN=www\.example\.test/, 'leaf for the name';
like $r->{err}, qr/subjectAltName: host "www\.example\.test" matched/, 'SAN matched';
like $r->{err}, qr/issuer: CN=McdTest Gateway CA/i, 'issued by the gateway CA';
my ($line) = mcd_wait_log('decrypted.log', qr/decrypted=1/);
like $line // '', qr{^www\.example\.test 200 decrypted=1 fqdn=www\.example\.test up=127\.0\.0\.1:\d+ rule=\.example\.test reason=-$},
    'the http side logged the decision';



=== TEST 2: the second request for the name: the certificate comes from the worker's cache
--- mcd_client
for (1 .. 2) {
    my $r = main::via_gateway('example.test', mcd_file('gwca.crt'));
    is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
}
my @m = mcd_wait_log('error.log', qr/certificate for "example\.test"/, 2, 10);
is scalar(@m), 2, 'two handshakes';
like $m[0] // '', qr/minted/, 'the first minted';
like $m[1] // '', qr/from the cache/, 'the second from the cache';



=== TEST 3: a decryption exception shows the origin's own certificate
--- mcd_client
my $r = main::via_gateway('bank.example.test', mcd_file('ca.crt'));
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
like $r->{out}, qr/\Ahello from origin\n\n200 200\z/, 'body';
like $r->{err}, qr/issuer: CN=McdTest Origin CA/, 'the origin CA, not the gateway';



=== TEST 4: the gateway CA is not trusted for the origin's own name through a direct connection to the interception port
--- mcd_client
my $r = mcd_curl('-sS', '-v', '--max-time', '10', '--cacert', mcd_file('gwca.crt'),
                 '--resolve', "www.example.test:$ENV{TEST_NGINX_MCD_INTERCEPT}:127.0.0.1",
                 "https://www.example.test:$ENV{TEST_NGINX_MCD_INTERCEPT}/index.html");
isnt $r->{exit}, 0, 'the handshake fails';
my @m = mcd_wait_log('error.log', qr/refused a TLS handshake that the front door did not hand over/, 1, 5);
is scalar(@m), 1, 'logged';



=== TEST 5: transparent: the ClientHello goes to the interception server untouched, the name it was decided on gets the certificate
--- mcd_client
SKIP: {
    skip 'the origin cannot listen on port 443 (not root)', 4 unless $W->{origin443};
    my $r = mcd_curl('-sS', '-v', '--max-time', '20',
                     '--cacert', mcd_file('gwca.crt'),
                     '--connect-to', "www.example.test:443:127.0.0.1:$W->{port3}",
                     'https://www.example.test/index.html');
    is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
    is $r->{out}, "hello from origin\n", 'the origin\'s body';
    like $r->{err}, qr/issuer: CN=McdTest Gateway CA/i, 'issued by the gateway CA';
    my ($line) = mcd_wait_log('decrypted.log', qr/up=127\.0\.0\.1:443 /);
    like $line // '', qr/^www\.example\.test 200 decrypted=1 /, 'logged by the http side';
}



=== TEST 6: a TLS server name other than the authorized one fails the handshake (sni_mismatch)
--- mcd_client
my $r = McdTest::mcd_run_cmd('sh', '-c', 'exec timeout 10 openssl s_client -brief '
                    . "-proxy 127.0.0.1:$W->{port} "
                    . "-connect www.example.test:$W->{origin} "
                    . '-servername evil.example.test -CAfile ' . mcd_file('gwca.crt')
                    . ' </dev/null');
isnt $r->{exit}, 0, 'no handshake' or diag $r->{out} . $r->{err};
my @m = mcd_wait_log('error.log', qr/refused "www\.example\.test": the TLS server name differs .* reason "sni_mismatch"/, 1, 5);
is scalar(@m), 1, 'logged with the reason';



=== TEST 7: a request whose Host is not the authorized name: 421 host_mismatch; with a port or a trailing dot it is the same name
--- mcd_client
my $r = mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', mcd_file('gwca.crt'),
                 '-x', "http://127.0.0.1:$W->{port}", '-H', 'Host: other.example.test',
                 '-w', '\n%{http_code}',
                 "https://www.example.test:$W->{origin}/index.html");
like $r->{out}, qr/\n421\z/, 'answered 421' or diag $r->{err};
unlike $r->{out}, qr/hello from origin/, 'nothing from the origin';
my ($line) = mcd_wait_log('decrypted.log', qr/^other\.example\.test /);
like $line // '', qr/ 421 .* reason=host_mismatch$/, 'logged with the reason';
my @m = mcd_wait_log('error.log', qr/refused a request for "other\.example\.test" on a connection authorized for "www\.example\.test", reason "host_mismatch"/);
is scalar(@m), 1, 'one warn line';
for my $host ("www.example.test:$W->{origin}", 'WWW.example.test.') {
    $r = mcd_curl('-sS', '--max-time', '20', '--cacert', mcd_file('gwca.crt'),
                  '-x', "http://127.0.0.1:$W->{port}", '-H', "Host: $host",
                  "https://www.example.test:$W->{origin}/index.html");
    is $r->{out}, "hello from origin\n", "Host: $host is the authorized name";
}



=== TEST 8: an upstream whose certificate does not verify (not for the name): 502, none of its content, the verification error in the log
--- mcd_client
my $r = main::via_gateway('wrongname.test', mcd_file('gwca.crt'));
like $r->{out}, qr/\n200 502\z/, 'the tunnel opened, the request answered 502' or diag $r->{err};
unlike $r->{out}, qr/hello from origin/, 'nothing from the origin';
like $r->{err}, qr/issuer: CN=McdTest Gateway CA/i, 'the client saw the minted certificate';
my @m = mcd_wait_log('error.log', qr/upstream SSL certificate does not match "wrongname\.test"/, 1, 5);
is scalar(@m), 1, 'the verification error is logged';
my ($line) = mcd_wait_log('decrypted.log', qr/^wrongname\.test /);
like $line // '', qr/^wrongname\.test 502 decrypted=1 .* reason=upstream_cert$/, '$mcd_reason is upstream_cert';
@m = mcd_wait_log('error.log', qr/the certificate of "wrongname\.test" at 127\.0\.0\.1:\d+ is not for "wrongname\.test", reason "upstream_cert"/, 1, 5);
is scalar(@m), 1, 'the module names the reason';



=== TEST 9: HTTP/2 to the client through the interception (ALPN h2), the origin's exact body
--- mcd_client
my $r = mcd_curl('-sS', '-v', '--http2', '--max-time', '20',
                 '--cacert', mcd_file('gwca.crt'),
                 '-x', "http://127.0.0.1:$W->{closed}",
                 '-w', '\n%{http_version}',
                 "https://www.example.test:$W->{origin}/index.html");
is $r->{exit}, 0, 'curl succeeded' or diag $r->{err};
is $r->{out}, "hello from origin\n\n2", 'HTTP/2, the body';
like $r->{err}, qr/ALPN: server accepted h2/, 'h2 negotiated';
like $r->{err}, qr/issuer: CN=McdTest Gateway CA/i, 'the minted certificate';



=== TEST 10: every $mcd_* variable of the decision in the http log, explicit and transparent; the stream side logs the hand-off
--- mcd_client
my $r = main::via_gateway('www.example.test', mcd_file('gwca.crt'));
is $r->{exit}, 0, 'explicit: curl succeeded' or diag $r->{err};
my ($line) = mcd_wait_log('vars.log', qr/^mode=explicit /);
like $line // '', qr{^mode=explicit action=decrypt port=$W->{origin} profile=egress up=www\.example\.test:$W->{origin} sni=www\.example\.test alpn=- ech=0 odst=- sent=18$},
    'explicit: the decision (the SNI from the interception handshake; the front door saw no ALPN), only the body counted as sent';
($line) = mcd_wait_log('mcd.log', qr/^200 action=decrypt fqdn=www\.example\.test/);
ok defined $line, 'the stream access log has the hand-off';
SKIP: {
    skip 'the origin cannot listen on port 443 (not root)', 2 unless $W->{origin443};
    $r = mcd_curl('-sS', '--max-time', '20', '--cacert', mcd_file('gwca.crt'),
                  '--connect-to', "www.example.test:443:127.0.0.1:$W->{port3}",
                  'https://www.example.test/index.html');
    is $r->{out}, "hello from origin\n", 'transparent: body';
    ($line) = mcd_wait_log('vars.log', qr/^mode=transparent /);
    like $line // '', qr{^mode=transparent action=decrypt port=443 profile=egress up=www\.example\.test:443 sni=www\.example\.test alpn=\S+ ech=0 odst=- sent=18$},
        'transparent: the decision';
}



=== TEST 11: an interception server's own mcd_destination judges the address the front door resolved
--- mcd_client
my $r = mcd_curl('-sS', '-v', '--max-time', '20', '--cacert', mcd_file('gwca.crt'),
                 '-x', "http://127.0.0.1:$ENV{TEST_NGINX_MCD_GUARDED}",
                 '-w', '\n%{http_connect} %{http_code}',
                 "https://example.test:$W->{origin}/index.html");
like $r->{out}, qr/\A\Qdst_blocked: destination address not allowed\E\n\n200 403\z/,
    'the tunnel opened (the stream side allows loopback), the request refused'
    or diag $r->{err};
my ($line) = mcd_wait_log('decrypted.log', qr/^example\.test 403 /);
like $line // '', qr/ reason=dst_blocked$/, 'reason dst_blocked';
my @m = mcd_wait_log('error.log', qr/reason "dst_blocked": 127\.0\.0\.1:\d+ refused by "deny 127\.0\.0\.1"/, 1, 5);
is scalar(@m), 1, 'the rule is named';
