#!/usr/bin/env python3
"""Distil Google's discovery documents into the facts the fake Google server is checked against.

A user's clone has no ../shared, so tests read tests/schemas/google-apis.json instead: for each
API, the list/get methods the auditor calls (path + query parameters) and every schema reachable
from their responses, reduced to field name, type, $ref, array item type and enum values.
No prose is kept.

Usage: scripts/discovery-excerpt.py [DISCOVERY_DIR] > tests/schemas/google-apis.json
"""
import json
import sys
from pathlib import Path

# API file -> methods (dotted resource path) whose responses the auditor reads.
WANTED = {
    "run.v2.json": [
        "projects.locations.services.list",
        "projects.locations.jobs.list",
        "projects.locations.workerPools.list",
    ],
    "run.v1.json": [
        "projects.locations.list",
        "projects.locations.services.list",
        "namespaces.jobs.list",
        "namespaces.workerpools.list",
    ],
    "cloudfunctions.v2.json": ["projects.locations.functions.list"],
    "binaryauthorization.v1.json": ["projects.getPolicy"],
    "cloudresourcemanager.v3.json": ["projects.search", "folders.list", "projects.list"],
    "cloudasset.v1.json": ["assets.list"],
}


def find_method(doc, dotted):
    *resources, method = dotted.split(".")
    node = doc
    for r in resources:
        node = node["resources"][r]
    return node["methods"][method]


def field_facts(prop):
    facts = {}
    for key in ("type", "$ref", "format"):
        if key in prop:
            facts[key] = prop[key]
    if "enum" in prop:
        facts["enum"] = prop["enum"]
    if "items" in prop:
        facts["items"] = field_facts(prop["items"])
    if "additionalProperties" in prop:
        facts["additionalProperties"] = field_facts(prop["additionalProperties"])
    return facts


def refs_of(facts):
    if "$ref" in facts:
        yield facts["$ref"]
    for nested in ("items", "additionalProperties"):
        if nested in facts:
            yield from refs_of(facts[nested])


def excerpt(doc, methods):
    out_methods, todo = {}, []
    for dotted in methods:
        m = find_method(doc, dotted)
        out_methods[dotted] = {
            "httpMethod": m["httpMethod"],
            "path": m.get("flatPath", m["path"]),
            "parameters": sorted(k for k, p in m.get("parameters", {}).items() if p.get("location") == "query"),
            "response": m["response"]["$ref"],
        }
        todo.append(m["response"]["$ref"])
    schemas = {}
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        props = {k: field_facts(v) for k, v in doc["schemas"][name].get("properties", {}).items()}
        schemas[name] = props
        for facts in props.values():
            todo.extend(refs_of(facts))
    return {"revision": doc.get("revision"), "methods": out_methods, "schemas": dict(sorted(schemas.items()))}


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/gcp-discovery")
    out = {f.removesuffix(".json"): excerpt(json.loads((src / f).read_text()), m) for f, m in WANTED.items()}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
