package Test::Nginx::Socket;

# Clean-room, compact re-implementation of the subset of the CPAN module
# Test::Nginx::Socket (openresty/test-nginx) used by this project's tests:
# builds the requests of a test block, talks HTTP to nginx over a plain
# TCP socket and runs the checks of the block.  Only a fallback for when
# the real module is not installed; see t/compat/README.

use strict;
use warnings;
use Test::Base -base;
use Test::Nginx::Util;

use HTTP::Response ();
use IO::Select ();
use IO::Socket::IP ();
use List::Util qw(min);
use Time::HiRes qw(sleep time);

our $VERSION = $Test::Nginx::Util::VERSION;

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location use_hup
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_test_cleanup_handler
    add_cleanup_handler add_response_body_check
);

our @ResponseBodyChecks;
our $LastRawResponse;    # for diagnostics when a response is not HTTP

sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub set_http_config_filter ($) { $Test::Nginx::Util::FilterHttpConfig = shift }

$Test::Nginx::Util::RunTestHelper         = \&run_test_helper;
$Test::Nginx::Util::CheckErrorLog         = \&check_error_log;
$Test::Nginx::Util::CheckShutdownErrorLog = \&check_shutdown_error_log;

# ---------------------------------------------------------------------------
# Building requests
#
# A request is a list of "packets" { value => BYTES, delay_before => SECS };
# each packet is written with its own syswrite() call.

# "--- more_headers" text -> ("Name: value\r\n"..., is_chunked)
sub parse_more_headers ($) {
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, shift // '') {
        next if $line =~ /^\s*#/ || $line !~ /\S/;
        my ($k, $v) = split /:\s*/, $line, 2;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked);
}

