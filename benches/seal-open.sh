#!/usr/bin/env bash
# benches/seal-open.sh — time and memory of `sealpost seal` / `sealpost open`
# against "age + minisign" and "openssl cms" on the same large document.
#
# Usage: benches/seal-open.sh [--build]
#   --build       run `cargo build --release` even if target/release/sealpost exists
# Environment:
#   SIZE_MIB      size of the big document in MiB (default 256)
#   RUNS          timed runs per competitor (default 5; one extra untimed warm-up)
#   TMPDIR        where the work directory goes (default /tmp); it is removed at exit
#   SEALPOST_BIN  use this sealpost binary instead of target/release/sealpost
#
# See benches/README.md.
set -euo pipefail

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

BUILD=0
for arg in "$@"; do
    case $arg in
        --build) BUILD=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "seal-open.sh: unknown argument: $arg" >&2; usage >&2; exit 64 ;;
    esac
done

SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-5}
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || { echo "seal-open.sh: SIZE_MIB must be a positive integer (got '$SIZE_MIB')" >&2; exit 64; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "seal-open.sh: RUNS must be a positive integer (got '$RUNS')" >&2; exit 64; }

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
CERTS=$REPO/certs-example
FIX=$REPO/fixtures/applications/zhang-wei-futian
TIME=/usr/bin/time

# --- 1. tools -----------------------------------------------------------------
missing_pkgs=()
for t in age minisign openssl; do
    command -v "$t" >/dev/null 2>&1 || missing_pkgs+=("$t")
done
# GNU time (not the shell keyword, not busybox): wall seconds and peak RSS in one go.
if ! { [[ -x $TIME ]] && $TIME -f '%e %M' -o /dev/null true 2>/dev/null; }; then
    missing_pkgs+=(time)
fi
for t in head sort awk cmp sha256sum mktemp; do
    command -v "$t" >/dev/null 2>&1 || { missing_pkgs+=(coreutils); break; }
