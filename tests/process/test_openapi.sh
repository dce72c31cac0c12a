#!/usr/bin/env bash
# docs/openapi.yaml stays true: every example in it runs against a live node
# (partner acme, an API key, the identity key for phone and email lookups),
# in document order, and each answer must have the example's status and
# fields (tests/lib/openapi_examples.py).  Also: every route of the node's
# table is documented.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=tests/lib/http_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/http_lib.sh"

python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is not installed (scripts/deps.sh)"
SPEC=$SOURCE_DIR/docs/openapi.yaml

log "every route of node/http_routes.c is in the document"
ROUTES=$(grep -cE '\[ROUTE_[A-Z_]+\] = "[A-Z]+ /' "$SOURCE_DIR/node/http_routes.c")
CHECKED=$(grep -cE '\[ROUTE_[A-Z_]+\] = "(GET|POST|PUT) /' "$SOURCE_DIR/node/http_routes.c")
expect_eq "$CHECKED" "$ROUTES" "routes with a method this check knows"
while read -r method path; do
    python3 - "$SPEC" "$method" "$path" <<'PY' || fail "$method $path is not documented"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
sys.exit(0 if sys.argv[2].lower() in doc["paths"].get(sys.argv[3], {}) else 1)
PY
done < <(grep -oE '\[ROUTE_[A-Z_]+\] = "(GET|POST|PUT) [^"]+"' "$SOURCE_DIR/node/http_routes.c" |
    sed -E 's/.*"(GET|POST|PUT) ([^"]+)"/\1 \2/')

mapfile -t PORTS < <(free_port 3)
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TEST_TMP/identity.key"
start_http_node "$TEST_TMP/node" "${PORTS[0]}" "${PORTS[1]}" --raft "127.0.0.1:${PORTS[2]}" \
    --identity-key "$TEST_TMP/identity.key"

log "the examples of docs/openapi.yaml"
run python3 "$SOURCE_DIR/tests/lib/openapi_examples.py" "$SPEC" "$HTTP_URL" "$API_KEY"
sed "s/^/[$TEST_NAME]   /" <<<"$OUT"
[[ $RC == 0 ]] || fail "examples of docs/openapi.yaml do not hold: $ERR"
N=$(grep -c '^ok ' <<<"$OUT")
((N >= 40)) || fail "only $N examples ran"

stop_node TERM
expect_eq "$EXIT_CODE" 0 "exit status after SIGTERM"
log "PASS"
