package Test::Nginx::Util;

# Clean-room, compact re-implementation of the subset of the CPAN module
# Test::Nginx::Util (openresty/test-nginx) used by this project's tests.
# It is only a fallback: t/compat is appended to @INC, so an installed copy
# of the real Test::Nginx always wins.  See t/compat/README.
#
# This file owns the nginx side: settings, the server root, nginx.conf,
# starting/stopping nginx and reading its logs.  Test::Nginx::Socket owns
# the client side (requests, responses and the checks).

use strict;
use warnings;
use parent 'Exporter';

use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::IP ();
use List::Util qw(shuffle);
use POSIX qw(WNOHANG);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);
use Test::More ();

our $VERSION = '0.33';

our $HaveLongString = eval { require Test::LongString; 1 };
my $MainPid = $$;    # END must not act inside forked children

sub gen_rand_port (;$$);

# ---------------------------------------------------------------------------
# Settings (same package variable names as the real module)

our $Verbose              = $ENV{TEST_NGINX_VERBOSE};
our $NoLongString;
our $RepeatEach           = 1;
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Randomize            = $ENV{TEST_NGINX_RANDOMIZE};
our $NoNginxManager       = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $EventType            = $ENV{TEST_NGINX_EVENT_TYPE};
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY}
                            || (can_run('nginx') ? 'nginx' : '/usr/sbin/nginx');
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $NoRootLocation       = 0;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ConfigPreamble       = '';
our $FilterHttpConfig;

# Modes of the real module that this subset does not implement.
our ($UseHup, $UseStap, $UseValgrind, $CheckLeak, $Benchmark, $BenchmarkWarmup)
    = (0, 0, 0, 0, 0, 0);

# Hooks filled in by Test::Nginx::Socket.
our ($RunTestHelper, $CheckErrorLog, $CheckShutdownErrorLog);

our ($NginxVersion, $NginxRawVersion, $PcreVersion);
our ($PrevConfig, $PrevBlock, $RandPorts, $ErrLogFilePos, $InSubprocess);
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @TestCleanupHandlers);
our @StartupStderr;    # nginx's stderr lines, merged into the log for must_die

if ($Randomize) {
    $ServerPort = $ServerPortForClient = gen_rand_port(1000)
        or die "Cannot find a free listening port\n";
}

our $ServRoot = $Randomize ? File::Spec->rel2abs("t/servroot_$ServerPort")
              : File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || 't/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";
our $CacheDir   = "$ServRoot/cache";
my  $StderrFile = "$LogDir/nginx-stderr.txt";

our @EXPORT = qw(
    expand_env_in_text env_to_nginx is_str check_accum_error_log is_running
    $NoLongString no_long_string $ServerAddr server_addr $ServerName
    server_name parse_time verbose sleep_time bail_out add_cleanup_handler
    add_test_cleanup_handler access_log_data error_log_data
    setup_server_root write_config_file get_canon_version get_nginx_version
    trim show_all_chars parse_headers run_tests run_test
    get_pid_from_pidfile $ServerPortForClient $ServerPort $NginxVersion
    $PcreVersion $PidFile $ServRoot $ConfFile $RunTestHelper $CheckErrorLog
    $CheckShutdownErrorLog $FilterHttpConfig $NoNginxManager $RepeatEach
    $CheckLeak $Benchmark $BenchmarkWarmup $UseStap add_block_preprocessor
    timeout worker_connections workers master_on master_off config_preamble
    repeat_each master_process_enabled log_level no_shuffle no_root_location
    html_dir server_root server_port server_port_for_client
    no_nginx_manager use_hup
);

# ---------------------------------------------------------------------------
# Small setters/getters used from the test files

sub _getset { my $ref = shift; $$ref = shift if @_; $$ref }

