# Plain-HTTP forward proxying: a request on the explicit port that is not
# CONNECT ("GET http://host/ HTTP/1.1") is handed, unconsumed, to the http
# server named by mcd_http_pass, where mcd_fqdn_filter decides on the
# request's host, the name is resolved once and every address judged by the
# destination guard; "proxy_pass http://$mcd_upstream_addr" connects to the
# address that was judged.  The same filter works in any http server.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

# the http server behind mcd_http_pass, and one that filters on its own
$ENV{TEST_NGINX_MCD_FORWARD} = $W->{port2};
$ENV{TEST_NGINX_MCD_DIRECT} = $W->{port3} + 2;
$ENV{TEST_NGINX_MCD_NOTHING} = $W->{port3} + 4;    # nothing listens here

mcd_write_file(mcd_file('hosts-forward'),
               mcd_slurp(mcd_file('hosts'))
               . "169.254.169.254 metadata.example.test\n"
               . "127.0.0.1 decrypted.example.test\n");

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-forward;

mcd_fqdn_filter web {
    default deny;
    allow   .example.test origin.test refused.test .dns.test 127.0.0.1
            x.example.test closed.test;
    deny    denied.test;
    decrypt decrypted.example.test;
}

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;

mcd_fqdn_filter strict {
    default deny;
    allow   origin.test;
}

stream {
    log_format mcd '$status mode=$mcd_mode action=$mcd_action '
                   'reason=$mcd_reason sent=$bytes_sent';
    access_log logs/mcd.log mcd;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter strict;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.0/8;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
    }

    server {
        # no mcd_http_pass: only CONNECT
        listen 127.0.0.1:$TEST_NGINX_MCD_CLOSED;
        mcd_proxy explicit;
        mcd_fqdn_filter strict;
    }
}
_EOC_

