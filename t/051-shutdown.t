# Issue 7, item 3: a worker that shuts down (reload with
# worker_shutdown_timeout) while a CONNECT is being resolved or connected
# must not answer "200 Connection established" for a connect that never
# completed: explicit 503, reason "shutdown", or a close without a 200;
# never logged allow/200.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use McdFaults;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

$ENV{TEST_NGINX_F_DEST} = 'mcd_destination allow 127.0.0.0/8 ::1;';

mcd_write_file(mcd_file('faults-hosts'), "127.0.0.1 blackhole.test\n");

f_start_counter();
f_start_late_dns(4);     # answers 4 s after the query

our $MainConfig = <<'_EOC_';
worker_shutdown_timeout 1s;

mcd_hosts_file $TEST_NGINX_MCD_WORLD/faults-hosts;

mcd_fqdn_filter open {
    default allow;
}

stream {
    log_format mcd '$pid $status reason=$mcd_reason action=$mcd_action '
                   'fqdn=$mcd_fqdn port=$mcd_port ups=$upstream_addr';
    access_log logs/mcd.log mcd;

    resolver 127.0.0.1:$TEST_NGINX_F_DNS ipv6=off valid=1s;
    resolver_timeout 10s;

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_MCD_BLACKHOLE $TEST_NGINX_F_COUNTER;
        $TEST_NGINX_F_DEST
        mcd_connect_timeout 10s;
        mcd_idle_timeout 20s;
    }
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
});

# send the CONNECT, reload while it is pending, read what the client gets

sub pending_then_reload {
    my ($target) = @_;
    use Time::HiRes qw(sleep time);
    my $s = f_tunnel(port => $F->{gw}, target => $target);
    sleep 0.3;
    my $master = mcd_nginx_pid();
    kill 'HUP', $master;
    my $t0 = time;
    my $r = f_read_all($s, 8);
    $r->{after} = time - $t0;
    close $s;
    return $r;
}

master_on();
workers(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: d: reload during a pending connect: no 200 for a connect that never completed
--- timeout: 30
--- mcd_client
my $r = main::pending_then_reload("blackhole.test:$W->{blackhole}");
unlike $r->{data}, qr/^HTTP\/1\.1 200/, 'no "200 Connection established"';
like $r->{data}, qr{\A(\z|HTTP/1\.1 503 Service Unavailable\r\n.*\r\n\r\nshutdown: )}s,
    'a 503 with reason shutdown, or a close without an answer'
    or diag $r->{data};
cmp_ok $r->{after}, '<', 4, 'when the worker shuts down (worker_shutdown_timeout 1s)';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=blackhole\.test /, 1, 5);
ok $line, 'logged';
unlike $line // '', qr/ 200 reason=- action=allow /, 'not logged as allow/200';
like $line // '', qr/ 503 reason=shutdown /, 'logged 503 shutdown';



=== TEST 2: d: reload during a pending resolution: no 200, no upstream connect afterwards
--- timeout: 30
--- mcd_client
use Time::HiRes qw(sleep);
my $r = main::pending_then_reload("d.late.test:$F->{counter}");
unlike $r->{data}, qr/^HTTP\/1\.1 200/, 'no "200 Connection established"';
like $r->{data}, qr{\A(\z|HTTP/1\.1 503 Service Unavailable\r\n.*\r\n\r\nshutdown: )}s,
    'a 503 with reason shutdown, or a close without an answer'
    or diag $r->{data};
cmp_ok $r->{after}, '<', 3, 'when the worker shuts down, before the DNS answer (4 s)';
sleep 4 - $r->{after} if $r->{after} < 4;
is f_count(), 0, 'no upstream connect';
my ($line) = mcd_wait_log('mcd.log', qr/fqdn=d\.late\.test /, 1, 5);
ok $line, 'logged';
unlike $line // '', qr/ 200 reason=- action=allow /, 'not logged as allow/200';
like $line // '', qr/ 503 reason=shutdown /, 'logged 503 shutdown';
