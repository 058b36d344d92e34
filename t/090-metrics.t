# Metrics (issue 10, item 3): "mcd_status;" in an http location answers the
# Prometheus text format 0.0.4, counters summed over all workers (shared
# memory) and kept across reloads, not across a restart.
#
# The endpoint is read by a small parser of this file that also validates
# the format strictly: every family has HELP and TYPE, TYPE before the
# family's samples, a family's lines together, counters named *_total and
# never negative, label values escaped as \\ \" \n and nothing else, no
# duplicate series, the body ends with a newline.  TEST 1 checks the parser
# itself on crafted samples.
#
# Each block starts a fresh nginx (Test::Nginx restarts it): every counter
# is 0 at its start.  Then known traffic; every series of the interface's
# families must have moved by exactly the expected amount and every other
# series not at all.  worker_processes 2 with "reuseport" listeners (the
# kernel spreads connections by their 4-tuple): the access logs carry $pid
# and each block checks that both workers took part, so a count that is
# exact proves the sum over workers.  Scrapes are repeated until both
# workers have answered one, and they must all agree.
#
#   TEST 1  the parser on crafted samples; a fresh start: all zero, the
#           families without labels listed with 0
#   TEST 2  explicit: decisions (allow; deny policy, port, bad_name,
#           dst_blocked, loop), bytes each way through the TCP echo
#           (pipelined bytes included, the CONNECT head and the 200 not),
#           upstream failures dns/connect/timeout/upstream_reset,
#           destination_refused dst_blocked/loop (not for an address that
#           was only skipped)
#   TEST 3  transparent: decisions (allow; deny policy, no_sni, bad_name,
#           dst_blocked), bytes of raw ClientHellos and the origin's flight
#   TEST 4  plain HTTP (mcd_http_pass, and an http server of its own):
#           one mode=http decision per request, keep-alive included; no
#           stream decision for the hand-off, no tunnel bytes; a profile
#           variable from a request header that names no profile
#           (no_profile) with a value that needs escaping
#   TEST 5  mcd_tunnels_active up while tunnels are held open (both modes),
#           back to 0 after
#   TEST 6  decryption with "mcd_certificate_cache max=2" (per worker):
#           3 names, revisits, minted/hits/misses/evictions as an LRU per
#           worker gives them for the worker each request reached;
#           upstream_cert through a wrong-name origin; no tunnel bytes
#   TEST 7  nginx -s reload (HUP, a profile and a listener added): values
#           kept, a tunnel of an old worker still counted (gauge, bytes)
#           after it, the new workers add to the same counters
#   TEST 8  what can reach a label from the configuration: a profile name
#           with " \ and a newline (nginx's quoted strings have those
#           escapes) comes back exactly; two profiles whose names differ
#           only after 64 bytes are two series with their whole names
#   TEST 9  "mcd_metrics off": traffic counts nothing, the endpoint still
#           answers a valid exposition of zeros
#
# Where the interface leaves a choice open the tests say so:
#   - an allowed connection whose upstream then fails (dns, connect,
#     timeout, upstream_reset) is one decision with action "allow"; its
#     reason label may be "" (counted when decided) or the failure reason
#     (counted with $mcd_reason); the first block that sees one fixes the
#     choice for the whole file;
#   - a no_profile decision's profile label may be the variable's value or
#     anything else (a client-chosen value is a cardinality risk); the sum
#     over that label is exact, and where the value is the label it must
#     come back unescaped exactly.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use McdTest;
use McdFaults;
use Test::Nginx::Socket 'no_plan';
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);

mcd_test_setup();

sub note { Test::More::note(@_) }
sub explain { return Test::More::explain(@_) }

my $base = $ENV{TEST_NGINX_SERVER_PORT};

# ports of this file: the gateway (explicit, world "port"), the plain-HTTP
# forward server (port2), transparent (port3) and these
$ENV{TEST_NGINX_MCD_FORWARD}   = $W->{port2};
$ENV{TEST_NGINX_MCD_INTERCEPT} = $base + 10;
$ENV{TEST_NGINX_MCD_GROUPS}    = $base + 11;
$ENV{TEST_NGINX_MCD_EXTRA}     = $base + 12;
$ENV{TEST_NGINX_MCD_STATUS}    = $base + 13;
$ENV{TEST_NGINX_MCD_LONG1}     = $base + 14;
$ENV{TEST_NGINX_MCD_LONG2}     = $base + 16;

our $Status = $ENV{TEST_NGINX_MCD_STATUS};

mcd_write_file(mcd_file('hosts-metrics'),
               mcd_slurp(mcd_file('hosts'))
               . "127.0.0.1 wrongname.test rst.test extra.test\n");

f_start_rst_origin();

our $MainConfig = <<'_EOC_';
mcd_hosts_file $TEST_NGINX_MCD_WORLD/hosts-metrics;

mcd_ca_certificate     $TEST_NGINX_MCD_WORLD/gwca.crt;
mcd_ca_certificate_key $TEST_NGINX_MCD_WORLD/gwca.key;
mcd_certificate_cache  max=2;

mcd_fqdn_filter egress {
    default deny;
    allow   origin.test multi.test refused.test closed.test blackhole.test
            rst.test .dns.test 127.0.0.1;
    deny    denied.test;
    decrypt .example.test wrongname.test;
}

mcd_fqdn_filter tp {
    default deny;
    allow   origin.test refused.test;
    deny    denied.test;
}

mcd_fqdn_filter web {
    default deny;
    allow   origin.test refused.test closed.test .dns.test;
    deny    denied.test;
}

#MAIN-EXTRA

stream {
    log_format mcd '$pid $server_port $remote_port $status '
                   'mode=$mcd_mode profile=$mcd_profile action=$mcd_action '
                   'fqdn=$mcd_fqdn reason=$mcd_reason '
                   'sent=$bytes_sent received=$bytes_received';
    access_log logs/mcd.log mcd;

    resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
    resolver_timeout 1s;

    # every origin of the test world is on loopback (SPEC 4); 127.0.0.2
    # (refused.test) is refused by the guard
    mcd_destination deny  127.0.0.2;
    mcd_destination allow 127.0.0.0/8;

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT reuseport;
        mcd_proxy explicit;
        mcd_fqdn_filter egress;
        mcd_connect_ports $TEST_NGINX_MCD_ORIGIN $TEST_NGINX_MCD_ECHO
                          $TEST_NGINX_MCD_CLOSED $TEST_NGINX_MCD_BLACKHOLE
                          $TEST_NGINX_MCD_PORT $TEST_NGINX_F_RST;
        mcd_connect_timeout 1s;
        mcd_decrypt_pass 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT;
        mcd_http_pass 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
        preread_timeout 5s;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_PORT3 reuseport;
        mcd_proxy transparent;
        mcd_fqdn_filter tp;
        preread_timeout 5s;
    }

    #STREAM-EXTRA
}
_EOC_