our $HttpConfig = <<'_EOC_';
    log_format fwd '$status mode=$mcd_mode action=$mcd_action '
                   'fqdn=$mcd_fqdn port=$mcd_port rule=$mcd_rule '
                   'profile=$mcd_profile up=$mcd_upstream '
                   'addr=$mcd_upstream_addr reason=$mcd_reason '
                   'decrypted=$mcd_decrypted';

    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 2s;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
        mcd_fqdn_filter web;
        mcd_http_ports 80 $TEST_NGINX_MCD_ORIGIN_HTTP $TEST_NGINX_MCD_FORWARD
                       $TEST_NGINX_MCD_NOTHING;
        mcd_destination deny 127.0.0.2;
        mcd_destination allow 127.0.0.0/8;
        access_log logs/fwd.log fwd;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        # chosen by the name in the request: it has no policy
        listen 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
        server_name nofilter.test;
        access_log logs/fwd.log fwd;

        location / {
            return 200 "reached a server without a policy\n";
        }
    }

    server {
        # transparent port-80 or reverse proxy: the filter on the Host
        listen 127.0.0.1:$TEST_NGINX_MCD_DIRECT;
        mcd_fqdn_filter web;
        mcd_http_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.1;
        access_log logs/fwd.log fwd;
        error_page 403 /blocked.html;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }

        location = /blocked.html {
            internal;
            default_type text/html;
            return 403 "<p>blocked by policy</p>\n";
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

sub via {
    my ($url, @args) = @_;
    my $r = mcd_curl('-sS', '-v', '--max-time', '15',
                     '-x', "http://127.0.0.1:$W->{port}",
                     '-w', '\n%{http_code}', @args, $url);
    $r->{code} = $1 if $r->{out} =~ s/\n(\d{3})\z//;
    return $r;
}

sub fwd_line {
    my ($re) = @_;
    my ($line) = mcd_wait_log('fwd.log', $re);
    return $line // '';
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: curl -x http://gateway http://allowed/ works end to end, decided and resolved on the http side
--- mcd_client
my $o = $W->{origin_http};
my $r = main::via("http://www.example.test:$o/host");
is $r->{code}, 200, 'status 200' or diag $r->{err};
is $r->{out}, "host=www.example.test\n", 'the origin saw the name as Host';
like main::fwd_line(qr/fqdn=www\.example\.test /),
    qr{^200 mode=http action=allow fqdn=www\.example\.test port=$o rule=\.example\.test profile=web up=www\.example\.test:$o addr=127\.0\.0\.1:$o reason=- decrypted=0$},
    'the http log line';
my ($line) = mcd_wait_log('mcd.log', qr/^200 /);
like $line // '', qr/^200 mode=explicit action=- reason=- sent=0$/,
    'the front door logged the hand-off, nothing sent by it';



=== TEST 2: the body arrives whole, the query string kept; a "decrypt" name is simply allowed in plain HTTP
--- mcd_client
my $o = $W->{origin_http};
my $r = main::via("http://origin.test:$o/big.bin?x=1", '-o', mcd_file('big.out'));
is $r->{code}, 200, 'status 200' or diag $r->{err};
is -s mcd_file('big.out'), $W->{big_size}, '10 MiB';
is mcd_slurp(mcd_file('big.out')), mcd_slurp(mcd_file('www/big.bin')), 'same bytes';
unlink mcd_file('big.out');
$r = main::via("http://decrypted.example.test:$o/index.html");
is $r->{out}, "hello from origin\n", 'decrypt verdict: forwarded';
like main::fwd_line(qr/fqdn=decrypted\.example\.test /), qr/^200 mode=http action=decrypt /,
    'the verdict is logged as it is';



=== TEST 3: a denied name: 403 with the reason, logged with client, name, rule and profile
--- mcd_client
my $r = main::via("http://denied.test:$W->{origin_http}/index.html");
is $r->{code}, 403, 'status 403';
is $r->{out}, "policy: denied by policy\n", 'the reason in the body';
like main::fwd_line(qr/fqdn=denied\.test /),
    qr{^403 mode=http action=deny fqdn=denied\.test port=\d+ rule=denied\.test profile=web up=denied\.test:\d+ addr=- reason=policy },
    'logged';
my @m = mcd_wait_log('error.log', qr/mcd http: refused "denied\.test:\d+" from 127\.0\.0\.1: 403, fqdn "denied\.test", rule "denied\.test", profile "web", reason "policy"/);
is scalar(@m), 1, 'one warn line';



=== TEST 4: not listed: the profile's default; a port outside mcd_http_ports; a scheme other than http
--- mcd_client
my $r = main::via("http://unlisted.test:$W->{origin_http}/");
is $r->{code}, 403, 'default deny';
like main::fwd_line(qr/fqdn=unlisted\.test /), qr/ action=deny .* rule=default .* reason=policy /, 'rule default';
$r = main::via("http://www.example.test:8081/");
is $r->{code}, 403, 'port 8081 refused';
is $r->{out}, "port: port not allowed by mcd_http_ports\n", 'reason port';
my $raw = mcd_raw(send => "GET https://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
                  until => qr/\n\z/);
like $raw, qr{\AHTTP/1\.1 400 }, 'https:// in a plain request: 400';
like $raw, qr{bad_request: only http:// requests are forwarded\n\z}, 'said why';



=== TEST 5: the destination guard: a configured deny, a built-in class, the gateway itself
--- mcd_client
my $r = main::via("http://refused.test:$W->{origin_http}/");
is $r->{code}, 403, '127.0.0.2 refused by the server\'s rule';
is $r->{out}, "dst_blocked: destination address not allowed\n", 'the address is not revealed';
my @m = mcd_wait_log('error.log', qr/reason "dst_blocked": 127\.0\.0\.2:\d+ refused by "deny 127\.0\.0\.2" \(\S+nginx\.conf:\d+\)/);
is scalar(@m), 1, 'the log names the address and the rule';
$r = main::via("http://metadata.example.test/latest/");
is $r->{code}, 403, 'link-local (cloud metadata) refused by the built-in rules';
@m = mcd_wait_log('error.log', qr/reason "dst_blocked": 169\.254\.169\.254:80 refused by "deny link-local" \(built-in\)/);
is scalar(@m), 1, 'built-in rule named';
$r = main::via("http://127.0.0.1:$W->{port2}/");
is $r->{code}, 403, 'the forward listener itself';
like main::fwd_line(qr/fqdn=127\.0\.0\.1 port=$W->{port2} /), qr/ reason=loop /, 'reason loop';



=== TEST 6: names from the resolver: an answer, a name that does not exist
--- mcd_client
my $o = $W->{origin_http};
my $r = main::via("http://www.dns.test:$o/host");
is $r->{code}, 200, 'resolved by DNS' or diag $r->{err};
is $r->{out}, "host=www.dns.test\n", 'body';
$r = main::via("http://delay.dns.test:$o/host");
is $r->{code}, 200, 'a slow answer' or diag $r->{err};
$r = main::via("http://nx.dns.test:$o/host");
is $r->{code}, 502, 'no such name: 502';
like $r->{out}, qr/^dns: name resolution failed/, 'reason dns';
like main::fwd_line(qr/fqdn=nx\.dns\.test /), qr/^502 mode=http action=allow .* reason=dns /,
    'the verdict stays allow, the reason is dns';
$r = main::via("http://slow.dns.test:$o/host");
is $r->{code}, 504, 'no answer: 504';
like main::fwd_line(qr/fqdn=slow\.dns\.test /), qr/^504 .* reason=timeout /, 'reason timeout';



=== TEST 7: a client that leaves while its name is resolved ends the request at once; the worker stays healthy
--- mcd_client
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $W->{port}, Timeout => 5)
    or die "connect: $!";
print $s "GET http://slow.leave.dns.test:$W->{origin_http}/ HTTP/1.1\r\nHost: slow.leave.dns.test\r\n\r\n";
sleep 1;    # the request reached the resolver (it gives up after 2 s)
close $s;
my $line = main::fwd_line(qr/fqdn=slow\.leave\.dns\.test /);
like $line, qr/^499 .* reason=client_closed /, '499 client_closed';
sleep 1.5;    # past the resolver's timeout: nothing may be called back
my $r = main::via("http://www.example.test:$W->{origin_http}/index.html");
is $r->{out}, "hello from origin\n", 'the next request works';
my @bad = grep { /\[(alert|crit|emerg)\]|signal/ } mcd_log_lines('error.log');
is scalar(@bad), 0, 'no alert, no crash' or diag join '', @bad;



=== TEST 8: keep-alive: each request on one connection is decided on its own host
--- mcd_client
my $o = $W->{origin_http};
my $raw = mcd_raw(send => "GET http://www.example.test:$o/host HTTP/1.1\r\nHost: www.example.test:$o\r\n\r\n"
                        . "GET http://denied.test:$o/host HTTP/1.1\r\nHost: denied.test:$o\r\n\r\n"
                        . "GET http://origin.test:$o/host HTTP/1.1\r\nHost: origin.test:$o\r\nConnection: close\r\n\r\n",
                  until => qr/host=origin\.test\n/);
my @status = $raw =~ m{^HTTP/1\.1 (\d{3})}mg;
is "@status", '200 403 200', 'allowed, denied, allowed';
like $raw, qr/host=www\.example\.test\n.*policy: denied by policy\n.*host=origin\.test\n/s, 'bodies in order';



=== TEST 9: the Host header does not choose the destination of an absolute-form request
--- mcd_client
my $o = $W->{origin_http};
my $raw = mcd_raw(send => "GET http://denied.test:$o/host HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
                  until => qr/\n\z/);
like $raw, qr{\AHTTP/1\.1 403 }, 'decided on the URI\'s host';
$raw = mcd_raw(send => "GET http://www.example.test:$o/host HTTP/1.1\r\nHost: denied.test\r\nConnection: close\r\n\r\n",
               until => qr/host=/);
like $raw, qr{host=www\.example\.test\n}, 'the upstream sees the authorized name';



=== TEST 10: a server chosen by name on the mcd_http_pass listener that has no policy refuses (no_profile)
--- mcd_client
my $r = main::via("http://nofilter.test/");
is $r->{code}, 403, 'status 403';
is $r->{out}, "no_profile: this server has no mcd_fqdn_filter\n", 'reason no_profile';
unlike $r->{out}, qr/reached a server/, 'its content is not served';



=== TEST 11: a name the filter does not take (a label over 63 bytes): 400 bad_name, the name escaped in the log
--- mcd_client
my $label = 'a' x 64;
my $r = main::via("http://$label.example.test:$W->{origin_http}/");
is $r->{code}, 400, 'status 400';
like $r->{out}, qr/^bad_name: /, 'reason bad_name';
like main::fwd_line(qr/reason=bad_name/), qr/^400 mode=http action=deny fqdn=- /, 'no fqdn';



=== TEST 12: without mcd_http_pass the explicit port answers 405; CONNECT still works next to mcd_http_pass
--- mcd_client
my $raw = mcd_raw(port => $W->{closed},
                  send => "GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n");
like $raw, qr{\AHTTP/1\.1 405 }, 'status 405';
$raw = mcd_http_get_via_tunnel(target => "origin.test:$W->{origin_http}", path => '/host');
like $raw, qr{\AHTTP/1\.1 200 Connection established\r\n\r\nHTTP/1\.1 200 }, 'CONNECT tunnel';



=== TEST 13: mcd_fqdn_filter in an ordinary server (transparent port 80, reverse proxy): the Host decides, error_page makes the block page
--- mcd_client
my $d = $ENV{TEST_NGINX_MCD_DIRECT};
my $o = $W->{origin_http};
my $r = mcd_curl('-sS', '--max-time', '10', '-H', "Host: www.example.test:$o",
                 '-w', '\n%{http_code}', "http://127.0.0.1:$d/host");
is $r->{out}, "host=www.example.test\n\n200", 'allowed by Host';
$r = mcd_curl('-sS', '--max-time', '10', '-H', "Host: denied.test:$o",
              '-w', '\n%{http_code}', "http://127.0.0.1:$d/host");
is $r->{out}, "<p>blocked by policy</p>\n\n403", 'the server\'s error_page';
like main::fwd_line(qr/fqdn=denied\.test port=$o rule=denied\.test profile=web up=denied\.test:$o addr=- reason=policy/),
    qr/^403 mode=http action=deny /, '$mcd_reason with error_page';
$r = mcd_curl('-sS', '--max-time', '10', '-H', "Host: refused.test:$o",
              '-w', '\n%{http_code}', "http://127.0.0.1:$d/host");
like $r->{out}, qr/\n403\z/, 'this server\'s guard allows only 127.0.0.1';



=== TEST 14: proxy_pass cannot connect to the address the gateway resolved: 502, reason connect
--- mcd_client
my $p = $ENV{TEST_NGINX_MCD_NOTHING};
my $r = main::via("http://closed.test:$p/");
is $r->{code}, 502, 'status 502';
like main::fwd_line(qr/fqdn=closed\.test /), qr/^502 mode=http action=allow .* addr=127\.0\.0\.1:$p reason=connect /,
    'the verdict stays allow, the reason is connect';
