# Self-test of t/compat: error_log / no_error_log (lines, eval string,
# regex, array), grep_error_log, log_level, access_log, repeat_each and
# the per-request slicing of the error log.
use strict; use warnings;
use FindBin;
BEGIN {
    unshift @INC, "$FindBin::Bin/../compat";
    $ENV{TEST_NGINX_SERVROOT}    //= "$FindBin::Bin/servroot";
    $ENV{TEST_NGINX_SERVER_PORT} //= 21984;
    $ENV{TEST_NGINX_LOAD_MODULES} = '';    # plain nginx only
}
use Test::Nginx::Socket;

repeat_each(2);
# per block and repetition: status + body + the log checks below
plan tests => repeat_each() * 31;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: error_log lines and no_error_log
--- config
    location = /t {
        root html;
        try_files /nope =404;
    }
    location = /missing { root html; }
--- request
GET /missing
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
open() "
missing" failed (2: No such file or directory)
--- no_error_log
[alert]
[crit]



=== TEST 2: error_log eval with a regex and an array
--- config
    location = /missing { root html; }
--- request
GET /missing
--- error_code: 404
--- response_body_like: 404
--- error_log eval
[qr/\[error\] \d+#\d+: \*\d+ open\(\)/, "No such file"]
--- no_error_log eval
qr/\[emerg\]/



=== TEST 3: grep_error_log
--- config
    location = /missing { root html; }
--- request
GET /missing
--- error_code: 404
--- response_body_like: 404
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out eval
qr{^open\(\) ".*/html/missing" failed\n$}



=== TEST 4: log_level per block (no debug lines at "warn")
--- config
    location = /t { return 200 "ok\n"; }
--- log_level: warn
--- request
GET /t
--- response_body
ok
--- no_error_log
[debug]
[info]



=== TEST 5: debug logging is on by default (Debian's nginx has --with-debug)
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- error_log
http request line: "GET /t HTTP/1.1"



=== TEST 6: access_log / no_access_log
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t?hello=1
--- response_body
ok
--- access_log
"GET /t?hello=1 HTTP/1.1" 200
--- no_access_log
POST



=== TEST 7: each request only sees its own part of the error log
--- config
    location = /a { return 200 "a\n"; }
    location = /b { return 200 "b\n"; }
--- request eval
["GET /a", "GET /b"]
--- response_body eval
["a\n", "b\n"]
--- grep_error_log eval
qr/http request line: "[^"]+"/
--- grep_error_log_out eval
qr{^http request line: "GET /[ab] HTTP/1.1"\n$}
