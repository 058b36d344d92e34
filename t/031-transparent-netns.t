# Real transparent proxying: a client in a network namespace this test
# creates sends to a TEST-NET-1 address on port 443; iptables REDIRECTs it
# to the gateway (listening on the test's own veth address), so
# SO_ORIGINAL_DST, mcd_verify_destination and the destination guard on the
# original destination ("no_sni allow") are exercised for real.  The
# gateway's own connects to the test-net address are rejected by iptables
# (OUTPUT) whatever the code does.  Needs root, "ip netns" and iptables'
# nat table; without them the file is skipped and says why.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket;

our ($NS, $VR, $VC, @Undo);

our $TestNet = '192.0.2.10';        # TEST-NET-1: never routed anywhere real
our $NetA = '10.254.77.1';          # the test's own veth link
our $NetB = '10.254.77.2';

sub sh {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($? == 0, $out);
}

sub setup_netns {
    return 'not root' if $> != 0;
    return 'the test origin cannot listen on port 443' unless $W->{origin443};

    my $id = $$ % 100000;
    $NS = "mcdt$id";
    $VR = "mcdr$id";
    $VC = "mcdc$id";

    my ($ok, $out) = sh("ip netns add $NS");
    return "ip netns add refused: $out" unless $ok;
    push @Undo, "ip netns del $NS";

    for my $cmd (
        "ip link add $VR type veth peer name $VC",
        "ip link set $VC netns $NS",
        "ip addr add $NetA/30 dev $VR",
        "ip link set $VR up",
        "ip netns exec $NS ip link set lo up",
        "ip netns exec $NS ip addr add $NetB/30 dev $VC",
        "ip netns exec $NS ip link set $VC up",
        "ip netns exec $NS ip route add 192.0.2.0/24 via $NetA",
        "iptables -w -t nat -A PREROUTING -i $VR -p tcp -d $TestNet "
            . "--dport 443 -j REDIRECT --to-ports $W->{port}",
        # a safety net: whatever the code under test does, the gateway's
        # own connects to the test-net address fail here
        "iptables -w -A OUTPUT -p tcp -d $TestNet "
            . "-j REJECT --reject-with tcp-reset",
    ) {
        ($ok, $out) = sh($cmd);
        return "setup failed: $cmd: $out" unless $ok;
        if ($cmd =~ /^ip link add/) {
            push @Undo, "ip link del $VR";
        }
        if ($cmd =~ /^iptables -w -t nat -A (.*)/) {
            push @Undo, "iptables -w -t nat -D $1";
        }
        if ($cmd =~ /^iptables -w -A (.*)/) {
            push @Undo, "iptables -w -D $1";
        }
    }

    return undef;
}

END {
    for my $cmd (reverse @Undo) {
        system("$cmd >/dev/null 2>&1");
    }
}

my $why = setup_netns();

# the REDIRECT target: the gateway listens on the veth address too
$ENV{TEST_NGINX_MCD_NETA} = $NetA;

if ($why) {
    plan skip_all => "real transparent test skipped: $why";
} else {
    plan 'no_plan';
}

# a name that resolves to the test-net address as well as to loopback:
# allowed under mcd_verify_destination; the gateway connects to the first
# address (loopback), never to the client's destination

mcd_write_file(mcd_file('hosts-netns'), mcd_slurp(mcd_file('hosts'))
               . "127.0.0.1 testnet.test\n$TestNet testnet.test\n");

sub in_ns { return ('ip', 'netns', 'exec', $NS, @_); }

sub curl_ns {
    my ($name, $path) = @_;
    return McdTest::mcd_run_cmd(in_ns('curl', '-sS', '-v', '--max-time', '15',
        '--cacert', mcd_file('ca.crt'), '--resolve', "$name:443:$TestNet",
        "https://$name$path"));
}

