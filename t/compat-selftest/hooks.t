# Self-test of t/compat: add_block_preprocessor (default sections),
# add_response_body_check with a custom section, user_files, init,
# skip_eval / skip_nginx, the Test::Nginx::Util package variables,
# env_to_nginx, master_on/workers, timeout + abort, shutdown,
# server_addr_for_client and cleanup handlers.
use strict; use warnings;
use FindBin;
BEGIN {
    unshift @INC, "$FindBin::Bin/../compat";
    $ENV{TEST_NGINX_SERVROOT}    //= "$FindBin::Bin/servroot";
    $ENV{TEST_NGINX_SERVER_PORT} //= 21984;
    $ENV{TEST_NGINX_LOAD_MODULES} = '';    # plain nginx only
}
use Test::Nginx::Socket 'no_plan';
use Test::Nginx::Util qw($ServRoot $ConfFile $PidFile);

$ENV{COMPAT_SELFTEST_GREETING} = 'hi from env';
env_to_nginx('COMPAT_SELFTEST_GREETING');
master_on();
workers(2);

our $InitRan = 0;
my $cleaned = 0;
add_cleanup_handler(sub { $cleaned++ });

add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->config && !defined $block->keep_nginx) {
        $block->set_value(config => <<'_EOC_');
    location = /default {
        return 200 "default config\n";
    }
_EOC_
    }
    $block->set_value(request => "GET /default\n") unless defined $block->request;
});

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $want = $block->resp_title;
    return unless defined $want;
    $want =~ s/^\s+|\s+$//g;
    my ($title) = ($body // '') =~ m{<title>(.*?)</title>};
    is_str($title, $want, $block->name . " - resp_title (req $repeated_req_idx)");
});

no_shuffle();
run_tests();

ok($InitRan, "--- init was evaluated");
is($ServRoot, $ENV{TEST_NGINX_SERVROOT}, '$ServRoot follows TEST_NGINX_SERVROOT');
is($Test::Nginx::Util::ErrLogFile, "$ServRoot/logs/error.log", '$ErrLogFile');
is($ConfFile, "$ServRoot/conf/nginx.conf", '$ConfFile');
is($Test::Nginx::Util::ServerPort, $ENV{TEST_NGINX_SERVER_PORT}, '$ServerPort');
is($Test::Nginx::Util::HtmlDir, "$ServRoot/html", '$HtmlDir');
ok(-s $PidFile, 'nginx is still running before END');
is($cleaned, 1, 'cleanup handlers ran at the end of run_tests');
my $conf = do { local (@ARGV, $/) = $ConfFile; <> };
like($conf, qr/^env COMPAT_SELFTEST_GREETING;$/m, 'env_to_nginx');
like($conf, qr/^master_process on;$/m, 'master_on');
like($conf, qr/^worker_processes\s+2;$/m, 'workers');
like($conf, qr{\bclient_body_temp_path \Q$ServRoot\E/client_body_temp;},
     'temp paths inside the server root');

__DATA__

=== TEST 1: config and request come from the block preprocessor
--- response_body
default config



=== TEST 2: add_response_body_check with a custom section
--- config
    location = /page {
        default_type text/html;
        return 200 "<html><head><title>My Title</title></head></html>";
    }
--- request
GET /page
--- resp_title
My Title



=== TEST 3: user_files, in sub-directories and with a modification time
--- user_files
>>> a.txt
Hello, world
>>> sub/dir/b.txt 199801171935.33
second file
--- config
    location /files/ {
        alias $TEST_NGINX_SERVER_ROOT/html/;
    }
--- request eval
["GET /files/a.txt", "GET /files/sub/dir/b.txt"]
--- response_body eval
["Hello, world\n", "second file\n"]
--- response_headers eval
["", "Last-Modified: Sat, 17 Jan 1998 19:35:33 GMT"]



=== TEST 4: user_files given as a Perl structure
--- user_files eval
[ ["x.html" => "<title>From eval</title>"] ]
--- config
--- request
GET /x.html
--- resp_title
From eval



=== TEST 5: init code, environment passed with env_to_nginx, master + 2 workers
--- init
$main::InitRan = 1;
--- config
    location = /t {
        return 200 "workers ok\n";
    }
--- request
GET /t
--- response_body
workers ok
--- error_log
start worker process



=== TEST 6: skip_eval skips the given number of subtests
--- skip_eval: 2: 1 + 1 == 2
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 7: skip_nginx (we are not older than 0.0.1)
--- skip_nginx: 2: < 0.0.1
--- config
    location = /t { return 200 "not skipped\n"; }
--- request
GET /t
--- response_body
not skipped



=== TEST 8: timeout + abort: a request nginx never answers
--- config
    location = /t { return 200 "ok\n"; }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n"
--- timeout: 300ms
--- abort
--- ignore_response



=== TEST 9: shutdown of the writing side once the request is sent
--- config
    location = /t { return 200 "ok\n"; }
--- raw_request eval
"GET /t HTTP/1.0\r\n\r\n"
--- shutdown
--- response_body
ok



=== TEST 10: server_addr_for_client
--- server_addr_for_client: 127.0.0.1
--- config
    location = /t { return 200 "$remote_addr\n"; }
--- request
GET /t
--- response_body
127.0.0.1



=== TEST 11: wait before the error log checks
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- wait: 0.1
--- response_body
ok
--- error_log
http finalize request



=== TEST 12: a block without --- config keeps the previous nginx
--- keep_nginx
--- request
GET /t
--- response_body
ok



=== TEST 13: shutdown_error_log is checked once nginx has been stopped
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- shutdown_error_log
exiting
--- no_shutdown_error_log
[alert]
