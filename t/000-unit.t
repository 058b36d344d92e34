# The pure C cores (FQDN normaliser/matcher, CONNECT parser, ClientHello
# parser, destination guard, certificate minting and cache): their unit
# tests are compiled and run here, so that "prove -r t" runs them with
# everything else. Set TEST_MCD_VALGRIND=1 to run them under valgrind as
# well.

use strict;
use warnings;
use FindBin;
use Test::More;
use File::Path qw(make_path);

my $root = "$FindBin::Bin/..";
chdir $root or die "chdir $root: $!";

my $cc = $ENV{CC} || 'cc';
my $out = 'build/unit';
make_path($out);

my @tests = sort glob('t/unit/test_*.c');
ok(@tests >= 3, 'unit tests found') or diag 'no t/unit/test_*.c';

for my $t (@tests) {
    my ($name) = $t =~ m{test_(\w+)\.c$};
    my $src = "src/mcd_$name.c";
    my $bin = "$out/test_$name";

    # the certificate core is on OpenSSL (its test also shakes hands)
    my $libs = $name eq 'cert' ? '-lssl -lcrypto' : '-lpcre2-8';

    my $cmd = "$cc -std=c99 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror "
            . "-Isrc $src $t $libs -o $bin 2>&1";
    my $log = `$cmd`;
    is($?, 0, "test_$name compiles without warnings") or diag $log;
    next if $?;

    my $res = `$bin 2>&1`;
    is($?, 0, "test_$name passes") or diag $res;
    note $res;

    if ($ENV{TEST_MCD_VALGRIND}) {
        my $vg = `valgrind -q --error-exitcode=99 --leak-check=full $bin 2>&1`;
        is($?, 0, "test_$name is clean under valgrind") or diag $vg;
    }
}

done_testing();
