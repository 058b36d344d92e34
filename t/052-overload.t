# Issue 7, item 5: when the worker has no connection left for the
# upstream (worker_connections exhausted), the client gets 503, reason
# "overload", not a 502 "connect" as if the origin had refused.
#
# The test fills the worker: it holds idle client connections until the
# gateway closes one it cannot take, frees exactly one slot, and sends a
# CONNECT on it: the client's connection takes the last slot, the
# upstream connect finds none.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use McdFaults;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

$ENV{TEST_NGINX_F_DEST} = 'mcd_destination allow 127.0.0.0/8 ::1;';

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts;

mcd_fqdn_filter open {
    default allow;
}

stream {
    log_format mcd '$status reason=$mcd_reason action=$mcd_action '
                   'fqdn=$mcd_fqdn port=$mcd_port ups=$upstream_addr';
    access_log logs/mcd.log mcd;

    server {
        listen 127.0.0.1:$TEST_NGINX_F_GW;
        mcd_proxy explicit;
        mcd_fqdn_filter open;
        mcd_connect_ports $TEST_NGINX_MCD_ECHO;
        $TEST_NGINX_F_DEST
        preread_timeout 30s;
    }
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig)
        unless defined $block->main_config;
});

# open idle connections until the gateway closes one at once (no slot
# left for it); returns the ones it kept

sub fill_worker {
    use Time::HiRes qw(sleep);
    my @hold;
    for (1 .. 64) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $F->{gw}, Timeout => 2)
            or last;
        my $sel = IO::Select->new($s);
        if ($sel->can_read(0.15)) {
            my $n = sysread($s, my $b, 100);
            if (!$n) {
                close $s;
                return \@hold;
            }
        }
        push @hold, $s;
    }
    close $_ for @hold;
    return undef;
}

no_shuffle();
worker_connections(16);
run_tests();

__DATA__

=== TEST 1: m: no connection left for the upstream: 503 overload, not 502 connect
--- mcd_client
use Time::HiRes qw(sleep);
sleep 0.5;      # the request of the harness is closed by now
my $hold = main::fill_worker();
ok $hold, 'the worker is full: the gateway closed a connection it could not take';
if ($hold) {
    diag scalar(@$hold) . ' idle connections fill the worker';
    close pop @$hold;
    sleep 0.5;  # the gateway sees the close and frees its slot
    my $got = mcd_raw(port => $F->{gw},
                      send => "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n",
                      timeout => 5);
    like $got, qr{\AHTTP/1\.1 503 Service Unavailable\r\n}, 'answered 503';
    like $got, qr{\r\n\r\noverload: }, 'reason overload';
    close $_ for @$hold;
    my ($line) = mcd_wait_log('mcd.log', qr/fqdn=origin\.test /, 1, 3);
    like $line // '', qr/^503 reason=overload /, 'logged 503 overload';
}
--- error_log
worker_connections are not enough
