#!/usr/bin/env bash
# The local stack on loopback: Postgres, Redis, omni-worker and nginx with
# ngx_http_omni_module, all under one run directory.
#
#   bash conf/stack.sh up       start everything in the background
#   bash conf/stack.sh run      up, then wait; Ctrl-C stops everything
#   bash conf/stack.sh down     stop everything (data is kept)
#   bash conf/stack.sh status   what runs (exit 3 when something does not)
#
# Environment: OMNI_RUN_DIR (.run in the repository), OMNI_HTTP_PORT (8080),
# OMNI_HTTPS_PORT (8443), OMNI_PG_PORT (55432), OMNI_REDIS_PORT (56379),
# OMNI_WORKER_BIN (build/omni-worker; e.g. build/omni-worker-asan). Worker
# settings from conf/worker.env.example set in the environment (OMNI_WORKERS,
# OMNI_PG_POOL_SIZE, ...) go into $RUN/worker.env, which the worker reads.
# Data, keys, certificates and passwords (Postgres, Redis, the admin's)
# survive `down` and a new `up`. As root, a default .run that the postgres
# and www-data users cannot reach becomes a link to /var/lib/omni/NAME-HASH.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

http_port=${OMNI_HTTP_PORT:-8080}
https_port=${OMNI_HTTPS_PORT:-8443}
pg_port=${OMNI_PG_PORT:-55432}
redis_port=${OMNI_REDIS_PORT:-56379}
worker_bin=${OMNI_WORKER_BIN:-$repo/build/omni-worker}
module=$repo/build/ngx_http_omni_module.so
pg_bin=/usr/lib/postgresql/15/bin

# worker settings passed on from the environment into worker.env
worker_settings=(
    OMNI_LISTEN_MODE OMNI_WORKERS OMNI_PG_POOL_SIZE OMNI_PG_QUEUE_MAX
    OMNI_PG_QUERY_TIMEOUT_MS OMNI_MAX_BODY_BYTES OMNI_JSON_MAX_DEPTH
    OMNI_HTTP_TIMEOUT_MS OMNI_DRAIN_TIMEOUT_MS OMNI_METRICS_FLUSH_MS
    OMNI_ACCESS_TOKEN_TTL OMNI_REFRESH_TOKEN_TTL OMNI_PASSWORD_ITERATIONS
    OMNI_AUTH_THREADS OMNI_AUTH_QUEUE_MAX OMNI_EMBEDDING_MODEL
)

if [ "$(id -u)" -eq 0 ]; then
    root=1
    pg_super=postgres
    # nginx's worker processes drop to this user; the worker's socket is
    # made connectable for its group
    if id -u www-data > /dev/null 2>&1; then
        nginx_user=www-data
    else
        nginx_user=nobody
    fi
    nginx_group=$(id -gn "$nginx_user")
else
    root=0
    pg_super=$(id -un)
    nginx_user=$(id -un)
    nginx_group=
fi

# When root, a clone in a directory other users cannot enter (a 0700 home
# such as /root) gets its run directory here instead, with .run a link to
# it: Postgres runs as postgres and nginx's workers as $nginx_user, and
# both must reach their files and the worker's socket.
shared_base=/var/lib/omni
default_run=$repo/.run

