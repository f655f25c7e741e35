#!/usr/bin/env python3
"""Distil Google's discovery documents into the facts the fake Google server is checked against.

A user's clone has no ../shared, so tests read tests/schemas/google-apis.json instead: for each
API, the methods the auditor and the real gcloud call against the fake (HTTP method, path,
query parameters) and every schema reachable from their requests and responses, reduced to
field name, type, $ref, array item type and enum values. No prose is kept.

APIs with no discovery document in DISCOVERY_DIR (Cloud Functions v1 and v2alpha, Service
Usage, Cloud Build, Resource Manager v1, Cloud KMS, which gcloud calls on the way to a fix)
come from the method tables of the API clients generated into the installed Google Cloud SDK
(path, HTTP method and query parameters). For those in SDK_SCHEMAS the schemas come too, from
the client's generated messages (imported from the SDK: field names, types, enum values).

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
    # `gcloud beta container binauthz attestations sign-and-create`, the fix printed for an
    # unattested image whose attestor has a Cloud KMS key: the attestor (the beta track reads
    # it from v1beta1), the key's algorithm, then a signature of the payload's digest.
    "binaryauthorization/v1beta1": ["binaryauthorization.projects.attestors.get"],
    "cloudkms/v1": [
        "cloudkms.projects.locations.keyRings.cryptoKeys.cryptoKeyVersions.getPublicKey",
        "cloudkms.projects.locations.keyRings.cryptoKeys.cryptoKeyVersions.asymmetricSign",
    ],
}

# SDK-only APIs whose request and response schemas are checked too (from the generated
# messages); the others were added before this existed and keep method tables only.
SDK_SCHEMAS = {"binaryauthorization/v1beta1", "cloudkms/v1"}


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


def message_facts(field):
    """A generated (apitools) message field as field_facts() describes a discovery property."""
    from apitools.base.protorpclite import messages  # the SDK's, on sys.path by sdk_messages()

    if isinstance(field, messages.MessageField):
        facts = {"$ref": field.type.__name__}
    elif isinstance(field, messages.EnumField):
        facts = {"type": "string", "enum": sorted(field.type.names(), key=lambda n: field.type(n).number)}
    elif isinstance(field, messages.BytesField):
        facts = {"type": "string", "format": "byte"}
    elif isinstance(field, messages.IntegerField):
        # apitools' default variant is INT64, which JSON carries as a string.
        facts = {"type": "integer", "format": field.variant.name.lower()}
    else:
        facts = {
            messages.StringField: {"type": "string"},
            messages.BooleanField: {"type": "boolean"},
            messages.FloatField: {"type": "number"},
        }[type(field)]
    return {"type": "array", "items": facts} if field.repeated else facts


def sdk_messages(sdk_root, api, version):
    lib = Path(sdk_root) / "lib"
    sys.path[:0] = [str(lib), str(lib / "third_party")]
    module = f"googlecloudsdk.generated_clients.apis.{api}.{version}.{api}_{version}_messages"
    return __import__(module, fromlist=["_"])


def sdk_schemas(messages_module, roots):
    """Every message reachable from `roots`, as excerpt() writes discovery schemas."""
    schemas, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        props = {f.name: message_facts(f) for f in getattr(messages_module, name).all_fields()}
        schemas[name] = dict(sorted(props.items()))
        for facts in props.values():
            todo.extend(refs_of(facts))
    return dict(sorted(schemas.items()))


def sdk_excerpt(sdk_root, api_version, method_ids):
    """Method tables of an API client generated into the Cloud SDK (apitools), and for the
    APIs in SDK_SCHEMAS the schemas of their requests and responses."""
    api, version = api_version.split("/")
    messages_module = sdk_messages(sdk_root, api, version) if api_version in SDK_SCHEMAS else None
    client = Path(sdk_root) / "lib/googlecloudsdk/generated_clients/apis" / api / version / f"{api}_{version}_client.py"
    methods = {}
    for block in METHOD_INFO.findall(client.read_text()):
        field = lambda name: re.search(name + r"=('[^']*'|\[[^\]]*\])", block)  # noqa: E731
        method_id = field("method_id").group(1).strip("'")
        if method_id not in method_ids:
            continue
        path = (field("flat_path") or field("relative_path")).group(1).strip("'")
        method = methods[method_id.split(".", 1)[1]] = {
            "httpMethod": field("http_method").group(1).strip("'"),
            "path": path,
            "parameters": sorted(json.loads(field("query_params").group(1).replace("'", '"'))),
        }
        if messages_module:
            method["response"] = field("response_type_name").group(1).strip("'")
            # The body is the request message's field named request_field ('' for none).
            body = field("request_field").group(1).strip("'")
            if body:
                wrapper = getattr(messages_module, field("request_type_name").group(1).strip("'"))
                method["request"] = wrapper.field_by_name(body).type.__name__
    missing = set(m.split(".", 1)[1] for m in method_ids) - set(methods)
    if missing:
        sys.exit(f"{client}: methods not found: {sorted(missing)}")
    roots = [m[k] for m in methods.values() for k in ("request", "response") if k in m]
    schemas = sdk_schemas(messages_module, roots) if messages_module else {}
    return {"revision": f"gcloud generated client {api_version}", "methods": methods, "schemas": schemas}


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
