# Self-test of t/compat (the clean-room Test::Nginx::Socket subset):
# plain requests, status codes, headers, bodies, arrays of requests,
# pipelining, chunked responses, request bodies and more_headers.
use strict; use warnings;
use FindBin;
BEGIN {
    unshift @INC, "$FindBin::Bin/../compat";    # always test our own copy
    $ENV{TEST_NGINX_SERVROOT}    //= "$FindBin::Bin/servroot";
    $ENV{TEST_NGINX_SERVER_PORT} //= 21984;
    $ENV{TEST_NGINX_LOAD_MODULES} = '';    # plain nginx only
}
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: return a body
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
--- no_error_log
[error]



=== TEST 2: status code, response headers
--- config
    location = /t {
        add_header X-Foo "bar baz" always;
        return 404;
    }
--- request
GET /t
--- error_code: 404
--- response_headers
X-Foo: bar baz
Content-Type: text/html
!X-Missing
--- response_headers_like
Server: ^nginx/\d+\.\d+\.\d+$



=== TEST 3: more_headers and request body (Content-Length is automatic)
--- config
    location = /t {
        return 200 "foo=$http_x_foo len=$content_length host=$host conn=$http_connection\n";
    }
--- more_headers
X-Foo: hi there
--- request
POST /t
hello world
--- response_body
foo=hi there len=11 host=localhost conn=close



=== TEST 4: comments before the request line, HTTP/1.0
--- config
    location = /t {
        return 200 "$server_protocol $request_method $args\n";
    }
--- request
# a comment
# another one
GET /t?a=1 HTTP/1.0
--- response_body
HTTP/1.0 GET a=1



=== TEST 5: response_body_like / error_code_like / raw headers
--- config
    location = /t {
        return 302 /elsewhere;
    }
--- request
GET /t
--- error_code_like: ^30[12]$
--- raw_response_headers_like: Location: http://localhost(?::\d+)?/elsewhere\r\n
--- response_body_like: 302 Found



=== TEST 6: response_body_unlike
--- config
    location = /t { return 200 "abc"; }
--- request
GET /t
--- response_body_unlike: ^xyz



=== TEST 7: an array of requests
--- config
    location = /a { return 200 "A\n"; }
    location = /b { return 201 "B\n"; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 201]
--- response_body eval
["A\n", "B\n"]



=== TEST 8: pipelined requests on one connection
--- config
    location = /a { return 200 "A:$http_connection\n"; }
    location = /b { return 200 "B:$http_connection\n"; }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- response_body eval
["A:keep-alive\n", "B:close\n"]



=== TEST 9: chunked response (sub_filter drops the Content-Length)
--- config
    location = /t {
        sub_filter_types *;
        sub_filter_once off;
        sub_filter 'a' 'b';
        return 200 "aaa\n";
    }
--- request
GET /t
--- response_headers
Transfer-Encoding: chunked
--- response_body
bbb



=== TEST 10: request split into packets, with a delay
--- config
    location = /t {
        client_body_buffer_size 1k;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo {
        return 200 "got $content_length bytes\n";
    }
--- request eval
[["POST /t\nhel", {value => "lo", delay_before => 0.1}]]
--- response_body
got 5 bytes



=== TEST 11: HEAD request (Content-Length without a body)
--- config
    location = /t { return 200 "12345"; }
--- request
HEAD /t
--- response_headers
Content-Length: 5
--- response_body



=== TEST 12: the default location serves html/
--- config
--- request
GET /
--- response_body_like: It works!



=== TEST 13: response_body eval with a regex
--- config
    location = /t { return 200 "x=42\n"; }
--- request
GET /t
--- response_body eval
qr/^x=\d+$/m



=== TEST 14: $ServerPort in expected response headers
--- config
    location = /t {
        add_header X-Port $server_port;
        return 200;
    }
--- request
GET /t
--- response_headers
X-Port: $ServerPort



=== TEST 15: chunked request body, sent as is (no Content-Length added)
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo {
        return 200 "got $content_length bytes\n";
    }
--- more_headers
Transfer-Encoding: chunked
--- request eval
"POST /t\r\n5\r\nhello\r\n0\r\n\r\n"
--- response_body
got 5 bytes



=== TEST 16: one more_headers entry per request
--- config
    location = /h { return 200 "n=$http_x_n\n"; }
--- request eval
["GET /h", "GET /h"]
--- more_headers eval
["X-N: 1", "X-N: 2"]
--- response_body eval
["n=1\n", "n=2\n"]



=== TEST 17: a Host header in more_headers replaces the default one
--- config
    location = /h { return 200 "host=$host conn=$http_connection\n"; }
--- more_headers
Host: foo.example
Connection: Close
--- request
GET /h
--- response_body
host=foo.example conn=Close



=== TEST 18: request_eval (deprecated form) and post_main_config
--- post_main_config
    worker_rlimit_nofile 1024;
--- config
    location = /t { return 200 "body=$request_body\n"; }
--- request_eval
"GET /t"
--- response_body
body=
