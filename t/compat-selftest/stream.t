# Self-test of t/compat: a dynamic module loaded via TEST_NGINX_LOAD_MODULES,
# a stream {} server in main_config, $TEST_NGINX_* expansion (including
# TEST_NGINX_RAND_PORT_N), and per-block server_port_for_client() from a
# block preprocessor to talk to a non-HTTP server with raw_request.
use strict; use warnings;
use FindBin;
BEGIN {
    unshift @INC, "$FindBin::Bin/../compat";
    $ENV{TEST_NGINX_SERVROOT}    //= "$FindBin::Bin/servroot";
    $ENV{TEST_NGINX_SERVER_PORT} //= 21984;
    $ENV{TEST_NGINX_STREAM_PORT} //= $ENV{TEST_NGINX_SERVER_PORT} + 1;
    # only plain nginx here: the project's own modules are not loaded, only
    # the stream module of the nginx under test (Debian's by default), if
    # it is not built in
    my $so = '/usr/lib/nginx/modules/ngx_stream_module.so';
    $so = '' unless -f $so;
    if (defined $ENV{TEST_NGINX_LOAD_MODULES}) {
        ($so) = grep { m{/ngx_stream_module\.so$} }
                split ' ', $ENV{TEST_NGINX_LOAD_MODULES};
    }
    $ENV{TEST_NGINX_LOAD_MODULES} = $so // '';
}
use Test::Nginx::Socket 'no_plan';

my $http_port = server_port_for_client();
add_block_preprocessor(sub {
    my $block = shift;
    server_port_for_client(defined $block->stream_client
                           ? $ENV{TEST_NGINX_STREAM_PORT} : $http_port);
});

my @bodies;
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return unless defined $block->expect_raw_body;
    push @bodies, $body;
    is($body, $block->expect_raw_body,
       $block->name . " - raw body via add_response_body_check");
});

no_shuffle();
run_tests();

is(scalar @bodies, 1, "the response body check hook ran once");

__DATA__

=== TEST 1: http -> stream (random port) -> http
--- main_config
    stream {
        server {
            listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            proxy_pass 127.0.0.1:$TEST_NGINX_SERVER_PORT;
        }
    }
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/back;
    }
    location = /back {
        add_header X-Back yes;
        return 200 "back via $TEST_NGINX_RAND_PORT_1\n";
    }
--- request
GET /t
--- response_headers
X-Back: yes
--- response_body
back via $TEST_NGINX_RAND_PORT_1
--- error_log
proxy 127.0.0.1:
--- no_error_log
[error]



=== TEST 2: raw_request to a non-HTTP server (no status line at all)
--- stream_client
--- main_config
    stream {
        server {
            listen 127.0.0.1:$TEST_NGINX_STREAM_PORT;
            return "hello\nworld\n";
        }
    }
--- config
--- raw_request eval
"ping\n"
--- error_code:
--- expect_raw_body
world
--- response_body
world



=== TEST 3: ignore_response: nothing is parsed or checked
--- stream_client
--- main_config
    stream {
        server {
            listen 127.0.0.1:$TEST_NGINX_STREAM_PORT;
            return "\x15\x03";
        }
    }
--- config
--- raw_request eval
"\x16\x03\x01\x00\x01\x01"
--- ignore_response
--- no_error_log
[crit]



=== TEST 4: back to HTTP on the main port
--- config
    location = /t { return 200 "port $server_port\n"; }
--- request
GET /t
--- response_body
port $TEST_NGINX_SERVER_PORT