case ${OMNI_RUN_DIR:-} in
    "") run=$default_run ;;
    /*) run=$OMNI_RUN_DIR ;;
    *)  run=$PWD/$OMNI_RUN_DIR ;;
esac

set_run_paths() {
    logs=$run/logs
    pgdir=$run/pg
    pgdata=$pgdir/data
}

if [ -L "$run" ]; then
    run=$(readlink -f -- "$run")
fi
set_run_paths


say() {
    echo "stack: $*"
}


warn() {
    echo "stack: $*" >&2
}


# the last lines of every non-empty log
tail_logs() {
    local f

    for f in "$logs"/*.log; do
        if [ -s "$f" ]; then
            echo "==> $f <==" >&2
            tail -n 10 "$f" >&2
        fi
    done
}


# up failed: say why, show the logs, stop what was started
fail() {
    warn "$*"
    tail_logs
    warn "stopping what was started; logs are in $logs"
    down > /dev/null
    exit 1
}


as_pg() {
    if [ $root -eq 1 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}


# gone PID: exited; a zombie counts, as init may take a while to reap it
gone() {
    local stat

    stat=$(cat "/proc/$1/stat" 2> /dev/null) || return 0
    stat=${stat##*) }
    [ "${stat%% *}" = Z ]
}


# alive NAME MATCH: the pid in $run/NAME.pid runs a command containing MATCH
alive() {
    local pid

    pid=$(cat "$run/$1.pid" 2> /dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    ! gone "$pid" || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | grep -q -- "$2"
}


# wait_for SECONDS COMMAND...: until COMMAND succeeds; fails on timeout
wait_for() {
    local deadline=$((SECONDS + $1))

    shift
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            return 1
        fi
        sleep 0.2
    done
}


# stop_pid NAME MATCH SIGNAL SECONDS: signal, wait, then kill its group
stop_pid() {
    local pid

    if alive "$1" "$2"; then
        pid=$(cat "$run/$1.pid")
        kill -s "$3" "$pid" 2> /dev/null || true

        if ! wait_for "$4" gone "$pid"; then
            warn "$1 (pid $pid) did not stop in $4 s: killing it"
            kill -s KILL -- "-$pid" 2> /dev/null || kill -s KILL "$pid" || true
        fi
        say "$1 stopped"
    fi

    rm -f "$run/$1.pid"
}


worker_env_file() {
    local v pw

    pw=$(cat "$run/pg-password")

    echo "# written by conf/stack.sh at each start; see conf/worker.env.example"
    echo "OMNI_LISTEN=unix:$run/worker.sock"
    if [ -n "$nginx_group" ]; then
        echo "OMNI_LISTEN_GROUP=$nginx_group"
    fi
    echo "OMNI_GATEWAY_USER=$nginx_user"
    echo "OMNI_DATABASE_URL=postgresql://omni:$pw@127.0.0.1:$pg_port/omni"
    echo "OMNI_REDIS_ADDR=127.0.0.1:$redis_port"
    echo "OMNI_REDIS_PASSWORD=$(cat "$run/redis-password")"
    echo "OMNI_SQL_DIR=$repo/sql"
    echo "OMNI_LOG_LEVEL=${OMNI_LOG_LEVEL:-info}"
    echo "OMNI_JWT_PRIVATE_KEY=$run/keys/jwt-private.pem"
    echo "OMNI_JWKS_FILE=$run/keys/jwks.json"
    echo "OMNI_EVENTS_PUBLISH=unix:$run/nginx/events.sock"

    for v in "${worker_settings[@]}"; do
        if [ -n "${!v:-}" ]; then
            echo "$v=${!v}"
        fi
    done
}


# the worker's command: worker.env holds all its OMNI_* settings
worker_argv=()

set_worker_argv() {
    local v

    worker_argv=(env)
    for v in $(compgen -e); do
        case $v in
            OMNI_*) worker_argv+=(-u "$v") ;;
        esac
    done
    worker_argv+=(OMNI_CONFIG="$run/worker.env" "$worker_bin")
}


# reachable DIR: the users the services run as can enter DIR
reachable() {
    if [ $root -eq 0 ]; then
        return 0
    fi
    (cd / && runuser -u postgres -- test -x "$1") \
        && (cd / && runuser -u "$nginx_user" -- test -x "$1")
}


# closed DIR: DIR and those of its parents that other users cannot enter
closed() {
    local d=$1 mode

    while [ "$d" != / ]; do
        if [ -d "$d" ]; then
            mode=$(stat -c %A "$d")
            case ${mode:9:1} in
                x|t) ;;
                *) echo "$d" ;;
            esac
        fi
        d=$(dirname "$d")
    done | tac
}


# Puts the run directory where Postgres and nginx's workers can reach it:
# in place when they can, else (the default .run only) under $shared_base.
place_run() {
    local target shared blocked

    if [ -d "$run" ]; then
        target=$run
    else
        target=$(dirname "$run")
    fi
    if reachable "$target"; then
        return 0
    fi

    blocked=$(closed "$target" | tr '\n' ' ')
    if [ "$run" != "$default_run" ] || [ -L "$default_run" ]; then
        warn "postgres and $nginx_user cannot enter $run; either let them"
        warn "pass through (not list) its parents:  chmod o+x ${blocked% }"
        warn "or choose another OMNI_RUN_DIR"
        exit 1
    fi

    shared=$shared_base/$(basename "$repo")-$(printf '%s' "$repo" \
        | sha256sum | cut -c 1-8)
    install -d -m 755 "$shared_base"
    if [ -d "$default_run" ]; then
        # left by an earlier try; nothing in it ever reached Postgres
        [ ! -e "$shared" ] \
            || { warn "both $default_run and $shared exist: remove one";
                 exit 1; }
        mv "$default_run" "$shared"
    fi
    mkdir -p "$shared"
    ln -sfn "$shared" "$default_run"
    run=$shared
    set_run_paths
    say "postgres and $nginx_user cannot enter ${blocked% }:"
    say "the run directory (Postgres' data too) is $run; .run links to it"
}


# secret NAME: $run/NAME (mode 600), a random password made at the first up
secret() {
    if [ ! -s "$run/$1" ]; then
        (umask 077 && openssl rand -hex 24 > "$run/$1.tmp")
        mv -f "$run/$1.tmp" "$run/$1"
    fi
    chmod 600 "$run/$1"
}


start_postgres() {
    local pw opts

    mkdir -p "$pgdir"
    if [ $root -eq 1 ]; then
        chown postgres:postgres "$pgdir"
        chmod 700 "$pgdir"
        as_pg test -w "$pgdir" \
            || fail "the postgres user cannot write $pgdir"
    fi

    if [ ! -f "$pgdata/PG_VERSION" ]; then
        as_pg "$pg_bin/initdb" -D "$pgdata" -U "$pg_super" -E UTF8 \
            --locale=C --auth-local=peer --auth-host=scram-sha-256 \
            > "$logs/initdb.log" 2>&1 \
            || fail "initdb failed (as $pg_super): see $logs/initdb.log"
        rm -f "$logs/initdb.log"
    fi

    ln -sfn ../pg/postgres.log "$logs/postgres.log"

    if ! as_pg "$pg_bin/pg_ctl" -D "$pgdata" status > /dev/null 2>&1; then
        opts="-c listen_addresses=127.0.0.1 -c port=$pg_port"
        opts+=" -c unix_socket_directories='$pgdir'"
        as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$pgdir/postgres.log" -w \
            -t 30 -o "$opts" start > /dev/null 2>&1 \
            || fail "Postgres did not start on 127.0.0.1:$pg_port"
    fi

    head -n 1 "$pgdata/postmaster.pid" > "$run/postgres.pid"

    secret pg-password
    pw=$(cat "$run/pg-password")

    # the password goes on stdin, not on a command line
    if ! as_pg "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdir" \
             -p "$pg_port" -U "$pg_super" -d postgres \
             > "$logs/postgres-setup.log" 2>&1 <<EOF
SELECT 'CREATE ROLE omni' WHERE NOT EXISTS
    (SELECT FROM pg_roles WHERE rolname = 'omni') \gexec
ALTER ROLE omni WITH LOGIN PASSWORD '$pw';
SELECT 'CREATE DATABASE omni OWNER omni' WHERE NOT EXISTS
    (SELECT FROM pg_database WHERE datname = 'omni') \gexec
EOF
    then
        fail "could not create the omni role and database:" \
             "see $logs/postgres-setup.log"
    fi

    say "postgres on 127.0.0.1:$pg_port (database omni, user omni)"
}


# the password goes in the environment, not on a command line
redis_ready() {
    alive redis redis-server \
        && [ "$(REDISCLI_AUTH=$(cat "$run/redis-password") redis-cli \
                  -h 127.0.0.1 -p "$redis_port" ping 2> /dev/null)" = PONG ]
}


start_redis() {
    mkdir -p "$run/redis"
    # whoever can write Redis can mint API keys: it gets a password
    secret redis-password

    if ! alive redis redis-server; then
        (umask 077 && cat > "$run/redis/redis.conf") <<EOF
# written by conf/stack.sh at each start
bind 127.0.0.1
port $redis_port
protected-mode yes
requirepass $(cat "$run/redis-password")
daemonize yes
pidfile "$run/redis.pid"
logfile "$logs/redis.log"
dir "$run/redis"
appendonly yes
EOF
        chmod 600 "$run/redis/redis.conf"
        rm -f "$run/redis.pid"
        redis-server "$run/redis/redis.conf" >> "$logs/redis.log" 2>&1 \
            || fail "redis-server did not start"
    fi

    wait_for 10 redis_ready \
        || fail "Redis does not answer on 127.0.0.1:$redis_port"

    say "redis on 127.0.0.1:$redis_port"
}


worker_ready() {
    if ! alive worker omni-worker; then
        fail "omni-worker exited: see $logs/worker.log"
    fi
    [ -S "$run/worker.sock" ]
}


start_worker() {
    local pw_tmp=$run/admin-password.tmp

    (umask 077 && worker_env_file > "$run/worker.env.tmp")
    mv -f "$run/worker.env.tmp" "$run/worker.env"

    set_worker_argv

    (cd "$run" && exec "${worker_argv[@]}" migrate up) \
        >> "$logs/migrate.log" 2>&1 \
        || fail "omni-worker migrate up failed: see $logs/migrate.log"

    if [ ! -s "$run/admin-password" ]; then
        (umask 077 && openssl rand -base64 18 | tr -d '\n' | tr '+/' '-_' \
                      > "$pw_tmp")
        if (cd "$run" && exec "${worker_argv[@]}" user create \
                --email admin@localhost --username admin \
                --password-file "$pw_tmp" --role admin) \
                >> "$logs/admin.log" 2>&1
        then
            mv -f "$pw_tmp" "$run/admin-password"
        else
            rm -f "$pw_tmp"
            warn "could not create admin@localhost: see $logs/admin.log"
        fi
    fi

    if ! alive worker omni-worker; then
        rm -f "$run/worker.sock"
        (cd "$run" && exec setsid "${worker_argv[@]}") \
            >> "$logs/worker.log" 2>&1 < /dev/null &
        echo $! > "$run/worker.pid"
        wait_for 5 alive worker omni-worker \
            || fail "omni-worker exited at once: see $logs/worker.log"
    fi

    wait_for 15 worker_ready \
        || fail "omni-worker did not create $run/worker.sock in 15 s"

    say "omni-worker on $run/worker.sock"
}


start_nginx() {
    local d

    for d in body proxy fastcgi uwsgi scgi; do
        mkdir -p "$run/nginx/tmp/$d"
    done

    # the admin page (make ui), copied where nginx's workers can read it
    # even when the clone is in a closed home directory
    if [ -s "$repo/build/ui/index.html" ]; then
        rm -rf "$run/ui.new"
        cp -R "$repo/build/ui" "$run/ui.new"
        chmod -R a+rX "$run/ui.new"
        rm -rf "$run/ui"
        mv "$run/ui.new" "$run/ui"
    else
        warn "the admin page is not built (make ui): / answers 404"
        mkdir -p "$run/ui"
    fi

    bash "$repo/conf/render.sh" "$run/nginx/nginx.conf" \
        MODULE_PATH="$module" \
        NGINX_USER="$nginx_user" \
        NGINX_WORKERS=auto \
        PREFIX="$run/nginx" \
        MAX_BODY=1m \
        WORKER_SOCKET="$run/worker.sock" \
        BIND=127.0.0.1 \
        HTTP_PORT="$http_port" \
        HTTPS_PORT="$https_port" \
        TLS_CERT="$run/tls/cert.pem" \
        TLS_KEY="$run/tls/key.pem" \
        CONF_DIR="$repo/conf" \
        JWT_PUBLIC_KEY="$run/keys/jwt-public.pem" \
        REDIS_ADDR="127.0.0.1:$redis_port" \
        REDIS_PASSWORD="$(cat "$run/redis-password")" \
        API_RATE="${OMNI_API_RATE:-20r/s}" \
        API_BURST="${OMNI_API_BURST:-40}" \
        AUTH_RATE="${OMNI_AUTH_RATE:-10r/m}" \
        EVENTS_PUBLISH="unix:$run/nginx/events.sock" \
        UI_DIR="$run/ui" \
        || fail "could not render $run/nginx/nginx.conf"

    ln -sfn ../nginx/error.log "$logs/nginx-error.log"
    ln -sfn ../nginx/access.log "$logs/nginx-access.log"

    nginx -q -t -p "$run/nginx" -c "$run/nginx/nginx.conf" \
        > "$logs/nginx-test.log" 2>&1 \
        || fail "nginx -t failed: see $logs/nginx-test.log"

    if ! alive nginx nginx; then
        (exec setsid nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" \
              -g 'daemon off;' >> "$logs/nginx.log" 2>&1 < /dev/null) &
        echo $! > "$run/nginx.pid"
        wait_for 5 alive nginx nginx \
            || fail "nginx exited at once: see $logs/nginx.log"
    fi
}


health() {
    if ! alive nginx nginx; then
        fail "nginx exited: see $logs/nginx.log and $logs/nginx-error.log"
    fi
    curl -skf -o /dev/null --max-time 2 "https://localhost:$https_port/health"
}


up() {
    local f

    for f in "$pg_bin/initdb" redis-server redis-cli nginx openssl curl; do
        command -v "$f" > /dev/null \
            || { warn "$f is missing: run make deps"; exit 1; }
    done
    [ -f "$module" ] || { warn "$module is missing: run make build"; exit 1; }
    if [ ! -x "$worker_bin" ]; then
        warn "$worker_bin is missing: run make build (omni-worker must build"
        warn "before the stack can start)"
        exit 1
    fi

    place_run
    mkdir -p "$run" "$logs"
    chmod a+x "$run"

    bash "$repo/conf/tls.sh" "$run/tls" || fail "conf/tls.sh failed"
    bash "$repo/conf/keys.sh" "$run/keys" || fail "conf/keys.sh failed"

    start_postgres
    start_redis
    start_worker
    start_nginx

    wait_for 30 health \
        || fail "https://localhost:$https_port/health did not answer in 30 s"

    say "nginx on https://localhost:$https_port and http://localhost:$http_port"
    say "the admin page: https://localhost:$https_port/ (admin@localhost," \
        "password in $run/admin-password)"
}


down() {
    if [ ! -d "$run" ]; then
        return 0
    fi

    stop_pid nginx nginx QUIT 15
    stop_pid worker omni-worker TERM 20
    stop_pid redis redis-server TERM 15

    if [ -f "$pgdata/postmaster.pid" ] \
       && as_pg "$pg_bin/pg_ctl" -D "$pgdata" status > /dev/null 2>&1
    then
        as_pg "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop > /dev/null \
            || warn "pg_ctl stop failed: see $logs/postgres.log"
        say "postgres stopped"
    fi
    rm -f "$run/postgres.pid"
}


status() {
    local name match bad=0

    for name in postgres redis worker nginx; do
        case $name in
            postgres) match=postgres ;;
            redis)    match=redis-server ;;
            worker)   match=omni-worker ;;
            nginx)    match=nginx ;;
        esac

        if alive "$name" "$match"; then
            printf '%-9s running (pid %s)\n' "$name" "$(cat "$run/$name.pid")"
        else
            printf '%-9s stopped\n' "$name"
            bad=1
        fi
    done

    if [ $bad -eq 0 ]; then
        printf '%-9s %s\n' health "$(curl -sk -o /dev/null --max-time 2 \
            -w '%{http_code}' "https://localhost:$https_port/health" || true)"
    fi

    return $((bad * 3))
}


usage_text() {
    cat <<EOF

Omni is running (run directory $run):

  admin     https://localhost:$https_port/  (the admin page; log in as
            admin@localhost, password in $run/admin-password)
  gateway   https://localhost:$https_port  (self-signed: curl -k, or
            --cacert $run/tls/cert.pem)  and  http://localhost:$http_port
  status    curl -k https://localhost:$https_port/omni/status
EOF

    if [ -s "$run/admin-password" ]; then
        cat <<EOF
  log in    curl -k https://localhost:$https_port/auth/login \\
              -H 'Content-Type: application/json' \\
              -d '{"email":"admin@localhost","password":"'\$(cat $run/admin-password)'"}'
            (admin@localhost; password in $run/admin-password)
EOF
    fi

    cat <<EOF
  postgres  psql postgresql://omni@127.0.0.1:$pg_port/omni
            (password in $run/pg-password)
  redis     REDISCLI_AUTH=\$(cat $run/redis-password) redis-cli -p $redis_port
  keys      $run/keys/jwt-private.pem, $run/keys/jwt-public.pem
  logs      $logs/

Ctrl-C stops everything; or run the stack in the background with make up,
and stop it with make down.
EOF
}


on_signal() {
    trap - INT TERM HUP
    echo
    say "stopping"
    down
    exit 0
}


run_foreground() {
    up
    usage_text
    trap on_signal INT TERM HUP

    while alive nginx nginx && alive worker omni-worker \
          && alive redis redis-server && alive postgres postgres
    do
        sleep 1 &
        wait $! || true
    done

    trap - INT TERM HUP
    warn "a service stopped unexpectedly:"
    status >&2 || true
    tail_logs
    down
    exit 1
}


case ${1:-} in
    up)     up ;;
    run)    run_foreground ;;
    down)   down ;;
    status) status ;;
    *)
        echo "usage: bash conf/stack.sh run|up|down|status" >&2
        exit 2
        ;;
esac