mcd_test_setup();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: SO_ORIGINAL_DST is seen; the SNI is re-resolved, not the client's destination used
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-netns;
mcd_fqdn_filter tp {
    default deny;
    allow   origin.test testnet.test;
    deny    denied.test;
}
stream {
    log_format mcd '$status action=$mcd_action sni=$mcd_sni rule=$mcd_rule '
                   'upstream=$mcd_upstream addr=$mcd_upstream_addr '
                   'odst=$mcd_original_dst reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        listen $TEST_NGINX_MCD_NETA:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter tp;
        mcd_destination allow 127.0.0.0/8 ::1;
    }
}
--- mcd_client
my $r = main::curl_ns('origin.test', '/host');
is $r->{exit}, 0, 'curl from the namespace succeeded' or diag $r->{err};
is $r->{out}, "host=origin.test sni=origin.test\n", 'body from the origin';
like $r->{err}, qr/issuer: CN=McdTest Origin CA/, "the origin's own certificate";
my ($line) = mcd_wait_log('mcd.log', qr/sni=origin\.test /);
like $line, qr{^200 action=allow sni=origin\.test rule=origin\.test upstream=origin\.test:443 addr=127\.0\.0\.1:443 odst=192\.0\.2\.10:443 reason=-$},
     'original destination logged, re-resolved address used';

my $d = main::curl_ns('denied.test', '/');
isnt $d->{exit}, 0, 'denied name fails';
like $d->{err}, qr/alert access denied/, 'access_denied alert';
($line) = mcd_wait_log('mcd.log', qr/sni=denied\.test /);
like $line, qr{^403 action=deny .* odst=192\.0\.2\.10:443 reason=policy$}, 'deny logged';



=== TEST 2: mcd_verify_destination: an allowed SNI sent to an address it does not resolve to
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-netns;
mcd_fqdn_filter tp {
    default deny;
    allow   origin.test testnet.test;
}
stream {
    log_format mcd '$status action=$mcd_action sni=$mcd_sni '
                   'addr=$mcd_upstream_addr odst=$mcd_original_dst '
                   'reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        listen $TEST_NGINX_MCD_NETA:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter tp;
        mcd_destination allow 127.0.0.0/8 ::1;
        mcd_verify_destination on;
    }
}
--- mcd_client
my $r = main::curl_ns('origin.test', '/host');
isnt $r->{exit}, 0, 'refused';
like $r->{err}, qr/alert access denied/, 'access_denied alert';
my ($line) = mcd_wait_log('mcd.log', qr/sni=origin\.test /);
like $line, qr{^403 action=deny sni=origin\.test addr=- odst=192\.0\.2\.10:443 reason=dst_mismatch$}, 'dst_mismatch';

my $ok = main::curl_ns('testnet.test', '/host');
is $ok->{exit}, 0, 'a name that resolves to the destination passes' or diag $ok->{err};
is $ok->{out}, "host=testnet.test sni=testnet.test\n", 'body';
($line) = mcd_wait_log('mcd.log', qr/sni=testnet\.test /);
like $line, qr{^200 action=allow sni=testnet\.test addr=127\.0\.0\.1:443 odst=192\.0\.2\.10:443 reason=-$}, 'allowed';
--- error_log eval
qr{reason "dst_mismatch": original destination is not an address of the SNI}



=== TEST 3: no_sni allow: an original destination in a blocked class is refused (dst_blocked)
--- main_config
mcd_fqdn_filter tp_nosni {
    default deny;
    no_sni  allow;
}
stream {
    log_format mcd '$status action=$mcd_action sni=$mcd_sni rule=$mcd_rule '
                   'upstream=$mcd_upstream odst=$mcd_original_dst '
                   'reason=$mcd_reason';
    access_log logs/mcd.log mcd;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        listen $TEST_NGINX_MCD_NETA:$TEST_NGINX_MCD_PORT;
        mcd_proxy transparent;
        mcd_fqdn_filter tp_nosni;
        mcd_destination allow 127.0.0.0/8 ::1;
    }
}
--- mcd_client
# an IP literal in the URL: curl sends no SNI
my $r = McdTest::mcd_run_cmd(main::in_ns('curl', '-sS', '-v', '--max-time', '15',
                                         '-k', "https://$main::TestNet/"));
isnt $r->{exit}, 0, 'refused';
like $r->{err}, qr/alert access denied/, 'access_denied alert (192.0.2.10 is reserved)';
my ($line) = mcd_wait_log('mcd.log', qr/odst=192\.0\.2\.10:443 /);
like $line, qr{^403 action=deny sni=- rule=\S+ upstream=192\.0\.2\.10:443 odst=192\.0\.2\.10:443 reason=dst_blocked$},
     'deny, dst_blocked';
--- error_log eval
qr{\[warn\] [^\n]*reason "dst_blocked"[^\n]*192\.0\.2\.10[^\n]*reserved}
--- no_error_log
connect() to 192.0.2.10
connect() failed