sub repeat_each (@)            { _getset(\$RepeatEach, @_) }
sub workers (@)                { _getset(\$Workers, @_) }
sub worker_connections (@)     { _getset(\$WorkerConnections, @_) }
sub log_level (@)              { _getset(\$LogLevel, @_) }
sub timeout (@)                { _getset(\$Timeout, @_) }
sub server_addr (@)            { _getset(\$ServerAddr, @_) }
sub server_name (@)            { _getset(\$ServerName, @_) }
sub server_port (@)            { _getset(\$ServerPort, @_) }
sub server_port_for_client (@) { _getset(\$ServerPortForClient, @_) }
sub master_process_enabled (@) {
    _getset(\$MasterProcessEnabled, @_ ? ($_[0] ? 'on' : 'off') : ());
}
sub master_on ()               { $MasterProcessEnabled = 'on' }
sub master_off ()              { $MasterProcessEnabled = 'off' }
sub no_shuffle ()              { $NoShuffle = 1 }
sub no_long_string ()          { $NoLongString = 1 }
sub no_root_location ()        { $NoRootLocation = 1 }
sub no_nginx_manager ()        { $NoNginxManager = 1 }
sub check_accum_error_log ()   { $CheckAccumErrLog = 1 }
sub use_hup ()                 { }    # HUP reload mode: not supported, we always restart
sub config_preamble ($)        { $ConfigPreamble = shift }
sub html_dir ()                { $HtmlDir }
sub server_root ()             { $ServRoot }
sub verbose ()                 { $Verbose }
sub sleep_time ()              { $TestNginxSleep }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return Test::LongString::is_string($got, $expected, $desc)
        if $HaveLongString && !$NoLongString;
    return Test::More::is($got, $expected, $desc);
}

# "50ms" -> 0.05, "2s" -> 2, "1.5" -> 1.5
sub parse_time ($) {
    my $t = shift;
    return undef unless defined $t;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\s+/ /g;
    return $s;
}

sub show_all_chars ($) {
    my $s = shift;
    $s =~ s/\n/\\n/g; $s =~ s/\r/\\r/g; $s =~ s/\t/\\t/g;
    return $s;
}

# "Name: value" lines -> { Name => value }; "!Name" -> { Name => undef }
sub parse_headers ($) {
    my %h;
    for my $line (split /\n/, shift) {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) { $h{$line} = undef; next }
        my ($k, $v) = split /\s*:\s*/, $line, 2;
        $h{$k} = $v;
    }
    return \%h;
}

# ---------------------------------------------------------------------------
# Environment expansion and random ports

sub port_is_free ($) {
    my $port = shift;
    my $s = IO::Socket::IP->new(LocalHost => '0.0.0.0', LocalPort => $port,
                                Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or return 0;
    close $s;
    return 1;
}

sub gen_rand_port (;$$) {
    my ($tries, $used) = @_;
    for (1 .. ($tries || 1000)) {
        my $p = 1985 + int rand(65535 - 1985);
        next if $used && $used->{$p};
        return $p if port_is_free($p);
    }
    return undef;
}

sub expand_env_in_text ($$$) {
    my ($text, $name, $ports) = @_;
    return $text if !defined $text || ref $text;
    $ports ||= {};
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            if (!defined $ports->{$var}) {
                my %used = map { $_ => 1 } $ServerPort, values %$ports;
                $ports->{$var} = gen_rand_port(1000, \%used)
                    // bail_out("$name - Cannot find a free port for $var.\n");
            }
            $ports->{$var};
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $ENV{$var};
        }
    }ge;
    return $text;
}

# ---------------------------------------------------------------------------
# The nginx binary

sub can_run {
    my $cmd = shift;
    return (-f $cmd && -x _) ? $cmd : undef if $cmd =~ m{/};
    for my $dir (split /:/, $ENV{PATH} // '') {
        next if $dir eq '';
        return "$dir/$cmd" if -f "$dir/$cmd" && -x _;
    }
    return undef;
}

my $NginxV;    # cached "nginx -V" output

sub nginx_V () {
    $NginxV //= `$NginxBinary -V 2>&1` // '';
}

sub get_canon_version (@) { sprintf "%d.%03d%03d", @_[0 .. 2] }

sub get_nginx_version () {
    my $out = nginx_V();
    bail_out("Failed to get the version of nginx ($NginxBinary): $out")
        unless $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)};
    $NginxRawVersion = "$1.$2.$3";
    my $ver = get_canon_version($1, $2, $3);
    $PcreVersion = $ver >= 1.025000 && $out !~ /--without-pcre2/ ? 2
                 : $out =~ /pcre/ ? 1 : 0;
    return $ver;
}

# ---------------------------------------------------------------------------
# Server root, user files and nginx.conf

