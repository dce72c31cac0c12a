# shellcheck shell=bash
# Helpers for the HTTP API process tests (tests/process/test_http*.sh,
# test_openapi.sh).  Source it after tests/lib/common.sh.
#
#   http_keys                    admin and partner key pairs in $KEY_DIR (the
#                                common.sh helpers when present, else here)
#   start_http_node DATA PORT HTTP_PORT [ARGS...]   a node signing for
#                                partner acme with its HTTP API on HTTP_PORT
#                                (HTTP_URL), acme registered, API_KEY issued
#   hreq METHOD PATH [BODY] [IDEMPOTENCY_KEY] [API_KEY]   one request with
#                                curl: HSTATUS, HBODY (API_KEY "-": none)
#   hexpect STATUS METHOD PATH [BODY] [IDEMPOTENCY_KEY]   hreq, then fail
#                                unless the status is STATUS
#   hjson FILTER                 jq FILTER over HBODY (raw output)
#   herror_is CODE               HBODY is an error object with CODE

for tool in curl jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/deps.sh)"
done

HTTP_URL=
API_KEY=
KEY_DIR=${KEY_DIR:-$TEST_TMP/keys}

# The CLI with the key directory (writes signed by their partner or admin).
hcli() {
    "$COALITION" --node "127.0.0.1:$NODE_PORT" --key-dir "$KEY_DIR" "$@"
}

http_keys() {
    mkdir -p "$KEY_DIR"
    if declare -F partner_keygen >/dev/null; then
        [[ -f $KEY_DIR/acme.key ]] || partner_keygen acme >/dev/null
    else
        [[ -f $KEY_DIR/acme.key ]] || "$COALITION" keygen --out "$KEY_DIR/acme" >/dev/null
    fi
    [[ -f $KEY_DIR/admin.key ]] || "$COALITION" keygen --out "$KEY_DIR/admin" >/dev/null
}

# A fresh API key of partner acme.
new_api_key() {
    if declare -F api_key_for >/dev/null; then
        api_key_for acme
        return
    fi
    local out
    out=$(hcli --json apikey create --partner acme) || fail "apikey create: $out"
    jq -r .api_key <<<"$out"
}

# start_http_node DATA PORT HTTP_PORT [ARGS...]
start_http_node() {
    local data=$1 port=$2 hport=$3
    shift 3
    http_keys
    start_node "$data" "$port" --admin-public-key "$(<"$KEY_DIR/admin.pub")" \
        --partner acme --partner-key "$KEY_DIR/acme.key" --http "127.0.0.1:$hport" "$@"
    HTTP_URL=http://127.0.0.1:$hport
    local deadline=$(($(now_ms) + 10000))
    until curl -s -o /dev/null "$HTTP_URL/health"; do
        (($(now_ms) < deadline)) || fail "the HTTP API on port $hport does not answer"
        sleep 0.1
    done
    if ! hcli --json partner add acme --name "Acme Stores" --public-key "$KEY_DIR/acme.pub" \
        >/dev/null 2>&1; then
        # Registered already (a restart).
        :
    fi
    API_KEY=$(new_api_key)
    [[ $API_KEY =~ ^[0-9a-f]{16}\.[0-9a-f]{64}$ ]] || fail "no API key: '$API_KEY'"
}

# hreq METHOD PATH [BODY] [IDEMPOTENCY_KEY] [API_KEY]
hreq() {
    local method=$1 path=$2 body=${3-} idem=${4-} key=${5-$API_KEY}
    local args=(-s -S -o "$TEST_TMP/.hbody" -w '%{http_code}' -X "$method" --max-time 20)
    [[ $key == - ]] || args+=(-H "Authorization: Bearer $key")
    [[ -z $idem ]] || args+=(-H "Idempotency-Key: $idem")
    [[ -z $body ]] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
    HSTATUS=$(curl "${args[@]}" "$HTTP_URL$path") || HSTATUS=000
    HBODY=$(<"$TEST_TMP/.hbody")
}

hexpect() {
    local status=$1
    shift
    hreq "$@"
    if [[ $HSTATUS != "$status" ]]; then
        fail "$1 $2 ${3-}: HTTP $HSTATUS, expected $status: $HBODY"
    fi
}

hjson() {
    jq -r "$1" <<<"$HBODY"
}

herror_is() {
    local got
    got=$(jq -r '.error.code // empty' <<<"$HBODY" 2>/dev/null) || true
    [[ $got == "$1" ]] || fail "expected error $1, got HTTP $HSTATUS: $HBODY"
    [[ -n $(jq -r '.error.message // empty' <<<"$HBODY") ]] || fail "error without message: $HBODY"
}
