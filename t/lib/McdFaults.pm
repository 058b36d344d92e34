package McdFaults;

# Extra loopback servers for the fault tests (t/05x-*.t), next to the
# world of McdTest: origins that misbehave on purpose (answer only after
# the client's FIN, reset the connection, send in small segments and then
# FIN), a listener that counts its accepts, a DNS server whose answers come
# late, listeners with a full accept queue on 127.0.0.2 and up; plus small
# raw-socket clients.  Every server is bounded in time and lives in a child
# process that is stopped when the test ends.
#
#   use McdTest;
#   use McdFaults;
#   use Test::Nginx::Socket 'no_plan';

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Socket qw(:all);
use Time::HiRes qw(sleep time);

use McdTest;

use parent 'Exporter';

our @EXPORT = qw(
    $F f_start_eof_origin f_start_rst_origin f_start_bulk_origin
    f_start_counter f_count f_start_late_dns f_start_blackholes
    f_tunnel f_read_until f_read_all f_head
    f_write_all
);

our $F;                 # ports and files of the fault world

my @Children;
my @Keep;               # sockets that must stay open (blackholes)
my $OwnerPid = $$;

sub import {
    _ports() unless $F;
    __PACKAGE__->export_to_level(1, @_);
}

sub _ports {
    my $base = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 30;

    $F = {
        gw        => $base + 0,     # gateway, explicit, copy relay
        gw_splice => $base + 1,     # gateway, explicit, mcd_splice on
        gw_tp     => $base + 2,     # gateway, transparent
        gw_small  => $base + 3,     # gateway, mcd_buffer_size 1k
        gw_tries  => $base + 4,     # gateway, mcd_next_upstream_tries 3
        gw_nut    => $base + 5,     # gateway, mcd_next_upstream_timeout 2s
        gw_sndbuf => $base + 6,     # gateway, mcd_splice on, sndbuf=8k
        eof       => $base + 10,    # answers after the client's FIN
        rst       => $base + 11,    # resets the connection
        bulk      => $base + 12,    # sends, then FIN
        counter   => $base + 13,    # counts accepts
        dns       => $base + 14,    # late DNS answers (UDP)
        holes     => $base + 15,    # full accept queues on 127.0.0.2..
        slow_eof  => $base + 16,    # like eof, reads slowly
    };

    for my $k (keys %$F) {
        $ENV{'TEST_NGINX_F_' . uc $k} = $F->{$k};
        $W->{"f_$k"} = $F->{$k};       # for "--- gateway: f_gw"
    }

    $F->{counter_file} = "$W->{dir}/counter.log";
}

# does the module under test know this directive?  (the tests of a fix
# must also run, and fail for the right reason, on the code before it)

sub _spawn {
    my ($code) = @_;
    my $parent = $$;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        eval { $code->($parent) };
        POSIX::_exit(0);
    }
    push @Children, $pid;

    # a killed run: McdTest reaps what this file lists
    open my $fh, '>>', "$W->{dir}/children.pid" or die;
    print $fh "$pid\n";
    close $fh;
    return $pid;
}

sub _listen {
    my ($port, $mss) = @_;
    my $l;
    socket($l, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1);

    # a small MSS (set before listen) holds for every accepted connection:
    # segments of that size both ways, as on a real network

    setsockopt($l, IPPROTO_TCP, TCP_MAXSEG, $mss) if $mss;
    bind($l, sockaddr_in($port, inet_aton('127.0.0.1')))
        or die "bind $port: $!";
    listen($l, 256) or die "listen $port: $!";
    return $l;
}

# a server: one child process per connection, each bounded to 60 s

sub _serve {
    my ($port, $handler, $mss) = @_;
    my $l = _listen($port, $mss);

    _spawn(sub {
        my ($parent) = @_;
        $SIG{CHLD} = 'IGNORE';
        my $sel = IO::Select->new($l);
        while (getppid() == $parent) {
            next unless $sel->can_read(1);
            accept(my $c, $l) or next;
            my $pid = fork;
            next if !defined $pid;
            if ($pid) { close $c; next; }
            close $l;
            $SIG{ALRM} = sub { POSIX::_exit(0) };
            alarm 60;
            local $SIG{PIPE} = 'IGNORE';
            eval { $handler->($c) };
            close $c;
            POSIX::_exit(0);
        }
    });

    close $l;
}