done
if ((${#missing_pkgs[@]})); then
    echo "seal-open.sh: missing tools. On Debian/Ubuntu install them with:" >&2
    echo "    apt-get install ${missing_pkgs[*]}" >&2
    echo "(age >= 1.0, minisign >= 0.10, openssl >= 3.0, GNU time at /usr/bin/time)" >&2
    exit 69
fi

# --- 2. sealpost binary ---------------------------------------------------------
if [[ -n ${SEALPOST_BIN:-} ]]; then
    BIN=$SEALPOST_BIN
    ((BUILD == 0)) || echo "seal-open.sh: SEALPOST_BIN is set; ignoring --build" >&2
else
    target_dir=${CARGO_TARGET_DIR:-$REPO/target}
    [[ $target_dir == /* ]] || target_dir=$PWD/$target_dir
    BIN=$target_dir/release/sealpost
    if ((BUILD)) || [[ ! -x $BIN ]]; then
        command -v cargo >/dev/null 2>&1 || {
            echo "seal-open.sh: $BIN is missing and cargo is not installed (https://rustup.rs)" >&2
            exit 69
        }
        echo "building $BIN (cargo build --release) ..." >&2
        (cd -- "$REPO" && cargo build --release) >&2
    fi
fi
[[ -x $BIN ]] || { echo "seal-open.sh: $BIN is not an executable" >&2; exit 69; }

# --- 3. work dir and documents ----------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealpost-bench.XXXXXX")
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# seal never touches data_dir, but keep anything that might well away from /var/lib.
export SEALPOST_NODE__DATA_DIR=$WORK/data
mkdir -p "$SEALPOST_NODE__DATA_DIR"

APP=$WORK/application
OUT=$WORK/out
mkdir -p "$APP" "$OUT"
BIG=$APP/财产保全申请书.pdf
echo "generating a $SIZE_MIB MiB document in $WORK ..." >&2
{
    printf '%%PDF-1.7\n'
    head -c $((SIZE_MIB * 1024 * 1024 - 16)) /dev/urandom
    printf '\n%%%%EOF\n' # a PDF ends with %%EOF (intake refuses a cut copy)
} >"$BIG"
cp -- "$FIX/仲裁申请书.pdf" "$FIX/受理通知书.pdf" "$APP/"
cat >"$APP/application.toml" <<'EOF'
# 财产保全申请 / property-preservation application (benchmark copy of
# fixtures/applications/zhang-wei-futian/application.toml, big document only)
format = "sealpost-application/1"
case_number = "深劳人仲案〔2026〕1234号"
court = "sz-futian-court"
claim_amount = "86500.00"

[applicant]
name = "张伟"
email = "zhang.wei@example.com"
mobile = "+86 138 0013 8000"
language = "zh"

[respondent]
name = "深圳市某某科技有限公司"
address = "深圳市福田区某某路1号"

[[documents]]
file = "财产保全申请书.pdf"
role = "preservation-application"

[[documents]]
file = "仲裁申请书.pdf"
role = "arbitration-application"

[[documents]]
file = "受理通知书.pdf"
role = "acceptance-notice"
EOF

# minisign key pair, no password.
MS_PUB=$WORK/minisign.pub
MS_SEC=$WORK/minisign.key
minisign -G -W -p "$MS_PUB" -s "$MS_SEC" >/dev/null
AGE_RCPT=$(grep -v '^#' "$CERTS/sz-futian-court/age.pub" | head -n1 | tr -d '[:space:]')
AGE_KEY=$CERTS/sz-futian-court/age.key

# openssl cms: use the example PKI where OpenSSL can; otherwise throwaway keys.
NOTES=()
probe=$WORK/probe
printf 'probe\n' >"$probe"
CMS_SIGNER=$CERTS/sz-lac/sign.pem
CMS_SIGNKEY=$CERTS/sz-lac/sign.key
CMS_CA=$CERTS/ca.pem
if ! openssl cms -sign -binary -in "$probe" -signer "$CMS_SIGNER" -inkey "$CMS_SIGNKEY" \
    -outform DER -out "$probe.p7s" -nodetach >/dev/null 2>&1; then
    CMS_SIGNER=$WORK/cms-sign.pem
    CMS_SIGNKEY=$WORK/cms-sign.key
    CMS_CA=$CMS_SIGNER
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CMS_SIGNKEY" -out "$CMS_SIGNER" \
        -subj '/CN=sealpost benchmark signer' -days 2 >/dev/null 2>&1
    NOTES+=("openssl cms: OpenSSL $(openssl version | awk '{print $2}') cannot sign CMS with the Ed25519 key certs-example/sz-lac/sign.key; signed with a throwaway RSA-2048 self-signed certificate instead.")
fi
CMS_RCPT=$CERTS/sz-futian-court/tls.pem
CMS_RCPTKEY=$CERTS/sz-futian-court/tls.key
if ! openssl cms -encrypt -binary -aes-256-gcm -in "$probe" -outform DER -out "$probe.cms" \
    "$CMS_RCPT" >/dev/null 2>&1 ||
    ! openssl cms -decrypt -binary -inform DER -in "$probe.cms" -recip "$CMS_RCPT" \
        -inkey "$CMS_RCPTKEY" -out "$probe.dec" >/dev/null 2>&1; then
    CMS_RCPT=$WORK/cms-rcpt.pem
    CMS_RCPTKEY=$WORK/cms-rcpt.key
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CMS_RCPTKEY" -out "$CMS_RCPT" \
        -subj '/CN=sealpost benchmark recipient' -days 2 >/dev/null 2>&1
    NOTES+=("openssl cms: ECDH (P-256) CMS encryption to certs-example/sz-futian-court/tls.pem failed; encrypted to a throwaway RSA-2048 self-signed certificate instead.")
else
    NOTES+=("openssl cms: encrypted with ECDH (P-256) to certs-example/sz-futian-court/tls.pem.")
fi

# --- 4. the competitors --------------------------------------------------------------
BUNDLE=$OUT/big.sealpost
OPENED=$OUT/opened
AGE_OUT=$OUT/big.age
AGE_DEC=$OUT/big.age.out
P7S=$OUT/big.p7s
CMS=$OUT/big.cms
CMS_DEC=$OUT/big.cms.p7s
CMS_PLAIN=$OUT/big.cms.out
SEAL_CFG=$REPO/config/sealpost.example.toml
COURT_CFG=$REPO/config/sz-futian-court.example.toml

# Shell-quote for the sh -c strings.
q() { printf '%q' "$1"; }

declare -A MEDIAN PEAK
ORDER=()

# measure KEY PREP_FUNCTION CMD... : one untimed warm-up, then RUNS timed runs.
# PREP_FUNCTION runs before every run (outside the timing) to remove outputs.
measure() {
    local key=$1 prep=$2
    shift 2
    local times=() rss=() i tf=$WORK/time.out log=$WORK/run.log
    echo "  $key: warm-up + $RUNS runs" >&2
    for ((i = 0; i <= RUNS; i++)); do
        "$prep"
        if ! $TIME -f '%e %M' -o "$tf" -- "$@" >"$log" 2>&1; then
            echo "seal-open.sh: $key failed:" >&2
            cat -- "$log" "$tf" >&2 || true
            exit 70
        fi
        ((i == 0)) && continue
        local e m
        read -r e m < <(tail -n1 -- "$tf")
        times+=("$e")
        rss+=("$m")
    done
    MEDIAN[$key]=$(printf '%s\n' "${times[@]}" | sort -g |
        awk '{a[NR]=$1} END {if (NR % 2) printf "%.2f", a[(NR+1)/2]; else printf "%.3f", (a[NR/2]+a[NR/2+1])/2}')
    PEAK[$key]=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)
    ORDER+=("$key")
}

prep_seal() { rm -f -- "$BUNDLE"; }
prep_age_seal() { rm -f -- "$AGE_OUT" "$AGE_OUT.minisig"; }
prep_cms_seal() { rm -f -- "$P7S" "$CMS"; }
prep_open() { rm -rf -- "$OPENED"; }
prep_age_open() { rm -f -- "$AGE_DEC"; }
prep_cms_open() { rm -f -- "$CMS_DEC" "$CMS_PLAIN"; }

echo "seal ($SIZE_MIB MiB) ..." >&2
measure "seal|sealpost" prep_seal \
    "$BIN" seal -c "$SEAL_CFG" --input "$APP" --to sz-futian-court -o "$BUNDLE"
measure "seal|age + minisign" prep_age_seal sh -c \
    "age -r $(q "$AGE_RCPT") -o $(q "$AGE_OUT") $(q "$BIG") && minisign -S -s $(q "$MS_SEC") -m $(q "$AGE_OUT")"
measure "seal|openssl cms" prep_cms_seal sh -c \
    "openssl cms -sign -binary -in $(q "$BIG") -signer $(q "$CMS_SIGNER") -inkey $(q "$CMS_SIGNKEY") -outform DER -out $(q "$P7S") -nodetach && openssl cms -encrypt -binary -aes-256-gcm -in $(q "$P7S") -outform DER -out $(q "$CMS") $(q "$CMS_RCPT")"

echo "open ..." >&2
measure "open|sealpost" prep_open \
    "$BIN" open -c "$COURT_CFG" "$BUNDLE" -o "$OPENED"
measure "open|age + minisign" prep_age_open sh -c \
    "minisign -V -p $(q "$MS_PUB") -m $(q "$AGE_OUT") && age -d -i $(q "$AGE_KEY") -o $(q "$AGE_DEC") $(q "$AGE_OUT")"
measure "open|openssl cms" prep_cms_open sh -c \
    "openssl cms -decrypt -binary -inform DER -in $(q "$CMS") -recip $(q "$CMS_RCPT") -inkey $(q "$CMS_RCPTKEY") -out $(q "$CMS_DEC") && openssl cms -verify -binary -inform DER -in $(q "$CMS_DEC") -CAfile $(q "$CMS_CA") -purpose any -out $(q "$CMS_PLAIN")"

# Every tool must have round-tripped the document.
opened_doc=$OPENED/documents/财产保全申请书.pdf
[[ -f $opened_doc ]] || opened_doc=$(find "$OPENED" -type f -name '财产保全申请书.pdf' -print -quit)
for f in "$opened_doc" "$AGE_DEC" "$CMS_PLAIN"; do
    cmp -s -- "$BIG" "$f" || { echo "seal-open.sh: round trip failed: $f differs from the input" >&2; exit 70; }
done

# --- 5. report --------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v s="$1" -v o="$2" 'BEGIN {if (o > 0) printf "%.2f", s / o; else print "n/a"}'; }

cpu=$(lscpu 2>/dev/null | awk -F: '/^Model name/ {gsub(/^[ \t]+/, "", $2); print $2; exit}')
echo
echo "## sealpost seal/open benchmark"
echo
echo "- document: $SIZE_MIB MiB (random between a %PDF-1.7 header and a %%EOF trailer) + 2 small PDFs; $RUNS timed runs after 1 warm-up; median wall time, max peak RSS"
echo "- host: $(nproc) CPUs, ${cpu:-unknown CPU}; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $("$BIN" --version 2>/dev/null || echo sealpost) ($BIN); age $(age --version 2>/dev/null); $(minisign -v 2>/dev/null | head -n1); $(openssl version | cut -d' ' -f1-2)"
echo
echo "| operation | tool | median wall s | peak RSS MiB | ratio vs sealpost (time) |"
echo "|---|---|---:|---:|---:|"
for key in "${ORDER[@]}"; do
    op=${key%%|*}
    tool=${key#*|}
    echo "| $op | $tool | ${MEDIAN[$key]} | $(mib "${PEAK[$key]}") | $(ratio "${MEDIAN[$op|sealpost]}" "${MEDIAN[$key]}") |"
done
echo
echo "ratio = sealpost time / tool time (below 1: sealpost is faster)."
echo

verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t) ? "PASS" : "FAIL"}'; }
s=${MEDIAN[seal|sealpost]}
r_age=$(ratio "$s" "${MEDIAN[seal|age + minisign]}")
r_cms=$(ratio "$s" "${MEDIAN[seal|openssl cms]}")
rss_seal=$(mib "${PEAK[seal|sealpost]}")
rss_open=$(mib "${PEAK[open|sealpost]}")
echo "Targets (seal):"
echo "- seal time ≤ 0.5× age + minisign: ${r_age}× — $(verdict "$r_age" 0.5)"
echo "- seal time ≤ 0.1× openssl cms: ${r_cms}× — $(verdict "$r_cms" 0.1)"
echo "- seal peak RSS ≤ 32 MiB: $rss_seal MiB — $(verdict "$rss_seal" 32)"
echo "- (for information) open peak RSS ≤ 32 MiB: $rss_open MiB — $(verdict "$rss_open" 32)"
echo
echo "Notes:"
echo "- peak RSS is GNU time's %M: the largest single process of the command (for the sh -c pairs, whichever of the two steps peaked)."
echo "- sealpost fsyncs its output (bundle on seal, every file and directory on open); age, minisign and openssl do not."
for n in "${NOTES[@]}"; do echo "- $n"; done