our $HttpConfig = <<'_EOC_';
    log_format mx '$pid $server_port $status mode=$mcd_mode '
                  'profile=$mcd_profile action=$mcd_action fqdn=$mcd_fqdn '
                  'reason=$mcd_reason uri=$request_uri';
    log_format scrape '$pid $status $request_uri';

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_STATUS reuseport;
        access_log logs/scrape.log scrape;

        location = /metrics {
            mcd_status;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_INTERCEPT ssl;
        mcd_intercept on;
        access_log logs/http.log mx;

        location / {
            proxy_pass https://$mcd_upstream_addr;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TEST_NGINX_MCD_WORLD/ca.crt;
            proxy_ssl_server_name on;
            proxy_ssl_name $mcd_fqdn;
            proxy_set_header Host $host;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_MCD_FORWARD;
        mcd_fqdn_filter web;
        mcd_http_ports $TEST_NGINX_MCD_ORIGIN_HTTP $TEST_NGINX_MCD_CLOSED;
        mcd_destination deny  127.0.0.2;
        mcd_destination allow 127.0.0.0/8;
        resolver 127.0.0.1:$TEST_NGINX_MCD_DNS valid=1s;
        resolver_timeout 1s;
        access_log logs/http.log mx;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
        }
    }

    server {
        # the profile comes from a request header (a value that names no
        # profile is refused: no_profile)
        listen 127.0.0.1:$TEST_NGINX_MCD_GROUPS reuseport;
        mcd_fqdn_filter $http_x_group;
        mcd_http_ports $TEST_NGINX_MCD_ORIGIN_HTTP;
        mcd_destination allow 127.0.0.0/8;
        access_log logs/http.log mx;

        location / {
            proxy_pass http://$mcd_upstream_addr;
            proxy_set_header Host $host;
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


# ---------------------------------------------------------------------
# The Prometheus text format 0.0.4, parsed and validated strictly.
#
# Returns { families => { NAME => { type, help } }, series => { KEY =>
# VALUE }, samples => [ { name, labels => {..}, value, key } ], errors =>
# [ ... ] }.  KEY is the canonical series: name{a="x",b="y"} with the
# labels sorted and the values escaped again.

our $NameRe = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
our $LabelRe = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
our $ValueRe = qr/[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|Inf)|NaN/;

sub prom_escape {
    my ($v) = @_;
    $v =~ s/\\/\\\\/g;
    $v =~ s/"/\\"/g;
    $v =~ s/\n/\\n/g;
    return $v;
}

sub prom_key {
    my ($name, %l) = @_;
    return $name unless %l;
    return "$name\{"
        . join(',', map { "$_=\"" . prom_escape($l{$_}) . '"' } sort keys %l)
        . '}';
}

# "x\"y\\z\n" (between the quotes) -> its value, or undef on an escape that
# the format does not have

sub prom_unescape_label {
    my ($raw) = @_;
    my $out = '';
    my $i = 0;
    my $n = length $raw;
    while ($i < $n) {
        my $c = substr($raw, $i, 1);
        if ($c ne '\\') {
            $out .= $c;
            $i++;
            next;
        }
        return undef if $i + 1 >= $n;
        my $e = substr($raw, $i + 1, 1);
        if    ($e eq '\\') { $out .= '\\'; }
        elsif ($e eq '"')  { $out .= '"'; }
        elsif ($e eq 'n')  { $out .= "\n"; }
        else               { return undef; }
        $i += 2;
    }
    return $out;
}

sub prom_family_of {
    my ($fams, $name) = @_;
    return $name if $fams->{$name};
    if ($name =~ /^(.*)_(?:bucket|sum|count)$/ && $fams->{$1}
        && ($fams->{$1}{type} // '') =~ /^(?:histogram|summary)$/)
    {
        return $1;
    }
    return undef;
}

sub prom_parse {
    my ($text) = @_;
    my $r = { families => {}, series => {}, samples => [], errors => [] };
    my $err = sub { push @{ $r->{errors} }, $_[0]; };
    my $fams = $r->{families};

    if (!defined $text) {
        $err->('no body');
        return $r;
    }

    $err->('the body does not end with a newline')
        if length $text && $text !~ /\n\z/;
    $err->('a carriage return in the body') if $text =~ /\r/;
    {
        my $copy = $text;
        $err->('the body is not UTF-8') unless utf8::decode($copy);
    }

    my %closed;         # families whose lines are over
    my $current;        # the family of the previous line
    my %seen_label_sets;
    my $ln = 0;

    my $enter = sub {
        my ($fam, $what) = @_;
        if (defined $current && $current ne $fam) {
            $closed{$current} = 1;
        }
        if ($closed{$fam}) {
            $err->("line $ln: $what of \"$fam\" after another family's "
                   . "lines (a family's lines must be together)");
        }
        $current = $fam;
    };

    for my $line (split /\n/, $text) {
        $ln++;

        if ($line eq '') {
            next;       # empty lines are ignored (0.0.4)
        }

        if ($line =~ /^#/) {
            if ($line =~ /^# HELP (\S+)(?: (.*))?$/) {
                my ($name, $help) = ($1, $2 // '');
                if ($name !~ /^$NameRe$/) {
                    $err->("line $ln: HELP of an invalid name \"$name\"");
                    next;
                }
                $enter->($name, 'HELP');
                $err->("line $ln: HELP of \"$name\" twice")
                    if defined $fams->{$name}{help};
                $err->("line $ln: HELP of \"$name\" after its samples")
                    if $fams->{$name}{samples};
                (my $rest = $help) =~ s/\\[\\n]//g;
                $err->("line $ln: an escape other than \\\\ and \\n in "
                       . "the HELP of \"$name\"")
                    if $rest =~ /\\/;
                $fams->{$name}{help} = $help;

            } elsif ($line =~ /^# TYPE (\S+) (\S+)$/) {
                my ($name, $type) = ($1, $2);
                if ($name !~ /^$NameRe$/) {
                    $err->("line $ln: TYPE of an invalid name \"$name\"");
                    next;
                }
                $enter->($name, 'TYPE');
                $err->("line $ln: TYPE of \"$name\" twice")
                    if defined $fams->{$name}{type};
                $err->("line $ln: TYPE of \"$name\" after its samples")
                    if $fams->{$name}{samples};
                $err->("line $ln: unknown type \"$type\"")
                    unless $type =~ /^(?:counter|gauge|histogram|summary|untyped)$/;
                $err->("line $ln: the counter \"$name\" is not named "
                       . "*_total")
                    if $type eq 'counter' && $name !~ /_total$/;
                $fams->{$name}{type} //= $type;

            } elsif ($line =~ /^# (?:HELP|TYPE)\b/) {
                $err->("line $ln: malformed metadata: $line");
            }

            # any other "#" line is a comment
            next;
        }

        # a sample: name[{labels}] value [timestamp]

        if ($line !~ /^($NameRe)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$/) {
            $err->("line $ln: syntax: $line");
            next;
        }
        my ($name, $lraw, $vraw) = ($1, $2, $3);

        my %labels;
        my $ok = 1;
        if (defined $lraw && length $lraw) {
            my $rest = $lraw;
            while (length $rest) {
                if ($rest !~ s/^($LabelRe)="((?:[^"\\]|\\.)*)"(,?)//s) {
                    $err->("line $ln: syntax in the labels: {$lraw}");
                    $ok = 0;
                    last;
                }
                my ($l, $v, $comma) = ($1, $2, $3);
                if ($comma eq '' && length $rest) {
                    $err->("line $ln: syntax in the labels: {$lraw}");
                    $ok = 0;
                    last;
                }
                my $u = prom_unescape_label($v);
                if (!defined $u) {
                    $err->("line $ln: an escape other than \\\\ \\\" \\n in "
                           . "the label value \"$v\"");
                    $ok = 0;
                    last;
                }
                if (exists $labels{$l}) {
                    $err->("line $ln: duplicate label \"$l\"");
                    $ok = 0;
                    last;
                }
                if ($l =~ /^__/) {
                    $err->("line $ln: reserved label name \"$l\"");
                }
                $labels{$l} = $u;
            }
        }
        next unless $ok;

        if ($vraw !~ /^$ValueRe$/) {
            $err->("line $ln: invalid value \"$vraw\"");
            next;
        }
        my $value = $vraw =~ /^([+-]?)Inf$/ ? ($1 eq '-' ? -9**9**9 : 9**9**9)
                  : $vraw eq 'NaN' ? 'NaN' : 0 + $vraw;

        my $fam = prom_family_of($fams, $name);
        if (!defined $fam) {
            $err->("line $ln: sample \"$name\" before (or without) its "
                   . "TYPE");
            $fam = $name;
        }
        $enter->($fam, 'a sample');
        my $f = $fams->{$fam} //= {};
        $f->{samples}++;
        $err->("line $ln: sample of \"$fam\" without a TYPE line")
            unless defined $f->{type};
        $err->("line $ln: sample of \"$fam\" without a HELP line")
            unless defined $f->{help};

        if (($f->{type} // '') eq 'counter') {
            $err->("line $ln: the counter \"$name\" is negative or not a "
                   . "number: $vraw")
                if $value eq 'NaN' || $value < 0;
        }

        my $key = prom_key($name, %labels);
        if (exists $r->{series}{$key}) {
            $err->("line $ln: duplicate series $key");
            next;
        }
        $r->{series}{$key} = $value;
        push @{ $r->{samples} }, { name => $name, labels => \%labels,
                                   value => $value, key => $key };
    }

    for my $fam (sort keys %$fams) {
        my $f = $fams->{$fam};
        $err->("family \"$fam\" has no TYPE line") unless defined $f->{type};
        $err->("family \"$fam\" has no HELP line") unless defined $f->{help};
    }

    return $r;
}


# ---------------------------------------------------------------------
# The interface's families (ops-interface.md, "Metrics")

our %Family = (
    mcd_decisions_total => { type => 'counter',
                             labels => [qw(action mode profile reason)] },
    mcd_tunnels_active  => { type => 'gauge', labels => ['mode'] },
    mcd_bytes_total     => { type => 'counter', labels => ['direction'] },
    mcd_upstream_failures_total   => { type => 'counter',
                                       labels => ['reason'] },
    mcd_destination_refused_total => { type => 'counter',
                                       labels => ['reason'] },
    mcd_certificates_minted_total         => { type => 'counter',
                                               labels => [] },
    mcd_certificate_cache_hits_total      => { type => 'counter',
                                               labels => [] },
    mcd_certificate_cache_misses_total    => { type => 'counter',
                                               labels => [] },
    mcd_certificate_cache_evictions_total => { type => 'counter',
                                               labels => [] },
);

our %LabelValues = (
    mode      => qr/^(?:explicit|transparent|http)$/,
    action    => qr/^(?:allow|deny|decrypt)$/,
    direction => qr/^(?:client_to_upstream|upstream_to_client)$/,
);

sub dec   { return prom_key('mcd_decisions_total', mode => $_[0],
                            profile => $_[1], action => $_[2],
                            reason => $_[3]); }
sub tun   { return prom_key('mcd_tunnels_active', mode => $_[0]); }
sub bytes { return prom_key('mcd_bytes_total', direction => $_[0]); }
sub upf   { return prom_key('mcd_upstream_failures_total', reason => $_[0]); }
sub dref  { return prom_key('mcd_destination_refused_total',
                            reason => $_[0]); }

our $C2U = 'client_to_upstream';
our $U2C = 'upstream_to_client';

# the endpoint's answer: status, headers, strictly parsed body; the pid of
# the worker that answered (from the scrape log)

our $ScrapeN = 0;

sub scrape_raw {
    $ScrapeN++;
    my $raw = mcd_raw(port => $Status,
                      send => "GET /metrics?n=$ScrapeN HTTP/1.0\r\n"
                              . "Host: localhost\r\n\r\n",
                      timeout => 10);
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($code) = ($head // '') =~ m{^HTTP/1\.[01] (\d{3}) };
    my ($ctype) = ($head // '') =~ /^Content-Type:[ \t]*([^\r\n]*)/mi;
    my ($clen) = ($head // '') =~ /^Content-Length:[ \t]*(\d+)/mi;
    my ($line) = mcd_wait_log('scrape.log', qr/ \/metrics\?n=$ScrapeN$/, 1, 3);
    my ($pid) = ($line // '') =~ /^(\d+) /;
    return { code => $code // '', ctype => $ctype // '', clen => $clen,
             body => $body, head => $head // '', pid => $pid };
}

# one scrape, checked: 200, the content type, the length, the format, the
# interface's families with their types, label names and values

sub scrape {
    my ($what) = @_;
    $what //= 'scrape';
    my $s = scrape_raw();
    my $p = prom_parse($s->{body});
    $p->{pid} = $s->{pid};
    $p->{raw} = $s;
    my @bad;
    push @bad, "status $s->{code}" unless $s->{code} eq '200';
    push @bad, "Content-Type \"$s->{ctype}\""
        unless $s->{ctype} eq 'text/plain; version=0.0.4; charset=utf-8';
    push @bad, "Content-Length $s->{clen} for "
               . length($s->{body} // '') . " bytes"
        if defined $s->{clen} && $s->{clen} != length($s->{body} // '');
    push @bad, @{ $p->{errors} };

    for my $name (sort keys %Family) {
        my $want = $Family{$name};
        my $f = $p->{families}{$name};
        if ($f && ($f->{type} // '') ne $want->{type}) {
            push @bad, "$name: TYPE $f->{type}, not $want->{type}";
        }
        if (!@{ $want->{labels} }) {
            # no labels: always listed, 0 before the first event
            if (!$f || !exists $p->{series}{$name}) {
                push @bad, "$name: not listed";
            } elsif (($f->{help} // '') eq '') {
                push @bad, "$name: an empty HELP";
            }
        }
    }

    for my $smp (@{ $p->{samples} }) {
        my $want = $Family{ $smp->{name} } or next;
        my $got = join ',', sort keys %{ $smp->{labels} };
        my $exp = join ',', @{ $want->{labels} };
        push @bad, "$smp->{key}: labels ($got), not ($exp)"
            if $got ne $exp;
        for my $l (keys %{ $smp->{labels} }) {
            my $re = $LabelValues{$l} or next;
            push @bad, "$smp->{key}: $l=\"$smp->{labels}{$l}\" is not one "
                       . "of the interface's values"
                if $smp->{labels}{$l} !~ $re;
        }
        push @bad, "$smp->{key}: $smp->{value} is not a whole number"
            if $smp->{value} eq 'NaN' || $smp->{value} != int $smp->{value};
    }

    ok !@bad, "$what: a valid Prometheus 0.0.4 answer"
        or diag join("\n", @bad) . "\n--- head\n$s->{head}\n--- body\n"
                . ($s->{body} // '');
    return $p;
}

# the series of the interface's families

sub ours {
    my ($p) = @_;
    my %s;
    for my $smp (@{ $p->{samples} }) {
        $s{ $smp->{key} } = $smp->{value} if $Family{ $smp->{name} };
    }
    return \%s;
}

# Expected deltas: { KEY => N }, plus
#   '#fail' => [ [mode, profile, reason, n], ... ]   allowed, then failed
#   '#group' => [ [name, sub { labels -> bool }, n], ... ]  a sum
# The choice for '#fail' (see the top) is made once, on first sight.

our $FailReasonLabel;      # undef until seen; then 'empty' or 'reason'

sub resolve_expect {
    my ($exp, $variant) = @_;
    my %e = map { $_ => $exp->{$_} } grep { !/^#/ } keys %$exp;
    for my $f (@{ $exp->{'#fail'} // [] }) {
        my ($m, $pf, $reason, $n) = @$f;
        $e{ dec($m, $pf, 'allow', $variant eq 'reason' ? $reason : '') }
            += $n;
    }
    return \%e;
}

# what differs from the expectation; with allowed-then-failed connections
# and no choice made yet, the closer of the two readings

sub deltas_bad {
    my ($b, $a, $exp) = @_;
    if (@{ $exp->{'#fail'} // [] } && !defined $FailReasonLabel) {
        my @r = deltas_bad_as($b, $a, $exp, 'reason');
        my @e = deltas_bad_as($b, $a, $exp, 'empty');
        return @r <= @e ? @r : @e;
    }
    return deltas_bad_as($b, $a, $exp, $FailReasonLabel // 'empty');
}

sub fail_variant {
    my ($b, $a, $exp) = @_;
    return undef unless @{ $exp->{'#fail'} // [] };
    return $FailReasonLabel if defined $FailReasonLabel;
    return 'reason' if !deltas_bad_as($b, $a, $exp, 'reason');
    return 'empty' if !deltas_bad_as($b, $a, $exp, 'empty');
    return undef;
}

sub deltas_bad_as {
    my ($b, $a, $exp, $variant) = @_;
    my $before = ours($b);
    my $after = ours($a);
    my $e = resolve_expect($exp, $variant);
    my @bad;
    my %grouped;

    for my $g (@{ $exp->{'#group'} // [] }) {
        my ($name, $match, $n) = @$g;
        my %k;
        for my $smp (@{ $a->{samples} }, @{ $b->{samples} }) {
            $k{ $smp->{key} } = 1
                if $Family{ $smp->{name} } && $match->($smp);
        }
        my $sum = 0;
        $sum += ($after->{$_} // 0) - ($before->{$_} // 0) for keys %k;
        $grouped{$_} = 1 for keys %k;
        push @bad, "$name: the sum moved by $sum, expected $n"
            if $sum != $n;
    }

    my %keys = map { $_ => 1 } keys %$before, keys %$after, keys %$e;
    for my $k (sort keys %keys) {
        next if $grouped{$k};
        my $d = ($after->{$k} // 0) - ($before->{$k} // 0);
        my $want = $e->{$k} // 0;
        next if $d == $want;
        my $note = exists $after->{$k} ? '' : ' (not in the answer)';
        push @bad, "$k: moved by $d, expected $want$note";
    }
    return @bad;
}

# scrape until the deltas are as expected (counters may be added when a
# session is finalized, a moment after the client saw its end) or the
# deadline; then once more: nothing may move afterwards

sub check_deltas {
    my ($what, $before, $exp, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    my ($after, @bad);
    for (1 .. 100) {
        $after = scrape("$what: scrape");
        @bad = deltas_bad($before, $after, $exp);
        last if !@bad || time > $deadline;
        sleep 0.2;
    }
    if (!@bad) {
        sleep 0.3;
        $after = scrape("$what: scrape again");
        @bad = deltas_bad($before, $after, $exp);
    }
    ok !@bad, "$what: every counter moved by exactly the expected amount"
        or diag join "\n", @bad;
    if (!@bad && !defined $FailReasonLabel) {
        $FailReasonLabel = fail_variant($before, $after, $exp);
        note "an allowed connection whose upstream then failed is counted "
             . "with " . ($FailReasonLabel eq 'reason'
                          ? 'the failure as its reason' : 'reason ""')
            if defined $FailReasonLabel;
    }
    return $after;
}

sub all_zero {
    my ($what, $p) = @_;
    my $s = ours($p);
    my @nz = grep { $s->{$_} != 0 } sort keys %$s;
    ok !@nz, "$what: every counter is 0" or diag join "\n",
        map { "$_ $s->{$_}" } @nz;
}

# the worker processes of the running nginx

sub workers_now {
    my $master = mcd_nginx_pid() or return ();
    return sort { $a <=> $b } split ' ', `pgrep -P $master 2>/dev/null`;
}

# scrape until each of the given workers has answered one (reuseport
# spreads the connections), at most 24 times; all answers must be equal

sub scrape_every_worker {
    my ($what, @pids) = @_;
    my %want = map { $_ => 1 } @pids;
    my %got;
    my @p;
    for (1 .. 24) {
        my $p = scrape("$what: scrape");
        push @p, $p;
        $got{ $p->{pid} } = 1 if defined $p->{pid};
        last unless grep { !$got{$_} } keys %want;
    }
    my @missing = grep { !$got{$_} } sort keys %want;
    ok !@missing, "$what: every worker answered a scrape ("
                  . join(' ', sort keys %got) . ")"
        or diag "never answered: @missing";
    my $first = ours($p[0]);
    my @differ;
    for my $p (@p[1 .. $#p]) {
        my $s = ours($p);
        my %k = map { $_ => 1 } keys %$first, keys %$s;
        push @differ, map { "$_: $first->{$_} / $s->{$_} (pid "
                            . ($p->{pid} // '?') . ")" }
                      grep { ($first->{$_} // 0) != ($s->{$_} // 0) }
                      sort keys %k;
    }
    ok !@differ, "$what: every worker answers the same values"
        or diag join "\n", @differ;
    return $p[-1];
}

# the pids of the access log lines (stream "mcd.log" or "http.log") that
# match

sub log_pids {
    my ($file, $re) = @_;
    my %pids;
    for my $l (grep { $_ =~ $re } mcd_log_lines($file)) {
        $pids{$1} = 1 if $l =~ /^(\d+) /;
    }
    return sort keys %pids;
}

sub both_workers_took_part {
    my ($what, $file, $re, @workers) = @_;
    my %w = map { $_ => 1 } @workers;
    my @p = grep { $w{$_} } log_pids($file, $re);
    cmp_ok scalar(@p), '>=', 2, "$what: both workers took connections ("
                                . join(' ', @p) . ")";
}

# the stream log line of the connection from local port $lport

sub conn_line {
    my ($lport, $timeout) = @_;
    my ($l) = mcd_wait_log('mcd.log', qr/^\d+ \d+ $lport /, 1,
                           $timeout // 5);
    return $l // '';
}

# ---------------------------------------------------------------------
# clients

sub payload {
    my ($n, $seed) = @_;
    my $x = $seed || 1;
    my $out = '';
    while (length $out < $n) {
        $x = ($x * 1103515245 + 12345) & 0x7fffffff;
        $out .= pack('N', $x);
    }
    return substr($out, 0, $n);
}

sub gw {
    my ($port) = @_;
    $port //= $W->{port};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $port, Timeout => 5)
        or die "connect to $port: $!";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    return $s;
}

# write $out while reading until $want bytes came back (no deadlock on
# payloads larger than the socket buffers); bounded by $timeout

sub pump {
    my ($s, $out, $want, $timeout) = @_;
    my $in = '';
    my $off = 0;
    my $deadline = time + ($timeout // 20);
    $s->blocking(0);
    my $rs = IO::Select->new($s);
    while (time < $deadline && length $in < $want) {
        my $ws = $off < length $out ? IO::Select->new($s) : undef;
        my ($r, $w) = IO::Select->select($rs, $ws, undef,
                                         $deadline - time);
        if ($w && @$w) {
            my $n = syswrite($s, $out, length($out) - $off, $off);
            $off += $n if $n;
        }
        if ($r && @$r) {
            my $n = sysread($s, my $b, 65536);
            last if defined $n && $n == 0;
            $in .= $b if $n;
        }
    }
    $s->blocking(1);
    return ($in, $off);
}

# CONNECT to the TCP echo, $data through it (pipelined after the head if
# asked), then a FIN: the echo answers "BYE\n" and closes.  Relayed:
# length($data) each way, plus the 4 bytes of BYE back.

sub echo_tunnel {
    my (%o) = @_;
    my $target = $o{target} // "origin.test:$W->{echo}";
    my $data = $o{data} // '';
    my $s = gw($o{port});
    my $lport = $s->sockport;
    my $head = "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n";
    f_write_all($s, $o{pipelined} ? $head . $data : $head);
    my $h = f_head($s, 10);
    my $ok = $h eq "HTTP/1.1 200 Connection established\r\n\r\n";
    my ($in) = pump($s, $o{pipelined} ? '' : $data, length $data, 20);
    $ok &&= $in eq $data;
    shutdown($s, 1);
    my $rest = f_read_all($s, 10);
    $ok &&= $rest->{data} eq "BYE\n" && $rest->{eof};
    close $s;
    ok $ok, "tunnel to $target: " . length($data) . " bytes echoed"
        . ($o{pipelined} ? ' (pipelined)' : '')
        or diag "head: $h, back " . length($in) . " bytes, rest "
                . "\"$rest->{data}\"";
    return $lport;
}

# one CONNECT that is refused: its status line

sub refused {
    my ($target, $want, $port) = @_;
    my $s = gw($port);
    my $lport = $s->sockport;
    f_write_all($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n");
    my $r = f_read_all($s, 10);
    close $s;
    my ($code) = $r->{data} =~ m{^HTTP/1\.1 (\d{3}) };
    is $code // '', $want, "CONNECT $target: $want"
        or diag $r->{data};
    return $lport;
}

# transparent: the bytes of a ClientHello, then what comes back: the
# gateway's alert and its close, or the origin's first flight (until 0.5 s
# of silence).  With "hold" the socket is returned open after that flight;
# else the client leaves (FIN) and reads to the end.  Returns ($socket or
# undef, local port, bytes up, bytes down, the bytes down)

sub tp_hello {
    my (%o) = @_;
    my $hello = mcd_client_hello($o{sni});
    my $s = gw($W->{port3});
    my $lport = $s->sockport;
    f_write_all($s, $hello);
    my $r = f_read_all($s, 10, 1);
    my $got = $r->{data};
    my $eof = $r->{eof} || $r->{err};
    for (1 .. 100) {
        last if $eof;
        my $m = f_read_all($s, 0.5, 1);
        $got .= $m->{data};
        $eof = $m->{eof} || $m->{err};
        last unless length $m->{data};
    }
    if ($o{hold} && !$eof) {
        return ($s, $lport, length $hello, length $got, $got);
    }
    if (!$eof) {
        shutdown($s, 1);
        my $rest = f_read_all($s, 10);
        $got .= $rest->{data};
    }
    close $s;
    return (undef, $lport, length $hello, length $got, $got);
}

sub alert_bytes {
    my %a = (access_denied => 49, unrecognized_name => 112);
    return pack('C n n C C', 21, 0x0303, 2, 2, $a{ $_[0] });
}

# curl -x through the gateway to https://NAME:origin/index.html?n=N,
# trusting the gateway CA (decrypt)

sub decrypt_get {
    my ($name, $n) = @_;
    my $r = mcd_curl('-sS', '--max-time', '20',
                     '--cacert', mcd_file('gwca.crt'),
                     '-x', "http://127.0.0.1:$W->{port}",
                     '-w', '\n%{http_code}',
                     "https://$name:$W->{origin}/index.html?n=$n");
    $r->{code} = $1 if $r->{out} =~ s/\n(\d{3})\z//;
    return $r;
}

# plain HTTP through mcd_http_pass

sub http_via {
    my ($url, @args) = @_;
    my $r = mcd_curl('-sS', '--max-time', '15',
                     '-x', "http://127.0.0.1:$W->{port}",
                     '-w', '\n%{http_code}', @args, $url);
    $r->{code} = $1 if $r->{out} =~ s/\n(\d{3})\z//;
    return $r->{code} // '';
}

master_on();
workers(2);
worker_connections(1024);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: the parser on crafted samples; after a start every counter is 0 and the families without labels are listed
--- mcd_client
# a valid exposition: every escape of a label value, a comment, an empty
# line, a HELP with its escapes, a trailing comma, a timestamp
my $good = join "\n",
    '# HELP mcd_x_total A counter; its help has \\\\ and \\n.',
    '# TYPE mcd_x_total counter',
    'mcd_x_total{profile="a\\"b\\\\c\\nd",mode="explicit"} 3',
    'mcd_x_total{mode="explicit",profile="plain",} 0 1700000000000',
    '# a comment',
    '',
    '# TYPE mcd_g gauge',
    '# HELP mcd_g A gauge.',
    'mcd_g 1.5e3',
    '';
my $p = main::prom_parse($good);
is_deeply $p->{errors}, [], 'a valid sample parses without an error';
my $k = main::prom_key('mcd_x_total', mode => 'explicit',
                       profile => "a\"b\\c\nd");
is $k, 'mcd_x_total{mode="explicit",profile="a\\"b\\\\c\\nd"}', 'canonical key';
is $p->{series}{$k}, 3, 'the escaped label value comes back as a"b\\c<LF>d';
my ($smp) = grep { $_->{value} == 3 } @{ $p->{samples} };
is $smp->{labels}{profile}, "a\"b\\c\nd", 'unescaped';
is $p->{series}{'mcd_g'}, 1500, 'a gauge, exponent notation';
is $p->{families}{mcd_x_total}{type}, 'counter', 'type';

my @bad = (
    ["# TYPE a_total counter\na_total 1\n", qr/no HELP|without a HELP/,
     'a family without HELP'],
    ["# HELP a_total x\na_total 1\n", qr/TYPE/, 'a family without TYPE'],
    ["# HELP a_total x\na_total 1\n# TYPE a_total counter\n",
     qr/TYPE of "a_total" after its samples/, 'TYPE after the samples'],
    ["# HELP a x\n# TYPE a counter\na 1\n", qr/not named \*_total/,
     'a counter not named *_total'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\\ty\"} 1\n",
     qr/escape/, 'an escape the format does not have (\t)'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\"y\"} 1\n",
     qr/syntax/, 'an unescaped quote'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\\\"} 1\n",
     qr/syntax/, 'a backslash that escapes the closing quote'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\",m=\"y\"} 1\n"
     . "a_total{m=\"y\",l=\"x\"} 2\n", qr/duplicate series/,
     'the same series twice (labels in another order)'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",
     qr/duplicate series/, 'the same series twice (no labels)'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"1\"} 1\n"
     . "# HELP b x\n# TYPE b gauge\nb 1\na_total{l=\"2\"} 1\n",
     qr/another family's lines/, 'a family\'s lines not together'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total 1",
     qr/newline/, 'no newline at the end'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total 1,5\n",
     qr/syntax|invalid value/, 'a value that is not a number'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{1l=\"x\"} 1\n",
     qr/syntax/, 'an invalid label name'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\",l=\"y\"} 1\n",
     qr/duplicate label/, 'a label twice'],
    ["# HELP a_total x\n# TYPE a_total counter\n# TYPE a_total counter\n"
     . "a_total 1\n", qr/TYPE of "a_total" twice/, 'TYPE twice'],
    ["# HELP a_total x\n# TYPE a_total countr\na_total 1\n",
     qr/unknown type/, 'an unknown type'],
    ["# HELP a_total x\r\n# TYPE a_total counter\r\na_total 1\r\n",
     qr/carriage return/, 'CRLF line ends'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total -1\n",
     qr/negative/, 'a negative counter'],
    ["# HELP a_total x \\t\n# TYPE a_total counter\na_total 1\n",
     qr/escape.*HELP/, 'an escape the format does not have in HELP'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\" m=\"y\"} 1\n",
     qr/syntax/, 'labels without a comma'],
    ["# HELP a_total x\n# TYPE a_total counter\na_total{l=x} 1\n",
     qr/syntax/, 'an unquoted label value'],
);
for my $b (@bad) {
    my ($text, $re, $what) = @$b;
    my $r = main::prom_parse($text);
    ok scalar(grep { $_ =~ $re } @{ $r->{errors} }), "the parser refuses: $what"
        or diag explain $r->{errors};
}

# a fresh nginx: everything 0, answered by both workers alike
my @w = main::workers_now();
is scalar(@w), 2, 'two worker processes';
my $s = main::scrape_raw();
is $s->{code}, '200', 'GET /metrics: 200';
is $s->{ctype}, 'text/plain; version=0.0.4; charset=utf-8', 'Content-Type';
my $m = main::scrape_every_worker('fresh start', @w);
main::all_zero('fresh start', $m);
for my $name (qw(mcd_certificates_minted_total mcd_certificate_cache_hits_total
                 mcd_certificate_cache_misses_total
                 mcd_certificate_cache_evictions_total))
{
    is $m->{series}{$name}, 0, "$name listed with 0";
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: explicit: decisions, bytes each way, upstream failures, destination guard, summed over both workers
--- mcd_client
my @w = main::workers_now();
is scalar(@w), 2, 'two worker processes';
my $b = main::scrape('before');
main::all_zero('after a restart', $b);

my (%e, $c2u, $u2c, $n);
my $echo = $W->{echo};

# allowed: 24 tunnels of different sizes, one of 256 KiB + 13, two whose
# bytes are pipelined after the CONNECT head, one to a name whose first
# address the guard refuses (skipped, not a refused connection)
my @sizes = ((map { 100 * $_ + 7 * $_ * $_ } 1 .. 24), 262157);
my $i = 0;
for my $size (@sizes) {
    main::echo_tunnel(data => main::payload($size, ++$i));
}
main::echo_tunnel(data => main::payload(333, 91), pipelined => 1);
main::echo_tunnel(data => main::payload(5000, 92), pipelined => 1);
main::echo_tunnel(target => "multi.test:$echo", data => main::payload(777, 93));
my @all = (@sizes, 333, 5000, 777);
$n = @all;
$c2u = 0;
$c2u += $_ for @all;
$u2c = $c2u + 4 * $n;
$e{ main::dec('explicit', 'egress', 'allow', '') } += $n;

# refused by the policy, the port, the name, the destination guard
main::refused("denied.test:$echo", 403);
main::refused("unlisted.test:$echo", 403);
main::refused("origin.test:1", 403);
main::refused("bad!name.test:$echo", 400);
main::refused("refused.test:$echo", 403);
main::refused("127.0.0.1:$W->{port}", 403);
$e{ main::dec('explicit', 'egress', 'deny', 'policy') } += 2;
$e{ main::dec('explicit', 'egress', 'deny', 'port') } += 1;
$e{ main::dec('explicit', 'egress', 'deny', 'bad_name') } += 1;
$e{ main::dec('explicit', 'egress', 'deny', 'dst_blocked') } += 1;
$e{ main::dec('explicit', 'egress', 'deny', 'loop') } += 1;
$e{ main::dref('dst_blocked') } += 1;
$e{ main::dref('loop') } += 1;

# a burst: 4 processes, 40 refusals each, at the same time on both workers
{
    my @kids;
    for my $k (1 .. 4) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            alarm 60;
            my $ok = 0;
            for (1 .. 40) {
                my $r = eval { mcd_raw(send => "CONNECT denied.test:$echo HTTP/1.1\r\n\r\n",
                                       timeout => 5) } // '';
                $ok++ if $r =~ m{^HTTP/1\.1 403 };
            }
            POSIX::_exit($ok);
        }
        push @kids, $pid;
    }
    my $got = 0;
    for my $pid (@kids) {
        waitpid($pid, 0);
        $got += $? >> 8;
    }
    is $got, 160, 'a burst of 160 parallel refusals: all 403';
    $e{ main::dec('explicit', 'egress', 'deny', 'policy') } += 160;
}

# allowed, then the upstream fails
main::refused("nx.dns.test:$echo", 502);
main::refused("closed.test:$W->{closed}", 502);
main::refused("blackhole.test:$W->{blackhole}", 504);
$e{ main::upf($_) } += 1 for qw(dns connect timeout);
push @{ $e{'#fail'} }, ['explicit', 'egress', $_, 1]
    for qw(dns connect timeout);

# a reset after 8000 bytes: "8000\n" and "A" went up, 8000 bytes came back
{
    my $s = f_tunnel(port => $W->{port}, target => "rst.test:$F->{rst}",
                extra => "8000\n");
    is f_head($s, 5), "HTTP/1.1 200 Connection established\r\n\r\n",
        'rst.test: 200';
    my $r = f_read_all($s, 5, 8000);
    is length $r->{data}, 8000, 'rst.test: 8000 bytes';
    f_write_all($s, 'A');
    $r = f_read_all($s, 5);
    is $r->{err}, 'Connection reset by peer', 'rst.test: the reset';
    close $s;
    $c2u += 6;
    $u2c += 8000;
    $e{ main::upf('upstream_reset') } += 1;
    push @{ $e{'#fail'} }, ['explicit', 'egress', 'upstream_reset', 1];
}
$e{ main::bytes($C2U) } = $c2u;
$e{ main::bytes($U2C) } = $u2c;

# every session has been logged (counters may come with the log phase)
my @lines = mcd_wait_log('mcd.log', qr/^\d+ $W->{port} /, $n + 170, 10);
is scalar(@lines), $n + 170, 'every connection logged';
main::both_workers_took_part('explicit', 'mcd.log', qr/^\d+ $W->{port} /, @w);

main::check_deltas('explicit', $b, \%e);
my $a = main::scrape_every_worker('explicit', @w);
my @bad = main::deltas_bad($b, $a, \%e);
ok !@bad, 'explicit: the same from every worker' or diag join "\n", @bad;
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: transparent: decisions and the bytes of raw ClientHellos through to the origin
--- mcd_client
if (!$W->{origin443}) {
    pass 'skipped: the test origin cannot listen on 127.0.0.1:443';
    return;
}
my @w = main::workers_now();
my $b = main::scrape('before');
main::all_zero('after a restart', $b);
my (%e, $c2u, $u2c);

# 12 allowed: the ClientHello up, the origin's first flight down
for my $i (1 .. 12) {
    my (undef, $lport, $up, $down) = main::tp_hello(sni => 'origin.test');
    cmp_ok $down, '>', 100, "ClientHello $i: the origin's flight came back";
    $c2u += $up;
    $u2c += $down;
}
$e{ main::dec('transparent', 'tp', 'allow', '') } += 12;
$e{ main::bytes($C2U) } = $c2u;
$e{ main::bytes($U2C) } = $u2c;

my %refusals = (
    'denied.test'    => ['access_denied', 'policy'],
    'unlisted.test'  => ['access_denied', 'policy'],
    'bad_name!.test' => ['access_denied', 'bad_name'],
    'refused.test'   => ['access_denied', 'dst_blocked'],
);
for my $sni (sort keys %refusals) {
    my ($alert, $reason) = @{ $refusals{$sni} };
    my (undef, undef, undef, undef, $got) = main::tp_hello(sni => $sni);
    is $got, main::alert_bytes($alert), "$sni: $alert";
    $e{ main::dec('transparent', 'tp', 'deny', $reason) } += 1;
}
my (undef, undef, undef, undef, $got) = main::tp_hello(sni => undef);
is $got, main::alert_bytes('unrecognized_name'), 'no SNI: unrecognized_name';
$e{ main::dec('transparent', 'tp', 'deny', 'no_sni') } += 1;
$e{ main::dref('dst_blocked') } += 1;

my @lines = mcd_wait_log('mcd.log', qr/^\d+ $W->{port3} /, 17, 10);
is scalar(@lines), 17, 'every connection logged';
main::both_workers_took_part('transparent', 'mcd.log', qr/^\d+ $W->{port3} /, @w);
main::check_deltas('transparent', $b, \%e);
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: plain HTTP: one mode=http decision per request, none for the hand-off, no tunnel bytes; a no_profile value that needs escaping
--- mcd_client
my @w = main::workers_now();
my $b = main::scrape('before');
main::all_zero('after a restart', $b);
my %e;
my $o = $W->{origin_http};

# 12 allowed, 4 denied by name, 2 by port, through mcd_http_pass
for my $i (1 .. 12) {
    is main::http_via("http://origin.test:$o/index.html?i=$i"), '200',
        "allowed $i";
}
is main::http_via("http://denied.test:$o/"), '403', 'denied';
is main::http_via("http://unlisted.test:$o/"), '403', 'default deny';
is main::http_via("http://denied.test:$o/x"), '403', 'denied again';
is main::http_via("http://unlisted.test:$o/x"), '403', 'default deny again';
is main::http_via("http://origin.test:8081/"), '403', 'port';
is main::http_via("http://origin.test:8082/"), '403', 'port again';

# keep-alive: three requests on one connection
my $raw = mcd_raw(send => "GET http://origin.test:$o/index.html HTTP/1.1\r\nHost: origin.test\r\n\r\n"
                        . "GET http://denied.test:$o/ HTTP/1.1\r\nHost: denied.test\r\n\r\n"
                        . "GET http://origin.test:$o/index.html HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n",
                  until => qr/hello from origin\n.*hello from origin\n/s);
my @st = $raw =~ m{^HTTP/1\.1 (\d{3})}mg;
is "@st", '200 403 200', 'keep-alive: allowed, denied, allowed';

# the http side resolves and judges the address itself
is main::http_via("http://refused.test:$o/"), '403', 'dst_blocked (127.0.0.2)';
is main::http_via("http://nx.dns.test:$o/"), '502', 'dns';
$e{ main::dec('http', 'web', 'deny', 'dst_blocked') } = 1;
$e{ main::dref('dst_blocked') } = 1;
$e{ main::upf('dns') } = 1;
push @{ $e{'#fail'} }, ['http', 'web', 'dns', 1];

$e{ main::dec('http', 'web', 'allow', '') } = 12 + 2;
$e{ main::dec('http', 'web', 'deny', 'policy') } = 4 + 1;
$e{ main::dec('http', 'web', 'deny', 'port') } = 2;

# an http server whose profile comes from a request header
my $g = $ENV{TEST_NGINX_MCD_GROUPS};
my $crafted = 'q"b\\s';
my $get = sub {
    my ($hdr) = @_;
    my $r = mcd_raw(port => $g,
                    send => "GET /index.html HTTP/1.0\r\nHost: origin.test:$o\r\n$hdr\r\n");
    my ($code) = $r =~ m{^HTTP/1\.1 (\d{3}) };
    return $code // '';
};
is $get->("X-Group: web\r\n"), '200', 'X-Group: web';
is $get->("X-Group: $crafted\r\n"), '403', 'X-Group: q"b\\s names no profile';
is $get->(''), '403', 'no X-Group: no_profile';
$e{ main::dec('http', 'web', 'allow', '') } += 1;
push @{ $e{'#group'} }, ['no_profile decisions (any profile label)',
    sub { my $l = $_[0]{labels};
          $_[0]{name} eq 'mcd_decisions_total' && $l->{mode} eq 'http'
          && $l->{action} eq 'deny' && $l->{reason} eq 'no_profile' }, 2];

my @lines = mcd_wait_log('http.log', qr/ mode=http /, 26, 10);
is scalar(@lines), 26, 'every request logged';
main::both_workers_took_part('http', 'http.log', qr/ mode=http /, @w);

my $a = main::check_deltas('http', $b, \%e);
my ($esc) = grep { $_->{name} eq 'mcd_decisions_total'
                   && $_->{labels}{reason} eq 'no_profile'
                   && $_->{labels}{profile} eq $crafted } @{ $a->{samples} };
if ($esc) {
    pass 'the header value is the profile label, escaped and read back exactly';
    like $a->{raw}{body}, qr/profile="q\\"b\\\\s"/, 'written as q\"b\\\\s';
} else {
    note 'the no_profile value is not used as the profile label: '
         . join ' ', map { $_->{key} } grep { ($_->{labels}{reason} // '') eq 'no_profile' }
                                             @{ $a->{samples} };
}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 5: mcd_tunnels_active: up while tunnels are held open (explicit and transparent), back to 0 after
--- mcd_client
my @w = main::workers_now();
my $b = main::scrape('before');
main::all_zero('after a restart', $b);
my (@held, %e, $c2u, $u2c);

for my $i (1 .. 8) {
    my $s = main::gw();
    f_write_all($s, "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n");
    is f_head($s, 10), "HTTP/1.1 200 Connection established\r\n\r\n",
        "explicit tunnel $i open";
    my ($in) = main::pump($s, "ping $i\n", length "ping $i\n", 10);
    is $in, "ping $i\n", "explicit tunnel $i relays";
    $c2u += length $in;
    $u2c += length $in;
    push @held, [$s, 'explicit'];
}
my $ntp = 0;
if ($W->{origin443}) {
    for my $i (1 .. 4) {
        my ($s, $lport, $up, $down) = main::tp_hello(sni => 'origin.test',
                                                     hold => 1);
        ok $s, "transparent tunnel $i is open" or next;
        cmp_ok $down, '>', 100, "transparent tunnel $i: the origin answered";
        $c2u += $up;
        $u2c += $down;
        push @held, [$s, 'transparent'];
        $ntp++;
    }
}

# the gauge, polled for a bounded time (a tunnel may be counted a moment
# after its first bytes)
my $want = { main::tun('explicit') => 8, main::tun('transparent') => $ntp };
my ($m, @off);
my $deadline = time + 5;
for (1 .. 50) {
    $m = main::scrape('held');
    @off = grep { ($m->{series}{$_} // 0) != $want->{$_} } keys %$want;
    last if !@off || time > $deadline;
    sleep 0.1;
}
is $m->{series}{ main::tun('explicit') } // 0, 8, '8 explicit tunnels active';
is $m->{series}{ main::tun('transparent') } // 0, $ntp,
   "$ntp transparent tunnels active";
$m = main::scrape_every_worker('held', @w);
is $m->{series}{ main::tun('explicit') } // 0, 8, 'every worker says 8';

# close them all: the explicit ones with a FIN (BYE comes back), the
# transparent ones with a FIN too (the origin closes)
for my $h (@held) {
    my ($s, $mode) = @$h;
    shutdown($s, 1);
    my $r = f_read_all($s, 10);
    ok $r->{eof}, "$mode tunnel closed";
    if ($mode eq 'explicit') {
        is $r->{data}, "BYE\n", 'BYE';
    }
    $u2c += length $r->{data};
    close $s;
}
my @lines = mcd_wait_log('mcd.log', qr/^\d+ \d+ \d+ 200 /, 8 + $ntp, 10);
is scalar(@lines), 8 + $ntp, 'every tunnel logged';
main::both_workers_took_part('held tunnels', 'mcd.log', qr/ 200 /, @w);

$e{ main::dec('explicit', 'egress', 'allow', '') } = 8;
$e{ main::dec('transparent', 'tp', 'allow', '') } = $ntp if $ntp;
$e{ main::bytes($C2U) } = $c2u;
$e{ main::bytes($U2C) } = $u2c;
main::check_deltas('tunnels closed', $b, \%e);
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 6: decryption: certificates minted, cache hits, misses and evictions (max=2 per worker); upstream_cert; no tunnel bytes
--- mcd_client
my @w = main::workers_now();
my $b = main::scrape('before');
main::all_zero('after a restart', $b);

# 3 names, a revisit of the last, a revisit of the first; again, so that
# both workers see some; then a name whose origin's certificate does not
# carry it
my @names = (qw(example.test www.example.test bank.example.test
                bank.example.test example.test) x 3, 'wrongname.test');
my $n = 0;
for my $name (@names) {
    $n++;
    my $r = main::decrypt_get($name, $n);
    if ($name eq 'wrongname.test') {
        is $r->{code}, '502', "$name: 502";
        unlike $r->{out}, qr/hello from origin/, "$name: nothing of the origin";
    } else {
        is $r->{code}, '200', "$name ($n): 200" or diag $r->{err};
        is $r->{out}, "hello from origin\n", "$name ($n): the origin's body";
    }
}

# which worker each request reached, from the interception server's log
my %pid_of;
my @lines = mcd_wait_log('http.log', qr/ uri=\/index\.html\?n=\d+$/, $n, 10);
is scalar(@lines), $n, 'every decrypted request logged';
for my $l (@lines) {
    $pid_of{$2} = $1 if $l =~ /^(\d+) .* uri=\/index\.html\?n=(\d+)$/;
}

# an LRU of 2 per worker (README: mcd_certificate_cache, least recently
# used, per worker); the hit is always on the most recent entry, so LRU
# and FIFO agree here
my (%cache, $hits, $misses, $evictions);
($hits, $misses, $evictions) = (0, 0, 0);
$n = 0;
for my $name (@names) {
    $n++;
    my $c = $cache{ $pid_of{$n} // 'unknown' } //= [];
    if (grep { $_ eq $name } @$c) {
        $hits++;
        @$c = ($name, grep { $_ ne $name } @$c);
    } else {
        $misses++;
        if (@$c == 2) {
            $evictions++;
            pop @$c;
        }
        unshift @$c, $name;
    }
}
cmp_ok scalar(keys %cache), '>=', 2, 'both workers decrypted ('
    . join(' ', sort keys %cache) . ')';
note "expected: minted $misses, hits $hits, misses $misses, evictions $evictions";

my %e = (
    mcd_certificates_minted_total         => $misses,
    mcd_certificate_cache_hits_total      => $hits,
    mcd_certificate_cache_misses_total    => $misses,
    mcd_certificate_cache_evictions_total => $evictions,
    main::dec('explicit', 'egress', 'decrypt', '') => scalar(@names),
    main::upf('upstream_cert') => 1,
);
main::check_deltas('decrypt', $b, \%e);
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 7: nginx -s reload: the values are kept, a tunnel of an old worker still counts, the new workers add to the same counters
--- mcd_client
my @old = main::workers_now();
is scalar(@old), 2, 'two workers';
my $master = mcd_nginx_pid();
my $b = main::scrape('before');
main::all_zero('after a restart', $b);
my (%e, $c2u, $u2c);

# before the reload
my @sizes = map { 50 * $_ + 3 } 1 .. 16;
my $i = 0;
main::echo_tunnel(data => main::payload($_, ++$i)) for @sizes;
main::refused("denied.test:$W->{echo}", 403);
$c2u += $_ for @sizes;
$u2c = $c2u + 4 * @sizes;
$e{ main::dec('explicit', 'egress', 'allow', '') } += @sizes;
$e{ main::dec('explicit', 'egress', 'deny', 'policy') } += 1;

# a tunnel held open across the reload, idle until after it
my $t = main::gw();
my $tport = $t->sockport;
f_write_all($t, "CONNECT origin.test:$W->{echo} HTTP/1.1\r\n\r\n");
is f_head($t, 10), "HTTP/1.1 200 Connection established\r\n\r\n",
   'the held tunnel is open';
my @l = mcd_wait_log('mcd.log', qr/^\d+ $W->{port} /, @sizes + 1, 10);
is scalar(@l), @sizes + 1, 'the first connections logged';
main::both_workers_took_part('before the reload', 'mcd.log', qr/^\d+ $W->{port} /, @old);

my $deadline = time + 5;
my $s1;
for (1 .. 50) {
    $s1 = main::scrape('before the reload');
    last if ($s1->{series}{ main::tun('explicit') } // 0) == 1
            || time > $deadline;
    sleep 0.1;
}
is $s1->{series}{ main::tun('explicit') } // 0, 1, 'one tunnel active';

# a profile and a listener more, then HUP
my $conf = $Test::Nginx::Util::ConfFile;
my $text = mcd_slurp($conf);
$text =~ s/#MAIN-EXTRA/mcd_fqdn_filter extra { default deny; allow origin.test; }/
    or die 'no #MAIN-EXTRA';
$text =~ s/#STREAM-EXTRA/server { listen 127.0.0.1:$ENV{TEST_NGINX_MCD_EXTRA} reuseport; mcd_proxy explicit; mcd_fqdn_filter extra; mcd_connect_ports $W->{echo}; }/
    or die 'no #STREAM-EXTRA';
mcd_write_file($conf, $text);
kill 'HUP', $master;

# two new workers, and a scrape answered by one of them
my %was = map { $_ => 1 } @old;
my @new;
$deadline = time + 20;
for (1 .. 200) {
    @new = grep { !$was{$_} } main::workers_now();
    last if @new >= 2 || time > $deadline;
    sleep 0.1;
}
is scalar(@new), 2, 'two new workers after the reload';
my $s2;
$deadline = time + 10;
for (1 .. 100) {
    $s2 = main::scrape('after the reload');
    last if (defined $s2->{pid} && grep { $_ == $s2->{pid} } @new)
            || time > $deadline;
    sleep 0.1;
}
ok((grep { $_ == ($s2->{pid} // 0) } @new), 'a new worker answered');
my @diff = main::deltas_bad($s1, $s2, {});
ok !@diff, 'after the reload: every value as before it' or diag join "\n", @diff;

# the old worker's tunnel now relays and ends: its bytes and its gauge
# go to the same counters
my $data = main::payload(1000, 77);
my ($in) = main::pump($t, $data, 1000, 10);
is $in, $data, 'the held tunnel relays after the reload';
shutdown($t, 1);
my $r = f_read_all($t, 10);
is $r->{data}, "BYE\n", 'and ends';
close $t;
my $tline = main::conn_line($tport, 10);
my ($tpid) = $tline =~ /^(\d+) /;
ok($tpid && $was{$tpid}, 'it was an old worker\'s tunnel');
$c2u += 1000;
$u2c += 1004;
$e{ main::dec('explicit', 'egress', 'allow', '') } += 1;

# traffic through the new workers, and through the new listener
my @sizes2 = map { 70 * $_ + 1 } 1 .. 16;
main::echo_tunnel(data => main::payload($_, ++$i)) for @sizes2;
main::refused("denied.test:$W->{echo}", 403);
main::echo_tunnel(port => $ENV{TEST_NGINX_MCD_EXTRA}, data => main::payload(4321, 5));
main::refused("denied.test:$W->{echo}", 403, $ENV{TEST_NGINX_MCD_EXTRA});
$c2u += $_ for @sizes2, 4321;
$u2c += $_ + 4 for @sizes2, 4321;
$e{ main::dec('explicit', 'egress', 'allow', '') } += @sizes2;
$e{ main::dec('explicit', 'egress', 'deny', 'policy') } += 1;
$e{ main::dec('explicit', 'extra', 'allow', '') } += 1;
$e{ main::dec('explicit', 'extra', 'deny', 'policy') } += 1;
$e{ main::bytes($C2U) } = $c2u;
$e{ main::bytes($U2C) } = $u2c;

my $total = @sizes + 1 + 1 + @sizes2 + 1;
@l = mcd_wait_log('mcd.log', qr/^\d+ $W->{port} /, $total, 10);
is scalar(@l), $total, 'every connection logged';
main::both_workers_took_part('after the reload', 'mcd.log', qr/^\d+ $W->{port} /, @new);

my $a = main::check_deltas('across the reload', $b, \%e);
is $a->{series}{ main::tun('explicit') } // 0, 0, 'no tunnel active';
main::scrape_every_worker('after the reload', @new);
--- no_error_log
[crit]
[emerg]



=== TEST 8: label values from the configuration: a profile named with " \ and a newline; two long names that differ at their end
--- main_config eval
my $long = 'p' x 70;
my $c = $main::MainConfig;
$c =~ s/#MAIN-EXTRA/mcd_fqdn_filter "we\\"ird\\\\pro\\nfile" { default deny; allow origin.test; }
mcd_fqdn_filter ${long}1 { default allow; }
mcd_fqdn_filter ${long}2 { default deny; }/ or die;
$c =~ s/#STREAM-EXTRA/server { listen 127.0.0.1:\$TEST_NGINX_MCD_EXTRA; mcd_proxy explicit; mcd_fqdn_filter "we\\"ird\\\\pro\\nfile"; mcd_connect_ports \$TEST_NGINX_MCD_ECHO; }
    server { listen 127.0.0.1:\$TEST_NGINX_MCD_LONG1; mcd_proxy explicit; mcd_fqdn_filter ${long}1; mcd_connect_ports \$TEST_NGINX_MCD_ECHO; }
    server { listen 127.0.0.1:\$TEST_NGINX_MCD_LONG2; mcd_proxy explicit; mcd_fqdn_filter ${long}2; mcd_connect_ports \$TEST_NGINX_MCD_ECHO; }/ or die;
$c;
--- mcd_client
my $b = main::scrape('before');
main::all_zero('after a restart', $b);
my $weird = "we\"ird\\pro\nfile";
my ($l1, $l2) = (('p' x 70) . '1', ('p' x 70) . '2');
my ($x, $p1, $p2) = @ENV{qw(TEST_NGINX_MCD_EXTRA TEST_NGINX_MCD_LONG1
                            TEST_NGINX_MCD_LONG2)};
main::echo_tunnel(port => $x, data => main::payload(100, 1));
main::refused("denied.test:$W->{echo}", 403, $x);
main::echo_tunnel(port => $p1, data => main::payload(200, 2));
main::refused("origin.test:$W->{echo}", 403, $p2);
my @l = mcd_wait_log('mcd.log', qr/^\d+ (?:$x|$p1|$p2) /, 4, 10);
is scalar(@l), 4, 'every connection logged';
my %e = (
    main::dec('explicit', $weird, 'allow', '') => 1,
    main::dec('explicit', $weird, 'deny', 'policy') => 1,
    main::dec('explicit', $l1, 'allow', '') => 1,
    main::dec('explicit', $l2, 'deny', 'policy') => 1,
    main::bytes($C2U) => 300,
    main::bytes($U2C) => 308,
);
my $a = main::check_deltas('label values', $b, \%e);
like $a->{raw}{body},
     qr/^mcd_decisions_total\{[^\n]*profile="we\\"ird\\\\pro\\nfile"[^\n]*\} 1$/m,
     'written as we\"ird\\\\pro\n' . 'file';
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 9: mcd_metrics off: nothing is counted, the endpoint answers zeros
--- main_config eval
my $c = $main::MainConfig;
$c =~ s/#MAIN-EXTRA/mcd_metrics off;/ or die;
$c;
--- mcd_client
my @w = main::workers_now();
main::echo_tunnel(data => main::payload(1000, $_)) for 1 .. 6;
main::refused("denied.test:$W->{echo}", 403) for 1 .. 2;
main::refused("closed.test:$W->{closed}", 502);
my @l = mcd_wait_log('mcd.log', qr/^\d+ $W->{port} /, 9, 10);
is scalar(@l), 9, 'every connection logged';
my $m = main::scrape_every_worker('mcd_metrics off', @w);
main::all_zero('mcd_metrics off', $m);
--- no_error_log
[alert]
[crit]
[emerg]