sub f_write_all {
    my ($s, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $w = syswrite($s, $data, length($data) - $off, $off);
        return 0 unless $w;
        $off += $w;
    }
    return 1;
}

# reads until EOF, then answers "got N bytes\n" and closes; with $pause,
# reads 4 KiB at a time with a pause between reads (a slow reader)

sub f_start_eof_origin {
    my ($port, $pause) = @_;
    _serve($port // $F->{eof}, sub {
        my ($c) = @_;
        my $total = 0;
        while (1) {
            my $n = sysread($c, my $buf, $pause ? 4096 : 65536);
            last unless $n;
            $total += $n;
            sleep $pause if $pause;
        }
        f_write_all($c, "got $total bytes\n");
    });
}

# reads a line "N\n", sends N bytes, waits for one byte "A" from the
# client (so that the client has everything), then resets the connection

sub f_start_rst_origin {
    _serve($F->{rst}, sub {
        my ($c) = @_;
        my $line = '';
        while ($line !~ /\n/) {
            my $n = sysread($c, my $b, 1);
            return unless $n;
            $line .= $b;
        }
        my ($n) = $line =~ /^(\d+)/;
        f_write_all($c, 'r' x $n) if $n;
        if ($n) {
            while (1) {
                my $r = sysread($c, my $b, 1);
                return unless $r;
                last if $b eq 'A';
            }
        }
        setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        close $c;
    });
}

# reads a line "SIZE CHUNK\n", sends SIZE bytes in writes of CHUNK bytes
# (TCP_NODELAY: one segment each), shuts its side down (FIN), reads until
# the client's EOF, closes.
#
# Between two writes one byte goes to a private loopback connection: the
# kernel takes the bytes of every write of a process from one page
# fragment, so the segments of the client no longer lie end to end in
# memory.  A receiver that splice()s them into a pipe then needs one pipe
# slot per segment (as with segments from a real network card), and a
# 16-slot pipe is full long before its 64 KiB are.

sub f_start_bulk_origin {
    my ($mss) = @_;
    _serve($F->{bulk}, sub {
        my ($c) = @_;
        setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
        my $line = '';
        while ($line !~ /\n/) {
            my $n = sysread($c, my $b, 1);
            return unless $n;
            $line .= $b;
        }
        my ($size, $chunk) = $line =~ /^(\d+) (\d+)/ or return;

        my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      Listen => 1) or return;
        my $sink = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $l->sockport) or return;
        my $drain = $l->accept or return;
        setsockopt($sink, IPPROTO_TCP, TCP_NODELAY, 1);
        $drain->blocking(0);

        my $block = 'b' x $chunk;
        my $sent = 0;
        while ($sent < $size) {
            my $n = $size - $sent < $chunk ? $size - $sent : $chunk;
            f_write_all($c, substr($block, 0, $n)) or return;
            $sent += $n;
            syswrite($sink, 's');
            sysread($drain, my $b, 65536);
        }
        shutdown($c, 1);
        while (1) {
            my $n = sysread($c, my $b, 65536);
            last unless $n;
        }
    }, $mss);
}

# accepts, writes one line per accept to a file, holds the connection

sub f_start_counter {
    McdTest::mcd_write_file($F->{counter_file}, '');
    _serve($F->{counter}, sub {
        my ($c) = @_;
        open my $fh, '>>', $F->{counter_file} or return;
        printf $fh "%.3f\n", time;
        close $fh;
        my $sel = IO::Select->new($c);
        my $deadline = time + 10;
        while (time < $deadline) {
            next unless $sel->can_read($deadline - time);
            my $n = sysread($c, my $b, 4096);
            last unless $n;
        }
    });
}

sub f_count {
    my @l = grep { /\S/ } split /\n/,
            McdTest::mcd_slurp($F->{counter_file}) // '';
    return scalar @l;
}

# a DNS server (UDP) whose answers come late: every name below
# "late.test" has A 127.0.0.1, answered after $delay seconds (AAAA: no
# data, as late); other names: NXDOMAIN at once.  Queries are answered in
# order of their due time, none blocks another.