sub setup_server_root (;$) {
    if (-d $ServRoot) {
        # Only remove what we create, so that a misused TEST_NGINX_SERVROOT
        # cannot wipe unrelated data.
        remove_tree($ConfDir, $LogDir, $HtmlDir, $CacheDir,
                    glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
        rmdir $ServRoot
            or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $d ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        make_path($d, { error => \my $err });
        bail_out("Failed to do mkdir $d") unless -d $d;
    }
    open my $fh, '>', "$HtmlDir/index.html"
        or bail_out("Can't write $HtmlDir/index.html: $!");
    print $fh '<html><head><title>It works!</title></head>'
            . '<body>It works!</body></html>';
    close $fh;
}

sub write_user_files ($$) {
    my ($block, $ports) = @_;
    my $name  = $block->name;
    my $files = $block->user_files;
    return unless defined $files;
    if (!ref $files) {
        # ">>> path [touch-date]" starts a file; following lines are its body
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+?))?\s*$/) {
                push @list, [$1, undef, $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - user_files: only a string or an ARRAY is accepted");
    }
    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        $body = expand_env_in_text($body // '', $name, $ports);
        open my $fh, '>', $path or bail_out("$name - Cannot write $path: $!");
        binmode $fh;
        print $fh $body;
        close $fh;
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - touch -t $date $path failed");
        }
    }
}

