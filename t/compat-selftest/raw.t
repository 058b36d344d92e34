# Self-test of t/compat: raw_request (with packets and a middle delay),
# and answers that are not HTTP at all: a connection closed without a
# byte, and a TLS alert.  None of them may crash the runner.
use strict; use warnings;
use FindBin;
use File::Temp ();
my $CertDir;
BEGIN {
    unshift @INC, "$FindBin::Bin/../compat";
    $ENV{TEST_NGINX_SERVROOT}    //= "$FindBin::Bin/servroot";
    $ENV{TEST_NGINX_SERVER_PORT} //= 21984;
    $ENV{TEST_NGINX_TLS_PORT}    //= $ENV{TEST_NGINX_SERVER_PORT} + 2;
    $ENV{TEST_NGINX_LOAD_MODULES} = '';    # plain nginx only
    $CertDir = File::Temp::tempdir(CLEANUP => 1);
    $ENV{TEST_NGINX_CERT_DIR} = $CertDir;
    $ENV{COMPAT_SELFTEST_HAVE_CERT} = system(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
        . "-keyout $CertDir/key.pem -out $CertDir/cert.pem >/dev/null 2>&1") == 0
        ? 1 : 0;
}
use Test::Nginx::Socket 'no_plan';

my $http_port = server_port_for_client();
add_block_preprocessor(sub {
    my $block = shift;
    server_port_for_client(defined $block->tls_client
                           ? $ENV{TEST_NGINX_TLS_PORT} : $http_port);
});

my %seen;
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    $seen{ $block->name } = $body;
});

no_shuffle();
run_tests();

my ($closed) = grep { /TEST 3:/ } keys %seen;
ok(defined $closed && $seen{$closed} eq '', 'body check hook saw an empty body');
ok(!grep({ /TEST 4:/ } keys %seen), 'no body check hook with ignore_response');

__DATA__

=== TEST 1: raw_request in two packets with raw_request_middle_delay
--- config
    location = /t {
        return 200 "$request_method $uri $http_x_a\n";
    }
--- raw_request eval
["GET /t HTTP/1.1\r\nHost: local",
 "host\r\nX-A: split\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.05
--- response_body
GET /t split



=== TEST 2: raw_request with a bad request line gets a 400
--- config
    location = /t { return 200; }
--- raw_request eval
"GET /foo HTTP/1.1 EXTRA\r\nHost: localhost\r\n\r\n"
--- error_code: 400
--- response_body_like: 400 Bad Request



=== TEST 3: connection closed without a byte (return 444)
--- config
    location = /t { return 444; }
--- request
GET /t
--- error_code:
--- response_body:



=== TEST 4: same with ignore_response
--- config
    location = /t { return 444; }
--- request
GET /t
--- ignore_response
--- no_error_log
[error]



=== TEST 5: a TLS alert instead of an HTTP response
--- skip_eval: 3: !$ENV{COMPAT_SELFTEST_HAVE_CERT}
--- tls_client
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl;
        ssl_certificate     $TEST_NGINX_CERT_DIR/cert.pem;
        ssl_certificate_key $TEST_NGINX_CERT_DIR/key.pem;
        return 200 "tls\n";
    }
--- config
--- raw_request eval
"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"
--- error_code:
--- error_log eval
# [crit] up to nginx 1.23.3, [info] from 1.23.4 on (a client's error)
[qr/\[(?:crit|info)\] .*SSL_do_handshake\(\) failed/]



=== TEST 6: the TLS alert with ignore_response
--- skip_eval: 1: !$ENV{COMPAT_SELFTEST_HAVE_CERT}
--- tls_client
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl;
        ssl_certificate     $TEST_NGINX_CERT_DIR/cert.pem;
        ssl_certificate_key $TEST_NGINX_CERT_DIR/key.pem;
        return 200 "tls\n";
    }
--- config
--- raw_request eval
"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"
--- ignore_response
--- error_log
SSL_do_handshake() failed
