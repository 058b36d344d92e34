# Stock nginx defences that already work with the module (issue 7, item 8):
# limit_conn per client address keeps legitimate clients served while one
# address opens many slow connections (slowloris: connect, then send
# nothing or one byte).  The second block is the control: the same flood
# without limit_conn starves the legitimate clients of worker_connections.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

mcd_test_setup();

our $Slow = 200;            # slow connections from 127.0.0.2
our $Legit = 20;            # legitimate CONNECTs from 127.0.0.1, all at once
our $PerAddr = 32;          # limit_conn per client address

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts;

mcd_fqdn_filter egress {
    default deny;
    allow   origin.test;
}

stream {
    log_format mcd '$remote_addr $status action=$mcd_action '
                   'upstream=$mcd_upstream reason=$mcd_reason';
    access_log logs/mcd.log mcd;

    # every origin of the test world is on loopback (SPEC 4)
    mcd_destination allow 127.0.0.0/8 ::1;

    limit_conn_zone $binary_remote_addr zone=perip:1m;      # LIMIT

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        preread_timeout 10s;

        limit_conn perip 32;                                # LIMIT
        limit_conn_log_level warn;                          # LIMIT
    }
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    return if defined $block->main_config;
    my $conf = $MainConfig;
    $conf =~ s/^[^\n]*# LIMIT\n//mg if defined $block->no_limit;
    $block->set_value('main_config', $conf);
});

# open $Slow slow connections from 127.0.0.2, then $Legit CONNECTs from
# 127.0.0.1 at once; returns (legitimate answers received in full within
# $wait seconds, slow connections the gateway closed, slow connections made)

sub flood {
    my ($wait) = @_;
    local $SIG{PIPE} = 'IGNORE';

    my @slow;
    for my $i (1 .. $Slow) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $W->{port},
                                      LocalAddr => '127.0.0.2',
                                      Timeout => 2) or last;
        syswrite($s, 'C') if $i % 2;        # one byte of "CONNECT", or none
        push @slow, $s;
    }

    sleep 0.5;      # the gateway takes them in

    my (@legit, %got);
    my $req = "CONNECT origin.test:$W->{origin_http} HTTP/1.1\r\n"
            . "Host: origin.test\r\n\r\n"
            . "GET /index.html HTTP/1.0\r\nHost: origin.test\r\n\r\n";
    for (1 .. $Legit) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $W->{port},
                                      LocalAddr => '127.0.0.1',
                                      Timeout => 2) or next;
        syswrite($s, $req);
        push @legit, $s;
    }

    my $sel = IO::Select->new(@legit);
    my $deadline = time + $wait;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.1)) {
            my $n = sysread($s, my $b, 65536);
            if (!$n) {
                $sel->remove($s);
                next;
            }
            $got{fileno $s} .= $b;
        }
    }

    my $ok = grep {
        ($got{fileno $_} // '') =~ m{\AHTTP/1\.1 200 Connection established\r\n\r\nHTTP/1\.1 200 OK\r\n.*\r\n\r\nhello from origin\n\z}s
    } @legit;

    # the slow connections the gateway has closed (EOF or reset)

    my $closed = 0;
    $sel = IO::Select->new(@slow);
    $deadline = time + 1;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.1)) {
            my $n = sysread($s, my $b, 100);
            next if $n;
            $closed++;
            $sel->remove($s);
        }
    }

    close $_ for @slow, @legit;

    return ($ok, $closed, scalar @slow);
}

no_shuffle();
worker_connections(128);
run_tests();

__DATA__

=== TEST 1: limit_conn per client address: 200 slow connections from one address, 20 legitimate clients all served
--- mcd_client
my $t0 = time;
my ($ok, $closed, $made) = main::flood(10);
is $made, $main::Slow, "$main::Slow slow connections made";
is $ok, $main::Legit, "all $main::Legit legitimate clients served";
cmp_ok $made - $closed, '<=', $main::PerAddr, "no more than $main::PerAddr slow connections held";
cmp_ok $closed, '>=', $main::Slow - $main::PerAddr, 'the rest closed at once';
cmp_ok time - $t0, '<', 15, 'bounded';
my @served = mcd_wait_log('mcd.log', qr/^127\.0\.0\.1 200 action=allow /, $main::Legit);
is scalar(@served), $main::Legit, 'each legitimate tunnel logged';
--- error_log
limiting connections by zone "perip"
--- no_error_log
[alert]
[crit]
worker_connections are not enough



=== TEST 2: the control: without limit_conn the same flood starves legitimate clients
--- no_limit
--- mcd_client
my $t0 = time;
my ($ok, $closed, $made) = main::flood(3);
is $made, $main::Slow, "$main::Slow slow connections made";
cmp_ok $ok, '<', $main::Legit, "legitimate clients starved ($ok of $main::Legit served)";
cmp_ok time - $t0, '<', 15, 'bounded';
--- no_error_log
limiting connections
