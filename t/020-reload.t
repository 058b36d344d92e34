# nginx -s reload with a changed profile: new CONNECTs follow the new
# policy, tunnels opened before the reload keep working until they finish.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use Test::Nginx::Socket 'no_plan';

mcd_test_setup();

master_on();
workers(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: reload changes the policy for new tunnels only
--- main_config
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts;
mcd_fqdn_filter egress {
    default deny;
    allow origin.test;   # POLICY
}
stream {
    log_format mcd '$pid $status $mcd_action $mcd_fqdn $mcd_rule $mcd_reason';
    access_log logs/mcd.log mcd;
    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ECHO $TEST_NGINX_MCD_ORIGIN;
        mcd_destination allow 127.0.0.0/8 ::1;
    }
}
--- mcd_client
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

sub tunnel {
    my ($target) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $W->{port}, Timeout => 5) or die "connect: $!";
    print $s "CONNECT $target HTTP/1.1\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) { sysread($s, my $b, 1) or last; $head .= $b; }
    return ($s, $head);
}

sub roundtrip {
    my ($s, $msg) = @_;
    syswrite($s, $msg);
    my $got = '';
    my $sel = IO::Select->new($s);
    while (length $got < length $msg) {
        last unless $sel->can_read(5);
        sysread($s, my $b, 100) or last;
        $got .= $b;
    }
    return $got;
}

my ($old, $head) = tunnel("origin.test:$W->{echo}");
is $head, "HTTP/1.1 200 Connection established\r\n\r\n", 'tunnel before reload';
is roundtrip($old, "one\n"), "one\n", 'echo before reload';

my $old_pid = mcd_nginx_pid();
my @workers_before = split ' ', `pgrep -P $old_pid`;

# change the policy and reload

my $conf = $Test::Nginx::Util::ConfFile;
my $text = mcd_slurp($conf);
$text =~ s/allow origin\.test;   # POLICY/deny origin.test; allow www.allowed.test;/
    or die "marker not found";
mcd_write_file($conf, $text);
kill 'HUP', $old_pid;

# wait for the new policy to answer

my $answer = '';
my $deadline = time + 15;
while (time < $deadline) {
    $answer = mcd_raw(send => "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n", timeout => 3);
    last if $answer =~ /^HTTP\/1\.1 403/;
    sleep 0.2;
}
like $answer, qr{^HTTP/1\.1 403 Forbidden\r\n}, 'new tunnel to origin.test denied after reload';

# an old worker may still accept a connection or two until it has closed
# its listening sockets (nginx does not promise otherwise): the new policy
# must win within a bounded time, not on the first try

my $r;
$deadline = time + 15;
while (1) {
    $r = mcd_curl_x(host => 'www.allowed.test', path => '/index.html');
    last if $r->{exit} == 0 || time > $deadline;
    sleep 0.2;
}
is $r->{exit}, 0, 'newly allowed name works' or diag $r->{err};
is $r->{out}, "hello from origin\n", 'body';

my @workers_after = split ' ', `pgrep -P $old_pid`;
my %before = map { $_ => 1 } @workers_before;
ok((grep { !$before{$_} } @workers_after), 'a new worker was started');
ok((grep { $before{$_} } @workers_after), 'the old worker is still alive for the open tunnel');

is roundtrip($old, "two\n"), "two\n", 'tunnel opened before the reload still relays';
is roundtrip($old, "three\n"), "three\n", 'and again';

shutdown($old, 1);
my $rest = '';
while (1) { my $n = sysread($old, my $b, 100); last unless $n; $rest .= $b; }
is $rest, "BYE\n", 'the old tunnel finishes normally';
close $old;

# the old worker leaves once its last tunnel is done

my $gone = 0;
$deadline = time + 15;
while (time < $deadline) {
    my %now = map { $_ => 1 } split ' ', `pgrep -P $old_pid`;
    if (!grep { $now{$_} } @workers_before) { $gone = 1; last; }
    sleep 0.2;
}
ok $gone, 'the old worker exited after its last tunnel';

my @lines = mcd_wait_log('mcd.log', qr/ 200 allow origin\.test origin\.test -$/);
ok @lines >= 1, 'the old tunnel was logged as a complete allow';
