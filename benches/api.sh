#!/usr/bin/env bash
# benches/api.sh — the mTLS court API of `sealpost run` against nginx serving the
# same bundle files with the same certificates (mutual TLS), measured with oha.
#
# Usage: benches/api.sh [--build]
#   --build       run `cargo build --release` even if target/release/sealpost exists
# Environment:
#   DURATION      length of every oha run, in seconds, e.g. 10 or 10s (default 10s)
#   CONC          concurrent connections per oha run (default 16)
#   DROPS         long-poll latency samples (default 5)
#   BUNDLE_MIB    size of the big document in the downloaded bundle, MiB (default 1)
#   TMPDIR        where the work directory goes (default /tmp); it is removed at exit
#   SEALPOST_BIN  use this sealpost binary instead of target/release/sealpost
#   OHA, NGINX    the oha and nginx binaries (default: from PATH, ~/.cargo/bin, /usr/sbin)
#
# See benches/README.md.
set -euo pipefail

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

BUILD=0
for arg in "$@"; do
    case $arg in
        --build) BUILD=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "api.sh: unknown argument: $arg" >&2; usage >&2; exit 64 ;;
    esac
done

export LC_NUMERIC=C # $EPOCHREALTIME and awk with a decimal point
DURATION=${DURATION:-10s}
DURATION=${DURATION%s}
CONC=${CONC:-16}
# PIN=1 (default on 2+ CPUs): each server on CPU 0 (nginx with one worker), oha
# on CPU 1, so the load generator does not steal the server's CPU and the
# comparison is steadier. PIN=0 shares all CPUs.
PIN=${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
if [ "$PIN" = 1 ]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
    NGINX_WORKERS=1
else
    SERVER_CPU=()
    CLIENT_CPU=()
    NGINX_WORKERS=2
fi
DROPS=${DROPS:-5}
BUNDLE_MIB=${BUNDLE_MIB:-1}
for v in DURATION CONC DROPS BUNDLE_MIB; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "api.sh: $v must be a positive integer (got '${!v}')" >&2; exit 64; }
done

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
CERTS=$REPO/certs-example
FIX=$REPO/fixtures/applications/zhang-wei-futian
CFG=$REPO/config/sealpost.example.toml
COURT=sz-futian-court
CLIENT=(--cert "$CERTS/$COURT/tls.pem" --key "$CERTS/$COURT/tls.key" --cacert "$CERTS/ca.pem")
TIME=/usr/bin/time

