#!/usr/bin/env python3
"""The peer baseline: the straightforward loop a user writes with Google's own Python clients
(REST transport) to collect what binauthz-auditor collects, pointed at the fake Google.

pip install google-cloud-run google-cloud-functions google-cloud-binary-authorization
"""
import argparse

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import binaryauthorization_v1, functions_v2, run_v2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--projects", type=int, required=True)
    ap.add_argument("--regions", type=int, default=2)
    args = ap.parse_args()
    opts = ClientOptions(api_endpoint=args.endpoint)
    kw = dict(client_options=opts, transport="rest", credentials=AnonymousCredentials())
    services = run_v2.ServicesClient(**kw)
    jobs = run_v2.JobsClient(**kw)
    pools = run_v2.WorkerPoolsClient(**kw) if hasattr(run_v2, "WorkerPoolsClient") else None
    functions = functions_v2.FunctionServiceClient(**kw)
    binauthz = binaryauthorization_v1.BinauthzManagementServiceV1Client(**kw)
    regions = ["us-central1", "europe-west1", "asia-east1", "us-east1", "europe-west4"][: args.regions]

    found = 0
    for p in range(args.projects):
        project = f"org-project-{p:05d}"
        binauthz.get_policy(name=f"projects/{project}/policy")
        found += sum(1 for _ in functions.list_functions(parent=f"projects/{project}/locations/-"))
        for region in regions:
            parent = f"projects/{project}/locations/{region}"
            found += sum(1 for _ in services.list_services(parent=parent))
            found += sum(1 for _ in jobs.list_jobs(parent=parent))
            if pools is not None:
                found += sum(1 for _ in pools.list_worker_pools(parent=parent))
    print(f"peer: {found} resources in {args.projects} projects")


if __name__ == "__main__":
    main()
