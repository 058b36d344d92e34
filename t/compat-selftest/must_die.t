# Self-test of t/compat: --- must_die (nginx must refuse to start) with
# checks on what it logged, and a normal block running after it.
use strict; use warnings;
use FindBin;
BEGIN {
    unshift @INC, "$FindBin::Bin/../compat";
    $ENV{TEST_NGINX_SERVROOT}    //= "$FindBin::Bin/servroot";
    $ENV{TEST_NGINX_SERVER_PORT} //= 21984;
    $ENV{TEST_NGINX_LOAD_MODULES} = '';    # plain nginx only
}
use Test::Nginx::Socket tests => 11;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: bad directive arguments
--- config
    location = /t {
        return a b c;
    }
--- request
GET /t
--- must_die
--- error_log
invalid number of arguments in "return" directive
--- no_error_log
[error]



=== TEST 2: unknown directive, with the expected exit code
--- config
    location = /t {
        no_such_directive_here on;
    }
--- must_die: 1
--- error_log eval
qr/\[emerg\] .*unknown directive "no_such_directive_here"/



=== TEST 3: nginx starts again after a must_die block
--- config
    location = /t { return 200 "alive\n"; }
--- request
GET /t
--- response_body
alive



=== TEST 4: error in main_config
--- main_config
    worker_rlimit_nofile banana;
--- config
--- must_die
--- error_log
"worker_rlimit_nofile" directive invalid number



=== TEST 5: error in post_main_config
--- post_main_config
    bogus_post_main_directive on;
--- config
--- must_die
--- error_log
unknown directive "bogus_post_main_directive"
