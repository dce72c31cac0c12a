#!/usr/bin/env python3
"""Runs every example of docs/openapi.yaml against a live node, in order.

usage: openapi_examples.py OPENAPI_YAML BASE_URL API_KEY

For each operation (paths in document order) and each example name of it
(the request body's examples, else its parameters', else its responses'), the
request is built from the examples of that name: path and query parameters,
the Idempotency-Key header, the JSON body (a string example is sent as is).
The response example of the same name gives the expected status and body.
An example object may say `x-api-key: none` (send no key) or
`x-api-key: malformed`.  Bodies are compared field by field: every field of
the example must be in the answer with the same value, except fields that
depend on the time or on the ledger's numbering (VOLATILE: only the type is
compared); arrays must have the same length.  text/plain examples: every
metric name of the example must be in the answer.  Exit status 0 if every
example held, 1 otherwise; one line per example either way.
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import yaml

VOLATILE = {"seq", "time_ms", "as_of_seq", "at", "at_ms", "through_seq", "commit_index",
            "applied_index", "last_index", "earned", "expires"}
METHODS = ("get", "post", "put", "delete", "patch")


def resolve(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def compare(want, got, path, errors):
    if isinstance(want, dict):
        if not isinstance(got, dict):
            errors.append(f"{path}: expected an object, got {json.dumps(got)}")
            return
        for k, v in want.items():
            if k not in got:
                errors.append(f"{path}.{k}: missing")
            elif k in VOLATILE:
                if type(v) is not type(got[k]) and not (v is None or got[k] is None):
                    errors.append(f"{path}.{k}: type {type(got[k]).__name__}, example has {type(v).__name__}")
            else:
                compare(v, got[k], f"{path}.{k}", errors)
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            errors.append(f"{path}: expected {len(want)} items, got {json.dumps(got)}")
            return
        for i, (w, g) in enumerate(zip(want, got)):
            compare(w, g, f"{path}[{i}]", errors)
    elif want != got or type(want) is not type(got):
        errors.append(f"{path}: expected {json.dumps(want)}, got {json.dumps(got)}")


def example_names(doc, op):
    names = []

    def add(examples):
        for n in examples or {}:
            if n not in names:
                names.append(n)

    body = resolve(doc, op.get("requestBody", {}))
    for media in body.get("content", {}).values():
        add(media.get("examples"))
    if not names:
        for p in op.get("parameters", []):
            p = resolve(doc, p)
            if p.get("in") in ("path", "query"):
                add(p.get("examples"))
    if not names:
        for resp in op.get("responses", {}).values():
            for media in resolve(doc, resp).get("content", {}).values():
                add(media.get("examples"))
    return names


def response_example(doc, op, name):
    for status, resp in op.get("responses", {}).items():
        for mtype, media in resolve(doc, resp).get("content", {}).items():
            ex = (media.get("examples") or {}).get(name)
            if ex is not None:
                return int(status), mtype, ex
    return None, None, None


def run(doc, base, key, path, method, op, name):
    url_path = path
    query = []
    headers = {}
    for p in op.get("parameters", []):
        p = resolve(doc, p)
        ex = (p.get("examples") or {}).get(name)
        if ex is None:
            continue
        value = str(resolve(doc, ex)["value"])
        if p["in"] == "path":
            url_path = url_path.replace("{" + p["name"] + "}", urllib.parse.quote(value, safe=""))
        elif p["in"] == "query":
            query.append((p["name"], value))
        elif p["in"] == "header":
            headers[p["name"]] = value
    status, mtype, rex = response_example(doc, op, name)
    if status is None:
        return [f"no response example named {name}"]
    security = op.get("security", doc.get("security", []))
    auth = rex.get("x-api-key", "valid") if security else "none"
    if auth == "valid":
        headers["Authorization"] = "Bearer " + key
    elif auth == "malformed":
        headers["Authorization"] = "Bearer not-a-key"
    data = None
    body = resolve(doc, op.get("requestBody", {}))
    for media in body.get("content", {}).values():
        ex = (media.get("examples") or {}).get(name)
        if ex is not None:
            v = ex["value"]
            data = (v if isinstance(v, str) else json.dumps(v)).encode()
            headers["Content-Type"] = "application/json"
    url = base + url_path + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            got_status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        got_status, text = e.code, e.read().decode()
    errors = []
    if got_status != status:
        errors.append(f"status {got_status}, expected {status}: {text}")
        return errors
    if mtype == "application/json":
        try:
            got = json.loads(text)
        except ValueError:
            return [f"not JSON: {text}"]
        compare(rex["value"], got, "$", errors)
    else:
        for line in rex["value"].splitlines():
            metric = line.split("{")[0].split(" ")[0]
            if metric and metric not in text:
                errors.append(f"metric {metric} missing")
    return errors


def main():
    spec, base, key = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
    with open(spec) as f:
        doc = yaml.safe_load(f)
    failed = ran = 0
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            names = example_names(doc, op)
            if not names:
                print(f"FAIL {method.upper()} {path}: no examples")
                failed += 1
            for name in names:
                errors = run(doc, base, key, path, method, op, name)
                ran += 1
                if errors:
                    failed += 1
                    print(f"FAIL {method.upper()} {path} [{name}]: " + "; ".join(errors))
                else:
                    print(f"ok   {method.upper()} {path} [{name}]")
    print(f"{ran} examples, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