# Turn the short request form ("METHOD [URI [VERSION]]\nBODY"), given as
# one or more packets, into a complete HTTP request with the automatic
# Host, Connection and Content-Length headers.  Packet boundaries are kept
# at the corresponding places of the generated request.
sub build_request ($$$$) {
    my ($name, $packets, $hdrs, $conn) = @_;
    my ($more, $chunked) = @$hdrs;
    my $text = join '', @$packets;
    my $nl = index $text, "\n";
    my $line_len = $nl < 0 ? length $text : $nl + 1;
    my $line = substr $text, 0, $line_len;
    my ($lead, $meth, $uri, $ver) =
        $line =~ /^(\s*)(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$line\".");
    $uri //= '/';
    $ver //= 'HTTP/1.1';

    my $body = substr $text, $line_len;
    my ($skipped, $len_hdr) = (0, '');
    if (!$chunked && $body ne '' && $more !~ /(?:^|\n)Content-Length:/) {
        ($skipped) = map { length } $body =~ /^(\s*)/;
        $body =~ s/^\s+//;
        $body =~ s/\s+$//;
        $len_hdr = 'Content-Length: ' . length($body) . "\r\n";
    }
    my $reqline = "$meth $uri $ver";
    my $head = "$reqline\r\n";
    $head .= "Host: $Test::Nginx::Util::ServerName\r\n" if $more !~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" if $more !~ /(?:^|\n)Connection/i;
    $head .= "$more$len_hdr\r\n";
    my $req = $head . $body;

    # map the original packet boundaries onto the generated request
    my ($orig, @cuts) = (0);
    for my $p (@$packets[0 .. $#$packets - 1]) {
        $orig += length $p;
        my $at = $orig >= $line_len
            ? length($head) + min(length $body, max0($orig - $line_len - $skipped))
            : min(length $reqline, max0($orig - length $lead));
        push @cuts, $at < ($cuts[-1] // 0) ? $cuts[-1] // 0 : $at;
    }
    my ($from, @out) = (0);
    for my $to (@cuts, length $req) {
        push @out, substr $req, $from, $to - $from;
        $from = $to;
    }
    return \@out;
}

sub max0 { $_[0] < 0 ? 0 : $_[0] }

# The block's requests: [ [packet, ...], ... ], one entry per connection.
sub get_req_from_block ($) {
    my $block = shift;
    my $name = $block->name;
    my $pkt = sub { ref $_[0] eq 'HASH' ? { %{ $_[0] } } : { value => $_[0] } };

    if (defined(my $raw = $block->raw_request)) {
        return [[ map { $pkt->($_) } ref $raw eq 'ARRAY' ? @$raw : ($raw) ]];
    }

    my $more = $block->more_headers // '';
    my $headers_for = sub {
        my $i = shift;
        my $h = ref $more eq 'ARRAY' ? $more->[$i] : $more;
        bail_out("$name - --- more_headers lacks data for request $i") unless defined $h;
        return [ parse_more_headers($h) ];
    };

    if (defined(my $reqs = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $r = expand_env_in_text($reqs->[$i], $name, $Test::Nginx::Util::RandPorts);
            $all .= build_request($name, [$r], $headers_for->($i),
                                  $i == $#$reqs ? 'close' : 'keep-alive')->[0];
        }
        return [[ { value => $all } ]];
    }

    my $request;
    if (defined $block->request_eval) {
        diag "$name - request_eval DEPRECATED. Use request eval instead.";
        $request = eval $block->request_eval;
        warn $@ if $@;
    } else {
        $request = $block->request;
        # drop leading blank and comment lines
        1 while defined $request && !ref $request
                && $request =~ s/^\s*#[^\n]*\n|^\s+//;
    }
    bail_out("$name - Request line should be non-empty")
        if !defined $request || (!ref $request && $request eq '');

    return [[ { value => build_request($name, [$request], $headers_for->(0), 'close')->[0] } ]]
        unless ref $request;
    bail_out("$name - invalid --- request: MUST be a string or an array of requests")
        unless ref $request eq 'ARRAY';

    my @list;
    for my $i (0 .. $#$request) {
        my $r = $request->[$i];
        if (!ref $r) {
            push @list, [ { value => build_request($name, [$r], $headers_for->($i), 'close')->[0] } ];
        } elsif (ref $r eq 'ARRAY') {
            my @pkts = map { $pkt->($_) } @$r;
            my $vals = build_request($name, [ map { $_->{value} } @pkts ],
                                     $headers_for->($i), 'close');
            $pkts[$_]{value} = $vals->[$_] for 0 .. $#pkts;
            push @list, \@pkts;
        } else {
            bail_out("$name - Invalid syntax. $r should be a string or an array of packets.");
        }
    }
    return \@list;
}

# ---------------------------------------------------------------------------
# Talking to nginx

sub connect_to_server ($$$) {
    my ($addr, $port, $name) = @_;
    my $deadline = time + 3;
    my $wait = 0.01;
    while (1) {
        my $sock = IO::Socket::IP->new(PeerHost => $addr, PeerPort => $port,
                                       Proto => 'tcp', Timeout => 2);
        return $sock if $sock;
        my $err = $!;
        if (time > $deadline) {
            fail("$name - Can't connect to $addr:$port: $err (aborted)\n");
            return undef;
        }
        sleep $wait;
        $wait = min($wait * 2, 0.3);
    }
}

# Send one request (a list of packets) and read until the server closes
# the connection or nothing happens for $timeout seconds.
# Returns (raw response bytes, whether it was a HEAD request).
sub send_request ($$$$) {
    my ($packets, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;
    my @todo = @$packets;
    my $head_req = (join '', map { $_->{value} } @todo) =~ /^\s*HEAD\s+/ ? 1 : 0;
    my $addr = $block->server_addr_for_client // $Test::Nginx::Util::ServerAddr;
    my $sock = connect_to_server($addr, $Test::Nginx::Util::ServerPortForClient, $name)
        or return ('', $head_req);
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my ($resp, $write_err) = ('', undef);
    my $wbuf = (shift @todo)->{value} // '';
    my $writing = 1;
    my $rsel = IO::Select->new($sock);
    while (1) {
        my ($r, $w) = IO::Select->select($rsel, $writing ? IO::Select->new($sock) : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            fail("ERROR: client socket timed out - $name\n") unless defined $block->abort;
            last;
        }
        if ($w && @$w) {
            if (length $wbuf) {
                my $n = syswrite $sock, $wbuf;
                if (defined $n) {
                    substr($wbuf, 0, $n) = '';
                } elsif (!$!{EAGAIN} && !$!{EWOULDBLOCK}) {
                    $write_err = "write failed: $!";
                    warn "$write_err\n";
                    $writing = 0;
                }
            }
            if ($writing && !length $wbuf) {
                if (my $next = shift @todo) {
                    my $delay = $next->{delay_before} // $middle_delay;
                    sleep $delay if $delay;
                    $wbuf = $next->{value} // '';
                } else {
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        shutdown $sock, $how =~ /^\s*(\d)/ ? $1 : 1;
                    }
                }
            }
        }
        if ($r && @$r) {
            my $n = sysread $sock, my $chunk, 65536;
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK};
                warn "WARNING: $name - HTTP response read failure: $!\n"
                    unless length $resp;
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }
    }
    close $sock;
    $resp = $write_err if $resp eq '' && defined $write_err;
    warn "raw response for $name:\n$resp\n" if $Test::Nginx::Util::Verbose;
    return ($resp, $head_req);
}

# Parse one HTTP response off the front of $raw.
# Returns (HTTP::Response or undef, raw header text, bytes left over).
sub parse_response ($$$) {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /^(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        $res->code(undef);
        $code = undef;
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $body = $res->content // '';
    my $te = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $left;
    if (defined $te && $te eq 'chunked') {
        my $out = '';
        while (1) {
            if ($body !~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
                my $rest = substr $body, pos($body) // 0;
                fail($rest eq '' ? "$name - no last chunk found - " . show_bytes($body)
                     : "$name - invalid chunked body received: " . show_bytes($rest));
                return;
            }
            my $size = hex $1;
            if ($size == 0) {
                1 while $body =~ /\G[^\r\n]+\r\n/gc;    # trailers
                if ($body !~ /\G\r\n/gc) {
                    fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
                $left = substr $body, pos $body if pos($body) < length $body;
                last;
            }
            my $at = pos $body;
            if (length($body) - $at < $size + 2) {
                fail("$name - invalid chunked data received "
                     . "(not enough octets for the data section)");
                return;
            }
            $out .= substr $body, $at, $size;
            pos($body) = $at + $size;
            if ($body !~ /\G\r\n/gc) {
                fail("$name - invalid chunked data received (expected CRLF).");
                return;
            }
        }
        $res->content($out);
    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($body) . "\n" unless $head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }
    return ($res, $raw_headers, $left);
}

# ---------------------------------------------------------------------------
# Checks

sub fmt_str ($) {
    my $s = shift // '';
    chomp $s;
    $s =~ s/"/\\"/g; $s =~ s/\r/\\r/g; $s =~ s/\n/\\n/g;
    return $s;
}

# Printable excerpt of raw bytes, for diagnostics.
sub show_bytes ($) {
    (my $s = substr(shift // '', 0, 300)) =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return "\"$s\"";
}

sub get_indexed_value ($$$$) {
    my ($name, $value, $idx, $need_array) = @_;
    if (ref $value eq 'ARRAY') {
        bail_out("$name - SHOULD NOT HAPPEN: idx != 0 and don't need array.")
            if !$need_array && $idx != 0;
        return $value->[$idx];
    }
    bail_out("$name - You asked for many requests, the expected results "
             . "should be arrays as well.") if $need_array;
    return $value;
}

# "$ServerPort" and "$ServerPortForClient" in expected header/body values
sub expand_port_vars ($) {
    my $v = shift;
    return $v if !defined $v || ref $v;
    $v =~ s/\$ServerPortForClient\b/$Test::Nginx::Util::ServerPortForClient/g;
    $v =~ s/\$ServerPort\b/$Test::Nginx::Util::ServerPort/g;
    return $v;
}

sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';
    my $ok;
    if (defined $block->error_code_like) {
        my $pat = get_indexed_value($name, $block->error_code_like, $idx, $need_array);
        $ok = like($code, qr/$pat/sm, "$name - status code ok");
    } else {
        my $want = defined $block->error_code
            ? get_indexed_value($name, $block->error_code, $idx, $need_array) : 200;
        $ok = is($code, $want, "$name - status code ok");
    }
    diag("response was: " . show_bytes($LastRawResponse)) if !$ok && !$code;
}

sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $pat = get_indexed_value($name, $block->raw_response_headers_like, $idx, $need_array);
        like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = get_indexed_value($name, $block->raw_response_headers_unlike, $idx, $need_array);
        unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }
}

sub check_response_headers ($$$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    my $like = !defined $block->response_headers;
    my $spec = $like ? $block->response_headers_like : $block->response_headers;
    return unless defined $spec;
    my $h = parse_headers(get_indexed_value($name, $spec, $idx, $need_array));
    for my $key (sort keys %$h) {
        my ($want, $got) = ($h->{$key}, ($res && $res->header($key)) // '');
        if ($like) {
            $want //= '';
            like($got, qr/^$want$/, "$name - header $key like ok");
        } elsif (!defined $want) {    # "!Name": must be absent
            unlike($raw_headers, qr/^\s*\Q$key\E\s*:/mi,
                   "$name - header $key not present in the raw headers");
        } else {
            is($got, expand_port_vars($want), "$name - header $key ok");
        }
    }
}

sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $expected;
        if (defined $block->response_body_eval) {
            diag "$name - response_body_eval is DEPRECATED. Use response_body eval instead.";
            $expected = eval get_indexed_value($name, $block->response_body_eval, $idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, $block->response_body, $idx, $need_array);
        }
        $expected = expand_env_in_text(expand_port_vars($expected), $name,
                                       $Test::Nginx::Util::RandPorts);
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like (repeated req $rep, req $idx)");
        } else {
            my $desc = "$name - response_body - response is expected (repeated req $rep, req $idx)";
            # without Test::LongString, Test::Base's is() shows a diff
            $Test::Nginx::Util::HaveLongString && !$Test::Nginx::Util::NoLongString
                ? is_str($content, $expected, $desc) : is($content, $expected, $desc);
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $sec = "response_body_$type";
        my $pat = expand_port_vars(get_indexed_value($name, $block->$sec, $idx, $need_array));
        my $desc = "$name - $sec - response is expected (" . (trim($content) // '') . ")";
        $type eq 'like' ? like($content, qr/$pat/s, $desc) : unlike($content, qr/$pat/s, $desc);
    }

    $_->($block, $content, $idx, $rep, $dry_run) for @ResponseBodyChecks;
}

# patterns of an error_log-like section -> list of strings/regexes
sub pattern_list ($) {
    my $pats = shift;
    return [@$pats] if ref $pats eq 'ARRAY';
    return [$pats] if ref $pats;
    chomp $pats;
    return [ split /\n+/, $pats ];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub value_contains ($$) {
    my ($val, $str) = @_;
    return grep { defined && index("$_", $str) >= 0 } @{ pattern_list($val) };
}

# Every pattern must match some line: one subtest per pattern.
sub check_log_has ($$$$) {
    my ($block, $pats, $lines, $what) = @_;
    my $name = $block->name;
    for my $pat (@{ pattern_list($pats) }) {
        next unless defined $pat;
        my $hit = grep { line_matches($_, $pat) } @$lines;
        ok($hit, $hit ? "$name - pattern \"$pat\" matches a line in $what"
                        : "$name - pattern \"$pat\" should match a line in $what");
    }
}

# No pattern may match any line: a failure per offending line, otherwise
# one passing subtest per pattern.
sub check_log_lacks ($$$$) {
    my ($block, $pats, $lines, $what) = @_;
    my $name = $block->name;
    my ($file, $suffix) = $what =~ /^(\S+)(.*)$/;
    for my $pat (@{ pattern_list($pats) }) {
        next unless defined $pat;
        my $p = fmt_str($pat);
        my @hits = grep { line_matches($lines->[$_], $pat) } 0 .. $#$lines;
        for my $i (@hits) {
            my @more = @$lines[$i + 1 .. min($i + 9, $#$lines)];
            fail("$name - pattern \"$p\" should not match any line in $file "
                . "but matches line \"" . fmt_str($lines->[$i]) . "\"$suffix\n" . join '', @more);
        }
        pass("$name - pattern \"$p\" does not match a line in $what") unless @hits;
    }
}

sub check_error_log ($$$$$) {
    my ($block, $res, $dry_run, $rep, $need_array) = @_;
    my $name = $block->name;
    my $lines;
    my $data = sub { $lines //= Test::Nginx::Util::error_log_data() };

    my $grep = $block->grep_error_log;
    if (defined $grep) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';
        $expected = expand_env_in_text($expected, $name, $Test::Nginx::Util::RandPorts);
        my $got = '';
        for my $line (@{ $data->() }) {
            my $m = ref $grep ? ($line =~ $grep ? $& : undef)
                  : (index($line, $grep) >= 0 ? $grep : undef);
            $got .= "$m\n" if defined $m && $m !~ /\n/;
        }
        my $desc = "$name - grep_error_log_out (req $rep)";
        is_str($got, $expected, $desc);
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }

    my %warn_for = map { $_ => 1 } qw(alert crit emerg);
    for my $sec (qw(error_log no_error_log)) {
        my $pats = $block->$sec;
        next unless defined $pats;
        delete @warn_for{ grep { value_contains($pats, "[$_") } keys %warn_for };
        my $check = $sec eq 'error_log' ? \&check_log_has : \&check_log_lacks;
        $check->($block, $pats, $data->(), "error.log (req $rep)");
    }

    for my $line (@{ $data->() }) {
        warn "WARNING: $name - ", fmt_str($line), "\n"
            if $line =~ /\[(alert|crit|emerg)\]/ && $warn_for{$1};
        fail("$name - $1") if $line =~ /(\bAssertion .*?failed\b.*)/;
    }
}

sub check_access_log ($$$) {
    my ($block, $dry_run, $rep) = @_;
    my $lines;
    for my $sec (qw(access_log no_access_log)) {
        my $pats = $block->$sec;
        next unless defined $pats;
        $lines //= Test::Nginx::Util::access_log_data();
        my $check = $sec eq 'access_log' ? \&check_log_has : \&check_log_lacks;
        $check->($block, $pats, $lines, "access.log (req $rep)");
    }
}

sub check_shutdown_error_log ($$) {
    my ($block, $dry_run) = @_;
    my $lines;
    for my $sec (qw(shutdown_error_log no_shutdown_error_log)) {
        my $pats = $block->$sec;
        next unless defined $pats;
        if ($dry_run) {    # nginx was left running (TEST_NGINX_NO_CLEAN)
            Test::More->builder->skip($block->name . " - $sec - tests skipped due to dry_run")
                for grep { defined } @{ pattern_list($pats) };
            next;
        }
        $lines //= Test::Nginx::Util::error_log_data();
        my $check = $sec eq 'shutdown_error_log' ? \&check_log_has : \&check_log_lacks;
        $check->($block, $pats, $lines, 'error.log');
    }
}

# ---------------------------------------------------------------------------
# One run of a test block (called repeat_each times by Test::Nginx::Util)

sub run_test_helper ($$$) {
    my ($block, $dry_run, $rep) = @_;
    my $name = $block->name;
    my $reqs = get_req_from_block($block);
    bail_out("$name - request empty") unless @$reqs;
    my $timeout = parse_time($block->timeout) // timeout();
    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $ignore = defined $block->ignore_response;
    my ($res, $idx) = (undef, 0);

    for my $k (0 .. $#$reqs) {
        my ($raw, $head_req) =
            send_request($reqs->[$k], $block->raw_request_middle_delay, $timeout, $block);
        my $nresp = $pipelined ? @$pipelined : 1;
        for my $j (1 .. $nresp) {
            my ($raw_headers, $left) = ('');
            if (!$ignore) {
                $LastRawResponse = $raw;
                ($res, $raw_headers, $left) = parse_response($name, $raw // '', $head_req);
                $raw_headers //= '';
                if ($j == $nresp && defined $left && length $left) {
                    warn "WARNING: $name - unexpected extra bytes after last chunk in "
                         . "response: " . show_bytes($left) . "\n";
                }
                check_error_code($block, $res, $dry_run, $idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $dry_run, $idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $dry_run, $idx, $need_array);
                check_response_body($block, $res, $dry_run, $idx, $rep, $need_array);
            }
            $raw = $left;
            if ($j < $nresp || $k < $#$reqs) {    # logs between two requests
                sleep parse_time($block->wait) if $block->wait;
                check_error_log($block, $res, $dry_run, $rep, $need_array);
                check_access_log($block, $dry_run, $rep) unless $ignore;
            }
            $idx++;
        }
    }
    sleep parse_time($block->wait) if $block->wait;
    check_error_log($block, $res, $dry_run, $rep, $need_array);
    check_access_log($block, $dry_run, $rep) unless $ignore;
}

1;