# --- 1. tools -----------------------------------------------------------------
find_tool() { # NAME CANDIDATE... : first executable one
    local name=$1 c
    shift
    for c in "$@"; do
        [[ -n $c ]] || continue
        if [[ $c == */* ]]; then [[ -x $c ]] && { echo "$c"; return; }; else command -v "$c" 2>/dev/null && return; fi
    done
    return 1
}
missing=()
OHA=$(find_tool oha "${OHA:-}" oha "$HOME/.cargo/bin/oha") || missing+=("oha:    cargo install --locked oha   (>= 1.4, for --output-format json and --cert/--key)")
NGINX=$(find_tool nginx "${NGINX:-}" nginx /usr/sbin/nginx) || missing+=("nginx:  apt-get install nginx-light   (or nginx)")
for t in curl jq; do command -v "$t" >/dev/null 2>&1 || missing+=("$t:  apt-get install $t"); done
if ! { [[ -x $TIME ]] && $TIME -f '%U' -o /dev/null true 2>/dev/null; }; then
    missing+=("GNU time:  apt-get install time")
fi
if ((${#missing[@]})); then
    echo "api.sh: missing tools:" >&2
    printf '    %s\n' "${missing[@]}" >&2
    exit 69
fi
"$OHA" --help 2>/dev/null | grep -q -- '--output-format' || { echo "api.sh: $OHA is too old (no --output-format); cargo install --locked oha" >&2; exit 69; }

# --- 2. sealpost binary ---------------------------------------------------------
if [[ -n ${SEALPOST_BIN:-} ]]; then
    BIN=$SEALPOST_BIN
    ((BUILD == 0)) || echo "api.sh: SEALPOST_BIN is set; ignoring --build" >&2
else
    target_dir=${CARGO_TARGET_DIR:-$REPO/target}
    [[ $target_dir == /* ]] || target_dir=$PWD/$target_dir
    BIN=$target_dir/release/sealpost
    if ((BUILD)) || [[ ! -x $BIN ]]; then
        command -v cargo >/dev/null 2>&1 || { echo "api.sh: $BIN is missing and cargo is not installed (https://rustup.rs)" >&2; exit 69; }
        echo "building $BIN (cargo build --release) ..." >&2
        (cd -- "$REPO" && cargo build --release) >&2
    fi
fi
[[ -x $BIN ]] || { echo "api.sh: $BIN is not an executable" >&2; exit 69; }

# --- 3. work dir, clean-up, time limit ------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealpost-api-bench.XXXXXX")
SP_PID='' NG_PID='' WD_PID='' BG_PID=''
stop() { # PID SECONDS : TERM, wait, then KILL
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    set +e
    stop "$BG_PID" 2
    stop "$SP_PID" 15
    stop "$NG_PID" 10 # nginx's master takes its workers with it
    if [[ -n $WD_PID ]]; then
        pkill -P "$WD_PID" 2>/dev/null # the watchdog's sleep
        kill "$WD_PID" 2>/dev/null
        wait "$WD_PID" 2>/dev/null
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 8 oha runs + warm-ups, the long-poll drops and start-up; whatever happens, stop then.
LIMIT=$((10 * DURATION + 45 * DROPS + 180))
(
    sleep "$LIMIT"
    echo "api.sh: time limit of ${LIMIT}s reached; stopping" >&3
    kill -TERM $$
) 3>&2 2>/dev/null & # (no "Terminated" from the subshell when clean-up ends its sleep)
WD_PID=$!

# bg CMD... : run in the background, remember the pid, wait for it (interruptible by traps).
bg() {
    "$@" &
    BG_PID=$!
    local rc=0
    wait "$BG_PID" || rc=$?
    BG_PID=''
    return $rc
}

free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "api.sh: no free port found" >&2
    exit 71
}

cpu_ticks() { # PID... : utime+stime of these processes, clock ticks
    local p t=0 s
    for p in "$@"; do
        s=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + $(awk '{print $12 + $13}' <<<"$s")))
    done
    echo "$t"
}
TCK=$(getconf CLK_TCK)

# --- 4. the committee node ----------------------------------------------------------
DATA=$WORK/data
CLERK=$WORK/clerk
STAGE=$WORK/staging
mkdir -p "$DATA" "$CLERK" "$STAGE"

# Only our overrides: a SEALPOST_<SECTION>__<KEY> in the caller's environment would change what is measured.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^SEALPOST_.*__' || true)
export SEALPOST_NODE__DATA_DIR=$DATA
export SEALPOST_INTAKE__ROOT=$CLERK
export SEALPOST_SERVER__LISTEN=127.0.0.1:0
export SEALPOST_INTAKE__SETTLE=200ms
export SEALPOST_INTAKE__SCAN_INTERVAL=100ms
export SEALPOST_LOG=warn # the default: no log line per request (nginx: access_log off)

echo "starting sealpost run in $WORK ..." >&2
"${SERVER_CPU[@]}" "$BIN" -c "$CFG" run >"$WORK/sealpost.out" 2>"$WORK/sealpost.err" &
SP_PID=$!

# wait_line PATTERN SECONDS : the first line of sealpost's stdout matching PATTERN (ERE)
wait_line() {
    local i l
    for ((i = 0; i < $2 * 20; i++)); do
        if l=$(grep -m1 -E -- "$1" "$WORK/sealpost.out"); then echo "$l"; return; fi
        kill -0 "$SP_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "api.sh: no line matching '$1' from sealpost within $2 s; its output:" >&2
    cat -- "$WORK/sealpost.out" "$WORK/sealpost.err" >&2
    exit 70
}
first=$(wait_line '^LISTENING ' 20)
[[ $(head -n1 -- "$WORK/sealpost.out") == LISTENING* ]] || echo "api.sh: warning: LISTENING was not the first line" >&2
SP_PORT=${first##*:}
SP=https://127.0.0.1:$SP_PORT
INTAKE=$CLERK/intake
[[ -d $INTAKE ]] || { echo "api.sh: sealpost did not create $INTAKE" >&2; exit 70; }

# stage NAME CASE_NO [BIG_MIB] : an application folder in $STAGE/NAME, READY inside
stage() {
    local dir=$STAGE/$1
    cp -r -- "$FIX" "$dir"
    sed -i "s/^case_number = .*/case_number = \"深劳人仲案〔2026〕$2号\"/" "$dir/application.toml"
    if [[ -n ${3:-} ]]; then
        {
            printf '%%PDF-1.7\n'
            head -c $(($3 * 1024 * 1024 - 16)) /dev/urandom
            printf '\n%%%%EOF\n' # a PDF ends with %%EOF (intake refuses a cut copy)
        } >"$dir/财产保全申请书.pdf"
    fi
    touch "$dir/READY"
}

stage bench-big 8001 "$BUNDLE_MIB"
mv -- "$STAGE/bench-big" "$INTAKE/"
line=$(wait_line '^(ACCEPTED|REJECTED)  bench-big ' 60)
[[ $line == ACCEPTED* ]] || { echo "api.sh: the application was refused: $line" >&2; cat -- "$CLERK"/rejected/*/REJECTED.txt >&2 || true; exit 70; }
ID=${line##* }
BUNDLE=$DATA/outbox/bundles/$ID.sealpost
[[ -f $BUNDLE ]] || { echo "api.sh: $BUNDLE is missing" >&2; exit 70; }
BUNDLE_BYTES=$(stat -c %s -- "$BUNDLE")
echo "bundle $ID: $BUNDLE_BYTES bytes" >&2

spcurl() { curl -sS --max-time 40 "${CLIENT[@]}" "$@"; }

# The first GET marks the bundle fetched; take it before capturing the listing so
# that sealpost's listing body stays the same for the whole run.
spcurl -o "$WORK/dl-sealpost" "$SP/v1/bundles/$ID"
cmp -s -- "$BUNDLE" "$WORK/dl-sealpost" || { echo "api.sh: sealpost's download differs from $BUNDLE" >&2; exit 70; }
WWW=$WORK/www
mkdir -p "$WWW"
spcurl -o "$WWW/list.json" "$SP/v1/bundles"
jq -e --arg id "$ID" '.bundles | map(.id) | index($id) != null' "$WWW/list.json" >/dev/null ||
    { echo "api.sh: the listing does not show $ID:" >&2; cat -- "$WWW/list.json" >&2; exit 70; }

# --- 5. nginx with the same files and certificates ---------------------------------------
NG_PORT=$(free_port)
NG=https://127.0.0.1:$NG_PORT
NGD=$WORK/nginx
mkdir -p "$NGD/tmp"
user_line=''
((EUID != 0)) || user_line="user $(id -un) $(id -gn);" # else the workers would run as nobody
cat >"$NGD/nginx.conf" <<EOF
# benches/api.sh: nginx in the place of sealpost's API (same certificates, same files)
$user_line
worker_processes $NGINX_WORKERS;
daemon off;
pid $NGD/nginx.pid;
lock_file $NGD/nginx.lock;
error_log $NGD/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $NGD/tmp/body;
    proxy_temp_path $NGD/tmp/proxy;
    fastcgi_temp_path $NGD/tmp/fastcgi;
    uwsgi_temp_path $NGD/tmp/uwsgi;
    scgi_temp_path $NGD/tmp/scgi;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NG_PORT ssl;
        ssl_certificate $CERTS/sz-lac/tls.pem;
        ssl_certificate_key $CERTS/sz-lac/tls.key;
        ssl_client_certificate $CERTS/ca.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        # sealpost refuses resumption (revocation is checked at every handshake): same here.
        ssl_session_cache off;
        ssl_session_tickets off;
        location = /v1/bundles {
            root $WWW;
            default_type application/json;
            try_files /list.json =404;
        }
        location ~ "^/v1/bundles/([0-9A-Za-z]+)\$" {
            alias $DATA/outbox/bundles/\$1.sealpost;
            default_type application/vnd.sealpost.bundle+zip;
        }
        location / { return 404; }
    }
}
EOF
echo "starting nginx on 127.0.0.1:$NG_PORT ..." >&2
"$NGINX" -p "$NGD/" -c "$NGD/nginx.conf" -e "$NGD/error.log" -t >"$NGD/t.log" 2>&1 ||
    { echo "api.sh: nginx -t refused the configuration:" >&2; cat -- "$NGD/t.log" >&2; exit 70; }
"${SERVER_CPU[@]}" "$NGINX" -p "$NGD/" -c "$NGD/nginx.conf" -e "$NGD/error.log" >"$NGD/stdout.log" 2>&1 &
NG_PID=$!
for ((i = 0; i < 100; i++)); do
    curl -sS --max-time 5 "${CLIENT[@]}" -o "$WORK/list-nginx" "$NG/v1/bundles" 2>/dev/null && break
    kill -0 "$NG_PID" 2>/dev/null || break
    sleep 0.1
done
cmp -s -- "$WWW/list.json" "$WORK/list-nginx" || { echo "api.sh: nginx does not serve the listing:" >&2; cat -- "$NGD"/*.log >&2; exit 70; }
spcurl -o "$WORK/dl-nginx" "$NG/v1/bundles/$ID"
cmp -s -- "$BUNDLE" "$WORK/dl-nginx" || { echo "api.sh: nginx's download differs from $BUNDLE" >&2; exit 70; }
# nginx refuses a client without a certificate, like sealpost.
code=$(curl -s --max-time 5 --cacert "$CERTS/ca.pem" -o /dev/null -w '%{http_code}' "$NG/v1/bundles" || true)
[[ $code == 400 ]] || { echo "api.sh: nginx answered $code to a client without a certificate" >&2; exit 70; }
NG_WORKERS=()
mapfile -t NG_WORKERS < <(pgrep -P "$NG_PID")
((${#NG_WORKERS[@]})) || { echo "api.sh: nginx has no workers" >&2; exit 70; }

# --- 6. oha runs -------------------------------------------------------------------------
declare -A RPS MIBS ERRS CPU OHACPU
# run KEY SERVER_PID... -- OHA_ARGS... : one oha run of DURATION s; requests/s, MiB/s,
# non-200 + failed requests (not counting the ones aborted at the deadline),
# server CPU ms per request and oha's CPU share.
run() {
    local key=$1
    shift
    local pids=()
    while [[ $1 != -- ]]; do pids+=("$1"); shift; done
    shift
    local out=$WORK/oha-${key//[^A-Za-z0-9]/_}.json tf=$WORK/time.out c0 c1
    echo "  $key (${DURATION}s, c=$CONC)" >&2
    c0=$(cpu_ticks "${pids[@]}")
    if ! bg timeout $((DURATION + 60)) $TIME -f '%U %S %e' -o "$tf" \
        "${CLIENT_CPU[@]}" "$OHA" --no-tui --output-format json -o "$out" -z "${DURATION}s" -c "$CONC" \
        "${CLIENT[@]}" "$@"; then
        echo "api.sh: oha failed for $key" >&2
        cat -- "$out" "$tf" >&2 2>/dev/null || true
        exit 70
    fi
    c1=$(cpu_ticks "${pids[@]}")
    RPS[$key]=$(jq -r '.summary.requestsPerSec' "$out")
    MIBS[$key]=$(jq -r '.summary.sizePerSec / 1048576' "$out")
    local ok total
    ok=$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key == "200" or .key == "206") | .value] | add // 0' "$out")
    total=$(jq -r '([.statusCodeDistribution[]] | add // 0) + ([.errorDistribution | to_entries[] | select(.key | test("deadline") | not) | .value] | add // 0)' "$out")
    ERRS[$key]=$((total - ok))
    CPU[$key]=$(awk -v t=$((c1 - c0)) -v h="$TCK" -v n="$total" 'BEGIN {printf "%.3f", (n > 0) ? t / h * 1000 / n : 0}')
    OHACPU[$key]=$(awk '{printf "%.0f", ($3 > 0) ? ($1 + $2) / $3 * 100 : 0}' "$tf")
    if ((ERRS[$key] > 0)); then
        echo "api.sh: $key: ${ERRS[$key]} of $total requests failed or were not 200:" >&2
        jq -c '{statusCodeDistribution, errorDistribution}' "$out" >&2
    fi
}

LIST=/v1/bundles
DL=/v1/bundles/$ID
SP_STORE0=$(awk '/^write_bytes/ {print $2}' "/proc/$SP_PID/io")
echo "oha runs ..." >&2
# A short warm-up each, then the measured runs, alternating the servers.
bg "$OHA" --no-tui --output-format quiet -z 2s -c "$CONC" "${CLIENT[@]}" "$SP$LIST" >/dev/null
bg "$OHA" --no-tui --output-format quiet -z 2s -c "$CONC" "${CLIENT[@]}" "$NG$LIST" >/dev/null
run "list|sealpost" "$SP_PID" -- "$SP$LIST"
run "list|nginx" "${NG_WORKERS[@]}" -- "$NG$LIST"
w0=$(awk '/^write_bytes/ {print $2}' "/proc/$SP_PID/io")
run "download|sealpost" "$SP_PID" -- "$SP$DL"
w1=$(awk '/^write_bytes/ {print $2}' "/proc/$SP_PID/io")
run "download|nginx" "${NG_WORKERS[@]}" -- "$NG$DL"
run "handshake|sealpost" "$SP_PID" -- --disable-keepalive "$SP$LIST"
run "handshake|nginx" "${NG_WORKERS[@]}" -- --disable-keepalive "$NG$LIST"
run "head|sealpost" "$SP_PID" -- -m HEAD "$SP$DL"
run "head|nginx" "${NG_WORKERS[@]}" -- -m HEAD "$NG$DL"
DL_WRITE_PER_REQ=$(awk -v w=$((w1 - w0)) -v r="${RPS[download|sealpost]}" -v d="$DURATION" 'BEGIN {printf "%.0f", (r > 0) ? w / (r * d) : 0}')

# Still the same listing body on both sides?
spcurl -o "$WORK/list-after" "$SP$LIST"
cmp -s -- "$WWW/list.json" "$WORK/list-after" || echo "api.sh: warning: sealpost's listing changed during the run" >&2

# --- 7. long-poll: committee drop -> court sees it --------------------------------------
echo "long-poll latency ($DROPS drops) ..." >&2
cursor=$(jq -r '.next_cursor' "$WWW/list.json")
LAT=()
for ((i = 1; i <= DROPS; i++)); do
    name=bench-lp-$i
    stage "$name" $((8100 + i))
    lp=$WORK/lp-$i.json
    spcurl -o "$lp" "$SP$LIST?after=$cursor&wait=30" &
    BG_PID=$!
    sleep 0.5 # connected, handshaken and parked in the long-poll
    kill -0 "$BG_PID" 2>/dev/null || { echo "api.sh: the long-poll returned before the drop:" >&2; cat -- "$lp" >&2; exit 70; }
    t0=$EPOCHREALTIME
    mv -- "$STAGE/$name" "$INTAKE/"
    rc=0
    wait "$BG_PID" || rc=$?
    t1=$EPOCHREALTIME
    BG_PID=''
    ((rc == 0)) || { echo "api.sh: long-poll curl failed (exit $rc)" >&2; exit 70; }
    got=$(jq -r '.bundles | length' "$lp")
    ((got > 0)) || { echo "api.sh: the long-poll returned no bundle (timed out?):" >&2; cat -- "$lp" >&2; exit 70; }
    line=$(wait_line "^(ACCEPTED|REJECTED)  $name " 30)
    [[ $line == ACCEPTED* && $(jq -r '.bundles[0].id' "$lp") == "${line##* }" ]] ||
        { echo "api.sh: the long-poll returned another bundle than $line" >&2; exit 70; }
    cursor=$(jq -r '.next_cursor' "$lp")
    LAT+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')")
    echo "  drop $i: ${LAT[-1]} s" >&2
done
LAT_SORTED=$(printf '%s\n' "${LAT[@]}" | sort -g)
P50=$(awk '{a[NR]=$1} END {if (NR % 2) printf "%.3f", a[(NR+1)/2]; else printf "%.3f", (a[NR/2]+a[NR/2+1])/2}' <<<"$LAT_SORTED")
LMIN=$(head -n1 <<<"$LAT_SORTED")
LMAX=$(tail -n1 <<<"$LAT_SORTED")

SP_RSS=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SP_PID/status")
NG_RSS=$(for p in "${NG_WORKERS[@]}"; do awk '/^VmHWM/ {print $2}' "/proc/$p/status"; done | sort -n | tail -n1 | awk '{printf "%.1f", $1 / 1024}')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 8. report --------------------------------------------------------------------------
f1() { awk -v v="$1" 'BEGIN {printf "%.1f", v}'; }
ratio() { awk -v s="$1" -v o="$2" 'BEGIN {if (o > 0) printf "%.2f", s / o; else print "n/a"}'; }
atleast() { awk -v v="$1" -v t="$2" 'BEGIN {print (v != "n/a" && v >= t) ? "PASS" : "FAIL"}'; }
declare -A VERDICT
row() { # TEST KEY TARGET LABEL
    local r v
    r=$(ratio "${RPS[$2|sealpost]}" "${RPS[$2|nginx]}")
    v=$(atleast "$r" "$3")
    ((ERRS[$2|sealpost] == 0 && ERRS[$2|nginx] == 0)) || v="FAIL (errors)"
    VERDICT[$2]=$v
    echo "| $1 | $(f1 "${RPS[$2|sealpost]}") | $(f1 "${RPS[$2|nginx]}") | ${r}× | ≥ $3× | $v |"
}

cpu=$(lscpu 2>/dev/null | awk -F: '/^Model name/ {gsub(/^[ \t]+/, "", $2); print $2; exit}')
built=$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')
head_now=$(git -C "$REPO" log -1 --format='%h %cd' --date=format-local:'%Y-%m-%d %H:%M' 2>/dev/null || echo '?')
dirty=$(git -C "$REPO" status --porcelain -- src 2>/dev/null | wc -l || echo '?')
echo
echo "## sealpost mTLS API benchmark"
echo
echo "- sealpost \`run\` (committee sz-lac, example PKI) vs nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///') (worker_processes $NGINX_WORKERS; pinned: $([ "$PIN" = 1 ] && echo "servers on CPU 0, oha on CPU 1" || echo no)), same certificates, same bundle file, TLS 1.2/1.3 with client certificates, no session resumption on either"
echo "- client: $("$OHA" --version) as $COURT (client cert + key, \`--cacert certs-example/ca.pem\`, certificates verified), ${DURATION} s per run, $CONC connections, HTTP/1.1"
echo "- bundle $ID: $BUNDLE_BYTES bytes ($(awk -v b="$BUNDLE_BYTES" 'BEGIN {printf "%.2f", b / 1048576}') MiB)"
echo "- host: $(nproc) CPUs, ${cpu:-unknown CPU}; client and both servers share them; load average at end: $LOAD"
echo "- $("$BIN" --version 2>/dev/null || echo sealpost) ($BIN, built $built; the repository is now at $head_now with $dirty uncommitted file(s) under src/)"
echo
echo "| test | sealpost req/s | nginx req/s | ratio (sealpost/nginx) | target | result |"
echo "|---|---:|---:|---:|---:|---|"
row "list \`GET /v1/bundles\`, keep-alive" list 1.0
row "download \`GET /v1/bundles/<id>\` ($(awk -v b="$BUNDLE_BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MiB), keep-alive" download 1.0
row "\`HEAD /v1/bundles/<id>\`, keep-alive" head 1.0
row "new connections: list with \`--disable-keepalive\` (handshakes/s)" handshake 0.8
lat_v=$(awk -v v="$P50" 'BEGIN {print (v <= 1.0) ? "PASS" : "FAIL"}')
echo "| drop → court sees it (long-poll), p50 of $DROPS | $P50 s (min $LMIN, max $LMAX) | — | — | ≤ 1 s | $lat_v |"
echo
echo "Details:"
echo
echo "| run | server | req/s | MiB/s | server CPU ms/req | oha CPU % | failed |"
echo "|---|---|---:|---:|---:|---:|---:|"
for k in list download handshake head; do
    for s in sealpost nginx; do
        echo "| $k | $s | $(f1 "${RPS[$k|$s]}") | $(f1 "${MIBS[$k|$s]}") | ${CPU[$k|$s]} | ${OHACPU[$k|$s]} | ${ERRS[$k|$s]} |"
    done
done
echo
echo "\`head\` is \`HEAD /v1/bundles/<id>\` (keep-alive): the same lookup as a download without the body and without the fetch bookkeeping. Server CPU is utime+stime of the sealpost process / the nginx workers during the run, per request; oha CPU is the load generator's share of one CPU."
echo "Peak RSS: sealpost $SP_RSS MiB, largest nginx worker $NG_RSS MiB. Long-poll samples (s): ${LAT[*]}."
echo
echo "Notes:"
if ((DL_WRITE_PER_REQ < 512)); then
    fetch_note="in this build only the first GET does that (queued/failed → fetched); the check GET before the runs already did it, so the measured downloads are repeat fetches, and sealpost wrote ~$DL_WRITE_PER_REQ bytes to storage per download request"
else
    fetch_note="sealpost wrote ~$DL_WRITE_PER_REQ bytes to storage per download request during the run, i.e. the durable write happens on every GET here"
fi
echo "- A GET of a bundle is real work in sealpost that nginx does not do: an outbox (sled) lookup on the blocking pool for every request, and marking the bundle \`fetched\` in the outbox (a sled write + fsync); $fetch_note."
echo "- The listing is computed per request by sealpost (outbox scan + JSON); nginx serves a static copy of the same body captured from sealpost once ($(stat -c %s -- "$WWW/list.json") bytes)."
echo "- nginx reads the file and encrypts in user space too (no kTLS; sendfile does not apply to TLS). Access logging is off in nginx; sealpost logs nothing per request at its default level (SEALPOST_LOG=warn)."
echo "- The load generator runs on the same $(nproc) CPUs as the server, so every figure is client-limited as well as server-limited; ratios are the meaningful part."

# Why a target was missed: from profiles of the server under these runs
# (perf record -g -p <sealpost pid>, 2026-11-30; see docs/performance.md).
if [[ ${VERDICT[download]} != PASS ]]; then
    echo "- download below target: sealpost's HEAD of the same bundle costs ${CPU[head|sealpost]} ms CPU, so the body dominates: $(awk -v a="${CPU[download|sealpost]}" -v b="${CPU[head|sealpost]}" 'BEGIN {printf "%.2f", a - b}') ms CPU per $(awk -v b="$BUNDLE_BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MiB body vs nginx $(awk -v a="${CPU[download|nginx]}" -v b="${CPU[head|nginx]}" 'BEGIN {printf "%.2f", a - b}') ms. In a profile the body's CPU is AES-GCM (ring, VAES), the kernel's TCP copies, and rustls copying each 16 KiB record before sealing it in place (OpenSSL seals out of place, one copy fewer); frames are read inline from the page cache (preadv2 RWF_NOWAIT) into heap buffers. $( ((DL_WRITE_PER_REQ < 512)) && echo "With ~0 storage bytes per request (above), the fetch fsync is not the cause in this build." || echo "On top of that, every GET pays a durable outbox write (above).")"
fi
if [[ ${VERDICT[list]} != PASS ]]; then
    echo "- list below target: sealpost builds the listing per request from the outbox's waiting index (${CPU[list|sealpost]} ms CPU/req vs nginx ${CPU[list|nginx]} ms for a static file); in a profile the difference is decoding each delivery record (JSON, RFC 3339 times) and encoding the listing, the rest is the kernel's loopback TCP, which both pay. oha needs ${OHACPU[list|sealpost]}% of its CPU here, so this run is as much client-bound as server-bound."
fi
if [[ ${VERDICT[head]} != PASS ]]; then
    echo "- HEAD below target: one outbox lookup (a JSON record decoded) and the headers per request (${CPU[head|sealpost]} ms CPU/req vs nginx ${CPU[head|nginx]} ms for a stat); oha needs ${OHACPU[head|sealpost]}% of its CPU here, so this run is as much client-bound as server-bound."
fi
if [[ ${VERDICT[handshake]} != PASS ]]; then
    echo "- handshakes below target: both sides do a full ECDSA P-256 mutual handshake per connection; sealpost uses rustls + ring (${CPU[handshake|sealpost]} ms CPU/connection) vs nginx with OpenSSL (${CPU[handshake|nginx]} ms), plus its peer identification from the client certificate; oha itself needs ${OHACPU[handshake|sealpost]}% of a CPU here."
fi
if [[ $lat_v != PASS ]]; then
    echo "- long-poll latency above target: it includes intake noticing the READY marker (inotify, scans every 100 ms), sealing and fsyncing the bundle, and the outbox wake-up."
fi