sub f_start_late_dns {
    my ($delay) = @_;
    require Net::DNS;
    $delay //= 2;

    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $F->{dns}, Proto => 'udp')
        or die "late dns: cannot listen on $F->{dns}: $!";

    _spawn(sub {
        my ($parent) = @_;
        my $sel = IO::Select->new($sock);
        my @due;    # [time, packet, peer]
        while (getppid() == $parent) {
            my $wait = 0.5;
            if (@due) {
                $wait = $due[0][0] - time;
                $wait = 0 if $wait < 0;
            }
            if ($sel->can_read($wait)) {
                my $peer = recv($sock, my $buf, 4096, 0);
                if (defined $peer) {
                    my $query = eval { Net::DNS::Packet->new(\$buf) };
                    my ($q) = $query ? $query->question : ();
                    if ($q) {
                        my $name = lc $q->qname;
                        $name =~ s/\.$//;
                        my $reply = $query->reply;
                        $reply->header->aa(1);
                        my $at = time;
                        if ($name =~ /(^|\.)late\.test$/) {
                            $reply->header->rcode('NOERROR');
                            $reply->push(answer => Net::DNS::RR->new(
                                "$name 5 IN A 127.0.0.1"))
                                if $q->qtype eq 'A';
                            $at += $delay;
                        } else {
                            $reply->header->rcode('NXDOMAIN');
                        }
                        push @due, [$at, $reply->data, $peer];
                        @due = sort { $a->[0] <=> $b->[0] } @due;
                    }
                }
            }
            while (@due && $due[0][0] <= time) {
                my $d = shift @due;
                send($sock, $d->[1], 0, $d->[2]);
            }
        }
    });

    close $sock;
}

# listeners whose accept queue is full on each of @addrs at port
# $F->{holes}: a SYN to them is dropped, a connect() times out

sub f_start_blackholes {
    my (@addrs) = @_;
    for my $a (@addrs) {
        my $l;
        socket($l, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
        setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1);
        bind($l, sockaddr_in($F->{holes}, inet_aton($a)))
            or die "bind $a:$F->{holes}: $!";
        listen($l, 0) or die "listen: $!";
        my $fill = IO::Socket::INET->new(PeerAddr => $a,
                                         PeerPort => $F->{holes},
                                         Timeout => 1);
        push @Keep, $l;
        push @Keep, $fill if $fill;

        # one more SYN must time out, or the hole is not one
        my $probe = IO::Socket::INET->new(PeerAddr => $a,
                                          PeerPort => $F->{holes},
                                          Timeout => 0.5);
        die "blackhole $a:$F->{holes} accepts connections" if $probe;
    }
}

# clients

# connect to a gateway port, send the CONNECT head (and $extra right after
# it, in the same write); returns the socket.  With "fin", the client's FIN
# travels in the same TCP segment as the last byte (TCP_CORK holds the
# bytes until shutdown() sets the FIN on them), so the gateway cannot see
# the head without the FIN.

sub f_tunnel {
    my (%o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // $F->{gw},
                                  Timeout => 5)
        or die "connect to the gateway: $!";
    setsockopt($s, IPPROTO_TCP, TCP_CORK, 1) if $o{fin};
    f_write_all($s, "CONNECT $o{target} HTTP/1.1\r\nHost: $o{target}\r\n\r\n"
                    . ($o{extra} // ''));
    shutdown($s, 1) if $o{fin};
    return $s;
}

# read the answer head (up to the blank line), at most $timeout seconds

sub f_head {
    my ($s, $timeout) = @_;
    my $head = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($timeout // 5);
    while ($head !~ /\r\n\r\n/ && time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $b, 1);
        last unless $n;
        $head .= $b;
    }
    return $head;
}

# read until EOF, an error or the deadline: { data, eof, err, errno,
# elapsed }

sub f_read_all {
    my ($s, $timeout, $until) = @_;
    my $r = { data => '', eof => 0, err => '' };
    my $sel = IO::Select->new($s);
    my $t0 = time;
    my $deadline = $t0 + ($timeout // 5);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $b, 65536);
        if (!defined $n) {
            $r->{err} = "$!";
            $r->{errno} = $! + 0;
            last;
        }
        if ($n == 0) {
            $r->{eof} = 1;
            last;
        }
        $r->{data} .= $b;
        last if defined $until && length $r->{data} >= $until;
    }
    $r->{elapsed} = time - $t0;
    return $r;
}

sub f_read_until { return f_read_all($_[0], $_[2], $_[1]); }

END {
    if ($$ == $OwnerPid) {
        kill 'TERM', @Children if @Children;
        waitpid($_, 0) for @Children;
    }
}

1;