sub write_config_file ($$$) {
    my ($block, $config, $ports) = @_;
    my $name = $block->name;
    my $x = sub { expand_env_in_text($_[0] // '', $name, $ports) };

    my $http_config = $x->($block->http_config);
    $http_config = $FilterHttpConfig->($http_config) if $FilterHttpConfig;
    my $main_config = $x->(join '', (map { "load_module $_;\n" }
                                     split ' ', $LoadModules // ''),
                           $block->main_config // '');
    my $post_main   = $x->($block->post_main_config);
    my $err_log     = $x->($block->error_log_file || $ErrLogFile);
    my $server_name = $block->server_name // $ServerName;
    $server_name =~ s/([\\'])/\\$1/g;

    # Keep every temporary file of nginx inside the server root: the binary's
    # compiled-in paths (e.g. /var/lib/nginx/...) may not exist.
    my $temp_paths = '';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if nginx_V() =~ /--without-http_${t}_module/;
        next if $http_config =~ /\b${t}_temp_path\b/;
        $temp_paths .= "    ${t}_temp_path $ServRoot/${t}_temp;\n";
    }
    my $env = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" } @EnvToNginx;
    my $root_location = $NoRootLocation ? '' : <<"EOT";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
EOT
    my $events_use = $EventType ? "    use $EventType;\n" : '';
    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0 ? "user root;\n" : '';

    open my $fh, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!");
    print $fh <<"EOT";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log $LogLevel;
pid       $PidFile;
$env
$main_config

http {
    access_log $AccLogFile;
$temp_paths
    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';
        client_max_body_size 30M;

        # preamble
$ConfigPreamble
        # test block config
$config
        # end of test block config

$root_location    }
}

$post_main

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
$events_use}
$user
EOT
    close $fh;
}

# ---------------------------------------------------------------------------
# Processes

sub is_running ($) {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    # a zombie (nobody reaped it yet) is not running
    if (open my $st, '<', "/proc/$pid/stat") {
        my $stat = <$st> // '';
        return 0 if $stat =~ /^\d+ \(.*\) Z/s;
    }
    return 1;
}

sub get_pid_from_pidfile ($) {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in> // '';
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

sub wait_until (&$) {
    my ($cond, $secs) = @_;
    my $deadline = time + $secs;
    while (1) {
        return 1 if $cond->();
        return 0 if time > $deadline;
        sleep 0.01;
    }
}

# Is something listening on this TCP port?  Read from /proc so that we
# do not open a connection nginx would log (and count).
sub port_listening ($) {
    my $hex = sprintf ':%04X', shift;
    my $seen_proc;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $in, '<', $f or next;
        $seen_proc = 1;
        while (<$in>) {
            my (undef, $local, undef, $st) = split ' ';
            return 1 if $st && $st eq '0A' && $local =~ /\Q$hex\E$/;
        }
    }
    return !$seen_proc;
}

# Run nginx once: returns ($wait_status, $stderr_text).  With "daemon on"
# the command returns as soon as the daemon forked.
sub launch_nginx () {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    push @cmd, '-e', $ErrLogFile if ($NginxVersion // 0) >= 1.019005;
    warn "starting nginx: @cmd\n" if $Verbose;
    my $pid = fork // bail_out("fork() failed: $!");
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $StderrFile;
        $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_LD_PRELOAD}
            if defined $ENV{TEST_NGINX_LD_PRELOAD};
        exec @cmd or POSIX::_exit(127);
    }
    my $status;
    my $exited = wait_until {
        return 0 unless waitpid($pid, WNOHANG) == $pid;
        $status = $?;
        return 1;
    } 10;
    if (!$exited) { kill 'KILL', $pid; waitpid($pid, 0); $status = -1 }
    my $err = '';
    if (open my $in, '<', $StderrFile) { local $/; $err = <$in> // '' }
    return ($status, $err);
}

sub tail_of ($$) {
    my ($file, $n) = @_;
    open my $in, '<', $file or return '';
    my @l = <$in>;
    return join '', @l[($#l - $n + 1 < 0 ? 0 : $#l - $n + 1) .. $#l];
}

# Start nginx for a block; returns (1) or (0, reason).
sub start_nginx ($) {
    my $name = shift;
    my ($status, $err);
    my $deadline = time + 5;
    while (1) {
        ($status, $err) = launch_nginx();
        last if $status == 0;
        # the port may still be held by a process that is going away
        last unless $err =~ /Address already in use/ && time < $deadline;
        sleep 0.2;
    }
    if ($status != 0) {
        return (0, "nginx exited with status " . ($status >> 8)
                 . "\n--- nginx stderr:\n$err--- tail of error.log:\n"
                 . tail_of($ErrLogFile, 20));
    }
    wait_until { is_running(get_pid_from_pidfile($name)) } $Timeout
        or return (0, "nginx did not write a live pid to $PidFile\n$err");
    wait_until { port_listening($ServerPort) } 2;
    sleep $TestNginxSleep;
    return 1;
}

sub stop_nginx (;$) {
    my $name = shift // '';
    my $pid = get_pid_from_pidfile($name);
    if ($pid && is_running($pid)) {
        warn "stopping nginx $pid\n" if $Verbose;
        kill($ENV{TEST_NGINX_FAST_SHUTDOWN} ? 'TERM' : 'QUIT', $pid);
        if (!wait_until { !is_running($pid) } $Timeout) {
            warn "$name - nginx $pid did not exit in time, killing it\n";
            # nginx daemonizes with setsid(): its pid is its process group
            kill 'KILL', (getpgrp($pid) == $pid ? -$pid : $pid);
            wait_until { !is_running($pid) } 2;
        }
    }
    unlink $PidFile if -f $PidFile;
    check_prev_block_shutdown_error_log();
}

sub check_prev_block_shutdown_error_log () {
    my $block = $PrevBlock or return;
    undef $PrevBlock;    # every nginx instance is shut down once
    return unless defined $block->shutdown_error_log
               || defined $block->no_shutdown_error_log;
    $CheckShutdownErrorLog->($block, $ENV{TEST_NGINX_NO_CLEAN} ? 1 : 0)
        if $CheckShutdownErrorLog;
}

my $CleanedUp;
sub cleanup () {
    return if $CleanedUp++;
    $_->() for @CleanupHandlers;
}

# ---------------------------------------------------------------------------
# Logs

# The error log lines written since the last call (for the current block).
sub error_log_data () {
    sleep $TestNginxSleep * 3;    # give nginx a moment to flush its logs
    my @lines;
    if (open my $in, '<', $ErrLogFile) {
        seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos;
        @lines = <$in>;
        $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    }
    # For must_die: also what nginx printed on stderr before it had a log,
    # unless the same message is already in the error log.
    for my $err (splice @StartupStderr) {
        my ($lvl, $msg) = $err =~ /^nginx: \[(\w+)\] (.*)$/;
        next if defined $msg
             && grep { index($_, "[$lvl]") >= 0 && index($_, $msg) >= 0 } @lines;
        push @lines, "$err\n";
    }
    return \@lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return [];
    return [<$in>];
}

# ---------------------------------------------------------------------------
# The test loop

sub run_tests () {
    srand(time ^ $$);
    bail_out("Cannot find the nginx executable ($NginxBinary)")
        unless can_run($NginxBinary);
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
        $_->($block) for @TestCleanupHandlers;
        $PrevBlock = $block;
    }
    cleanup();
}

# Returns (count, reason, is_todo) when the block's subtests must be skipped.
sub skip_spec ($) {
    my $block = shift;
    my $name = $block->name;
    my $cmp = sub { my ($have, $op, $want) = @_; eval "$have $op $want" };
    if (defined(my $s = $block->skip_eval)) {
        if ($s =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            my ($n, $code) = ($1, $2);
            my $yes = eval $code;
            bail_out("$name - skip_eval - failed to eval \"$code\": $@") if $@;
            return ($n, 'skip_eval') if $yes;
        }
    }
    if (defined(my $s = $block->skip_nginx)) {
        $s =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*?))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $s");
        return ($1, $6 || "nginx version $2 $3.$4.$5")
            if $cmp->($NginxVersion, $2, get_canon_version($3, $4, $5));
    }
    if (defined(my $s = $block->todo)) {
        $s =~ /^\s*(\d+)\s*:\s*(.*)/s or bail_out("$name - Invalid --- todo spec: $s");
        return ($1, $2, 1);
    }
    return;
}

sub run_test ($) {
    my $block = shift;
    my $name  = $block->name;
    my $ports = $RandPorts = {};
    my $config = expand_env_in_text($block->config, $name, $ports);
    local $LogLevel = $block->log_level || $LogLevel;

    if (my ($n, $why, $todo) = skip_spec($block)) {
        my $tb = Test::More->builder;
        for (1 .. $RepeatEach) {
            $todo ? $tb->todo_skip("$name - $why") : $tb->skip("$name - $why")
                for 1 .. $n;
        }
        return;
    }

    my $must_die = $block->must_die;
    # Like Test::Nginx: only a block with a --- config section (re)starts
    # nginx; without one the running nginx is reused as it is.
    bail_out("$name - --- must_die needs a --- config section (even an empty "
             . "one): without it Test::Nginx reuses the running nginx")
        if defined $must_die && !defined $config && !$NoNginxManager;
    if (!$NoNginxManager && defined $config) {
        $PrevConfig = $config;
        stop_nginx($name);
        setup_server_root();
        if (defined(my $code = $block->post_setup_server_root)) {
            eval $code;
            bail_out("$name - post_setup_server_root failed: $@") if $@;
        }
        write_user_files($block, $ports);
        write_config_file($block, $config, $ports);
        warn "nginx.conf for $name:\n", tail_of($ConfFile, 1e6) if $Verbose;
        return run_must_die($block, $must_die) if defined $must_die;

        my ($ok, $why) = start_nginx($name);
        if (!$ok) {
            Test::More::fail("$name - nginx failed to start");
            Test::More::diag($why);
            return;
        }
    } elsif (!$NoNginxManager && !defined $PrevConfig) {
        bail_out("$name - No '--- config' section specified and there is no previous one.");
    }

    if (defined(my $code = $block->init)) {
        eval $code;
        bail_out("$name - init failed: $@") if $@;
    }
    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        write_user_files($block, $ports) if $i > 0;
        $RunTestHelper->($block, 0, $i);    # 0: not a "dry run"
    }
}

# "--- must_die": nginx has to fail to start (with the given exit code).
sub run_must_die ($$) {
    my ($block, $must_die) = @_;
    my $name = $block->name;
    for my $i (0 .. $RepeatEach - 1) {
        my ($status, $err) = launch_nginx();
        my $code = $status == -1 ? undef : $status >> 8;
        if (!defined $code) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($code, $must_die, "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }
        $ErrLogFilePos = 0;
        @StartupStderr = grep { /\S/ } split /\n/, $err;
        $CheckErrorLog->($block, undef, 0, $i, 0) if $CheckErrorLog;
        @StartupStderr = ();
        if (defined $code && $code == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it\n";
            wait_until { -s $PidFile } $Timeout;
            stop_nginx($name);
        }
    }
}

# Do not leave nginx behind when the test dies of a signal (END does not
# run then): stop it, then die of the same signal.
for my $sig (qw(INT TERM HUP PIPE)) {
    next if $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub {
        $SIG{$sig} = 'DEFAULT';
        if ($$ == $MainPid && !$InSubprocess && !$NoNginxManager
            && !$ENV{TEST_NGINX_NO_CLEAN})
        {
            undef $PrevBlock;    # no shutdown_error_log checks while dying
            stop_nginx('signal');
        }
        kill $sig, $$;
    };
}

END {
    if (!$InSubprocess && $$ == $MainPid) {
        local $?;    # keep the exit status computed by Test::Builder
        cleanup();
        stop_nginx('END') if !$NoNginxManager && !$ENV{TEST_NGINX_NO_CLEAN};
        check_prev_block_shutdown_error_log();
        system('rm', '-rf', $ServRoot)
            if $Randomize && $ServRoot =~ m{/t/servroot_\d+$} && !$ENV{TEST_NGINX_NO_CLEAN};
    }
}

1;
