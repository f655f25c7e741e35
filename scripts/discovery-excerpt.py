#!/usr/bin/env python3
"""Distil Google's discovery documents into the facts the fake Google server is checked against.

A user's clone has no ../shared, so tests read tests/schemas/google-apis.json instead: for each
API, the methods the auditor and the real gcloud call against the fake (HTTP method, path,
query parameters) and every schema reachable from their requests and responses, reduced to
field name, type, $ref, array item type and enum values. No prose is kept.

APIs with no discovery document in DISCOVERY_DIR (Cloud Functions v1 and v2alpha, Service
Usage, Cloud Build, Resource Manager v1, which gcloud calls on the way to a fix) come from the
method tables of the API clients generated into the installed Google Cloud SDK (path, HTTP
method and query parameters only; no schemas).

Usage: scripts/discovery-excerpt.py [DISCOVERY_DIR [SDK_ROOT]] > tests/schemas/google-apis.json
"""
import json
import re
import sys
from pathlib import Path

# API file -> methods (dotted resource path) the auditor reads, and those gcloud calls to
# apply the printed fixes (tests/gcloud.rs).
WANTED = {
    "run.v2.json": [
        "projects.locations.services.list",
        "projects.locations.services.get",
        "projects.locations.jobs.get",
        "projects.locations.jobs.list",
        "projects.locations.workerPools.list",
        "projects.locations.workerPools.get",
        "projects.locations.workerPools.patch",
    ],
    "run.v1.json": [
        "projects.locations.list",
        "projects.locations.services.list",
        "namespaces.jobs.list",
        "namespaces.workerpools.list",
        "namespaces.services.get",
        "namespaces.services.replaceService",
        "namespaces.jobs.get",
        "namespaces.jobs.replaceJob",
        # Continuous validation: the digests of serving revisions.
        "namespaces.revisions.list",
    ],
    "cloudfunctions.v2.json": [
        "projects.locations.functions.list",
        "projects.locations.functions.get",
        "projects.locations.functions.patch",
        "projects.locations.operations.get",
        "projects.locations.runtimes.list",
    ],
    "binaryauthorization.v1.json": [
        "projects.getPolicy",
        "projects.updatePolicy",
        # Continuous validation: the attestors the policy requires, and what ring cannot
        # verify (gcloud's `attestations create --validate` calls it too).
        "projects.attestors.get",
        "projects.attestors.validateAttestationOccurrence",
    ],
    # Continuous validation reads an attestor note's occurrences; gcloud's `attestations
    # create` writes one.
    "containeranalysis.v1.json": ["projects.notes.occurrences.list", "projects.occurrences.create"],
    "cloudresourcemanager.v3.json": ["projects.search", "folders.list", "projects.list", "projects.get"],
    "cloudasset.v1.json": ["assets.list"],
}

# API (directory/version in the SDK's generated clients) -> method ids gcloud calls.
SDK_WANTED = {
    # Event mode pulls a subscription; the emulator and the fake Pub/Sub answer these.
    "pubsub/v1": [
        "pubsub.projects.subscriptions.pull",
        "pubsub.projects.subscriptions.acknowledge",
        "pubsub.projects.subscriptions.modifyAckDeadline",
        "pubsub.projects.subscriptions.create",
        "pubsub.projects.subscriptions.delete",
        "pubsub.projects.topics.create",
        "pubsub.projects.topics.publish",
    ],
    "cloudfunctions/v1": ["cloudfunctions.projects.locations.functions.list", "cloudfunctions.projects.locations.list"],
    "cloudfunctions/v2alpha": [
        "cloudfunctions.projects.locations.functions.get",
        "cloudfunctions.projects.locations.functions.setupFunctionUpgradeConfig",
        "cloudfunctions.projects.locations.functions.redirectFunctionUpgradeTraffic",
        "cloudfunctions.projects.locations.functions.commitFunctionUpgrade",
        "cloudfunctions.projects.locations.operations.get",
    ],
    "serviceusage/v1": ["serviceusage.services.get"],
    "cloudbuild/v1": ["cloudbuild.projects.locations.getDefaultServiceAccount"],
    "cloudresourcemanager/v1": ["cloudresourcemanager.projects.get", "cloudresourcemanager.projects.getIamPolicy"],
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
        if "request" in m:
            out_methods[dotted]["request"] = m["request"]["$ref"]
            todo.append(m["request"]["$ref"])
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


METHOD_INFO = re.compile(r"base_api\.ApiMethodInfo\((.*?)\n\s*\)", re.S)


def sdk_excerpt(sdk_root, api_version, method_ids):
    """Method tables of an API client generated into the Cloud SDK (apitools)."""
    api, version = api_version.split("/")
    client = Path(sdk_root) / "lib/googlecloudsdk/generated_clients/apis" / api / version / f"{api}_{version}_client.py"
    methods = {}
    for block in METHOD_INFO.findall(client.read_text()):
        field = lambda name: re.search(name + r"=('[^']*'|\[[^\]]*\])", block)  # noqa: E731
        method_id = field("method_id").group(1).strip("'")
        if method_id not in method_ids:
            continue
        path = (field("flat_path") or field("relative_path")).group(1).strip("'")
        methods[method_id.split(".", 1)[1]] = {
            "httpMethod": field("http_method").group(1).strip("'"),
            "path": path,
            "parameters": sorted(json.loads(field("query_params").group(1).replace("'", '"'))),
        }
    missing = set(m.split(".", 1)[1] for m in method_ids) - set(methods)
    if missing:
        sys.exit(f"{client}: methods not found: {sorted(missing)}")
    return {"revision": f"gcloud generated client {api_version}", "methods": methods, "schemas": {}}


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/gcp-discovery")
    sdk = sys.argv[2] if len(sys.argv) > 2 else "/usr/lib/google-cloud-sdk"
    out = {f.removesuffix(".json"): excerpt(json.loads((src / f).read_text()), m) for f, m in WANTED.items()}
    for api_version, method_ids in SDK_WANTED.items():
        out[api_version.replace("/", ".") + ".sdk"] = sdk_excerpt(sdk, api_version, method_ids)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
